"""The emulator's Batch API routes, driven by the unmodified google-genai client (``client.aio.batches``)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.emulator_batch import MAX_INLINE_BYTES, BatchScript
from edgeroute.framework.testing.fixtures import TEST_API_KEY

MODEL = "gemini-embedding-2-preview"


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[GeminiEmulator]:
    with GeminiEmulator(api_key=TEST_API_KEY, record_path=tmp_path / "rec.jsonl") as e:
        yield e


def _client(emu: GeminiEmulator, key: str = TEST_API_KEY) -> genai.Client:
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=emu.base_url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )


def _src(texts: list[str], dims: int = 128) -> types.EmbeddingsBatchJobSource:
    return types.EmbeddingsBatchJobSource(
        inlined_requests=types.EmbedContentBatch(
            contents=[types.Content(parts=[types.Part(text=t)]) for t in texts],
            config=types.EmbedContentConfig(output_dimensionality=dims),
        )
    )


def _run(coro: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # create_embeddings is marked experimental
        return asyncio.run(coro)


def test_create_poll_results_list_cancel_delete(emu: GeminiEmulator) -> None:
    emu.script_batches([BatchScript(polls=2, item_errors=(1,)), BatchScript(polls=5)])
    c = _client(emu)

    async def flow() -> dict[str, Any]:
        job = await c.aio.batches.create_embeddings(
            model=MODEL, src=_src(["alpha", "beta", "gamma"]), config={"display_name": "tok-1"}
        )
        states = [job.state.name if job.state else None]
        for _ in range(3):
            got = await c.aio.batches.get(name=job.name or "")
            states.append(got.state.name if got.state else None)
        other = await c.aio.batches.create_embeddings(model=MODEL, src=_src(["delta"]))
        listed = [(j.name, j.display_name) async for j in await c.aio.batches.list(config={"page_size": 1})]
        await c.aio.batches.cancel(name=other.name or "")
        cancelled = await c.aio.batches.get(name=other.name or "")
        await c.aio.batches.delete(name=other.name or "")
        with pytest.raises(genai_errors.ClientError) as gone:
            await c.aio.batches.get(name=other.name or "")
        return {
            "job": job,
            "got": got,
            "states": states,
            "listed": listed,
            "cancelled": cancelled,
            "gone": gone,
        }

    out = _run(flow())
    assert out["states"] == [
        "JOB_STATE_PENDING",
        "JOB_STATE_PENDING",
        "JOB_STATE_RUNNING",
        "JOB_STATE_SUCCEEDED",
    ]
    assert out["got"].done and out["job"].display_name == "tok-1"
    responses = out["got"].dest.inlined_embed_content_responses
    assert len(responses) == 3  # one per input, in input order
    assert len(responses[0].response.embedding.values) == 128 and responses[1].error.code == 400
    assert responses[2].response.embedding.values != responses[0].response.embedding.values
    assert {name for name, _ in out["listed"]} == {out["job"].name, emu.batches.created[1]["name"]}
    assert ("batches/emu000001", "tok-1") in out["listed"]  # pages followed, display names kept
    assert out["cancelled"].state.name == "JOB_STATE_CANCELLED"
    assert out["gone"].value.code == 404
    # What left: the create's items, in the record, as the embedding calls' parts are logged.
    assert emu.batches.created[0]["parts"] == [
        [{"kind": "text", "text": t}] for t in ("alpha", "beta", "gamma")
    ]
    assert next(r["parts"] for r in emu.requests if r.get("batch")) == emu.batches.created[0]["parts"]


def test_failed_and_expired_jobs_and_the_same_vectors_as_the_interactive_call(emu: GeminiEmulator) -> None:
    emu.script_batches(["failed", BatchScript(outcome="expired", polls=1)])
    c = _client(emu)

    async def flow() -> list[str]:
        out = []
        for _ in range(2):
            job = await c.aio.batches.create_embeddings(model=MODEL, src=_src(["x"]))
            for _ in range(2):
                got = await c.aio.batches.get(name=job.name or "")
            out.append(got.state.name if got.state else "")
        return out

    assert _run(flow()) == ["JOB_STATE_FAILED", "JOB_STATE_EXPIRED"]
    emu.batches.default = BatchScript()

    async def both() -> tuple[list[float], list[float]]:
        job = await c.aio.batches.create_embeddings(model=MODEL, src=_src(["same text"], 256))
        got = await c.aio.batches.get(name=job.name or "")
        direct = await c.aio.models.embed_content(
            model=MODEL,
            contents=[types.Content(parts=[types.Part(text="same text")])],
            config=types.EmbedContentConfig(output_dimensionality=256),
        )
        return got.dest.inlined_embed_content_responses[0].response.embedding.values, direct.embeddings[
            0
        ].values

    batched, direct = _run(both())
    assert batched == direct


def test_refusals_unsupported_model_bad_key_and_the_inline_size_limit(emu: GeminiEmulator) -> None:
    emu.batches.unsupported_models.add(MODEL)
    with pytest.raises(genai_errors.ClientError) as unsupported:
        _run(_client(emu).aio.batches.create_embeddings(model=MODEL, src=_src(["x"])))
    assert unsupported.value.code == 404 and "asyncBatchEmbedContent" in str(unsupported.value.message)
    emu.batches.unsupported_models.clear()
    with pytest.raises(genai_errors.ClientError) as bad_key:
        _run(_client(emu, key="wrong").aio.batches.create_embeddings(model=MODEL, src=_src(["x"])))
    assert bad_key.value.code == 400
    body = json.dumps(
        {
            "batch": {
                "inputConfig": {
                    "requests": {
                        "requests": [
                            {"request": {"content": {"parts": [{"text": "y" * (MAX_INLINE_BYTES + 1)}]}}}
                        ]
                    }
                }
            }
        }
    ).encode()
    req = urllib.request.Request(
        f"{emu.base_url}/v1beta/models/{MODEL}:asyncBatchEmbedContent",
        data=body,
        headers={"x-goog-api-key": TEST_API_KEY, "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as too_big:
        urllib.request.urlopen(req, timeout=30)
    assert too_big.value.code == 400
    assert emu.batches.created == []


def test_http_faults_apply_to_the_batch_routes(emu: GeminiEmulator) -> None:
    c = _client(emu)
    emu.script_faults(["503"])
    with pytest.raises(genai_errors.ServerError):
        _run(c.aio.batches.create_embeddings(model=MODEL, src=_src(["x"])))
    assert emu.batches.created == []  # a faulted create makes no job
    job = _run(c.aio.batches.create_embeddings(model=MODEL, src=_src(["x"])))
    emu.script_faults(["429"])
    with pytest.raises(genai_errors.ClientError) as limited:
        _run(c.aio.batches.get(name=job.name or ""))
    assert limited.value.code == 429
    assert _run(c.aio.batches.get(name=job.name or "")).done
