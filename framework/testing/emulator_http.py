"""The emulator's HTTP side: a threading server on loopback and the handler that applies faults,
latency and recording around :meth:`GeminiEmulator.handle`."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from .emulator_batch import CREATE_PATH, batch_parts
from .emulator_wire import MESSAGES, PATH, peek_parts, status_body

if TYPE_CHECKING:
    from .emulator import GeminiEmulator


class EmulatorServer(ThreadingHTTPServer):
    # The backlog is fixed when the socket starts listening (inside __init__), so it must be a class
    # attribute; the stdlib default of 5 resets connections when many clients connect at once.
    request_queue_size = 128
    daemon_threads = True


class EmulatorHandler(BaseHTTPRequestHandler):
    emu: GeminiEmulator
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would add ~40 ms
    server_version = "edgeroute-gemini-emulator"

    def log_message(self, format: str, *args: Any) -> None:  # silence per-request stderr lines
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        emu = self.emu
        started = time.time()
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        query_key = next((p[4:] for p in query.split("&") if p.startswith("key=")), None)
        headers = {k.lower(): v for k, v in self.headers.items()}
        fault = emu._next_fault()
        entry: dict[str, Any] = {"time": started, "path": path, "fault": fault}
        if method != "POST":
            entry["method"] = method
        m = PATH.match(path) or CREATE_PATH.match(path)
        entry["model"] = m.group(2) if m else None
        if emu.latency_ms:
            time.sleep(emu.latency_ms / 1000)
            if self._client_gone():
                # The caller cancelled (a deadline passed): nothing is computed or answered, and the
                # log says so, as Gemini would not bill an abandoned call either.
                entry.update(status=None, abandoned=True, parts=_parts(path, raw))
                emu._record(entry)
                self.close_connection = True
                return
        if fault in ("429", "500", "503"):
            entry.update(status=int(fault or 0), parts=_parts(path, raw))
            emu._record(entry)
            code = int(fault or 0)
            status, message = MESSAGES[code]
            extra = {"Retry-After": _fmt_seconds(emu.retry_after_s)} if code == 429 else {}
            self._send(code, status_body(code, status, message), extra)
            return
        if fault == "timeout":
            entry.update(status=None, parts=_parts(path, raw))
            emu._record(entry)
            # Hold the socket without answering until the client gives up (or the emulator closes).
            emu._closing.wait(emu.timeout_hold_s)
            self.close_connection = True
            return
        if fault == "drop":
            entry.update(status=None, parts=_parts(path, raw))
            emu._record(entry)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        served = emu.handle_batch(method, path, query, headers, query_key, raw)
        if served is not None:
            code, body, record = served
            entry.update(status=code, parts=(record or {}).get("parts", []))
            if record and "batch" in record:
                entry["batch"] = record["batch"]
            if record and record.get("lose_answer"):  # the job exists; the client never hears of it
                entry.update(status=None, lost_answer=True)
                emu._record(entry)
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
        elif method != "POST":
            code, body = (
                404,
                status_body(
                    404,
                    "NOT_FOUND",
                    "Only POST :batchEmbedContents, :embedContent and the batch routes are served.",
                ),
            )
            entry.update(status=code, parts=[])
        else:
            code, body = emu.handle(path, headers, query_key, raw)
            entry.update(status=code, parts=peek_parts(raw))
        emu._record(entry)
        self._send(code, body)

    def _client_gone(self) -> bool:
        """True when the client closed its end while the request was being held."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

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


def _parts(path: str, raw: bytes) -> list[list[dict[str, Any]]]:
    """What a request carried, for the log: a batch create's items, or an embedding call's requests."""
    return batch_parts(raw) if CREATE_PATH.match(path) else peek_parts(raw)


def _fmt_seconds(s: float) -> str:
    return str(int(s)) if float(s).is_integer() else f"{s:g}"
