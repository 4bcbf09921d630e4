"""A loopback emulator of the Gemini API's embedding endpoints, for tests, demos and benchmarks.

It reproduces the protocol (paths, headers, JSON shapes, limits, error bodies, faults), not
Gemini's quality: text vectors come from a local embedder (or the hashing fallback) passed
through a fixed random orthogonal map, media vectors are deterministic functions of their bytes.
The unmodified google-genai client talks to it through ``HttpOptions(base_url=emu.base_url)``.
"""

from __future__ import annotations

import errno
import json
import logging
import random
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from ..cloud.media import DEFAULT_MODEL, MAX_DIMS
from ..digest import sha256_bytes
from ..embedder import l2_normalize
from ..errors import ConfigurationError
from .emulator_batch import CREATE_PATH, JOB_PATH, BatchJobs, BatchScript, embedder_for
from .emulator_http import EmulatorHandler, EmulatorServer
from .emulator_wire import PATH, BadRequest, embed_requests, status_body
from .hashing import hash_embed

_log = logging.getLogger(__name__)

TextEmbedFn = Callable[[list[str]], npt.NDArray[Any]]

FAULT_KINDS = ("429", "500", "503", "timeout", "drop")
_HASH_DIMS = 768
KNOWN_MODELS = frozenset({DEFAULT_MODEL, "gemini-embedding-2", "gemini-embedding-001", "text-embedding-004"})


class GeminiEmulator:
    """A thread-based HTTP server on loopback speaking Gemini's ``batchEmbedContents`` / ``embedContent``.

    Use it as a context manager (``with GeminiEmulator() as emu: ...``) or call :meth:`start` and
    :meth:`close`. ``fault_rate`` injects faults drawn from ``faults`` at random (seeded);
    :meth:`script_faults` queues faults for the next requests in order (``None`` or ``"ok"`` = no fault).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        fault_rate: float = 0.0,
        faults: Sequence[str] = FAULT_KINDS,
        latency_ms: float = 0,
        record_path: str | Path | None = None,
        text_embedder: TextEmbedFn | None = None,
        api_key: str | None = None,
        seed: int = 0,
        retry_after_s: float = 1.0,
        timeout_hold_s: float = 60.0,
    ) -> None:
        self.host = host
        self._port = port
        self.latency_ms = float(latency_ms)
        self.record_path = Path(record_path) if record_path is not None else None
        self.text_embedder = text_embedder
        self.api_key = api_key
        self.seed = seed
        self.retry_after_s = retry_after_s
        self.timeout_hold_s = timeout_hold_s
        self.requests: list[dict[str, Any]] = []
        self.batches = BatchJobs()
        """The Batch API's jobs: script their outcomes (:meth:`script_batches`), read what was created."""
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._script: deque[str | None] = deque()
        self._fault_rate = 0.0
        self._faults: tuple[str, ...] = ()
        self.set_faults(fault_rate, faults)
        self._closing = threading.Event()
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._record_fh: TextIO | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> GeminiEmulator:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        if self.text_embedder is None:
            self._map(_HASH_DIMS)  # build the space now, not inside the first request's time budget
        emulator = self

        class Handler(EmulatorHandler):
            emu = emulator

        self._open_record()
        try:
            server = EmulatorServer((self.host, self._port), Handler)
        except OSError as exc:
            self._close_record()
            if exc.errno == errno.EADDRINUSE:
                raise ConfigurationError(
                    f"port {self._port} on {self.host} is already in use (another emulator or server?): "
                    "stop it, pick another --port, or pass --port 0 for a free one"
                ) from None
            raise ConfigurationError(
                f"cannot listen on {self.host}:{self._port} ({exc.strerror or exc}): "
                "check --host (keep it on loopback) and --port"
            ) from None
        self._server = server
        self._closing.clear()
        # A short poll interval makes close() quick; tests start and stop many emulators.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="gemini-emulator", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port; held ``timeout`` requests are dropped."""
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._close_record()

    def _open_record(self) -> None:
        """Open the record file now, so a bad path fails at start instead of dropping every request."""
        if self.record_path is None or self._record_fh is not None:
            return
        if not self.record_path.parent.is_dir():
            raise ConfigurationError(
                f"cannot record to {self.record_path}: the folder {self.record_path.parent} does not exist; "
                "create it first or pass another --record path"
            )
        if self.record_path.is_dir():
            raise ConfigurationError(f"cannot record to {self.record_path}: it is a directory; name a file")
        try:
            self._record_fh = self.record_path.open("a", encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"cannot record to {self.record_path} ({exc.strerror or exc}): pass a writable --record path"
            ) from None

    def _close_record(self) -> None:
        with self._lock:
            if self._record_fh is not None:
                self._record_fh.close()
                self._record_fh = None

    def __enter__(self) -> GeminiEmulator:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://host:port`` to pass as ``HttpOptions(base_url=...)`` or ``GOOGLE_GEMINI_BASE_URL``."""
        return f"http://{self.host}:{self.port}"

    # -- faults and records ----------------------------------------------------------------

    def set_faults(self, fault_rate: float | None = None, faults: Iterable[str] | None = None) -> None:
        """Change the random fault rate (0-1) and/or the kinds drawn from."""
        if fault_rate is not None:
            if not 0.0 <= fault_rate <= 1.0:
                raise ValueError(f"fault_rate must be within 0-1, got {fault_rate}")
            self._fault_rate = fault_rate
        if faults is not None:
            kinds = tuple(faults)
            bad = [k for k in kinds if k not in FAULT_KINDS]
            if bad:
                raise ValueError(f"unknown fault kinds {bad}; choose from {', '.join(FAULT_KINDS)}")
            self._faults = kinds

    def script_faults(self, faults: Iterable[str | None]) -> None:
        """Queue faults for the next requests, one per request (``None`` or ``"ok"`` = serve normally)."""
        items = [None if f in (None, "ok") else f for f in faults]
        bad = [k for k in items if k is not None and k not in FAULT_KINDS]
        if bad:
            raise ValueError(f"unknown fault kinds {bad}; choose from {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._script.extend(items)

    def script_batches(self, scripts: Iterable[BatchScript | str]) -> None:
        """Queue how the next created batch jobs behave, one per job: a :class:`BatchScript`, or an
        outcome name (``succeeded``, ``failed``, ``expired``) that ends at the first poll."""
        self.batches.script(s if isinstance(s, BatchScript) else BatchScript(outcome=s) for s in scripts)

    def reset(self) -> None:
        """Forget recorded requests, batch jobs, scripted faults and the random fault rate."""
        self.batches.reset()
        with self._lock:
            self.requests.clear()
            self._script.clear()
            self._fault_rate = 0.0
            self._rng = random.Random(self.seed)

    @property
    def request_count(self) -> int:
        """HTTP requests received so far (each batch call counts once)."""
        with self._lock:
            return len(self.requests)

    def _next_fault(self) -> str | None:
        with self._lock:
            if self._script:
                return self._script.popleft()
            if self._fault_rate and self._faults and self._rng.random() < self._fault_rate:
                return self._rng.choice(self._faults)
            return None

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)
            if self._record_fh is not None:
                try:
                    self._record_fh.write(json.dumps(entry) + "\n")
                    self._record_fh.flush()  # readers (tests, other processes) see each request at once
                except OSError as exc:  # a full disk must not turn into dropped requests
                    _log.warning("could not record a request to %s: %s", self.record_path, exc)

    # -- vectors ---------------------------------------------------------------------------

    def _map(self, d_in: int) -> npt.NDArray[np.float32]:
        """A fixed (seeded) 3072 x d_in matrix with orthonormal columns: the emulator's own embedding space."""
        return _space_map(self.seed, d_in)

    def text_vectors(self, texts: list[str], dims: int = MAX_DIMS) -> npt.NDArray[np.float32]:
        """The first ``dims`` components of the texts' 3072-dim unit vectors."""
        if not texts:
            return np.zeros((0, dims), dtype=np.float32)
        base = (
            np.asarray(self.text_embedder(texts), dtype=np.float32)
            if self.text_embedder is not None
            else hash_embed(texts, _HASH_DIMS)
        )
        base = l2_normalize(np.ascontiguousarray(base, dtype=np.float32))
        m = self._map(base.shape[1])[:dims]
        if len(base) <= 8:
            # A few rows: numpy's own loop beats a multi-threaded BLAS call that stalls on a busy machine.
            small: npt.NDArray[np.float32] = np.einsum("dk,nk->nd", m, base)
            return small
        out: npt.NDArray[np.float32] = base @ m.T
        return out

    def _media_vector(self, mime: str, data: bytes) -> npt.NDArray[np.float32]:
        seed = int.from_bytes(bytes.fromhex(sha256_bytes(mime.encode() + b"\0" + data))[:8], "little")
        v = np.random.default_rng(seed).standard_normal(MAX_DIMS).astype(np.float32)
        out: npt.NDArray[np.float32] = v / np.linalg.norm(v)
        return out

    # -- request handling ------------------------------------------------------------------

    def _refuse_key(
        self, headers: dict[str, str], query_key: str | None
    ) -> tuple[int, dict[str, Any]] | None:
        key = headers.get("x-goog-api-key") or query_key
        if not key:
            return 403, status_body(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
            )
        if self.api_key is not None and key != self.api_key:
            return 400, status_body(
                400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."
            )
        return None

    def handle_batch(
        self, method: str, path: str, query: str, headers: dict[str, str], query_key: str | None, raw: bytes
    ) -> tuple[int, dict[str, Any], dict[str, Any] | None] | None:
        """Serve a Batch API route (see :mod:`.emulator_batch`); None when ``path`` is not one."""
        if not (CREATE_PATH.match(path) or JOB_PATH.match(path)):
            return None
        refused = self._refuse_key(headers, query_key)
        if refused is not None:
            return refused[0], refused[1], None
        embed = embedder_for(self.text_vectors, self._media_vector)
        return self.batches.serve(method, path, query, raw, KNOWN_MODELS, embed)

    def handle(
        self, path: str, headers: dict[str, str], query_key: str | None, raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        """Serve one parsed HTTP request; returns (status, JSON body). Faults are applied by the handler."""
        m = PATH.match(path)
        if m is None:
            return 404, status_body(404, "NOT_FOUND", f"Method not found: {path}")
        version, model, method = m.groups()
        refused = self._refuse_key(headers, query_key)
        if refused is not None:
            return refused
        if model not in KNOWN_MODELS:
            return 404, status_body(
                404,
                "NOT_FOUND",
                f"models/{model} is not found for API version {version}, or is not supported for {method}.",
            )
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise BadRequest(
                    400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object."
                )
            reqs: Any = [body] if method == "embedContent" else body.get("requests")
            if method != "embedContent":
                if not isinstance(reqs, list) or not reqs:
                    raise BadRequest(
                        400,
                        "INVALID_ARGUMENT",
                        "* BatchEmbedContentsRequest.requests: requests is required\n",
                    )
                if len(reqs) > 100:
                    raise BadRequest(
                        400,
                        "INVALID_ARGUMENT",
                        "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n",
                    )
            vectors, tokens = embed_requests(reqs, model, self.text_vectors, self._media_vector)
        except json.JSONDecodeError as exc:
            return 400, status_body(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}")
        except BadRequest as exc:
            return exc.code, status_body(exc.code, exc.status, exc.message)
        details = [{"modality": k, "tokenCount": v} for k, v in tokens.items() if v]
        usage = {"promptTokenCount": sum(tokens.values()), "promptTokenDetails": details}
        if method == "embedContent":
            return 200, {"embedding": {"values": vectors[0]}, "usageMetadata": usage}
        return 200, {"embeddings": [{"values": v} for v in vectors], "usageMetadata": usage}


_MAPS: dict[tuple[int, int], npt.NDArray[np.float32]] = {}
_MAPS_LOCK = threading.Lock()


def _space_map(seed: int, d_in: int) -> npt.NDArray[np.float32]:
    # Shared by every emulator in the process: building one costs ~0.5 s, and tests start many.
    with _MAPS_LOCK:
        m = _MAPS.get((seed, d_in))
        if m is None:
            m = np.ascontiguousarray(_orthonormal_rows(d_in, MAX_DIMS, seed + 7919).T)
            _MAPS[(seed, d_in)] = m
        return m


def _orthonormal_rows(
    d_in: int, d_out: int, seed: int, block: int = 64, rounds: int = 3
) -> npt.NDArray[np.float32]:
    """Random orthonormal rows built from permutations and block-diagonal orthogonal matrices.

    A dense QR of 3072 x 768 takes seconds on a small machine; three rounds of shuffle + 64x64
    random rotations mix every input dimension across the output in milliseconds, and stay
    exactly orthogonal, so cosine similarities of the source embedder are preserved.
    """
    if d_in > d_out:
        raise ValueError(f"text_embedder returned {d_in} dims; the emulator maps at most {d_out}")
    rng = np.random.default_rng(seed)
    x = np.zeros((d_in, d_out), dtype=np.float32)
    x[np.arange(d_in), rng.permutation(d_out)[:d_in]] = 1.0
    for _ in range(rounds):
        x = x[:, rng.permutation(d_out)]
        q = np.linalg.qr(rng.standard_normal((d_out // block, block, block)))[0].astype(np.float32)
        x = np.einsum("nbk,bkj->nbj", x.reshape(d_in, d_out // block, block), q).reshape(d_in, d_out)
    return x.astype(np.float32)
