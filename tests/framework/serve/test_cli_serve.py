"""`edgeroute keys ...` and `edgeroute serve` from the command line: keys hashed at rest, fail-fast
start-up, loopback by default, and a graceful stop that lets in-flight requests finish."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_helpers import wait_ready
from typer.testing import CliRunner

from edgeroute.framework.cli import app
from edgeroute.framework.errors import ConfigurationError, InputError, ModelNotFoundError, StoreError
from edgeroute.framework.serve.keys import KeyStore
from edgeroute.framework.serve.server import free_port

runner = CliRunner()


def keys_create(path: Path, *extra: str) -> str:
    result = runner.invoke(app, ["keys", "create", "--keys", str(path), *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key = keys_create(path, "--tenant", "acme", "--rate", "5", "--ceiling", "public")
    assert key.startswith("er-")
    raw = path.read_text()
    # The secret is everything after "er-<id>-" (token_urlsafe may itself hold "-"): only a salted hash is stored.
    secret = key.split("-", 2)[2]
    assert key not in raw and secret not in raw
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    store = KeyStore(path)
    tenant = store.authenticate(key)
    assert (
        tenant is not None
        and tenant.name == "acme"
        and tenant.rate_per_s == 5
        and tenant.cloud_ceiling == "public"
    )
    listed = json.loads(runner.invoke(app, ["keys", "list", "--keys", str(path), "--json"]).stdout)
    assert [k["tenant"] for k in listed["keys"]] == ["acme"] and key not in json.dumps(listed)
    key_id = listed["keys"][0]["id"]
    assert runner.invoke(app, ["keys", "revoke", key_id, "--keys", str(path)]).exit_code == 0
    assert KeyStore(path).authenticate(key) is None


def test_keys_refuse_bad_tenant_names_and_limits(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    for args in (
        ["--tenant", "Acme"],
        ["--tenant", "a__b"],
        ["--tenant", "ok", "--ceiling", "secret"],
        ["--tenant", "ok", "--rate", "0"],
    ):
        with pytest.raises(InputError):
            runner.invoke(app, ["keys", "create", "--keys", str(path), *args], catch_exceptions=False)
    with pytest.raises(InputError, match="no key with id"):
        runner.invoke(app, ["keys", "revoke", "nope", "--keys", str(path)], catch_exceptions=False)


def test_serve_fails_fast_and_binds_loopback_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEROUTE_KEYS", raising=False)
    store = tmp_path / "store"
    args = ["serve", "--store", str(store), "--edge", "hashing"]
    with pytest.raises(ConfigurationError, match="no active API keys"):
        runner.invoke(app, args, catch_exceptions=False)
    keys_create(store / "keys.json", "--tenant", "acme")
    with pytest.raises(InputError, match="loopback"):
        runner.invoke(app, [*args, "--host", "0.0.0.0"], catch_exceptions=False)
    with pytest.raises(StoreError, match="Chroma server"):
        runner.invoke(
            app,
            [
                "serve",
                "--chroma-url",
                f"http://127.0.0.1:{free_port()}",
                "--state-dir",
                str(store),
                "--edge",
                "hashing",
            ],
            catch_exceptions=False,
        )
    with pytest.raises(ModelNotFoundError):
        runner.invoke(app, [*args[:-2], "--model", str(tmp_path / "no-model")], catch_exceptions=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        runner.invoke(
            app,
            [
                "serve",
                "--store",
                str(tmp_path / "file"),
                "--keys",
                str(store / "keys.json"),
                "--edge",
                "hashing",
            ],
            catch_exceptions=False,
        )


def start_server(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    fh = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeroute.framework.cli", "serve", "--port", str(port), *args],
        stdout=fh,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, url, log)
    return proc, url


def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    store = tmp_path / "store"
    key = keys_create(store / "keys.json", "--tenant", "acme")
    env = {**os.environ, "EDGEROUTE_EDGE": "hashing"}
    env.pop("GEMINI_API_KEY", None)
    env.pop("GOOGLE_API_KEY", None)
    # A lone request waits the whole max-wait for company: in flight when SIGTERM arrives.
    proc, url = start_server(
        ["--store", str(store), "--max-wait-ms", "800", "--max-batch", "64"], env, tmp_path / "log"
    )
    out: dict[str, Any] = {}
    sent = threading.Event()

    def call() -> None:
        # The request hook fires as the request goes out: SIGTERM then lands while it waits for its batch,
        # however slowly this thread started on a busy machine.
        with httpx.Client(event_hooks={"request": [lambda _r: sent.set()]}, timeout=30) as client:
            try:
                out["r"] = client.post(
                    url + "/v1/embeddings",
                    json={"input": "in flight", "model": "edge"},
                    headers={"Authorization": f"Bearer {key}"},
                )
            except httpx.HTTPError as exc:
                out["error"] = exc

    t = threading.Thread(target=call)
    t.start()
    assert sent.wait(30)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    t.join(30)
    assert proc.wait(30) == 0
    assert "error" not in out, out.get("error")
    assert out["r"].status_code == 200 and len(out["r"].json()["data"]) == 1
    log = (tmp_path / "log").read_text()
    assert "in flight" not in log


def test_missing_serve_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from edgeroute.framework.serve import MissingServeExtraError

    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(MissingServeExtraError, match=r"pip install 'edgeroute\[serve\]'"):
        runner.invoke(app, ["serve", "--store", str(tmp_path)], catch_exceptions=False)


def test_serve_limits_from_the_command_line_and_the_environment(tmp_path: Path) -> None:
    store = tmp_path / "store"
    key = keys_create(store / "keys.json", "--tenant", "acme")
    with pytest.raises(InputError, match="--max-body-mb 0 must be above 0"):
        runner.invoke(
            app,
            ["serve", "--store", str(store), "--edge", "hashing", "--max-body-mb", "0"],
            catch_exceptions=False,
        )
    env = {**os.environ, "EDGEROUTE_EDGE": "hashing", "EDGEROUTE_MAX_BODY_MB": "1"}
    env.pop("GEMINI_API_KEY", None)
    env.pop("GOOGLE_API_KEY", None)
    proc, url = start_server(["--store", str(store), "--max-query-chars", "100"], env, tmp_path / "log")
    try:
        auth = {"Authorization": f"Bearer {key}"}
        docs = {"collection": "docs", "documents": [{"id": f"d{i}", "text": "x" * 60_000} for i in range(20)]}
        r = httpx.post(url + "/v1/documents", json=docs, headers=auth, timeout=30)
        assert r.status_code == 413 and "1,048,576 bytes (1 MiB)" in r.json()["error"]["message"]
        httpx.post(
            url + "/v1/documents",
            json={"collection": "docs", "documents": [{"id": "a", "text": "t"}]},
            headers=auth,
        )
        r = httpx.post(url + "/v1/retrieve", json={"collection": "docs", "query": "q" * 101}, headers=auth)
        assert r.status_code == 400 and "the limit is 100" in r.json()["error"]["message"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
