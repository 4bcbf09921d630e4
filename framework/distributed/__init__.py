"""Indexing on a Ray cluster: ``edgeroute index PATH --ray ADDRESS`` and :func:`index_with_ray`.

Needs the ``ray`` extra (``pip install 'edgeroute[ray]'``); importing this package does not import Ray.
"""

from __future__ import annotations

from .index import RayIndexOutcome, index_with_ray, require_chroma_server

__all__ = ["RayIndexOutcome", "index_with_ray", "require_chroma_server"]
