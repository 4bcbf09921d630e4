"""Reciprocal Rank Fusion of ranked hit lists from the edge and cloud indexes.

Scores from different embedding spaces are not comparable, ranks are: RRF scores a document
``sum_i w_i / (k + rank_i)`` over the lists it appears in (Cormack et al., 2009). A document
found by several lists is one hit, marked ``index="hybrid"``.

Plain RRF reads "absent from a list" as "ranked too low to be listed". That is wrong for a
document the list *could not* contain: a confidential memo, a chunk with PII or a document
still queued in the outbox is in the edge index only, so plain RRF halves its score whatever
its edge rank. With ``eligible`` the caller says which documents each list could have returned,
and a document is scored over the lists it is eligible for only, normalised by their weights::

    score(d) = W * sum_{i: d in list i} w_i / (k + rank_i(d)) / sum_{i: d eligible for i} w_i

with ``W`` the sum of all weights. A document eligible for every list scores exactly as in plain
RRF (the factor is 1). An edge-only document at edge rank r scores ``W / (k + r)``: as if it held
rank r in every list, so it competes on its edge rank, neither halved nor boosted. A document that
*was* eligible for the cloud list and missing from it still loses that list's share, as before.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import replace

from ..documents import Hit
from ..errors import InputError

DEFAULT_RRF_K = 60


def rrf_fuse(
    rankings: Mapping[str, Sequence[Hit]],
    *,
    k: int = DEFAULT_RRF_K,
    weights: Mapping[str, float] | None = None,
    limit: int | None = None,
    eligible: Mapping[str, Container[str]] | None = None,
) -> list[Hit]:
    """Fuse ranked lists (keyed by a source name such as ``"edge"``/``"cloud"``) into one, best first.

    ``weights`` default to 1.0 per source; a source missing from ``weights`` gets 1.0. Ranks are the
    position in each list (1-based), so each list must be ordered best first. Duplicates are merged
    by document id: the first source (in ``rankings`` order) that has a document supplies its text,
    title and metadata; ``space`` lists every space that found it, joined by ``+``. Ties keep the
    order of first appearance, so the result is deterministic.

    ``eligible`` maps a source name to the ids that source could have returned (for the cloud: the
    ids present in the cloud index); a source not in the mapping could have returned any document,
    and a document found by a source is always eligible for it. Each document is then scored over
    its eligible sources only, normalised by their weights (see the module docstring), so private
    and still-queued documents do not lose rank just for being absent from the cloud list.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"RRF k must be a positive integer (60 is the usual choice), got {k!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be a positive integer or None, got {limit!r}")
    w = dict(weights or {})
    unknown = sorted(set(w) - set(rankings))
    if unknown:
        raise InputError(f"weights given for unknown source(s) {unknown}; sources are {sorted(rankings)}")
    bad = {name: v for name, v in w.items() if not v >= 0}
    if bad:
        raise InputError(f"RRF weights must be non-negative numbers, got {bad}")
    elig = dict(eligible or {})
    unknown = sorted(set(elig) - set(rankings))
    if unknown:
        raise InputError(f"eligibility given for unknown source(s) {unknown}; sources are {sorted(rankings)}")

    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    sources: dict[str, list[str]] = {}
    found_by: dict[str, set[str]] = {}
    for name, hits in rankings.items():
        weight = w.get(name, 1.0)
        seen: set[str] = set()
        for rank, hit in enumerate(hits, start=1):
            if hit.id in seen:  # a list repeating a document counts it once, at its best rank
                continue
            seen.add(hit.id)
            found_by.setdefault(hit.id, set()).add(name)
            scores[hit.id] = scores.get(hit.id, 0.0) + weight / (k + rank)
            if hit.id not in first:
                first[hit.id] = hit
                sources[hit.id] = []
            if hit.space not in sources[hit.id]:
                sources[hit.id].append(hit.space)
            if first[hit.id].index != hit.index:
                first[hit.id] = replace(first[hit.id], index="hybrid")

    if elig:
        total = sum(w.get(name, 1.0) for name in rankings)
        for doc_id in scores:
            share = sum(
                w.get(name, 1.0)
                for name in rankings
                if name not in elig or name in found_by[doc_id] or doc_id in elig[name]
            )
            scores[doc_id] = scores[doc_id] * total / share if share > 0 else 0.0

    order = sorted(scores, key=lambda doc_id: -scores[doc_id])  # stable: ties keep first appearance
    if limit is not None:
        order = order[:limit]
    return [
        replace(first[doc_id], score=scores[doc_id], rank=rank, space="+".join(sources[doc_id]))
        for rank, doc_id in enumerate(order, start=1)
    ]


__all__ = ["DEFAULT_RRF_K", "rrf_fuse"]
