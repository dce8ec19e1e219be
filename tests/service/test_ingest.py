"""Request bodies to store rows: formats, limits while reading, and the columnar fast path."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from app_harness import TOKEN, event_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenplan.errors import InvalidInput
from tokenplan.events import UsageEvent, events_to_table
from tokenplan.service.auth import Tokens
from tokenplan.service.ingest import (
    SOURCE,
    InvalidItem,
    MalformedBody,
    PayloadTooLarge,
    UnsupportedMediaType,
    body_format,
    parse_events,
    read_body,
)
from tokenplan.service.settings import ServiceSettings

SETTINGS = ServiceSettings(tokens=Tokens([TOKEN]), max_batch=50, max_text_chars=64)


def parse(items: Any, fmt: str = "json") -> pa.Table:
    if fmt == "ndjson":
        body = "\n".join(json.dumps(i) for i in items).encode()
    else:
        body = json.dumps(items).encode()
    return parse_events(body, fmt, SETTINGS)  # type: ignore[arg-type]


def decoded(items: Any) -> Any:
    """``items`` as the service reads them back from JSON (non-integers exactly)."""
    return json.loads(json.dumps(items), parse_float=Decimal)


def read(chunks: list[bytes], encoding: str | None = None, limit: int = 1000) -> bytes:
    async def stream() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    return asyncio.run(
        read_body(stream(), content_encoding=encoding, content_length=None, limit=limit)
    )


def reference(items: list[dict[str, Any]]) -> pa.Table:
    """What `UsageEvent.from_mapping`, item by item, makes of ``items``."""
    return events_to_table([UsageEvent.from_mapping(i) for i in items], source=SOURCE)


def test_a_json_array_and_ndjson_give_the_same_rows() -> None:
    items = [event_json(i) for i in range(5)]
    assert parse(items).equals(parse(items, "ndjson"))
    assert parse(items).num_rows == 5


def test_the_columnar_path_stores_what_from_mapping_would() -> None:
    items = [
        event_json(0, cost_usd=0.0123, latency_ms=812.5, status="error"),
        event_json(1, cache_read_tokens=300, cache_write_tokens=20, user="u1", key_id="k"),
        event_json(2, ts="2025-03-08T09:00:00+08:00", provider=None, feature="chat"),
        event_json(3, cost_usd="0.000001", latency_ms=3),
    ]
    assert parse(items).equals(reference(decoded(items)))


def test_values_the_columnar_path_leaves_alone_still_go_in_item_by_item() -> None:
    # Counts as text, Unix seconds, a padded status: from_mapping reads them.
    items = [event_json(0, input_tokens="1200", ts=1741395600, status=" ok ")]
    table = parse(items)
    assert table.column("input_tokens").to_pylist() == [1200]
    assert table.column("ts")[0].as_py().isoformat() == "2025-03-08T01:00:00"


_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
_event = st.fixed_dictionaries(
    {
        "ts": st.datetimes(
            min_value=__import__("datetime").datetime(2000, 1, 1),
            max_value=__import__("datetime").datetime(2100, 1, 1),
        ).map(lambda d: d.isoformat() + "Z"),
        "model": _text.filter(str.strip),
        "input_tokens": st.integers(0, 10**12),
        "output_tokens": st.integers(0, 10**12),
    },
    optional={
        "provider": _text.filter(str.strip),
        "team": _text.filter(str.strip),
        "request_id": _text.filter(lambda s: s.strip() and not s.startswith("bucket:")),
        "latency_ms": st.floats(0, 1e6),
        "cost_usd": st.decimals(0, 10**6, places=12),
        "status": st.sampled_from(["ok", "error", "rate_limited"]),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_event, min_size=1, max_size=8))
def test_property_columnar_and_item_by_item_agree(items: list[dict[str, Any]]) -> None:
    body = json.dumps(items, default=str).encode()
    decoded = json.loads(body, parse_float=Decimal)
    assert parse_events(body, "json", SETTINGS).equals(reference(decoded))


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"model": "m", "input_tokens": 1, "output_tokens": 1}, "ts"),
        (event_json(0, ts="yesterday"), "ts"),
        (event_json(0, ts="2025-03-08T01:00:00"), "ts"),
        (event_json(0, ts=2**70), "ts"),
        (event_json(0, model=None), "model"),
        (event_json(0, input_tokens=-1), "input_tokens"),
        (event_json(0, input_tokens=1.5), "input_tokens"),
        (event_json(0, input_tokens=True), "input_tokens"),
        (event_json(0, output_tokens=2**70), "output_tokens"),
        (event_json(0, cache_read_tokens=5000), "cache_read_tokens"),
        (event_json(0, status="maybe"), "status"),
        (event_json(0, latency_ms=-3), "latency_ms"),
        (event_json(0, latency_ms="slow"), "latency_ms"),
        (event_json(0, cost_usd="lots"), "cost_usd"),
        (event_json(0, team={"a": 1}), "team"),
        (event_json(0, model=["m"]), "model"),
        (event_json(0, request_id="bucket:usage_csv:2025"), "request_id"),
        (event_json(0, user="x" * 65), "user"),
    ],
)
def test_a_bad_item_is_named_by_index_and_field(item: dict[str, Any], field: str) -> None:
    items = [event_json(1), event_json(2), item]
    with pytest.raises(InvalidItem) as info:
        parse(items)
    assert info.value.index == 2
    assert info.value.field == field
    assert str(info.value).startswith("item 2")
    assert f"field '{field}'" in str(info.value)


def test_an_item_that_is_not_an_object_is_named() -> None:
    with pytest.raises(InvalidItem, match=r"item 1 is a JSON array") as info:
        parse([event_json(0), [1, 2]])
    assert info.value.field is None


def test_ndjson_errors_name_the_line_too() -> None:
    body = (json.dumps(event_json(0)) + "\n\n" + json.dumps(event_json(1, ts="x"))).encode()
    with pytest.raises(InvalidItem, match=r"item 1 \(line 3\), field 'ts'"):
        parse_events(body, "ndjson", SETTINGS)
    with pytest.raises(MalformedBody, match="line 2 is not valid JSON"):
        parse_events(b'{"ts": 1}\n{"ts": \n', "ndjson", SETTINGS)


def test_a_lone_surrogate_is_named_not_a_crash() -> None:
    body = json.dumps([event_json(0, team="\ud800")]).encode()
    with pytest.raises(InvalidItem, match="surrogate") as info:
        parse_events(body, "json", SETTINGS)
    assert info.value.field == "team"


def test_costs_are_kept_to_the_picodollar_and_absurd_ones_refused() -> None:
    # What a float-computing client sends for 1200 * 3e-6.
    table = parse_events(
        b'[{"ts":"2025-03-08T01:00:00Z","model":"m","input_tokens":1,"output_tokens":1,'
        b'"cost_usd":0.0036000000000000003}]',
        "json",
        SETTINGS,
    )
    assert table.column("cost_usd")[0].as_py() == Decimal("0.0036")
    with pytest.raises(InvalidItem, match="26-digit") as info:
        parse_events(
            b'[{"ts":"2025-03-08T01:00:00Z","model":"m","input_tokens":1,"output_tokens":1,'
            b'"cost_usd":1e400}]',
            "json",
            SETTINGS,
        )
    assert info.value.field == "cost_usd"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "empty"),
        (b"[1, 2", "not valid JSON"),
        (b'{"ts": 1}', "a JSON object; send a JSON array"),
        (b"[" * 100_000 + b"]" * 100_000, "nests JSON too deeply"),
        (b"[" + b"9" * 5000 + b"]", "number that cannot be read"),
        (b"[NaN]", "number that cannot be read"),
        (b"\xff\xfe[]", "not UTF-8"),
    ],
)
def test_malformed_bodies_are_400_with_the_reason(body: bytes, problem: str) -> None:
    with pytest.raises(MalformedBody, match=problem) as info:
        parse_events(body, "json", SETTINGS)
    assert info.value.status == 400


def test_too_many_events_is_413_before_any_is_checked() -> None:
    items = [{"anything": i} for i in range(51)]
    with pytest.raises(PayloadTooLarge, match="51 events; at most 50") as info:
        parse(items)
    assert info.value.status == 413
    with pytest.raises(PayloadTooLarge):
        parse(items, "ndjson")


def test_an_empty_batch_is_zero_rows() -> None:
    assert parse([]).num_rows == 0
    assert parse_events(b"\n \n", "ndjson", SETTINGS).num_rows == 0


def test_content_types() -> None:
    assert body_format(None) == "json"
    assert body_format("application/json; charset=utf-8") == "json"
    assert body_format("application/x-ndjson") == "ndjson"
    with pytest.raises(UnsupportedMediaType, match="application/x-www-form-urlencoded") as info:
        body_format("application/x-www-form-urlencoded")
    assert info.value.status == 415


def test_bodies_are_read_within_the_limit() -> None:
    assert read([b"ab", b"cd"]) == b"abcd"
    with pytest.raises(PayloadTooLarge, match="more than 1,000 bytes"):
        read([b"x" * 600, b"x" * 600])


def test_gzip_is_inflated_and_a_bomb_stops_at_the_limit() -> None:
    payload = json.dumps([event_json(0)]).encode()
    packed = gzip.compress(payload)
    assert read([packed[:10], packed[10:]], "gzip", limit=10_000) == payload
    bomb = gzip.compress(b"\0" * (50 << 20))  # 50 MiB of zeros in ~50 KB
    assert len(bomb) < 100_000
    with pytest.raises(PayloadTooLarge, match="decompresses to more than"):
        read([bomb], "gzip", limit=1 << 20)


@pytest.mark.parametrize(
    ("chunks", "problem"),
    [
        ([gzip.compress(b"[]")[:-4]], "ends early"),
        ([gzip.compress(b"[]") + b"junk"], "data after its end"),
        ([b"not gzip at all"], "not valid gzip"),
    ],
)
def test_broken_gzip_is_400(chunks: list[bytes], problem: str) -> None:
    with pytest.raises(MalformedBody, match=problem):
        read(chunks, "gzip")


def test_unknown_encodings_are_415() -> None:
    with pytest.raises(UnsupportedMediaType, match="br"):
        read([b"x"], "br")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_property_any_body_is_rows_or_a_4xx(body: bytes) -> None:
    for fmt in ("json", "ndjson"):
        status = _status(body, fmt)
        assert status is None or 400 <= status < 500


def _status(body: bytes, fmt: str) -> int | None:
    try:
        parse_events(body, fmt, SETTINGS)  # type: ignore[arg-type]
    except InvalidInput as exc:
        return exc.status
    return None
