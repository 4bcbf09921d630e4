"""Inference runtimes behind the edge embedder: ONNX Runtime (the default), OpenVINO and llama.cpp.

A model directory names its graph in the manifest (``model_file``); the file's suffix picks the runtime:
``.onnx`` ONNX Runtime, ``.xml`` OpenVINO IR (``model.xml`` + ``model.bin``), ``.gguf`` llama.cpp. Each
runtime is wrapped as a *session*: ``run(output_names, {"input_ids", "attention_mask"}, run_options)``
returning ``[sentence_embedding]``, the subset of ``onnxruntime.InferenceSession`` the embedder uses.
So tokenization (the directory's SentencePiece model), prompts, length-sorted batching and the final L2
normalisation are the embedder's own for every runtime: a benchmark compares the runtimes, nothing else.

OpenVINO and llama.cpp are optional (extras ``openvino`` and ``llamacpp``); a directory that needs one
that is not installed fails at load with the ``pip install`` line. They carry no token-state outputs, so
the PII head's one-pass path is ONNX Runtime only. ``scripts/convert-runtimes`` writes such directories
from the checkpoint and the fp32 ONNX export (docs/edge-model.md, "Other runtimes").
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import ConfigurationError

ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"
LLAMACPP = "llamacpp"
RUNTIME_BY_SUFFIX = {".onnx": ONNXRUNTIME, ".xml": OPENVINO, ".gguf": LLAMACPP}
EXTRA = {OPENVINO: ("openvino", "openvino"), LLAMACPP: ("llama_cpp", "llamacpp")}
"""runtime -> (module to import, extra of edgeroute that installs it)."""


class Session(Protocol):
    """What :class:`~edgeroute.framework.edge.embedder.EdgeEmbedder` calls on a runtime."""

    def run(self, output_names: list[str], feeds: dict[str, Any], run_options: Any = None) -> list[Any]: ...

    def output_names(self) -> list[str]: ...


def runtime_of(model_file: str | os.PathLike[str]) -> str:
    """The runtime a graph file needs, from its suffix (``.onnx``, ``.xml``, ``.gguf``)."""
    suffix = Path(model_file).suffix.lower()
    if suffix not in RUNTIME_BY_SUFFIX:
        raise ConfigurationError(
            f"no runtime for {model_file}: the manifest's model_file must end in "
            f"{', '.join(RUNTIME_BY_SUFFIX)} (ONNX Runtime, OpenVINO IR, llama.cpp GGUF)."
        )
    return RUNTIME_BY_SUFFIX[suffix]


def runtime_available(runtime: str) -> bool:
    """True when ``runtime``'s Python package is importable (ONNX Runtime always is: a core dependency)."""
    if runtime == ONNXRUNTIME:
        return True
    try:
        return importlib.util.find_spec(EXTRA[runtime][0]) is not None
    except (ImportError, ValueError):  # a broken install, or a module blocked in sys.modules
        return False


def require_runtime(runtime: str, model_file: Path) -> Any:
    """Import ``runtime``'s package, or raise the error that says which extra to install."""
    module, extra = EXTRA[runtime]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigurationError(
            f"{model_file} is a {runtime} model, and {module} is not installed: "
            f"pip install 'edgeroute[{extra}]' (or pass an ONNX model directory instead)."
        ) from exc


class OrtSession:
    """ONNX Runtime, as the embedder has always run it."""

    def __init__(self, model_file: Path, sess_options: Any) -> None:
        import onnxruntime as ort

        self._session = ort.InferenceSession(
            str(model_file), sess_options=sess_options, providers=["CPUExecutionProvider"]
        )

    def run(self, output_names: list[str], feeds: dict[str, Any], run_options: Any = None) -> list[Any]:
        return list(self._session.run(output_names, feeds, run_options))

    def output_names(self) -> list[str]:
        return [o.name for o in self._session.get_outputs()]


class OpenVinoSession:
    """An OpenVINO IR (``model.xml`` + ``model.bin``) on the CPU plugin, one infer request, fp32 compute.

    ``precision`` is the CPU plugin's ``INFERENCE_PRECISION_HINT``, ``f32`` unless the directory's manifest
    says otherwise (``export.openvino.inference_precision``): on CPUs with AMX/AVX-512 BF16 the plugin
    would otherwise pick bf16 on its own, which is a different model, so a bf16 directory is a recipe of
    its own (its own name, its own parity). Latency hint, one stream: one caller at a time, as the embedder
    runs. No CPU pinning: on a machine shared with other processes pinned threads wait for their core.
    """

    def __init__(self, model_file: Path, threads: int, precision: str = "f32") -> None:
        ov = require_runtime(OPENVINO, model_file)
        core = ov.Core()
        config = {
            "INFERENCE_NUM_THREADS": threads,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": precision,
            "ENABLE_CPU_PINNING": False,
        }
        self._compiled = core.compile_model(core.read_model(str(model_file)), "CPU", config)
        self._request = self._compiled.create_infer_request()
        self._outputs = [o.get_any_name() for o in self._compiled.outputs]

    def run(self, output_names: list[str], feeds: dict[str, Any], run_options: Any = None) -> list[Any]:
        self._request.infer(feeds)
        return [np.array(self._request.get_tensor(name).data, copy=True) for name in output_names]

    def output_names(self) -> list[str]:
        return list(self._outputs)


class LlamaCppSession:
    """A GGUF embedding model on llama.cpp (``llama-cpp-python``), mean pooling in the graph.

    The ids come from the embedder's tokenizer (the GGUF's own vocabulary is the same SentencePiece model;
    feeding ids keeps the comparison to the runtime alone). Each row of a batch is one llama.cpp sequence
    of its unpadded tokens, all run in one ``llama_encode``; the pooled output is the GGUF's, so the
    two sentence-transformers dense layers must be in it (``--sentence-transformers-dense-modules``, which
    :func:`check_gguf_dense` verifies at load).
    """

    def __init__(self, model_file: Path, threads: int, max_batch_tokens: int, max_rows: int) -> None:
        # ggml's OpenMP workers busy-wait between ops by default; beside other busy processes (a shared
        # machine, a server's own threads) that cost 50x here: 4.8 s against 65 ms for a 11-token query at 2
        # threads. Read by libgomp when llama.cpp loads it, so set before the import (unless the caller set it).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        llama_cpp = require_runtime(LLAMACPP, model_file)
        check_gguf_dense(model_file)
        self._lib = llama_cpp
        self._llm = _load_llama(llama_cpp, model_file, threads, max_batch_tokens, max_rows)
        self._dims = int(self._llm.n_embd())

    def run(self, output_names: list[str], feeds: dict[str, Any], run_options: Any = None) -> list[Any]:
        ids, mask = feeds["input_ids"], feeds["attention_mask"]
        llm = self._llm
        # llama-cpp-python keeps its batch and context as Llama._batch / Llama._ctx; Llama.embed() does
        # exactly this after tokenizing text itself (0.3.x).
        batch, ctx = llm._batch, llm._ctx
        batch.reset()
        for row in range(ids.shape[0]):
            batch.add_sequence([int(t) for t in ids[row][mask[row] > 0]], row, True)
        # An encoder-only model: llama_encode (llama_decode on this context only forwards to it).
        rc = self._lib.llama_encode(ctx.ctx, batch.batch)
        if rc != 0:
            raise RuntimeError(f"llama_encode returned {rc} for a batch of {ids.shape[0]} texts")
        out = np.empty((ids.shape[0], self._dims), dtype=np.float32)
        for row in range(ids.shape[0]):
            ptr = self._lib.llama_get_embeddings_seq(ctx.ctx, row)
            out[row] = np.ctypeslib.as_array(ptr, shape=(self._dims,))
        batch.reset()
        return [out]

    def output_names(self) -> list[str]:
        return ["sentence_embedding"]


def _load_llama(llama_cpp: Any, model_file: Path, threads: int, max_batch_tokens: int, max_rows: int) -> Any:
    """``llama_cpp.Llama`` in embedding mode, without llama.cpp's "extra" weight buffers.

    The extra buffer types are ggml's AMX and repacked-weight kernels. On this project's Xeon (AMX-INT8),
    llama-cpp-python 0.3.36's AMX matmul segfaults in the first ``llama_encode`` (gdb:
    ``ggml_backend_amx_mul_mat``). ``Llama()`` does not expose ``use_extra_bufts``, so the default model
    params are wrapped while it loads. ``EDGEROUTE_LLAMACPP_EXTRA_BUFTS=1`` keeps them (other CPUs, where
    the Q4_0 repack is faster).
    """
    low = llama_cpp.llama_cpp
    original = low.llama_model_default_params
    keep = os.environ.get("EDGEROUTE_LLAMACPP_EXTRA_BUFTS") == "1"

    def params() -> Any:
        p = original()
        p.use_extra_bufts = keep
        return p

    low.llama_model_default_params = params
    try:
        return llama_cpp.Llama(
            model_path=str(model_file),
            embedding=True,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            n_ctx=max_batch_tokens,
            n_batch=max_batch_tokens,
            n_ubatch=max_batch_tokens,  # non-causal attention: a whole sequence must fit in one ubatch
            n_seq_max=max_rows,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
    finally:
        low.llama_model_default_params = original


def check_gguf_dense(model_file: Path) -> None:
    """Refuse a GGUF of EmbeddingGemma without the two dense layers: its vectors are another space
    (the pooled 768-dim encoder output), and they would still look like plausible embeddings."""
    try:
        from gguf import GGUFReader
    except ImportError:  # the reader is optional; llama.cpp itself loads the file either way
        return
    names = {t.name for t in GGUFReader(str(model_file)).tensors}
    if not any(n.startswith("dense_2") for n in names) or not any(n.startswith("dense_3") for n in names):
        raise ConfigurationError(
            f"{model_file} has no sentence-transformers dense layers (dense_2/dense_3); convert the "
            "checkpoint with convert_hf_to_gguf.py --sentence-transformers-dense-modules "
            "(scripts/convert-runtimes does)."
        )


def open_session(
    model_file: Path,
    *,
    threads: int,
    ort_options: Any,
    max_batch_tokens: int,
    max_rows: int,
    export: dict[str, Any] | None = None,
) -> Session:
    """The session for ``model_file``'s runtime (see :func:`runtime_of`); ``export`` is the manifest's
    ``export`` section (runtime settings a conversion recorded, e.g. OpenVINO's inference precision)."""
    runtime = runtime_of(model_file)
    if runtime == OPENVINO:
        ov_settings = (export or {}).get("openvino") or {}
        return OpenVinoSession(model_file, threads, str(ov_settings.get("inference_precision", "f32")))
    if runtime == LLAMACPP:
        return LlamaCppSession(model_file, threads, max_batch_tokens, max_rows)
    return OrtSession(model_file, ort_options)


__all__ = [
    "LLAMACPP",
    "ONNXRUNTIME",
    "OPENVINO",
    "LlamaCppSession",
    "OpenVinoSession",
    "OrtSession",
    "Session",
    "check_gguf_dense",
    "open_session",
    "require_runtime",
    "runtime_available",
    "runtime_of",
]
