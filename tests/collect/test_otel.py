"""GenAI spans (OTLP protobuf and JSON) to usage rows: the attribute table, old names, tokens."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from tokenplan.collect.otel import (
    ATTRIBUTES,
    decode_json,
    decode_protobuf,
    usage_from_request,
)
from tokenplan.errors import InvalidInput

END_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
TRACE = bytes(range(1, 17))


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def _kvs(attrs: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_value(v)) for k, v in attrs.items()]


def _request(
    *spans: dict[str, Any], resource: dict[str, Any] | None = None
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(_kvs(resource or {}))
    ss = rs.scope_spans.add()
    for i, spec in enumerate(spans, start=1):
        span = ss.spans.add()
        span.trace_id = spec.get("trace_id", TRACE)
        span.span_id = spec.get("span_id", i.to_bytes(8, "big"))
        span.name = spec.get("name", "chat")
        span.start_time_unix_nano = spec.get("start", END_NS - 250_000_000)
        span.end_time_unix_nano = spec.get("end", END_NS)
        span.attributes.extend(_kvs(spec.get("attrs", {})))
        if spec.get("error_status"):
            span.status.code = Status.STATUS_CODE_ERROR
    return request


def _rows(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    return usage_from_request(request).table.to_pylist()


CURRENT = {
    "gen_ai.provider.name": "anthropic",
    "gen_ai.request.model": "claude-sonnet-4-5",
    "gen_ai.response.model": "claude-sonnet-4-5-20250929",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.cache_read.input_tokens": 800,
    "gen_ai.usage.cache_creation.input_tokens": 100,
}


def test_current_semconv_span_is_one_event_with_every_field() -> None:
    [row] = _rows(_request({"attrs": CURRENT}, resource={"service.name": "checkout"}))
    assert row["ts"] == datetime(2026, 1, 1)
    assert row["provider"] == "anthropic"
    assert row["model"] == "claude-sonnet-4-5-20250929"  # the response model wins
    assert (row["input_tokens"], row["output_tokens"]) == (1200, 300)
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (800, 100)
    assert row["latency_ms_sum"] == pytest.approx(250.0)
    assert row["request_id"] == f"{TRACE.hex()}:{(1).to_bytes(8, 'big').hex()}"
    assert row["feature"] == "checkout"
    assert (row["requests"], row["failed_requests"], row["source"]) == (1, 0, "otlp")


def test_token_convention_input_includes_cache_reads_and_writes() -> None:
    """OTel's input_tokens already includes the cache parts: stored as is, never added twice."""
    [row] = _rows(_request({"attrs": CURRENT}))
    assert row["input_tokens"] == CURRENT["gen_ai.usage.input_tokens"]
    assert row["input_tokens"] >= row["cache_read_tokens"] + row["cache_write_tokens"]


def test_cache_above_input_is_rejected_with_the_span_named() -> None:
    bad = {**CURRENT, "gen_ai.usage.input_tokens": 3}  # an exporter that left the cache out
    usage = usage_from_request(_request({"attrs": bad}, {"attrs": CURRENT}))
    assert (usage.table.num_rows, usage.rejected) == (1, 1)
    assert "span 0000000000000001" in usage.error_message
    assert "input_tokens must include cached tokens" in usage.error_message


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        (
            {
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.prompt_tokens": 50,
                "gen_ai.usage.completion_tokens": 7,
            },
            ("openai", "gpt-4o", 50, 7, 0, 0),
        ),
        (
            {
                "gen_ai.system": "Anthropic",
                "gen_ai.response.model": "claude-3-5-haiku",
                "gen_ai.usage.prompt_tokens": 900,
                "gen_ai.usage.completion_tokens": 10,
                "gen_ai.usage.cache_read_input_tokens": 500,
                "gen_ai.usage.cache_creation_input_tokens": 200,
            },
            ("Anthropic", "claude-3-5-haiku", 900, 10, 500, 200),
        ),
        (
            {
                "llm.vendor": "OpenAI",
                "llm.request.model": "gpt-3.5-turbo",
                "llm.usage.prompt_tokens": 11,
                "llm.usage.completion_tokens": 22,
            },
            ("OpenAI", "gpt-3.5-turbo", 11, 22, 0, 0),
        ),
    ],
    ids=["semconv-1.26", "openllmetry-anthropic", "openllmetry-0.1x"],
)
def test_older_names_map_to_the_same_fields(
    attrs: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    [row] = _rows(_request({"attrs": attrs}))
    got = tuple(
        row[k]
        for k in (
            "provider",
            "model",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
        )
    )
    assert got == expected


def test_newest_name_wins_when_a_span_carries_both() -> None:
    attrs = {
        **CURRENT,
        "gen_ai.system": "old-system",
        "gen_ai.usage.prompt_tokens": 1,
    }
    [row] = _rows(_request({"attrs": attrs}))
    assert row["provider"] == "anthropic"
    assert row["input_tokens"] == 1200


def test_every_table_entry_says_what_it_covers() -> None:
    for names in ATTRIBUTES.values():
        assert names
        assert all(n.key and n.covers for n in names)
    keys = [n.key for names in ATTRIBUTES.values() for n in names]
    assert len(keys) == len(set(keys))


def test_spans_without_genai_usage_are_ignored_and_counted() -> None:
    usage = usage_from_request(
        _request(
            {"name": "GET /", "attrs": {"http.request.method": "GET"}},
            {"name": "embeddings", "attrs": {"gen_ai.request.model": "text-embed"}},
            {"attrs": CURRENT},
        )
    )
    assert (usage.spans, usage.ignored, usage.rejected, usage.table.num_rows) == (3, 2, 0, 1)


def test_failed_call_without_usage_is_stored_with_tokens_unknown() -> None:
    attrs = {
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "error.type": "RateLimitError",
    }
    other = {**attrs, "error.type": "timeout"}
    rows = _rows(_request({"attrs": attrs, "error_status": True}, {"attrs": other}))
    assert [r["input_tokens"] for r in rows] == [None, None]
    assert [r["output_tokens"] for r in rows] == [None, None]
    assert [r["failed_requests"] for r in rows] == [1, 1]
    assert [r["rate_limited_requests"] for r in rows] == [1, 0]
    assert rows[0]["model"] == "gpt-4o"


def test_failed_call_with_usage_keeps_its_tokens_and_error_status() -> None:
    attrs = {**CURRENT, "error.type": "500", "http.response.status_code": 500}
    [row] = _rows(_request({"attrs": attrs}))
    assert (row["failed_requests"], row["rate_limited_requests"]) == (1, 0)
    assert row["input_tokens"] == 1200


def test_dimensions_from_span_then_resource() -> None:
    resource = {"service.name": "search-api", "tokenplan.team": "growth"}
    span_attrs = {
        **CURRENT,
        "tokenplan.feature": "autocomplete",
        "traceloop.association.properties.user_id": "u-42",
    }
    [row] = _rows(_request({"attrs": span_attrs}, resource=resource))
    assert (row["team"], row["feature"], row["user"]) == ("growth", "autocomplete", "u-42")


def test_token_counts_sent_as_doubles_or_strings_are_read() -> None:
    attrs = {
        **CURRENT,
        "gen_ai.usage.input_tokens": 1200.0,
        "gen_ai.usage.output_tokens": "300",
    }
    [row] = _rows(_request({"attrs": attrs}))
    assert (row["input_tokens"], row["output_tokens"]) == (1200, 300)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gen_ai.usage.output_tokens": -5}, "field 'gen_ai.usage.output_tokens'"),
        ({"gen_ai.usage.output_tokens": 1.5}, "not a whole number"),
        ({"gen_ai.usage.input_tokens": True}, "field 'gen_ai.usage.input_tokens'"),
    ],
)
def test_bad_counts_reject_the_span_and_name_the_attribute(
    change: dict[str, Any], message: str
) -> None:
    usage = usage_from_request(_request({"attrs": {**CURRENT, **change}}))
    assert usage.rejected == 1
    assert message in usage.error_message


def test_span_without_end_time_or_ids_is_rejected() -> None:
    usage = usage_from_request(
        _request({"attrs": CURRENT, "end": 0}, {"attrs": CURRENT, "trace_id": b""})
    )
    assert usage.rejected == 2
    assert "no end time" in usage.error_message
    assert "no trace_id" in usage.error_message


def test_json_encoding_uses_hex_ids_and_reads_the_same() -> None:
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "test"},
                        "spans": [
                            {
                                "traceId": TRACE.hex(),
                                "spanId": "00000000000000aa",
                                "name": "chat",
                                "kind": 3,
                                "startTimeUnixNano": str(END_NS - 1_000_000),
                                "endTimeUnixNano": str(END_NS),
                                "attributes": [
                                    {"key": "gen_ai.system", "value": {"stringValue": "openai"}},
                                    {
                                        "key": "gen_ai.request.model",
                                        "value": {"stringValue": "gpt-4o-mini"},
                                    },
                                    {
                                        "key": "gen_ai.usage.input_tokens",
                                        "value": {"intValue": "40"},
                                    },
                                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 2}},
                                ],
                                "status": {},
                                "unknownFutureField": {"x": 1},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    [row] = _rows(decode_json(json.dumps(body).encode()))
    assert row["request_id"] == f"{TRACE.hex()}:00000000000000aa"
    assert (row["input_tokens"], row["output_tokens"], row["model"]) == (40, 2, "gpt-4o-mini")
    assert row["latency_ms_sum"] == pytest.approx(1.0)
    assert row["ts"] == datetime.fromtimestamp(END_NS / 1e9, UTC).replace(tzinfo=None)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"resourceSpans": "x"}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
        b"\xff\xfe",
    ],
)
def test_bad_json_is_invalid_input(body: bytes) -> None:
    with pytest.raises(InvalidInput):
        decode_json(body)


def test_protobuf_round_trip_and_garbage() -> None:
    request = _request({"attrs": CURRENT})
    assert _rows(decode_protobuf(request.SerializeToString())) == _rows(request)
    with pytest.raises(InvalidInput, match="protobuf"):
        decode_protobuf(b"\x0a\xff\xff\xff\xff\x0f")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_invalid_input(body: bytes) -> None:
    for decode in (decode_protobuf, decode_json):
        with contextlib.suppress(InvalidInput):
            usage_from_request(decode(body))


_attr_values = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([n.key for names in ATTRIBUTES.values() for n in names]),
        _attr_values,
        max_size=8,
    )
)
def test_any_attribute_values_give_a_row_a_rejection_or_nothing(attrs: dict[str, Any]) -> None:
    usage = usage_from_request(_request({"attrs": attrs}))
    assert usage.table.num_rows + usage.rejected + usage.ignored == 1
    for row in usage.table.to_pylist():
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            assert row[name] is None or row[name] >= 0
