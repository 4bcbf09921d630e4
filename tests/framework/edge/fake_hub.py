"""A loopback stand-in for the Hugging Face hub that serves one model repo from a local directory.

It implements exactly what ``huggingface_hub.snapshot_download`` (2.4.0) asks of the hub for a
public model repo, so a test can point ``HF_ENDPOINT`` at it and exercise the real download path:

- ``GET /api/models/{repo}/revision/{rev}`` (and ``/api/models/{repo}``): the repo info, with the
  commit ``sha`` (40 hex digits, so the client pins every later call to it) and ``siblings``;
- ``GET /api/models/{repo}/tree/{rev}[/{dir}]?recursive=true|false``: the tree listing, files and
  directories, all on one page (no ``Link`` header, so the client does not paginate);
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: the file, with ``X-Repo-Commit``, ``ETag`` (the git
  blob sha1, as the hub sends for files outside LFS) and ``Content-Length``; ``Range: bytes=N-`` is
  honoured for resumed downloads. No ``X-Xet-*`` headers or ``Link: ...xet-auth`` are sent, so the
  client falls back to a plain HTTP download.

Anything else answers 404 with a JSON body and the hub's ``X-Error-Code`` (``RepoNotFound``,
``RevisionNotFound``, ``EntryNotFound``) where one applies. With ``fail_status`` set every request
answers that status instead (a hub that is down); ``fail_downloads`` maps repo paths to a status their
GET answers (a transfer that breaks after the HEAD went fine). Every request is recorded in
:attr:`FakeHub.requests`.

    with FakeHub(repo_dir, "org/name") as hub:
        env["HF_ENDPOINT"] = hub.url
        ...
    assert hub.downloaded() == {"tokenizer.json", ...}
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit


class RecordedRequest(NamedTuple):
    method: str
    path: str  # URL-decoded, without the query string
    query: str


class _RepoFile(NamedTuple):
    data: bytes
    blob_sha1: str  # git's object id of the blob: sha1(b"blob <size>\0" + data)


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: FakeHub


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers after stop()

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        self.server.hub._handle(self, "GET")

    def do_HEAD(self) -> None:
        self.server.hub._handle(self, "HEAD")

    def do_POST(self) -> None:
        self.server.hub._handle(self, "POST")


class FakeHub:
    """Serve ``repo_dir`` as the model repo ``repo_id`` (branch ``main``) on 127.0.0.1."""

    def __init__(
        self,
        repo_dir: str | Path,
        repo_id: str,
        *,
        fail_status: int | None = None,
        fail_downloads: Mapping[str, int] | None = None,
        stall_s: float = 0.0,
    ) -> None:
        root = Path(repo_dir)
        self.repo_id = repo_id
        self.fail_status = fail_status
        self.fail_downloads = dict(fail_downloads or {})
        self.stall_s = stall_s  # answer every request this late (a hub behind a stalled link)
        self.files: dict[str, _RepoFile] = {}
        for p in sorted(root.rglob("*")):
            if p.is_file():
                data = p.read_bytes()
                self.files[p.relative_to(root).as_posix()] = _RepoFile(data, _git_blob_sha1(data))
        listing = json.dumps({k: v.blob_sha1 for k, v in self.files.items()}, sort_keys=True)
        self.commit = hashlib.sha1(listing.encode()).hexdigest()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeHub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeHub:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.hub = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what the tests look at -----------------------------------------------------------

    def resolved(self, method: str = "GET") -> list[str]:
        """The repo paths requested with ``method`` on the ``/resolve/`` route, in request order."""
        prefix = f"/{self.repo_id}/resolve/"
        with self._lock:
            recorded = list(self.requests)
        return [
            r.path[len(prefix) :].split("/", 1)[1]
            for r in recorded
            if r.method == method and r.path.startswith(prefix) and "/" in r.path[len(prefix) :]
        ]

    def downloaded(self) -> set[str]:
        """The repo paths whose content was fetched (GET on ``/resolve/``)."""
        return set(self.resolved("GET"))

    # -- request handling -----------------------------------------------------------------

    def _handle(self, h: _Handler, method: str) -> None:
        parts = urlsplit(h.path)
        path = unquote(parts.path)
        with self._lock:
            self.requests.append(RecordedRequest(method, path, parts.query))
        if self.stall_s:
            time.sleep(self.stall_s)
        if self.fail_status is not None:
            self._json(h, method, self.fail_status, {"error": f"fake hub answers {self.fail_status}"})
            return
        repo = self.repo_id
        if method == "GET" and path.startswith("/api/models/"):
            rest = path[len("/api/models/") :]
            if not (rest == repo or rest.startswith(repo + "/")):
                self._not_found(h, method, "RepoNotFound", "Repository not found")
                return
            rest = rest[len(repo) :].lstrip("/")
            if rest == "":
                self._repo_info(h, method)
            elif rest.startswith("revision/"):
                rev = rest[len("revision/") :]
                if self._rev_ok(h, method, rev):
                    self._repo_info(h, method)
            elif rest.startswith("tree/"):
                rev, _, sub = rest[len("tree/") :].partition("/")
                if self._rev_ok(h, method, rev):
                    recursive = parse_qs(parts.query).get("recursive", ["false"])[-1].lower() in {"true", "1"}
                    self._tree(h, method, sub.strip("/"), recursive)
            else:
                self._not_found(h, method, None, f"no route for {path}")
            return
        prefix = f"/{repo}/resolve/"
        if method in {"GET", "HEAD"} and path.startswith(prefix):
            rev, _, name = path[len(prefix) :].partition("/")
            if self._rev_ok(h, method, rev):
                self._resolve(h, method, name)
            return
        self._not_found(h, method, None, f"no route for {method} {path}")

    def _rev_ok(self, h: _Handler, method: str, rev: str) -> bool:
        if rev in {"main", self.commit}:
            return True
        self._not_found(h, method, "RevisionNotFound", f"Invalid rev id: {rev}")
        return False

    def _repo_info(self, h: _Handler, method: str) -> None:
        name = self.repo_id.split("/")[-1]
        self._json(
            h,
            method,
            200,
            {
                "_id": hashlib.sha1(self.repo_id.encode()).hexdigest()[:24],
                "id": self.repo_id,
                "modelId": self.repo_id,
                "author": self.repo_id.split("/")[0],
                "sha": self.commit,
                "lastModified": "2025-09-05T00:00:00.000Z",
                "createdAt": "2025-09-04T00:00:00.000Z",
                "private": False,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "library_name": "transformers.js",
                "tags": ["onnx", name],
                "siblings": [{"rfilename": p} for p in self.files],
            },
        )

    def _tree(self, h: _Handler, method: str, sub: str, recursive: bool) -> None:
        base = f"{sub}/" if sub else ""
        if sub and not any(p.startswith(base) for p in self.files):
            self._not_found(h, method, "EntryNotFound", f"{sub} does not exist on main")
            return
        entries: list[dict[str, Any]] = []
        seen_dirs: set[str] = set()
        for path, f in self.files.items():
            if not path.startswith(base):
                continue
            rel_parts = path[len(base) :].split("/")
            # the directories on the way down (all of them when recursive, the first level otherwise)
            for depth in range(1, len(rel_parts)):
                d = base + "/".join(rel_parts[:depth])
                if d not in seen_dirs and (recursive or depth == 1):
                    seen_dirs.add(d)
                    entries.append(
                        {
                            "type": "directory",
                            "oid": hashlib.sha1(d.encode()).hexdigest(),
                            "size": 0,
                            "path": d,
                        }
                    )
            if recursive or len(rel_parts) == 1:
                entries.append({"type": "file", "oid": f.blob_sha1, "size": len(f.data), "path": path})
        self._json(h, method, 200, entries)

    def _resolve(self, h: _Handler, method: str, name: str) -> None:
        f = self.files.get(name)
        if f is None:  # the hub names the commit even here; the client caches the miss under it
            self._not_found(h, method, "EntryNotFound", f"{name} does not exist on main", self.commit)
            return
        if method == "GET" and name in self.fail_downloads:
            status = self.fail_downloads[name]
            self._json(h, method, status, {"error": f"fake hub: transfer of {name} failed ({status})"})
            return
        start = 0
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng[len("bytes=") :].endswith("-"):
            start = min(int(rng[len("bytes=") : -1] or 0), len(f.data))
        body = f.data[start:]
        h.send_response(206 if start else 200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("ETag", f'"{f.blob_sha1}"')
        h.send_header("X-Repo-Commit", self.commit)
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(f.data) - 1}/{len(f.data)}")
        h.end_headers()
        if method == "GET":
            h.wfile.write(body)

    def _not_found(
        self, h: _Handler, method: str, code: str | None, message: str, commit: str | None = None
    ) -> None:
        headers = {"X-Error-Message": message}
        if code is not None:
            headers["X-Error-Code"] = code
        if commit is not None:
            headers["X-Repo-Commit"] = commit
        self._json(h, method, 404, {"error": message}, headers)

    def _json(
        self, h: _Handler, method: str, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        if status < 400:
            h.send_header("X-Repo-Commit", self.commit)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if method != "HEAD":
            h.wfile.write(body)


__all__ = ["FakeHub", "RecordedRequest"]
