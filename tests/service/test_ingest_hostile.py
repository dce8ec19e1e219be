"""Hostile input over HTTP: each is a clear 4xx, the service stays up, nothing rejected is kept."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from app_harness import AUTH, TOKEN, Service, event_json, running

from tokenplan.service.auth import Tokens
from tokenplan.service.settings import ServiceSettings

SQL = "'); DROP TABLE usage; --"
LIMITED = ServiceSettings(tokens=Tokens([TOKEN]), max_body_bytes=64 << 10, max_batch=100)


@pytest.fixture
def service(tmp_path: Path) -> Any:
    with running(tmp_path / "s.duckdb", settings=LIMITED) as running_service:
        # One good batch first: a rejected batch must leave it exactly as it was.
        assert running_service.post([event_json(0)]).status_code == 200
        yield running_service


def still_up(service: Service) -> None:
    assert service.call("GET", "/healthz").status_code == 200
    assert service.rows() == 1


def test_an_oversized_body_is_413(service: Service) -> None:
    big = json.dumps([event_json(i, feature="x" * 900) for i in range(100)]).encode()
    assert len(big) > 64 << 10
    response = service.post(big)
    assert response.status_code == 413
    assert "more than 65,536 bytes" in response.json()["error"]
    # Without a Content-Length (chunked), the limit holds while reading.

    async def chunks() -> AsyncIterator[bytes]:
        yield big[:40_000]
        yield big[40_000:]

    streamed = service.call(
        "POST",
        "/v1/events",
        content=chunks(),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    still_up(service)


def test_a_gzip_bomb_is_413(service: Service) -> None:
    bomb = gzip.compress(b"[" + b" " * (40 << 20) + b"]")
    assert len(bomb) < LIMITED.max_body_bytes
    response = service.post(bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "decompresses to more than" in response.json()["error"]
    still_up(service)


def test_too_many_events_is_413(service: Service) -> None:
    response = service.post([event_json(i) for i in range(101)])
    assert response.status_code == 413
    assert "at most 100 per request" in response.json()["error"]
    still_up(service)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 20_000 + b"]" * 20_000,
        b'[{"ts": ' + b"[" * 20_000 + b"]" * 20_000 + b"}]",
        b'[{"model": {"a": {"b": {"c": [1, [2, [3]]]}}}}]',
    ],
)
def test_deep_json_is_a_4xx(service: Service, body: bytes) -> None:
    response = service.post(body)
    assert response.status_code in (400, 422)
    assert response.json()["error"]
    still_up(service)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ts", True),
        ("ts", None),
        ("ts", 1e400),
        ("ts", 2**70),
        ("model", {"name": "m"}),
        ("input_tokens", "many"),
        ("input_tokens", 2**70),
        ("input_tokens", 1e400),
        ("input_tokens", -(2**63) - 1),
        ("output_tokens", [1]),
        ("cache_read_tokens", 1.5),
        ("latency_ms", 1e400),
        ("latency_ms", "fast"),
        ("cost_usd", 1e400),
        ("cost_usd", "NaN"),
        ("cost_usd", "Infinity"),
        ("status", 7),
        ("request_id", {"id": 1}),
    ],
)
def test_wrong_types_and_huge_numbers_name_the_item_and_field(
    service: Service, field: str, value: Any
) -> None:
    items = [event_json(1), {**event_json(2), field: value}]
    response = service.post(json.dumps(items).encode().replace(b"Infinity", b"1e400"))
    assert response.status_code == 422, response.text
    assert response.json()["index"] == 1
    assert response.json()["field"] == field
    still_up(service)


def test_numbers_json_does_not_allow_are_400(service: Service) -> None:
    for literal in (b"NaN", b"Infinity", b"-Infinity", b"1" * 5000):
        body = b'[{"ts": "2025-03-08T01:00:00Z", "model": "m", "input_tokens": ' + literal
        response = service.post(body + b', "output_tokens": 1}]')
        assert response.status_code == 400, literal[:10]
    still_up(service)


def test_unicode_dimensions_are_kept_exactly(service: Service) -> None:
    names = ["研究团队", "équipe-α", "👩‍💻 team", "مجموعة", "x\u200by", "\u202eevil"]
    items = [event_json(10 + i, team=name, model=f"模型-{i}") for i, name in enumerate(names)]
    assert service.post(items).json() == {"accepted": len(names), "duplicates": 0}
    rows = service.get("/v1/usage", params={"freq": "1d", "by": "team"}).json()["rows"]
    assert {r["series"] for r in rows} == {*names, "search"}


def test_sql_looking_text_in_every_field_is_just_text(service: Service) -> None:
    item = {
        "ts": "2025-03-08T01:00:00Z",
        "provider": SQL,
        "model": SQL,
        "input_tokens": 5,
        "output_tokens": 5,
        "team": SQL,
        "feature": SQL + "2",
        "user": SQL,
        "key_id": SQL,
        "request_id": SQL,
    }
    assert service.post([item]).json() == {"accepted": 1, "duplicates": 0}
    assert service.post([item]).json() == {"accepted": 0, "duplicates": 1}
    for dim in ("model", "team", "feature", "user", "key_id", "provider"):
        rows = service.get("/v1/usage", params={"freq": "1d", "by": dim}).json()["rows"]
        assert any(r["series"].startswith(SQL) for r in rows), dim
    hostile_params = {"metric": SQL, "freq": SQL, "by": SQL, "since": SQL, "tz": SQL}
    for name, value in hostile_params.items():
        response = service.get("/v1/usage", params={name: value, "freq": "1d"} | {name: value})
        assert response.status_code == 422, name
    assert service.rows() == 2


def test_a_batch_with_one_bad_item_keeps_nothing(service: Service) -> None:
    items = [event_json(100 + i) for i in range(50)] + [event_json(150, ts="2025-02-30T00:00Z")]
    response = service.post(items)
    assert response.status_code == 422
    assert response.json()["index"] == 50
    still_up(service)
    # The good ones were not half-stored: sent again alone, they are all new.
    assert service.post(items[:50]).json() == {"accepted": 50, "duplicates": 0}


def test_an_event_dated_far_after_the_clock_is_refused_with_its_place(service: Service) -> None:
    """One event dated years ahead (a client's clock, a bug) would move every plan there."""
    now = datetime.now(UTC)
    ahead = [event_json(1), event_json(2, ts=(now + timedelta(days=400)).isoformat())]
    response = service.post(ahead)
    assert response.status_code == 422, response.text
    assert (response.json()["index"], response.json()["field"]) == (1, "ts")
    assert "400 days after this collector's clock" in response.json()["error"]
    still_up(service)
    # A clock a few minutes fast is no fault.
    drift = event_json(3, ts=(now + timedelta(minutes=10)).isoformat())
    assert service.post([drift]).json() == {"accepted": 1, "duplicates": 0}


def test_usage_says_what_its_rows_cannot_show(service: Service) -> None:
    """`/v1/usage` carries the notes `tokenplan usage` prints: a daily report bucket read per
    hour, and the same calls held as events and as a report (counted twice)."""
    from decimal import Decimal

    import pyarrow as pa

    from tokenplan.events import USAGE_SCHEMA

    day = {name: [None] for name in USAGE_SCHEMA.names}
    day |= {
        "ts": [datetime(2025, 3, 8)],
        "bucket_s": [86_400],
        "provider": ["anthropic"],
        "model": ["claude-sonnet-4-5"],
        "input_tokens": [5_000],
        "output_tokens": [50],
        "cost_usd": [Decimal("0.01")],
        "request_id": ["bucket:report:2025-03-08"],
        "source": ["report"],
    }
    service.store.write(pa.Table.from_pydict(day, schema=USAGE_SCHEMA))
    hourly = service.get("/v1/usage", params={"freq": "1h"}).json()
    assert any("buckets 1d wide" in n for n in hourly["notes"])
    assert any("count them twice" in n for n in hourly["notes"])
    daily = service.get("/v1/usage", params={"freq": "1d"}).json()
    assert not any("wide" in n for n in daily["notes"])
