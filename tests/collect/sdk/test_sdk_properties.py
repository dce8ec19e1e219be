"""Property tests: reading provider answers never raises and keeps the store's token rule."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from tokenplan.collect.sdk.provider_calls import CapturedCall, to_event

counts = st.integers(min_value=0, max_value=10**9)


def _call(
    provider: str, body: bytes, status: int = 200, ctype: str = "application/json"
) -> CapturedCall:
    return CapturedCall(
        provider=provider,
        path="/v1/messages",
        request_body=b'{"model": "m-req"}',
        status=status,
        headers={"content-type": ctype},
        started=1.0,
        labels={},
        chunks=[body],
        finished=1.5,
        finished_at=1_750_000_000.0,
    )


@given(fresh=counts, read=counts, written=counts, out=counts)
def test_anthropic_input_includes_cache_parts(
    fresh: int, read: int, written: int, out: int
) -> None:
    usage = {
        "input_tokens": fresh,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": written,
        "output_tokens": out,
    }
    body = json.dumps({"id": "msg", "model": "claude-x", "usage": usage}).encode()
    e = to_event(_call("anthropic", body)).event
    assert (e.input_tokens, e.cache_read_tokens, e.cache_write_tokens) == (
        fresh + read + written,
        read,
        written,
    )
    assert e.output_tokens == out


@given(
    provider=st.sampled_from(["openai", "anthropic"]),
    body=st.binary(max_size=300),
    status=st.sampled_from([200, 429, 500]),
    ctype=st.sampled_from(["application/json", "text/event-stream"]),
)
def test_any_body_gives_an_event_and_never_zero_for_unknown(
    provider: str, body: bytes, status: int, ctype: str
) -> None:
    parsed = to_event(_call(provider, body, status, ctype))
    e = parsed.event
    assert e.status == {200: e.status, 429: "rate_limited", 500: "error"}[status]
    assert e.request_id
    if status == 200 and not e.tokens_known:
        assert parsed.note  # an unknown count is said, and the event carries no made-up 0
    assert e.latency_ms == 500.0
