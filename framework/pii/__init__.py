"""On-device PII recognition: patterns, secret rules and a token-classification head on the edge model.

``PiiDetector`` is the one API (findings with kind, span, score, detector); the pure policies receive its
findings as signals. See docs/pii.md.
"""

from .detector import PiiDetector
from .head import HEAD_KINDS, PiiHead

__all__ = ["HEAD_KINDS", "PiiDetector", "PiiHead"]
