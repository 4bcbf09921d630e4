"""The on-device embedder: EmbeddingGemma (or any model directory of the same format) over ONNX Runtime.

No torch at run time: ``tokenizers`` turns text into ids, one ONNX graph does encoder, pooling,
dense layers and normalisation. Inference is blocking C++ work: the sync methods run it in the
caller's thread, the async methods on the embedder's own single inference thread (never on the
event loop, never in the loop's shared pool, where it would queue behind store calls).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np

from ..embedder import Vectors, l2_normalize, truncate_normalize
from ..errors import ConfigurationError, InputError
from ..spaces import EmbeddingSpace
from .batching import check_texts, length_batches
from .cpu import check_recipe
from .model_dir import TOKENIZER_FILE, Manifest, ModelDirectory, check_dims, resolve_model_dir
from .runtimes import ONNXRUNTIME, open_session, runtime_of
from .tokenizer import COMPACT_FILE, SENTENCEPIECE_FILE, TextTokenizer, load_tokenizer

logger = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

PAD_ID = 0
TOKEN_STATE_OUTPUTS = ("token_states", "token_states_mid")
"""Graph outputs that carry per-token states (see :mod:`edgeroute.framework.edge.export.token_states`)."""


@dataclass(frozen=True)
class TokenStates:
    """One text's token states from the same forward pass as its embedding, for the PII head.

    ``states``: float32 ``(tokens, features)``, the graph's token-state outputs side by side (final layer,
    then the middle layer). ``offsets``: int ``(tokens, 2)``, each token's ``[start, end)`` in the text as
    given (Python str code points), the prompt and special tokens left out.
    """

    states: np.ndarray[Any, Any]
    offsets: np.ndarray[Any, Any]

    def region(self, start: int, end: int) -> TokenStates:
        """The tokens that overlap ``[start, end)``, offsets made relative to ``start`` and clipped to it."""
        o = self.offsets
        keep = (o[:, 1] > start) & (o[:, 0] < end)
        rel = np.clip(o[keep] - start, 0, end - start)
        return TokenStates(np.ascontiguousarray(self.states[keep]), rel)


@dataclass(frozen=True)
class SessionSettings:
    """ONNX Runtime settings for the edge session (see docs/edge-model.md for why each default).

    ``threads``: intra-op threads; None means every core ``os.cpu_count()`` reports.
    ``memory_arena``: ORT's CPU arena, shrunk after the last run of every call (run option
    ``memory.enable_memory_arena_shrinkage``) so a long document does not pin its buffers forever.
    Without it every tensor goes through glibc malloc, whose heap fragments across threads: peak
    RSS after a 16 x 309-token batch was 1,304 MB without the arena and 560 MB with it (w8-e4).
    ``max_batch_tokens``: a batch holds at most ``batch_size`` texts and at most this many padded
    tokens (rows x longest row; a single longer text still goes alone). 256: on this project's box
    (AVX-512 VNNI, 2 cores, row-wise int8 graph) smaller batches cost less CPU per document, down to
    one text per run: 32 SciFact abstracts (~309 tokens) took 10.3 s of CPU at 256 or 512 against
    17.0 s at 4,096, and 48 ~110-token texts 4.1 s at 256 against 6.7 s at 4,096 (interleaved, one
    process). The many elementwise passes around each integer GEMM (per-row scales, norms) and the
    [batch, heads, seq, seq] attention scores stay in cache, and nothing is padded. Activation memory
    is bounded by the same budget (one 16 x 530-token batch peaked at ~650 MB).
    ``spinning``: worker threads busy-wait between ops. Off by default: alone it saves about 3% at
    batch 1 (104 against 108 ms for a 27-token query, 2 cores), but beside other busy threads (a
    server's event loop, the store, the PII head) the spinning pool slows every run: in
    ``edgeroute serve`` one query took 199 ms after a burst of concurrent requests with spinning on
    and 128 ms with it off, and the burst itself served 14% more requests.
    """

    threads: int | None = None
    batch_size: int = 16
    max_batch_tokens: int = 256
    memory_arena: bool = True
    spinning: bool | None = None

    def to_ort(self) -> Any:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        threads = self.threads or os.cpu_count() or 1
        opts.intra_op_num_threads = threads
        # One graph, no parallel branches worth scheduling: a single inter-op thread avoids oversubscription.
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.enable_cpu_mem_arena = self.memory_arena
        # Memory patterns only pay off for fixed shapes; ours change with every batch.
        opts.enable_mem_pattern = False
        # Weights are allocated once outside the arena, so they are never rounded up to arena chunks.
        opts.add_session_config_entry("session.use_device_allocator_for_initializers", "1")
        spin = bool(self.spinning)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        opts.log_severity_level = 3
        return opts

    def run_options(self, *, shrink: bool = True) -> Any:
        import onnxruntime as ort

        run = ort.RunOptions()
        if self.memory_arena and shrink:
            # The arena's free chunks go back after a call's last batch: a call's peak is its largest batch.
            run.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        return run


class EdgeEmbedder:
    """EmbeddingGemma on-device. Satisfies :class:`edgeroute.framework.embedder.Embedder`.

    Create it with :meth:`load`. Vectors are float32, L2-normalised, shape ``(n, dims)``; dims is one
    of the manifest's Matryoshka sizes (768/512/256/128 for EmbeddingGemma).
    """

    def __init__(
        self,
        directory: ModelDirectory,
        settings: SessionSettings | None = None,
        *,
        lazy: bool = False,
        verify_on_load: bool = False,
    ) -> None:
        self._dir = directory
        self._settings = settings or SessionSettings()
        if self._settings.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {self._settings.batch_size}.")
        if self._settings.max_batch_tokens < 1:
            raise InputError(f"max_batch_tokens must be >= 1, got {self._settings.max_batch_tokens}.")
        # The graph file's suffix picks the runtime: .onnx ONNX Runtime, .xml OpenVINO, .gguf llama.cpp
        # (see .runtimes; the last two are optional extras, compared in `edgeroute bench edge`).
        self.runtime = runtime_of(directory.model_path)
        self._lock = threading.Lock()
        # Guards the lazy loads (an async call and a sync one may be first at the same time).
        self._load_lock = threading.Lock()
        self._verify_on_load = verify_on_load
        self._verified: set[str] = set()
        self._tokenizer_obj: TextTokenizer | None = None
        self._session_obj: Any = None
        self._run_options: Any = None
        self._run_options_keep: Any = None
        # Known from the manifest before any session exists (graph version 3 records its outputs), so
        # asking whether the model has token states never loads it; checked against the graph on load.
        declared = (directory.manifest.export or {}).get("token_states") or {}
        self._state_outputs = [n for n in TOKEN_STATE_OUTPUTS if declared]
        self._truncated = 0
        self.model_runs = 0
        """Model runs (``session.run`` calls) so far; with :attr:`model_texts` and :attr:`model_tokens`,
        what ``edgeroute bench index`` reports and the one-pass tests count."""
        self.model_texts = 0
        self.model_tokens = 0
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        if not lazy:
            # The tokenizer first, the session after: tokenizers' parse of tokenizer.json leaves ~180 MB
            # freed but resident, handed back before the weights load (see _release_free_heap).
            _ = self._tokenizer
            _ = self._session

    @property
    def _tokenizer(self) -> TextTokenizer:
        """The compact tokenizer.bin when the manifest pins it (memory-mapped, ~7 MB at most), else
        SentencePiece on tokenizer.model when pinned (~46 MB, peak included), else tokenizers on
        tokenizer.json. Loaded on first use when the embedder was loaded ``lazy``."""
        tok = self._tokenizer_obj
        if tok is not None:
            return tok
        with self._load_lock:
            if self._tokenizer_obj is None:
                m = self._dir.manifest
                compact = COMPACT_FILE in m.files
                sp = SENTENCEPIECE_FILE in m.files
                if self._verify_on_load:  # with tokenizer.bin, tokenizer.model is its fallback: both
                    self._verify([COMPACT_FILE if compact else TOKENIZER_FILE, SENTENCEPIECE_FILE])
                # Only files the manifest pins (and so verifies): one dropped in by hand is ignored.
                self._tokenizer_obj = load_tokenizer(
                    self._dir.path,
                    self._dir.tokenizer_path,
                    m.max_tokens,
                    prefer_sentencepiece=sp,
                    prefer_compact=compact,
                    compact_source=m.files.get(SENTENCEPIECE_FILE),
                )
                _release_free_heap()
            return self._tokenizer_obj

    @property
    def _session(self) -> Any:
        """The runtime session (ONNX Runtime unless the graph file says otherwise; imported here, not before): created on first use when
        the embedder was loaded ``lazy``, so a re-index with nothing to embed never pays for it."""
        session = self._session_obj
        if session is not None:
            return session
        with self._load_lock:
            if self._session_obj is None:
                if self._verify_on_load:
                    self._verify(list(self._dir.manifest.files))  # the graph, its weights, the rest
                ort_session = self.runtime == ONNXRUNTIME
                session = open_session(
                    self._dir.model_path,
                    threads=self._settings.threads or os.cpu_count() or 1,
                    ort_options=self._settings.to_ort() if ort_session else None,
                    max_batch_tokens=self._settings.max_batch_tokens,
                    max_rows=self._settings.batch_size,
                    export=self._dir.manifest.export,
                )
                self._run_options = self._settings.run_options() if ort_session else None
                self._run_options_keep = self._settings.run_options(shrink=False) if ort_session else None
                outputs = set(session.output_names())
                self._state_outputs = [n for n in TOKEN_STATE_OUTPUTS if n in outputs]
                self._session_obj = session
            return self._session_obj

    def _verify(self, names: list[str]) -> None:
        """sha256 of the named files not checked yet (a lazy embedder checks each part before loading it)."""
        todo = [n for n in names if n not in self._verified]
        self._dir.verify_files(todo)
        self._verified.update(todo)

    def prefetch(self) -> None:
        """Load what a lazy embedder loads on first use (sha256 checks, tokenizer, session) on the inference
        thread, returning at once; the first call queues behind it. A bad file fails that call, as before."""
        self._inference_executor().submit(lambda: (self._tokenizer, self._session))

    @property
    def loaded(self) -> dict[str, bool]:
        """What is loaded so far: ``{"tokenizer": ..., "session": ...}`` (both, unless loaded ``lazy``)."""
        return {"tokenizer": self._tokenizer_obj is not None, "session": self._session_obj is not None}

    @classmethod
    def load(
        cls,
        model_dir: str | os.PathLike[str] | None = None,
        *,
        threads: int | None = None,
        quantization: str | None = None,
        batch_size: int = 16,
        verify: bool = True,
        settings: SessionSettings | None = None,
        lazy: bool = False,
    ) -> EdgeEmbedder:
        """Resolve, verify and load a model directory (see :func:`resolve_model_dir` for the order).

        ``quantization``, when given, must match the manifest's (a guard against loading the wrong
        build). ``verify`` checks every file's sha256 first (about 1 s per 250 MB).
        ``lazy``: read the manifest now, and verify and load the tokenizer and the ONNX session only when
        first needed (``edgeroute index`` of an unchanged folder then loads neither: about 2 s saved).
        A corrupted file is then reported by the first call that needs it, with the same error.
        """
        path = resolve_model_dir(model_dir)
        directory = ModelDirectory.open(path, verify=verify and not lazy)
        check_recipe(path, directory.manifest.quantization, quantization)  # the wanted one; CPU support
        if settings is None:
            settings = SessionSettings(threads=threads, batch_size=batch_size)
        return cls(directory, settings, lazy=lazy, verify_on_load=verify and lazy)

    # -- identity -------------------------------------------------------------------------

    @property
    def manifest(self) -> Manifest:
        return self._dir.manifest

    @property
    def model_dir(self) -> Path:
        return self._dir.path

    @property
    def space(self) -> EmbeddingSpace:
        """The space of vectors at the manifest's default dims."""
        return self.space_for(None)

    def space_for(self, dims: int | None = None) -> EmbeddingSpace:
        m = self.manifest
        return EmbeddingSpace(
            provider="edge",
            model=m.model_id,
            revision=m.revision,
            dims=check_dims(m, dims),
            quantization=m.quantization,
            prompt_format=m.prompt_format,
        )

    @property
    def truncated_count(self) -> int:
        """How many inputs so far were cut at ``manifest.max_tokens``."""
        return self._truncated

    @property
    def has_token_states(self) -> bool:
        """True when the model graph also outputs token states (graph version 3 and later)."""
        return bool(self._state_outputs)

    @property
    def prompt_names(self) -> list[str]:
        return sorted(self.manifest.prompts)

    # -- prompts --------------------------------------------------------------------------

    def format_prompt(self, text: str, prompt_name: str | None, title: str | None = None) -> str:
        """``text`` with the named prompt of the manifest in front (``None``: no prompt)."""
        if prompt_name is None:
            return text
        prompts = self.manifest.prompts
        if prompt_name not in prompts:
            raise InputError(
                f"unknown prompt name {prompt_name!r}; this model has: {', '.join(sorted(prompts))}."
            )
        prefix = prompts[prompt_name]
        if title is not None and "title: none" in prefix:
            prefix = prefix.replace("title: none", f"title: {title}", 1)
        return prefix + text

    # -- embedding ------------------------------------------------------------------------

    def embed_queries(
        self, texts: Sequence[str], *, dims: int | None = None, task: str | None = None
    ) -> Vectors:
        """Embed search queries with the ``query`` prompt (or the prompt named by ``task``)."""
        return self._encode(*self._queries(texts, dims, task))

    def embed_documents(
        self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None, dims: int | None = None
    ) -> Vectors:
        """Embed documents with the ``document`` prompt; ``titles[i]`` replaces ``none`` in it."""
        return self._encode(*self._documents(texts, titles, dims))

    def embed(self, texts: Sequence[str], prompt_name: str | None, *, dims: int | None = None) -> Vectors:
        """Embed ``texts`` with any prompt of the manifest by name (None: the texts as given)."""
        return self._encode(*self._prompted(texts, prompt_name, dims))

    def embed_with_token_states(
        self, texts: Sequence[str], prompt_name: str | None = "query", *, dims: int | None = None
    ) -> tuple[Vectors, list[TokenStates]]:
        """Embed ``texts`` and return each one's token states from the same forward pass.

        Raises :class:`ConfigurationError` when the model directory predates token-state outputs.
        """
        if not self._state_outputs:
            raise ConfigurationError(
                f"the model in {self.model_dir} has no token-state outputs (graph version < 3); upgrade it "
                "with scripts/prepare-model (or `python -m edgeroute.framework.edge.export.token_states DIR`)."
            )
        items = check_texts(texts)
        formatted = [self.format_prompt(t, prompt_name) for t in items]
        prefixes = [len(f) - len(t) for f, t in zip(formatted, items, strict=True)]
        states: list[TokenStates | None] = [None] * len(items)
        vecs = self._encode(formatted, check_dims(self.manifest, dims), states=states, prefixes=prefixes)
        return vecs, [s for s in states if s is not None]

    def embed_documents_with_token_states(
        self, texts: Sequence[str], titles: Sequence[str | None] | None = None, *, dims: int | None = None
    ) -> tuple[Vectors, list[TokenStates], list[TokenStates | None]]:
        """:meth:`embed_documents` and, from the same forward pass, each document's token states: those
        of its text (offsets relative to the text) and those of its title inside the document prompt
        (offsets relative to the title; ``None`` when it has no title or the prompt has no title slot).

        Ingest reads PII entities from these, so a document costs one model pass (docs/architecture.md).
        """
        if not self._state_outputs:
            raise ConfigurationError(
                f"the model in {self.model_dir} has no token-state outputs (graph version < 3); upgrade it "
                "with scripts/prepare-model (or `python -m edgeroute.framework.edge.export.token_states DIR`)."
            )
        formatted, width = self._documents(texts, titles, dims)
        items = list(texts)
        names = list(titles) if titles is not None else [None] * len(items)
        template = self.manifest.prompts.get("document", "")
        slot = template.find("title: none")
        whole: list[TokenStates | None] = [None] * len(items)
        vecs = self._encode(formatted, width, states=whole, prefixes=[0] * len(items))
        text_states: list[TokenStates] = []
        title_states: list[TokenStates | None] = []
        for f, t, title, st in zip(formatted, items, names, whole, strict=True):
            assert st is not None
            text_states.append(st.region(len(f) - len(t), len(f)))
            if title and slot >= 0:
                start = slot + len("title: ")
                title_states.append(st.region(start, start + len(title)))
            else:
                title_states.append(None)
        return vecs, text_states, title_states

    async def aembed_with_token_states(
        self, texts: Sequence[str], prompt_name: str | None = "query", *, dims: int | None = None
    ) -> tuple[Vectors, list[TokenStates]]:
        """:meth:`embed_with_token_states` on the inference thread."""
        return await self.arun(self.embed_with_token_states, texts, prompt_name, dims=dims)

    async def aembed_queries(
        self, texts: Sequence[str], *, dims: int | None = None, task: str | None = None
    ) -> Vectors:
        """:meth:`embed_queries` on the inference thread."""
        return await self._aencode(*self._queries(texts, dims, task))

    async def aembed_documents(
        self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None, dims: int | None = None
    ) -> Vectors:
        """:meth:`embed_documents` on the inference thread."""
        return await self._aencode(*self._documents(texts, titles, dims))

    async def aembed(
        self, texts: Sequence[str], prompt_name: str | None, *, dims: int | None = None
    ) -> Vectors:
        """:meth:`embed` on the inference thread."""
        return await self._aencode(*self._prompted(texts, prompt_name, dims))

    def close(self) -> None:
        """Stop the inference thread of the async methods (a later async call starts a new one)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    # -- inputs: validated and prompted in the caller, before any inference ----------------

    def _queries(self, texts: Sequence[str], dims: int | None, task: str | None) -> tuple[list[str], int]:
        return self._prompted(texts, task or "query", dims)

    def _prompted(
        self, texts: Sequence[str], prompt_name: str | None, dims: int | None
    ) -> tuple[list[str], int]:
        items = check_texts(texts)
        return [self.format_prompt(t, prompt_name) for t in items], check_dims(self.manifest, dims)

    def _documents(
        self, texts: Sequence[str], titles: Sequence[str | None] | None, dims: int | None
    ) -> tuple[list[str], int]:
        items = check_texts(texts)
        if titles is None:
            return self._prompted(items, "document", dims)
        if isinstance(titles, str) or len(titles) != len(items):
            raise InputError(
                f"titles must be a list with one entry (str or None) per text: got "
                f"{'a string' if isinstance(titles, str) else len(titles)} for {len(items)} texts."
            )
        for i, title in enumerate(titles):
            if title is not None and not isinstance(title, str):
                raise InputError(f"titles[{i}] is {type(title).__name__}; pass a str or None.")
        formatted = [
            self.format_prompt(t, "document", title or None) for t, title in zip(items, titles, strict=True)
        ]
        return formatted, check_dims(self.manifest, dims)

    def _inference_executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                # One thread: ONNX Runtime already uses every core inside one run, so a second
                # concurrent run would only contend; a queue in front of the session is the right shape.
                self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="edgeroute-edge")
            return self._executor

    async def arun(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking ``fn`` on this embedder's inference thread (for work that calls the model, such
        as PII detection over token states), queued with the embedding calls."""
        from ..aio import in_executor  # here, not at import: asyncio costs a sync query process 6.5 MB

        return await in_executor(self._inference_executor(), fn, *args, **kwargs)

    async def _aencode(self, texts: list[str], dims: int) -> Vectors:
        from ..aio import in_executor

        return await in_executor(self._inference_executor(), self._encode, texts, dims)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts after truncation, special tokens included."""
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def documents_over_limit(
        self, texts: Sequence[str], titles: Sequence[str | None] | None = None
    ) -> dict[int, int]:
        """``{index: tokens}`` for the documents longer than ``manifest.max_tokens`` as the model reads
        them (document prompt, title and special tokens included), which :meth:`embed_documents` would
        cut. The count is the whole document's, not the truncated one's."""
        formatted, _ = self._documents(texts, titles, None)
        limit = self.manifest.max_tokens
        # A token covers at least one byte of UTF-8, so a shorter input cannot overflow: skip encoding it.
        todo = [i for i, f in enumerate(formatted) if len(f.encode("utf-8")) + 2 > limit]
        counts = self._tokenizer.full_counts([formatted[i] for i in todo])
        return {i: n for i, n in zip(todo, counts, strict=True) if n > limit}

    def document_batches(
        self, texts: Sequence[str], titles: Sequence[str | None] | None = None
    ) -> list[list[int]]:
        """Indices of ``texts`` cut into the groups :meth:`embed_documents` would run as one model call
        each (longest first, at most ``batch_size`` rows and ``max_batch_tokens`` padded tokens).

        Ingest embeds and stores group by group: a killed run loses at most one model call's work, and
        no group is cut short of a full batch (fixed groups of 16 cost 18% more on SciFact abstracts).
        """
        formatted, _ = self._documents(texts, titles, None)
        lengths = np.array([len(e.ids) for e in self._tokenizer.encode_batch(formatted)])
        order = np.argsort(-lengths, kind="stable")
        return [
            [int(i) for i in idx]
            for idx in length_batches(
                order, lengths, self._settings.batch_size, self._settings.max_batch_tokens
            )
        ]

    @property
    def tokenizer_kind(self) -> str:
        """``"compact"`` (tokenizer.bin), ``"sentencepiece"`` (tokenizer.model) or ``"tokenizers"``
        (tokenizer.json)."""
        return self._tokenizer.kind

    def _encode(
        self,
        texts: list[str],
        dims: int,
        *,
        states: list[TokenStates | None] | None = None,
        prefixes: list[int] | None = None,
    ) -> Vectors:
        full = self.manifest.dims
        if not texts:
            return np.zeros((0, dims), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(texts, offsets=states is not None)
        truncated = sum(1 for e in encodings if e.overflowing)
        if truncated:
            with self._lock:
                self._truncated += truncated
            logger.warning(
                "edge embedder: %d of %d input(s) longer than %d tokens were truncated",
                truncated,
                len(texts),
                self.manifest.max_tokens,
            )
        lengths = np.array([len(e.ids) for e in encodings])
        # Longest first: similar lengths share a batch, so padding (wasted attention) stays small.
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), full), dtype=np.float32)
        output_name = self.manifest.output_name
        session = self._session  # created here on the first call of a lazy embedder
        names = [output_name, *(self._state_outputs if states is not None else [])]
        batches = length_batches(order, lengths, self._settings.batch_size, self._settings.max_batch_tokens)
        for k, idx in enumerate(batches):
            width = int(lengths[idx].max())
            # Counted for `edgeroute bench index` and the one-pass tests: every run of the model.
            self.model_runs += 1
            self.model_texts += len(idx)
            self.model_tokens += int(lengths[idx].sum())
            ids = np.full((len(idx), width), PAD_ID, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = int(lengths[i])
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            vecs, *per_token = session.run(
                names,
                {"input_ids": ids, "attention_mask": mask},
                # The arena is shrunk after the call's last batch only: the batches in between reuse it.
                self._run_options if k == len(batches) - 1 else self._run_options_keep,
            )
            out[idx] = vecs[:, :full]
            if states is not None and prefixes is not None:
                feats = np.concatenate(per_token, axis=-1) if len(per_token) > 1 else per_token[0]
                for row, i in enumerate(idx):
                    states[i] = _token_states(encodings[i], feats[row, : int(lengths[i])], prefixes[i])
        return l2_normalize(out) if dims == full else truncate_normalize(out, dims)


def _token_states(encoding: Any, feats: np.ndarray[Any, Any], prefix: int) -> TokenStates:
    """Keep the tokens of the text proper: not special, not inside the prompt; offsets made text-relative."""
    offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
    special = np.asarray(encoding.special_tokens_mask, dtype=bool)
    keep = ~special & (offsets[:, 1] > prefix) & (offsets[:, 1] > offsets[:, 0])
    rel = np.maximum(offsets[keep] - prefix, 0)
    return TokenStates(np.ascontiguousarray(feats[keep], dtype=np.float32), rel)


def _release_free_heap() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim``); a no-op where that does not exist.

    Measured: resident memory after loading EmbeddingGemma's tokenizer drops from 294 to 112 MB.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # musl and other libcs have no malloc_trim
        logger.debug("malloc_trim is not available; tokenizer parse memory stays resident")


__all__ = ["TOKEN_STATE_OUTPUTS", "EdgeEmbedder", "SessionSettings", "TokenStates"]
