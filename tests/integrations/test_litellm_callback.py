"""The LiteLLM callback with the real litellm package, calling a loopback OpenAI-style server."""

from __future__ import annotations

import os

# litellm fetches its price map from the internet at import unless told to use its own copy.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import asyncio
import gc
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse

from loopback_uvicorn import serve
from tokenplan.integrations.litellm import TokenplanLogger, rows_from_standard_logging
from tokenplan.store import open_store

# litellm's own typed dicts make pydantic warn while litellm builds its request models.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*using the `ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 80,
    "total_tokens": 1280,
    "prompt_tokens_details": {"cached_tokens": 1000},
}


def provider_app() -> FastAPI:
    """Answers like OpenAI's chat completions; model 'limited' always gets a 429."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request, authorization: str = Header()) -> JSONResponse:
        body = await request.json()
        if body["model"].startswith("limited"):
            return JSONResponse(
                {"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded"}},
                status_code=429,
            )
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",  # the store dedupes on it
                "object": "chat.completion",
                "created": 1767225600,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hi"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": USAGE,
            }
        )

    return app


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    with serve(provider_app()) as url:
        yield url


@pytest.fixture(scope="module")
def logger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenplanLogger]:
    """One logger for the module: litellm keeps the callbacks it saw first in its own lists."""
    path = tmp_path_factory.mktemp("litellm") / "tokenplan.duckdb"
    callback = TokenplanLogger.to_store(path)
    before = list(litellm.callbacks)
    litellm.callbacks = [callback]
    yield callback
    litellm.callbacks = before
    callback.close()
    # litellm leaves an event loop and sockets of its own for the GC: collect them here,
    # where their ResourceWarnings are known, not in whichever test runs next.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _stored(logger: TokenplanLogger, model: str) -> list[dict[str, Any]]:
    """The stored rows of ``model`` once they arrived (litellm runs hooks in its threads)."""
    path = logger.sink.path  # type: ignore[attr-defined]
    rows: list[dict[str, Any]] = []
    for _ in range(100):
        logger.flush()
        with open_store(path) as store:
            table = store.connection.sql("SELECT * FROM usage ORDER BY ts").to_arrow_table()
        rows = [r for r in table.to_pylist() if r["model"] == model]
        if rows:
            return rows
        time.sleep(0.05)
    return rows


CALL = {"messages": [{"role": "user", "content": "hello"}], "api_key": "sk-test", "max_retries": 0}


def test_sync_completion_is_recorded_with_cache_split(
    provider_url: str, logger: TokenplanLogger
) -> None:
    reply = litellm.completion(model="openai/gpt-4o-mini", api_base=f"{provider_url}/v1", **CALL)
    [row] = _stored(logger, "gpt-4o-mini")
    assert row["request_id"] == reply.id
    assert (row["provider"], row["model"]) == ("openai", "gpt-4o-mini")
    assert (row["input_tokens"], row["output_tokens"]) == (1200, 80)
    # LiteLLM's prompt_tokens include the cached part, like the store's input_tokens.
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (1000, 0)
    assert row["failed_requests"] == 0
    assert row["latency_ms_sum"] is not None
    assert row["latency_ms_sum"] >= 0
    assert row["source"] == "litellm"


def test_async_completion_and_rate_limited_failure(
    provider_url: str, logger: TokenplanLogger
) -> None:
    async def calls() -> None:
        await litellm.acompletion(model="openai/gpt-4o", api_base=f"{provider_url}/v1", **CALL)
        with pytest.raises(litellm.RateLimitError):
            await litellm.acompletion(
                model="openai/limited-async", api_base=f"{provider_url}/v1", **CALL
            )
        await asyncio.sleep(0.2)  # litellm's async hooks run as tasks on this loop

    asyncio.run(calls())
    assert _stored(logger, "gpt-4o")[0]["input_tokens"] == 1200
    [limited] = _stored(logger, "limited-async")
    assert limited["failed_requests"] == 1
    assert limited["rate_limited_requests"] == 1
    assert limited["input_tokens"] is None  # failed before usage: unknown, never 0


def test_sync_failure_is_recorded(provider_url: str, logger: TokenplanLogger) -> None:
    with pytest.raises(litellm.RateLimitError):
        litellm.completion(model="openai/limited-sync", api_base=f"{provider_url}/v1", **CALL)
    [row] = _stored(logger, "limited-sync")
    assert row["rate_limited_requests"] == 1


def test_standard_logging_payload_mapping() -> None:
    payload = {
        "id": "call-1",
        "model": "claude-sonnet-4-5",
        "model_group": "sonnet",
        "custom_llm_provider": "anthropic",
        "prompt_tokens": 2100,
        "completion_tokens": 40,
        "response_cost": 0.0123,
        "status": "success",
        "end_user": "",
        "request_tags": ["search", "prod"],
        "metadata": {
            "user_api_key_hash": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
            "user_api_key_alias": None,
            "user_api_key_team_id": "team-growth",
            "user_api_key_user_id": "u-7",
        },
        "startTime": 1767225600.0,
        "endTime": 1767225601.5,
        "cache_hit": False,
    }
    usage = {"prompt_tokens_details": {"cached_tokens": 1500}, "cache_creation_input_tokens": 500}
    [row] = rows_from_standard_logging(payload, usage).to_pylist()
    assert (row["input_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]) == (
        2100,
        1500,
        500,
    )
    assert str(row["cost_usd"]).startswith("0.0123")
    assert (row["team"], row["user"], row["feature"]) == ("team-growth", "u-7", "search")
    assert row["key_id"].startswith("88dc28d0")
    assert row["latency_ms_sum"] == pytest.approx(1500.0)
    # A cache split that does not fit in prompt_tokens is dropped, the total kept.
    bad = {"prompt_tokens_details": {"cached_tokens": 5000}}
    [row] = rows_from_standard_logging(payload, bad).to_pylist()
    assert (row["input_tokens"], row["cache_read_tokens"]) == (2100, 0)


def test_hooks_never_raise_and_skip_cache_hits(tmp_path: Path) -> None:
    callback = TokenplanLogger.to_store(tmp_path / "x.duckdb")
    callback.log_success_event({}, None, None, None)
    callback.log_success_event({"standard_logging_object": {"cache_hit": True}}, None, None, None)
    callback.log_success_event(
        {"standard_logging_object": {"prompt_tokens": -4, "model": "m", "endTime": 1.0}},
        None,
        None,
        None,
    )
    callback.close()
    assert (callback.unreadable, callback.skipped_cache_hits) == (2, 1)


def test_collector_sink_posts_events(tmp_path: Path) -> None:
    received: list[bytes] = []
    app = FastAPI()

    @app.post("/v1/events")
    async def events(request: Request) -> dict[str, int]:
        received.append(await request.body())
        return {"accepted": 1, "duplicates": 0}

    with serve(app) as url:
        callback = TokenplanLogger.to_collector(
            url, token="secret-token", spool=tmp_path / "spool.ndjson"
        )
        payload = {
            "id": "c1",
            "model": "m",
            "prompt_tokens": 3,
            "completion_tokens": 1,
            "endTime": 1767225600.0,
            "status": "success",
        }
        callback.log_success_event({"standard_logging_object": payload}, None, None, None)
        assert callback.flush()
        callback.close()
    import gzip
    import json

    [event] = json.loads(gzip.decompress(received[0]))
    assert (event["request_id"], event["input_tokens"], event["status"]) == ("c1", 3, "ok")
    assert "secret-token" not in repr(callback.sink)
    assert callback.stats().delivered == 1


def test_collector_down_spools_and_the_next_batch_replays(tmp_path: Path) -> None:
    """LiteLLM calls made while the collector is down are kept, then sent once it is back."""
    received: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/v1/events")
    async def events(request: Request) -> dict[str, int]:
        import gzip
        import json

        received.extend(json.loads(gzip.decompress(await request.body())))
        return {"accepted": 1, "duplicates": 0}

    spool = tmp_path / "spool.ndjson"
    payload = {"model": "m", "prompt_tokens": 3, "completion_tokens": 1, "status": "success"}
    down = TokenplanLogger.to_collector("http://127.0.0.1:9", token="t", spool=spool)
    down.log_success_event(
        {"standard_logging_object": {**payload, "id": "early", "endTime": 1.0}}, None, None, None
    )
    assert down.flush()
    down.close()
    assert spool.stat().st_size > 0
    with serve(app) as url:
        back = TokenplanLogger.to_collector(url, token="t", spool=spool)
        back.log_success_event(
            {"standard_logging_object": {**payload, "id": "late", "endTime": 2.0}}, None, None, None
        )
        assert back.flush()
        back.close()
    assert [e["request_id"] for e in received] == ["early", "late"]
