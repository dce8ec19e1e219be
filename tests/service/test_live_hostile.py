"""Hostile values on the live path: keys never collide, everything reads back exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st
from live_fixtures import minute_now, table

from tokenplan.errors import InvalidInput
from tokenplan.events import UsageEvent
from tokenplan.service.contracts import AcceptResult
from tokenplan.service.drain import Drainer
from tokenplan.service.live import RedisSink
from tokenplan.service.live_counters import LiveCounters
from tokenplan.service.live_keys import MISSING, escape, unescape
from tokenplan.store import open_store

HOSTILE = (
    ":",
    "a:b",
    "a%3Ab",
    "*",
    "?[a-z]",
    "=x",
    "!none",
    "(none)",
    "",
    " ",
    "日本語チーム",
    "emoji 🚀",
    "line\nbreak",
    "tab\tand\x00nul",
    "'; DROP TABLE usage; --",
    'Robert"); DELETE FROM tokenplan_batches; --',
    "tokenplan:events",
    "x" * 300,
)


@given(st.one_of(st.none(), st.text()))
def test_escaping_round_trips_and_leaves_no_separator_or_pattern(value: str | None) -> None:
    token = escape(value)
    assert unescape(token) == value
    assert all(c.isascii() and (c.isalnum() or c in "-._~%") for c in token) or token == MISSING


@given(st.text(), st.text())
def test_distinct_values_never_share_a_key(a: str, b: str) -> None:
    assert (escape(a) == escape(b)) == (a == b)
    assert escape(a) != escape(None)


def _hostile_events(start: datetime) -> list[UsageEvent]:
    out = []
    for i, value in enumerate((*HOSTILE, None)):
        out.append(
            UsageEvent(
                ts=start + timedelta(seconds=i),
                provider=value or "p",
                model=value or "m",
                input_tokens=10 + i,
                output_tokens=i,
                team=value,
                feature=value,
                user=value,
                key_id=value,
                request_id=value,
            )
        )
    return out


def test_hostile_dimension_values_are_counted_and_stored_exactly(
    redis_client: redis.Redis, db_path: Path
) -> None:
    start = minute_now() - timedelta(minutes=5)
    batch = _hostile_events(start)
    sink = RedisSink(redis_client)
    assert sink.accept(table(batch)).accepted == len(batch)
    # Every hostile id is recognised on a retry (the last event has none: it would count).
    assert sink.accept(table(batch[:-1])) == AcceptResult(0, len(HOSTILE))
    live = LiveCounters(redis_client)
    until = minute_now() + timedelta(minutes=1)
    frame = live.daily("input_tokens", "team", since=start, until=until, exact=True)
    # Summed per label: run just after midnight UTC, the span holds two days.
    got = frame.groupby("unique_id")["y"].sum().to_dict()
    want: dict[str, int] = {}
    for e in batch:
        label = "(none)" if e.team is None else e.team
        want[label] = want.get(label, 0) + e.input_tokens
    assert got == want
    # One key per distinct value (None apart from "(none)"): nothing collided.
    assert len(redis_client.keys("tokenplan:day:team=*")) == len(HOSTILE) + 1
    with open_store(db_path) as store:
        Drainer(redis_client, store, consumer="one").run(once=True)
        for by in ("model", "team", "feature"):
            pd.testing.assert_frame_equal(
                live.series("input_tokens", by, since=start, until=until, exact=True),
                store.series("input_tokens", "1min", [by], start, until, exact=True),
            )
        stored = store.connection.execute(
            "SELECT team, feature, user, key_id, request_id, provider FROM usage ORDER BY ts"
        ).fetchall()
    assert stored == [
        (e.team, e.feature, e.user, e.key_id, e.request_id, e.provider) for e in batch
    ]


def test_timestamps_at_the_ends_of_the_calendar_are_kept(
    redis_client: redis.Redis, db_path: Path
) -> None:
    ends = [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)]
    batch = [
        UsageEvent(ts=ts, provider="p", model="m", input_tokens=5, output_tokens=1) for ts in ends
    ]
    assert RedisSink(redis_client).accept(table(batch)).accepted == 2
    # Year 9999's counters are there; year 1's expired on arrival (older than 7 / 400 days).
    live = LiveCounters(redis_client)
    far = live.daily("requests", since=ends[1] - timedelta(days=1), until=ends[1])
    assert far["y"].tolist() == [0, 1]
    with open_store(db_path) as store:
        Drainer(redis_client, store, consumer="one").run(once=True)
        assert store.summary().requests == 2


def test_timestamps_python_cannot_name_a_day_for_are_refused(redis_client: redis.Redis) -> None:
    rows = table(
        [UsageEvent(ts=minute_now(), provider="p", model="m", input_tokens=1, output_tokens=1)]
    )
    beyond = pa.array([20_000 * 365 * 86400 * 10**6], pa.timestamp("us"))  # about year 21970
    rows = rows.set_column(0, "ts", beyond)
    with pytest.raises(InvalidInput, match="outside years 1 to 9999"):
        RedisSink(redis_client).accept(rows)
    assert redis_client.keys("tokenplan:*") == []
