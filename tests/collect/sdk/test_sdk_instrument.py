"""Instrumented openai and anthropic clients against a loopback server answering like them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import anthropic
import fake_provider as fp
import openai
import pytest

from tokenplan.collect.sdk import Recorder, instrument, recorder_of
from tokenplan.collect.sdk.provider_calls import ParsedCall
from tokenplan.events import UsageEvent


class ListSink:
    """A sink that keeps what it is given (thread-safe enough: one writer thread)."""

    def __init__(self) -> None:
        self.calls: list[ParsedCall] = []

    def write(self, calls: Sequence[ParsedCall]) -> None:
        self.calls.extend(calls)


@pytest.fixture
def server() -> Any:
    with fp.FakeProvider() as s:
        yield s


def _client(sdk: str, url: str, is_async: bool) -> Any:
    if sdk == "openai":
        cls = openai.AsyncOpenAI if is_async else openai.OpenAI
        return cls(api_key="sk-test-secret", base_url=url + "/v1", max_retries=0)
    cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    return cls(api_key="sk-ant-test-secret", base_url=url, max_retries=0)


def _dump(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value


# Each scenario: the SDK, how to call it, and the fake provider's reply.
CALLS: dict[str, tuple[str, Callable[[Any], Any], Callable[[], fp.Reply]]] = {
    "chat": (
        "openai",
        lambda c: c.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        ),
        fp.chat_completion,
    ),
    "chat_stream": (
        "openai",
        lambda c: c.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        ),
        fp.chat_stream,
    ),
    "chat_stream_no_usage": (
        "openai",
        lambda c: c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        ),
        lambda: fp.chat_stream(with_usage=False),
    ),
    "responses": ("openai", lambda c: c.responses.create(model="gpt-4.1", input="hi"), fp.response),
    "responses_stream": (
        "openai",
        lambda c: c.responses.create(model="gpt-4.1", input="hi", stream=True),
        fp.response_stream,
    ),
    "messages": (
        "anthropic",
        lambda c: c.messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ),
        fp.message,
    ),
    "messages_stream": (
        "anthropic",
        lambda c: c.messages.create(
            model="claude-haiku-4-5",
            max_tokens=64,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        ),
        fp.message_stream,
    ),
    "openai_429": (
        "openai",
        lambda c: c.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        ),
        fp.openai_rate_limited,
    ),
    "anthropic_429": (
        "anthropic",
        lambda c: c.messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ),
        fp.anthropic_rate_limited,
    ),
}

# (model, input, output, cache_read, cache_write, status, request_id, tokens_known)
EXPECTED = {
    "chat": ("gpt-4o-2024-08-06", 1200, 30, 1024, 0, "ok", "req_chatcmpl-1", True),
    "chat_stream": ("gpt-4o-mini-2024-07-18", 500, 2, 256, 0, "ok", "req_chatcmpl-2", True),
    "chat_stream_no_usage": ("gpt-4o-mini-2024-07-18", 0, 0, 0, 0, "ok", "req_chatcmpl-2", False),
    "responses": ("gpt-4.1-2025-04-14", 900, 45, 512, 0, "ok", "req_resp_1", True),
    "responses_stream": ("gpt-4.1-2025-04-14", 900, 45, 512, 0, "ok", "req_resp_2", True),
    # Anthropic's input_tokens (12) exclude cache reads (1000) and writes (100); ours include.
    "messages": ("claude-sonnet-4-5-20250929", 1112, 40, 1000, 100, "ok", "req_msg_01", True),
    "messages_stream": ("claude-haiku-4-5-20251001", 1112, 15, 1000, 100, "ok", "req_msg_02", True),
    "openai_429": ("gpt-4o", 0, 0, 0, 0, "rate_limited", "req_429", True),
    "anthropic_429": ("claude-sonnet-4-5", 0, 0, 0, 0, "rate_limited", "req_a429", True),
}


def _run_sync(client: Any, call: Callable[[Any], Any]) -> tuple[str, Any]:
    try:
        result = call(client)
        if hasattr(result, "__iter__") and not hasattr(result, "model_dump"):
            return "ok", [_dump(chunk) for chunk in result]
        return "ok", _dump(result)
    except Exception as exc:
        return "raised", (type(exc), str(exc), getattr(exc, "status_code", None))


async def _run_async(client: Any, call: Callable[[Any], Any]) -> tuple[str, Any]:
    try:
        result = await call(client)
        if hasattr(result, "__aiter__"):
            return "ok", [_dump(chunk) async for chunk in result]
        return "ok", _dump(result)
    except Exception as exc:
        return "raised", (type(exc), str(exc), getattr(exc, "status_code", None))


def _call_twice(server: Any, name: str, is_async: bool) -> tuple[Any, Any, ListSink]:
    """The same call without and with instrumentation: both outcomes and the recorded calls."""
    sdk, call, reply = CALLS[name]
    server.queue(reply(), reply())
    sink = ListSink()
    recorder = Recorder(sink, flush_interval=0.05, close_at_exit=False)
    if is_async:

        async def both() -> tuple[Any, Any]:
            async with (
                _client(sdk, server.url, True) as plain,
                _client(sdk, server.url, True) as wrapped,
            ):
                instrument(wrapped, team="search", feature="ask", recorder=recorder)
                return await _run_async(plain, call), await _run_async(wrapped, call)

        before, after = asyncio.run(both())
    else:
        with _client(sdk, server.url, False) as plain, _client(sdk, server.url, False) as wrapped:
            instrument(wrapped, team="search", feature="ask", recorder=recorder)
            before, after = _run_sync(plain, call), _run_sync(wrapped, call)
    assert recorder.flush(5)
    recorder.close()
    return before, after, sink


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("name", list(CALLS))
def test_one_event_per_call_and_the_app_sees_the_same(
    server: Any, name: str, is_async: bool
) -> None:
    before, after, sink = _call_twice(server, name, is_async)
    assert after == before  # same values, chunks, exception type, message and status
    assert before[0] == ("raised" if name.endswith("429") else "ok")
    assert len(sink.calls) == 1
    e: UsageEvent = sink.calls[0].event
    model, inp, out, cr, cw, status, rid, known = EXPECTED[name]
    assert (
        e.model,
        e.input_tokens,
        e.output_tokens,
        e.cache_read_tokens,
        e.cache_write_tokens,
    ) == (model, inp, out, cr, cw)
    assert (e.status, e.request_id, e.tokens_known) == (status, rid, known)
    assert e.provider == CALLS[name][0]
    assert (e.team, e.feature) == ("search", "ask")
    assert e.key_id is not None
    assert e.key_id.startswith("key-")
    assert "secret" not in e.key_id
    assert e.latency_ms is not None
    assert 0 < e.latency_ms < 5000
    if not known:
        assert "include_usage" in (sink.calls[0].note or "")


def test_rate_limit_headers_are_recorded_per_model(server: Any) -> None:
    _, _, sink = _call_twice(server, "messages", False)
    limits = {lim.kind: lim for lim in sink.calls[0].limits}
    assert set(limits) == {"requests", "tokens", "input_tokens", "output_tokens"}
    assert limits["input_tokens"].limit == 2_000_000
    assert limits["output_tokens"].remaining == 399_960
    assert limits["requests"].reset == "2025-06-01T12:00:01Z"
    assert {lim.model for lim in limits.values()} == {"claude-sonnet-4-5-20250929"}
    _, _, sink = _call_twice(server, "chat", False)
    limits = {lim.kind: lim for lim in sink.calls[0].limits}
    assert set(limits) == {"requests", "tokens"}
    assert (limits["requests"].limit, limits["tokens"].limit) == (5000, 800_000)


def test_retries_are_counted_honestly(server: Any) -> None:
    """With retries on, a 429 then a success is two HTTP calls: one rate_limited, one ok."""
    server.queue(fp.openai_rate_limited(), fp.chat_completion())
    sink = ListSink()
    recorder = Recorder(sink, flush_interval=0.05, close_at_exit=False)
    with openai.OpenAI(api_key="sk-x", base_url=server.url + "/v1", max_retries=1) as client:
        instrument(client, recorder=recorder)
        # The SDK honours retry-after (1 s here); the app still gets the successful answer.
        result = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert result.usage is not None
    assert result.usage.prompt_tokens == 1200
    assert recorder.flush(5)
    recorder.close()
    assert [c.event.status for c in sink.calls] == ["rate_limited", "ok"]
    assert len({c.event.request_id for c in sink.calls}) == 2


def test_a_broken_sink_never_reaches_the_app(server: Any) -> None:
    class Broken:
        def write(self, calls: Sequence[ParsedCall]) -> None:
            raise RuntimeError("disk full")

    server.queue(fp.message())
    recorder = Recorder(Broken(), flush_interval=0.05, close_at_exit=False)
    with anthropic.Anthropic(api_key="k", base_url=server.url, max_retries=0) as client:
        instrument(client, recorder=recorder)
        result = client.messages.create(
            model="claude-sonnet-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert result.usage.output_tokens == 40
    assert recorder.flush(5)
    assert recorder.stats().failed == 1
    recorder.close()


def test_other_endpoints_are_not_recorded_and_instrumenting_twice_is_refused(server: Any) -> None:
    server.queue(fp.Reply(body={"input_tokens": 5}))
    sink = ListSink()
    recorder = Recorder(sink, flush_interval=0.05, close_at_exit=False)
    with anthropic.Anthropic(api_key="k", base_url=server.url, max_retries=0) as client:
        instrument(client, recorder=recorder)
        assert recorder_of(client) is recorder
        count = client.messages.count_tokens(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}]
        )
        assert count.input_tokens == 5
        with pytest.raises(ValueError, match="already instrumented"):
            instrument(client, recorder=recorder)
    assert recorder.flush(5)
    recorder.close()
    assert sink.calls == []
    with pytest.raises(ValueError, match="not an openai or anthropic client"):
        instrument(object())


def test_a_stream_the_app_stops_reading_is_recorded_with_the_right_reason(server: Any) -> None:
    """Closed after its first chunk, a stream that asked for usage never got it: the event
    says so, not that the app forgot ``include_usage``."""
    server.queue(fp.chat_stream())
    sink = ListSink()
    recorder = Recorder(sink, flush_interval=0.05, close_at_exit=False)
    with _client("openai", server.url, False) as client:
        instrument(client, recorder=recorder)
        with client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        ) as stream:
            next(iter(stream))
    assert recorder.flush(5)
    recorder.close()
    [call] = sink.calls
    assert call.event.tokens_known is False
    assert call.note is not None
    assert "closed before its usage arrived" in call.note
    assert "include_usage" not in call.note
