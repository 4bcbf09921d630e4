"""A loopback emulator of the Gemini API's embedding endpoints, for tests, demos and benchmarks.

It reproduces the protocol (paths, headers, JSON shapes, limits, error bodies, faults), not
Gemini's quality: text vectors come from a local embedder (or the hashing fallback) passed
through a fixed random orthogonal map, media vectors are deterministic functions of their bytes.
The unmodified google-genai client talks to it through ``HttpOptions(base_url=emu.base_url)``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import json
import logging
import random
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from ..cloud.media import MAX_DIMS, MAX_IMAGES, MIN_DIMS, image_kind, mp4_duration_s, pdf_page_count
from ..embedder import l2_normalize
from ..errors import ConfigurationError
from .hashing import hash_embed

_log = logging.getLogger(__name__)

TextEmbedFn = Callable[[list[str]], npt.NDArray[Any]]

FAULT_KINDS = ("429", "500", "503", "timeout", "drop")
KNOWN_MODELS = frozenset(
    {"gemini-embedding-2-preview", "gemini-embedding-2", "gemini-embedding-001", "text-embedding-004"}
)
_PATH = re.compile(r"^/(v1|v1beta)/models/([^/:]+):(batchEmbedContents|embedContent)$")
_MIME_MODALITY = {
    "image/png": "IMAGE",
    "image/jpeg": "IMAGE",
    "audio/mpeg": "AUDIO",
    "audio/mp3": "AUDIO",
    "audio/wav": "AUDIO",
    "audio/x-wav": "AUDIO",
    "video/mp4": "VIDEO",
    "video/quicktime": "VIDEO",
    "application/pdf": "DOCUMENT",
}
_HASH_DIMS = 768
# Token accounting per the public docs' rules of thumb (the real figures differ; only the shape matters).
_IMAGE_TOKENS = 258
_VIDEO_TOKENS_PER_S = 263
_AUDIO_TOKENS_PER_S = 32
_MESSAGES = {
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. "
        "For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    ),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
}


class _BadRequest(Exception):
    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def _get(d: dict[str, Any], camel: str, snake: str) -> Any:
    return d[camel] if camel in d else d.get(snake)


def _b64decode(data: str) -> bytes:
    s = data.strip().replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _BadRequest(
            400, "INVALID_ARGUMENT", f"Invalid value at 'inline_data.data' (TYPE_BYTES), {exc}"
        ) from exc


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
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._script: deque[str | None] = deque()
        self._fault_rate = 0.0
        self._faults: tuple[str, ...] = ()
        self.set_faults(fault_rate, faults)
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
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

        class Handler(_Handler):
            emu = emulator

        self._open_record()
        try:
            server = _Server((self.host, self._port), Handler)
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

    def reset(self) -> None:
        """Forget recorded requests, scripted faults and the random fault rate."""
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
        seed = int.from_bytes(hashlib.sha256(mime.encode() + b"\0" + data).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(MAX_DIMS).astype(np.float32)
        out: npt.NDArray[np.float32] = v / np.linalg.norm(v)
        return out

    # -- request handling ------------------------------------------------------------------

    def handle(
        self, path: str, headers: dict[str, str], query_key: str | None, raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        """Serve one parsed HTTP request; returns (status, JSON body). Faults are applied by the handler."""
        m = _PATH.match(path)
        if m is None:
            return 404, _status(404, "NOT_FOUND", f"Method not found: {path}")
        version, model, method = m.groups()
        key = headers.get("x-goog-api-key") or query_key
        if not key:
            return 403, _status(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
            )
        if self.api_key is not None and key != self.api_key:
            return 400, _status(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
        if model not in KNOWN_MODELS:
            return 404, _status(
                404,
                "NOT_FOUND",
                f"models/{model} is not found for API version {version}, or is not supported for {method}.",
            )
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise _BadRequest(
                    400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object."
                )
            reqs: Any = [body] if method == "embedContent" else body.get("requests")
            if method != "embedContent":
                if not isinstance(reqs, list) or not reqs:
                    raise _BadRequest(
                        400,
                        "INVALID_ARGUMENT",
                        "* BatchEmbedContentsRequest.requests: requests is required\n",
                    )
                if len(reqs) > 100:
                    raise _BadRequest(
                        400,
                        "INVALID_ARGUMENT",
                        "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n",
                    )
            vectors, tokens = self._embed_requests(reqs, model)
        except json.JSONDecodeError as exc:
            return 400, _status(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}")
        except _BadRequest as exc:
            return exc.code, _status(exc.code, exc.status, exc.message)
        details = [{"modality": k, "tokenCount": v} for k, v in tokens.items() if v]
        usage = {"promptTokenCount": sum(tokens.values()), "promptTokenDetails": details}
        if method == "embedContent":
            return 200, {"embedding": {"values": vectors[0]}, "usageMetadata": usage}
        return 200, {"embeddings": [{"values": v} for v in vectors], "usageMetadata": usage}

    def _embed_requests(self, reqs: list[Any], model: str) -> tuple[list[list[float]], dict[str, int]]:
        tokens = {"TEXT": 0, "IMAGE": 0, "AUDIO": 0, "VIDEO": 0, "DOCUMENT": 0}
        # Per request: list of (weight-vector-source) entries; texts are embedded in one batch.
        texts: list[str] = []
        plans: list[tuple[int, list[tuple[str, int | npt.NDArray[np.float32]]]]] = []
        for i, req in enumerate(reqs):
            if not isinstance(req, dict):
                raise _BadRequest(
                    400,
                    "INVALID_ARGUMENT",
                    f"* BatchEmbedContentsRequest.requests[{i}]: expected an object\n",
                )
            req_model = req.get("model")
            if req_model is not None and str(req_model).removeprefix("models/") != model:
                raise _BadRequest(
                    400,
                    "INVALID_ARGUMENT",
                    f"* BatchEmbedContentsRequest.requests[{i}].model: model {req_model} does not match the "
                    f"batch model models/{model}\n",
                )
            dims = _get(req, "outputDimensionality", "output_dimensionality")
            if dims is None:
                dims = MAX_DIMS
            if not isinstance(dims, int) or not MIN_DIMS <= dims <= MAX_DIMS:
                raise _BadRequest(
                    400,
                    "INVALID_ARGUMENT",
                    f"* BatchEmbedContentsRequest.requests[{i}].output_dimensionality: must be between "
                    f"{MIN_DIMS} and {MAX_DIMS}, got {dims}\n",
                )
            content = req.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            if not isinstance(parts, list) or not parts:
                raise _BadRequest(
                    400,
                    "INVALID_ARGUMENT",
                    f"* BatchEmbedContentsRequest.requests[{i}].content.parts: must not be empty\n",
                )
            entries: list[tuple[str, int | npt.NDArray[np.float32]]] = []
            images = 0
            for j, part in enumerate(parts):
                where = f"requests[{i}].content.parts[{j}]"
                if not isinstance(part, dict):
                    raise _BadRequest(400, "INVALID_ARGUMENT", f"* {where}: expected an object\n")
                inline = _get(part, "inlineData", "inline_data")
                file_data = _get(part, "fileData", "file_data")
                if "text" in part:
                    text = str(part["text"])
                    tokens["TEXT"] += max(1, len(text) // 4)
                    entries.append(("text", len(texts)))
                    texts.append(text)
                elif isinstance(inline, dict):
                    mime = str(_get(inline, "mimeType", "mime_type") or "")
                    modality = _MIME_MODALITY.get(mime)
                    if modality is None:
                        raise _BadRequest(
                            400, "INVALID_ARGUMENT", f"* {where}: Unsupported MIME type: {mime}\n"
                        )
                    data = _b64decode(str(inline.get("data") or ""))
                    if not data:
                        raise _BadRequest(
                            400, "INVALID_ARGUMENT", f"* {where}.inline_data.data: must not be empty\n"
                        )
                    if modality == "IMAGE":
                        images += 1
                        if image_kind(data) is None:
                            raise _BadRequest(
                                400, "INVALID_ARGUMENT", f"* {where}: Provided image is not valid.\n"
                            )
                    tokens[modality] += _media_tokens(modality, data)
                    entries.append(("media", self._media_vector(mime, data)))
                elif isinstance(file_data, dict):
                    mime = str(_get(file_data, "mimeType", "mime_type") or "")
                    uri = str(_get(file_data, "fileUri", "file_uri") or "")
                    modality = _MIME_MODALITY.get(mime)
                    if modality is None or not uri:
                        raise _BadRequest(
                            400,
                            "INVALID_ARGUMENT",
                            f"* {where}: file_data needs file_uri and a supported mime_type\n",
                        )
                    images += modality == "IMAGE"
                    tokens[modality] += _IMAGE_TOKENS
                    entries.append(("media", self._media_vector(mime, uri.encode())))
                else:
                    raise _BadRequest(
                        400, "INVALID_ARGUMENT", f"* {where}: a part needs text, inline_data or file_data\n"
                    )
            if images > MAX_IMAGES:
                raise _BadRequest(
                    400,
                    "INVALID_ARGUMENT",
                    f"* BatchEmbedContentsRequest.requests[{i}]: at most {MAX_IMAGES} images are allowed "
                    f"per request, got {images}\n",
                )
            plans.append((dims, entries))
        top = max(d for d, _ in plans)
        text_vecs = self.text_vectors(texts, top)
        vectors: list[list[float]] = []
        for dims, entries in plans:
            acc = np.zeros(top, dtype=np.float32)
            for _kind, ref in entries:
                acc += text_vecs[ref] if isinstance(ref, int) else ref[:top]
            v = acc[:dims]
            norm = float(np.linalg.norm(v)) or 1.0
            vectors.append((v / norm).round(7).tolist())
        return vectors, tokens


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


def _media_tokens(modality: str, data: bytes) -> int:
    if modality == "IMAGE":
        return _IMAGE_TOKENS
    if modality == "DOCUMENT":
        return _IMAGE_TOKENS * max(1, pdf_page_count(data))
    if modality == "VIDEO":
        return int(_VIDEO_TOKENS_PER_S * max(1.0, mp4_duration_s(data) or 1.0))
    # WAV: 16-bit mono 16 kHz is 32 kB/s; good enough for a token estimate.
    return int(_AUDIO_TOKENS_PER_S * max(1.0, len(data) / 32_000))


def _status(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


class _Server(ThreadingHTTPServer):
    # The backlog is fixed when the socket starts listening (inside __init__), so it must be a class
    # attribute; the stdlib default of 5 resets connections when many clients connect at once.
    request_queue_size = 128
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    emu: GeminiEmulator
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would add ~40 ms
    server_version = "edgeroute-gemini-emulator"

    def log_message(self, format: str, *args: Any) -> None:  # silence per-request stderr lines
        pass

    def do_GET(self) -> None:
        self._send(
            404, _status(404, "NOT_FOUND", "Only POST :batchEmbedContents and :embedContent are served.")
        )

    def do_POST(self) -> None:
        emu = self.emu
        started = time.time()
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        query_key = next((p[4:] for p in query.split("&") if p.startswith("key=")), None)
        headers = {k.lower(): v for k, v in self.headers.items()}
        fault = emu._next_fault()
        if emu.latency_ms:
            time.sleep(emu.latency_ms / 1000)
        entry: dict[str, Any] = {"time": started, "path": path, "fault": fault}
        m = _PATH.match(path)
        entry["model"] = m.group(2) if m else None
        if fault in ("429", "500", "503"):
            entry.update(status=int(fault or 0), parts=_peek_parts(raw))
            emu._record(entry)
            code = int(fault or 0)
            status, message = _MESSAGES[code]
            extra = {"Retry-After": _fmt_seconds(emu.retry_after_s)} if code == 429 else {}
            self._send(code, _status(code, status, message), extra)
            return
        if fault == "timeout":
            entry.update(status=None, parts=_peek_parts(raw))
            emu._record(entry)
            # Hold the socket without answering until the client gives up (or the emulator closes).
            emu._closing.wait(emu.timeout_hold_s)
            self.close_connection = True
            return
        if fault == "drop":
            entry.update(status=None, parts=_peek_parts(raw))
            emu._record(entry)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        code, body = emu.handle(path, headers, query_key, raw)
        entry.update(status=code, parts=_peek_parts(raw))
        emu._record(entry)
        self._send(code, body)

    def _send(self, code: int, body: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first


def _fmt_seconds(s: float) -> str:
    return str(int(s)) if float(s).is_integer() else f"{s:g}"


def _peek_parts(raw: bytes) -> list[list[dict[str, Any]]]:
    """What each request in the body carried (text, MIME types, byte counts, sha256), for the record."""
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError:
        return []
    reqs = body.get("requests") if isinstance(body, dict) and "requests" in body else [body]
    out: list[list[dict[str, Any]]] = []
    for req in reqs if isinstance(reqs, list) else []:
        content = req.get("content") if isinstance(req, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        log: list[dict[str, Any]] = []
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict):
                continue
            inline = _get(part, "inlineData", "inline_data")
            file_data = _get(part, "fileData", "file_data")
            if "text" in part:
                log.append({"kind": "text", "text": str(part["text"])})
            elif isinstance(inline, dict):
                try:
                    data = _b64decode(str(inline.get("data") or ""))
                except _BadRequest:
                    data = b""
                log.append(
                    {
                        "kind": "inline_data",
                        "mime_type": _get(inline, "mimeType", "mime_type"),
                        "bytes": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                )
            elif isinstance(file_data, dict):
                log.append(
                    {
                        "kind": "file_data",
                        "mime_type": _get(file_data, "mimeType", "mime_type"),
                        "uri": _get(file_data, "fileUri", "file_uri"),
                    }
                )
        out.append(log)
    return out
