"""Fitted semantic routes on disk: the labelled examples and their thresholds, bound to one embedding space.

``edgeroute policy fit`` writes the file; :func:`load_semantic_routes` re-embeds the examples on-device
(the cache makes that cheap) and rebuilds :class:`~edgeroute.policies.semantic.SemanticRoutes`. Vectors
are not stored, so the file stays small and readable, and a changed model is detected by its space.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...policies.semantic import SemanticRoutes, ThresholdFit, fit_thresholds
from ..embedder import Embedder
from ..errors import ConfigurationError, SpaceMismatchError

FORMAT = "edgeroute-semantic-routes/1"


def fit_routes(
    embedder: Embedder,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    dims: int | None = None,
    min_precision: float = 0.9,
    top_k: int = 3,
) -> tuple[SemanticRoutes, ThresholdFit]:
    """Embed labelled queries on-device, fit per-route thresholds and build the routes."""
    vectors = embedder.embed_queries(list(texts), dims=dims)
    fit = fit_thresholds(vectors, list(labels), min_precision=min_precision, top_k=top_k)
    routes = SemanticRoutes.from_labelled(vectors, list(labels), top_k=top_k).with_thresholds(fit.thresholds)
    return routes, fit


def save_routes(
    path: Path,
    embedder: Embedder,
    texts: Sequence[str],
    labels: Sequence[str],
    fit: ThresholdFit,
    *,
    dims: int | None,
    top_k: int,
) -> None:
    space = embedder.space_for(dims)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "space": space.fingerprint,
        "dims": space.dims,
        "top_k": top_k,
        "thresholds": fit.thresholds,
        "overall": fit.overall,
        "examples": [{"text": t, "label": lab} for t, lab in zip(texts, labels, strict=True)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)  # atomic: a crash never leaves a half-written routes file


def load_semantic_routes(path: str | Path, embedder: Embedder) -> SemanticRoutes:
    """Rebuild fitted routes with ``embedder``; its space must be the one the routes were fitted in."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(
            f"semantic routes file {p} does not exist; create it with `edgeroute policy fit`"
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"semantic routes file {p} is not valid JSON ({exc}); re-run `edgeroute policy fit`"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ConfigurationError(
            f"{p} is not a semantic routes file ({FORMAT}); re-run `edgeroute policy fit`"
        )
    dims = int(doc["dims"])
    space = embedder.space_for(dims)
    if space.fingerprint != doc["space"]:
        raise SpaceMismatchError(
            f"routes in {p} were fitted in space {doc['space']} but the embedder is {space.fingerprint}; "
            "re-run `edgeroute policy fit` with this model",
            expected=str(doc["space"]),
            got=space.fingerprint,
        )
    texts = [e["text"] for e in doc["examples"]]
    labels = [e["label"] for e in doc["examples"]]
    vectors = embedder.embed_queries(texts, dims=dims)
    routes = SemanticRoutes.from_labelled(vectors, labels, top_k=int(doc["top_k"]))
    return routes.with_thresholds({k: float(v) for k, v in doc["thresholds"].items()})
