"""One detector API for PII on the device: patterns, secret rules and named entities, as findings.

:class:`PiiDetector` combines the pattern layer (:mod:`.patterns`) with a named-entity backend: the
token-classification head on the edge model's own token states (default), or presidio (optional). It
returns :class:`~edgeroute.policies.signals.PiiFinding` tuples, sorted and non-overlapping, which reach
the pure policies as signals.

For a query the engine already runs the edge model, so :meth:`PiiDetector.aembed_query` returns the
query's vector and its findings from one forward pass; a document at ingest likewise
(:meth:`PiiDetector.aembed_documents_with_findings`, the document prompt's token states). Texts with no
embedding pass (``pii scan``, the tool router) get a pass of their own (:meth:`adetect_many`), batched,
and long texts are cut into overlapping windows whose offsets are mapped back. :attr:`PiiDetector.version`
names what the findings depend on, so stored findings (:mod:`.stored`) are reused only while it holds.

Async first (the engine's core is async); the sync methods are ``run_sync`` wrappers.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ...policies.config import PiiConfig, PolicyConfig
from ...policies.signals import PiiFinding
from ..aio import run_sync, to_thread
from ..edge.tokenizer import COMPACT_FILE, SENTENCEPIECE_FILE
from ..embedder import Vectors
from ..errors import InputError
from .head import PiiHead
from .patterns import Span, pattern_spans
from .stored import detector_version

if TYPE_CHECKING:
    from ..edge.embedder import EdgeEmbedder, TokenStates
    from ..edge.model_dir import Manifest

logger = logging.getLogger(__name__)
_warned: set[str] = set()

WINDOW_CHARS = 2000
"""Long texts go through the edge model in windows of this many characters (about 500 tokens)..."""
WINDOW_OVERLAP = 200
"""...overlapping by this many, so an entity cut by one window's edge is whole in the next."""
GROUP_WINDOWS = 32
"""Windows per model call in :meth:`PiiDetector.adetect_many`."""
ENTITY_PROMPT = "query"
"""Prompt of the detection pass for texts that have no embedding pass of their own (``pii scan``, the tool
router). The head was trained on query- and document-prompt token states alike, so a document's
embedding pass can give its entities too (:meth:`PiiDetector.findings_from_states`)."""


class EntityBackend(Protocol):
    """A named-entity recogniser other than the head (e.g. presidio): ``(kind, start, end, score)`` spans."""

    name: str

    def entities(self, text: str, thresholds: dict[str, float]) -> list[tuple[str, int, int, float]]: ...


def _windows(text: str) -> list[tuple[int, str]]:
    """``(offset, piece)`` windows over ``text``, cut at whitespace where possible."""
    if len(text) <= WINDOW_CHARS:
        return [(0, text)]
    out: list[tuple[int, str]] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + WINDOW_CHARS)
        if end < len(text):
            cut = text.rfind(" ", start + WINDOW_CHARS // 2, end)
            end = cut if cut > start else end
        piece = text[start:end]
        if piece.strip():
            out.append((start, piece))
        if end >= len(text):
            break
        start = max(end - WINDOW_OVERLAP, start + 1)
    return out


def _resolve(spans: list[tuple[str, int, int, str, float]]) -> tuple[PiiFinding, ...]:
    """Non-overlapping findings, earlier spans in ``spans`` winning (patterns come first)."""
    starts: list[int] = []
    ends: list[int] = []
    kept: list[PiiFinding] = []
    seen: set[tuple[int, int]] = set()
    for kind, start, end, detector, score in spans:
        if end <= start or (start, end) in seen:
            continue
        j = bisect.bisect_left(starts, start)
        if (j and ends[j - 1] > start) or (j < len(starts) and starts[j] < end):
            continue
        starts.insert(j, start)
        ends.insert(j, end)
        seen.add((start, end))
        kept.append(PiiFinding(kind=kind, start=start, end=end, detector=detector, score=score))
    return tuple(sorted(kept, key=lambda f: (f.start, f.end)))


def _joined(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` belong to one word: both alphanumeric, neither from a script written
    without spaces (CJK, kana), where every character boundary may be a word boundary."""
    return a.isalnum() and b.isalnum() and ord(a) < 0x2E80 and ord(b) < 0x2E80


def _plausible(text: str, kind: str, start: int, end: int) -> bool:
    """Reject head spans that cannot be an entity whatever the model's score: a piece of a longer word
    (the head reads subword tokens, so a span may stop inside ``sha256`` or a hex digest), a single
    character, no letter or digit at all, or, for kinds that are numbers (ages, record numbers), no digit.
    """
    if end - start < 2:
        return False
    if (start > 0 and _joined(text[start - 1], text[start])) or (end < len(text) and _joined(text[end - 1], text[end])):
        return False
    span = text[start:end]
    if not any(c.isalnum() for c in span):
        return False
    return not (kind in ("age", "id_number") and not any(c.isdigit() for c in span))


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink a span to its visible characters and strip trailing punctuation a token carried along."""
    while start < end and (text[start].isspace() or text[start] in ",;:([\"'"):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in ",;:.)]\"'?!"):
        end -= 1
    return start, end


class PiiDetector:
    """On-device PII detection with the policy's detectors, kinds and thresholds.

    ``embedder``: the edge embedder whose token states feed the head; without one (or with a model
    that has no token-state outputs) only the pattern layer runs and :attr:`entities_available` is
    False. ``head``: the head weights (default: those shipped in the package).
    """

    def __init__(
        self,
        config: PolicyConfig | PiiConfig | None = None,
        *,
        embedder: EdgeEmbedder | None = None,
        head: PiiHead | None = None,
        backend: EntityBackend | None = None,
    ) -> None:
        self.config = config.pii if isinstance(config, PolicyConfig) else (config or PiiConfig())
        ent = self.config.entities
        self._thresholds = ent.active() if self.config.enabled else {}
        self.embedder = embedder if embedder is not None and embedder.has_token_states else None
        self.backend = backend
        self.head: PiiHead | None = None
        self._version: str | None = None
        if self._thresholds and backend is None and ent.backend == "presidio":
            from .presidio_backend import PresidioBackend

            self.backend = PresidioBackend()
        if self._thresholds and self.backend is None and self.embedder is not None:
            self.head = head or PiiHead.load()
            # The head's own thresholds (chosen on its dev split, in head.json) for every kind the policy
            # leaves unset: a retrained head brings the operating point it was measured at.
            tuned: dict[str, float] = getattr(self.head, "thresholds", {})  # stand-in heads may have none
            self._thresholds = {
                k: (ent.thresholds[k] if k in ent.thresholds else tuned.get(k, v)) for k, v in self._thresholds.items()
            }
            if self.head.dims != _feature_dims(self.embedder):
                logger.warning(
                    "PII head expects %d-dim token states but the edge model gives %d; named entities are off",
                    self.head.dims,
                    _feature_dims(self.embedder),
                )
                self.head = None
        if self._thresholds and self.head is None and self.backend is None:
            why = (
                "no edge model with token-state outputs"
                if embedder is None or self.embedder is None
                else "the head could not be loaded"
            )
            # Once per process and reason: a detector is built per engine, tenant or watch round.
            if why not in _warned:
                _warned.add(why)
                logger.warning(
                    "named-entity PII detection is unavailable (%s); only patterns and secret rules run", why
                )
            else:
                logger.debug("named-entity PII detection is unavailable (%s)", why)

    # -- identity -----------------------------------------------------------------------------------

    @property
    def entities_available(self) -> bool:
        """True when named entities are recognised (head with token states, or another backend)."""
        return bool(self._thresholds) and (self.head is not None or self.backend is not None)

    @property
    def detectors(self) -> list[str]:
        """Names of the detectors that run, for reports."""
        names = list(self.config.detectors) if self.config.enabled else []
        if self.config.enabled:
            names.append("secrets")
        if self.entities_available:
            names.append("entities" if self.head is not None else f"entities:{self.backend.name}")  # type: ignore[union-attr]
        return names

    @property
    def version(self) -> str:
        """What the findings depend on, as a short digest: the head's weights (sha256), the pattern and
        secret rules, the edge model under the head, the entity backend and the policy's PII settings.
        Stored findings are reused only under the same version; any change re-runs detection."""
        if self._version is None:
            head = self.head.manifest.get("sha256") if self.head is not None else None
            model = None
            if self.head is not None and self.embedder is not None:
                model = model_identity(self.embedder.manifest)
            self._version = detector_version(
                {
                    "head": head,
                    "model": model,
                    "backend": self.backend.name if self.backend is not None else None,
                    "config": self.config.model_dump_json(),
                    "thresholds": sorted(self._thresholds.items()),
                    "entities": self.entities_available,
                    "pass": "document-prompt" if self.one_pass else "query-prompt",
                }
            )
        return self._version

    @property
    def one_pass(self) -> bool:
        """True when a document's entities come from its embedding pass (the head reads document-prompt
        token states): :meth:`embed_documents_with_findings` then costs one model pass per document."""
        return (
            self.config.enabled
            and self.head is not None
            and self.embedder is not None
            and "document" in getattr(self.head, "prompts", ("query",))
        )

    # -- patterns -------------------------------------------------------------------------------------

    def patterns(self, text: str) -> list[Span]:
        """Pattern-layer spans only (no model)."""
        if not self.config.enabled or not text:
            return []
        return pattern_spans(text, self.config, self.config.phone_regions)

    def _combine(
        self, text: str, pattern: list[Span], entities: list[tuple[str, int, int, float]]
    ) -> tuple[PiiFinding, ...]:
        spans: list[tuple[str, int, int, str, float]] = [(k, s, e, d, 1.0) for k, s, e, d in pattern]
        name = (
            "entities" if self.head is not None or self.backend is None else f"entities:{self.backend.name}"
        )
        # Entities after patterns: a validated phone or ID wins over the head's reading of the same digits.
        for kind, s, e, score in sorted(entities, key=lambda x: -x[3]):
            s, e = _trim(text, s, e)
            if e > s and _plausible(text, kind, s, e):
                spans.append((kind, s, e, name, min(1.0, max(0.0, score))))
        found = _resolve(spans)
        # Places and organisations count only beside something that points at a person (policy setting).
        linked = self.config.entities.linked_only
        if linked and not any(f.kind not in linked for f in found):
            found = tuple(f for f in found if f.kind not in linked)
        return found

    def _entities_from_states(
        self, states: TokenStates, text: str, offset: int = 0
    ) -> list[tuple[str, int, int, float]]:
        """Head spans of ``text`` (the string ``states`` were computed on), moved by ``offset``."""
        assert self.head is not None
        return [
            (sp.kind, sp.start + offset, sp.end + offset, sp.score)
            for sp in self.head.spans(states.states, states.offsets, self._thresholds, text)
        ]

    # -- the work (blocking: numpy, regexes and ONNX inference) ----------------------------------------

    def detect_batch(self, texts: Sequence[str]) -> list[tuple[PiiFinding, ...]]:
        """Findings for each text, computed in this thread (it blocks: model inference).

        For code that is already off the event loop, such as the privacy guard; elsewhere use
        :meth:`adetect_many` or the sync wrappers.
        """
        items = _check(texts)
        if not self.config.enabled:
            return [() for _ in items]
        patterns = [self.patterns(t) for t in items]
        entities: list[list[tuple[str, int, int, float]]] = [[] for _ in items]
        if self.backend is not None and self._thresholds:
            entities = [self.backend.entities(t, self._thresholds) for t in items]
        elif self.head is not None and self.embedder is not None:
            pieces: list[tuple[int, int, str]] = [
                (i, off, piece) for i, t in enumerate(items) if t.strip() for off, piece in _windows(t)
            ]
            # Longest first over the whole call, not only inside each group: the model's batches then
            # hold texts of one length, with little padding. Padding costs more than its share here
            # (a batch padded past 64 tokens takes a slower path, docs/edge-model.md): 256 XQuAD
            # sentences in groups of 32 in input order cost 57.4 ms of CPU per text, sorted 43.2 ms.
            # It also keeps each text's token states at (or nearer) its unpadded ones.
            pieces.sort(key=lambda p: -len(p[2]))
            # Token states are ~6 KB per token: decode them group by group so a 1 MB text never holds
            # more than one group's states at once.
            for g in range(0, len(pieces), GROUP_WINDOWS):
                group = pieces[g : g + GROUP_WINDOWS]
                _, states = self.embedder.embed_with_token_states([p for _, _, p in group], ENTITY_PROMPT)
                for (i, off, piece), st in zip(group, states, strict=True):
                    entities[i].extend(self._entities_from_states(st, piece, off))
        return [self._combine(t, p, e) for t, p, e in zip(items, patterns, entities, strict=True)]

    def embed_query_batch(self, text: str, dims: int | None = None) -> tuple[Vectors, tuple[PiiFinding, ...]]:
        """The query's edge vector ``(1, dims)`` and its findings from ONE forward pass (blocking).

        A text longer than one window gets its findings from :meth:`detect_batch` (windowed).
        """
        if self.embedder is None:
            raise InputError(
                "embedding a query needs a PiiDetector built with an edge embedder that has token states"
            )
        if self.head is None or len(text) > WINDOW_CHARS or not self.config.enabled:
            return self.embedder.embed_queries([text], dims=dims), self.detect_batch([text])[0]
        vecs, states = self.embedder.embed_with_token_states([text], "query", dims=dims)
        return vecs, self._combine(text, self.patterns(text), self._entities_from_states(states[0], text))

    def findings_from_states(self, text: str, states: TokenStates) -> tuple[PiiFinding, ...]:
        """Findings for ``text`` given token states the caller already has (same pass as its embedding)."""
        entities = self._entities_from_states(states, text) if self.head is not None else []
        return self._combine(text, self.patterns(text), entities)

    def pattern_findings(self, text: str, spans: list[Span] | None = None) -> tuple[PiiFinding, ...]:
        """Findings of the pattern layer alone (``spans``: :meth:`patterns` of ``text`` already run)."""
        return self._combine(text, self.patterns(text) if spans is None else spans, [])

    def embed_documents_with_findings(
        self,
        texts: Sequence[str],
        titles: Sequence[str | None],
        dims: int | None = None,
        patterns: Sequence[list[Span]] | None = None,
    ) -> tuple[Vectors, list[tuple[PiiFinding, ...]]]:
        """Each document's edge vector and its findings over ``title + "\\n" + text`` (the ingest's PII
        text), from ONE forward pass under the document prompt (blocking). Needs :attr:`one_pass`.

        Every character is scanned: the pattern layer over the whole PII text, the head over the token
        states of the text and of the title inside the prompt (ingest refuses documents over the model's
        token limit, so the embedded tokens cover the whole text). ``patterns``: the pattern spans of
        each PII text when the caller already ran them.
        """
        if not self.one_pass or self.embedder is None:
            raise InputError("one-pass document findings need the head on an edge model with token states")
        vecs, text_states, title_states = self.embedder.embed_documents_with_token_states(
            texts, titles, dims=dims
        )
        # A title the prompt has no slot for (another model's prompts): a small pass of its own.
        missing = [i for i, (t, st) in enumerate(zip(titles, title_states, strict=True)) if t and st is None]
        extra = dict(zip(missing, self.detect_batch([titles[i] or "" for i in missing]), strict=True))
        out: list[tuple[PiiFinding, ...]] = []
        for i, (text, title) in enumerate(zip(texts, titles, strict=True)):
            pii = "\n".join(filter(None, [title, text]))
            entities: list[tuple[str, int, int, float]] = []
            offset = len(title) + 1 if title else 0
            if title and (st := title_states[i]) is not None:
                entities.extend(self._entities_from_states(st, title))
            elif i in extra:
                entities.extend((f.kind, f.start, f.end, f.score) for f in extra[i] if f.detector == "entities")
            entities.extend(self._entities_from_states(text_states[i], text, offset))
            spans = self.patterns(pii) if patterns is None else patterns[i]
            out.append(self._combine(pii, spans, entities))
        return vecs, out

    async def aembed_documents_with_findings(
        self,
        texts: Sequence[str],
        titles: Sequence[str | None],
        dims: int | None = None,
        patterns: Sequence[list[Span]] | None = None,
    ) -> tuple[Vectors, list[tuple[PiiFinding, ...]]]:
        """:meth:`embed_documents_with_findings` on the embedder's inference thread."""
        if self.embedder is None:
            raise InputError("one-pass document findings need an edge embedder with token states")
        return await self.embedder.arun(self.embed_documents_with_findings, texts, titles, dims, patterns)

    # -- async API ----------------------------------------------------------------------------------------

    async def adetect(self, text: str) -> tuple[PiiFinding, ...]:
        """Findings in ``text`` (sorted by position, non-overlapping)."""
        return (await self.adetect_many([text]))[0]

    async def adetect_many(self, texts: Sequence[str]) -> list[tuple[PiiFinding, ...]]:
        """Findings for each text; texts share the model's batches. Runs in a worker thread."""
        items = _check(texts)
        if self.embedder is not None and self.head is not None:
            return await self.embedder.arun(self.detect_batch, items)  # queued with the embedding calls
        return await to_thread(self.detect_batch, items)

    async def aembed_query(
        self, text: str, *, dims: int | None = None
    ) -> tuple[Vectors, tuple[PiiFinding, ...]]:
        """:meth:`embed_query_batch` in a worker thread: vector and findings from one forward pass.

        Behind the service's micro-batcher (``amap_token_states``) the findings are read on the
        inference thread right after the batch's model call: the request hands its work over once,
        instead of going through a worker thread that waits on the batch.
        """
        if self.embedder is None:
            raise InputError("embedding a query needs a PiiDetector built with an edge embedder that has token states")
        amap = getattr(self.embedder, "amap_token_states", None)
        if amap is not None and self.head is not None and self.config.enabled and len(text) <= WINDOW_CHARS:
            vecs, found = await amap([text], "query", self.findings_from_states, dims=dims)
            return vecs, found[0]
        return await self.embedder.arun(self.embed_query_batch, text, dims)

    # -- sync wrappers ----------------------------------------------------------------------------------

    def detect(self, text: str) -> tuple[PiiFinding, ...]:
        return run_sync(self.adetect(text))

    def detect_many(self, texts: Sequence[str]) -> list[tuple[PiiFinding, ...]]:
        return run_sync(self.adetect_many(texts))

    def embed_query(self, text: str, *, dims: int | None = None) -> tuple[Vectors, tuple[PiiFinding, ...]]:
        return run_sync(self.aembed_query(text, dims=dims))


def model_identity(manifest: Manifest) -> list[Any]:
    """The edge model's part of :attr:`PiiDetector.version`: what its token states depend on.

    Every file the manifest pins, by sha256, except ``tokenizer.bin`` when ``tokenizer.model`` is
    pinned too: the compact tokenizer is a derived form of that file (its header names the sha256 it
    was written from, the embedder uses no other, and it is written only once it tokenizes like it), so
    it gives the same ids and the same findings. Adding it to a directory in place
    (``python -m edgeroute.framework.edge.export.compact_file``, ``scripts/prepare-model``) re-hashes
    the manifest; with the file in the version, that made every stored finding stale, and the next
    re-index of an unchanged folder ran the model over every document again for its findings."""
    files = dict(manifest.files)
    if SENTENCEPIECE_FILE in files:
        files.pop(COMPACT_FILE, None)
    return [manifest.model_id, manifest.revision, manifest.quantization, sorted(files.items())]


def _feature_dims(embedder: Any) -> int:
    return int(embedder.manifest.dims) * 2


def _check(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str | bytes) or not isinstance(texts, Sequence):
        raise InputError(
            f"texts must be a list of strings, got {type(texts).__name__}; wrap one text as [text]"
        )
    items = list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise InputError(f"texts[{i}] is {type(t).__name__}, not str; PII detection reads text only")
    return items


__all__ = ["ENTITY_PROMPT", "WINDOW_CHARS", "WINDOW_OVERLAP", "EntityBackend", "PiiDetector"]
