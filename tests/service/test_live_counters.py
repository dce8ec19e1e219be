"""`LiveCounters`: per-minute series and daily totals read back from a real Redis."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
import redis
from live_fixtures import events, minute_now, table

from tokenplan.errors import InvalidInput
from tokenplan.service.live import RedisSink
from tokenplan.service.live_counters import LiveCounters
from tokenplan.service.live_keys import day_of, minute_key, series_name


def test_minutes_are_zero_filled_and_split_by_dimension(redis_client: redis.Redis) -> None:
    start = minute_now() - timedelta(minutes=30)
    # Three calls two minutes apart: search, support, then no team.
    batch = events(3, start=start, spacing=timedelta(minutes=2))
    RedisSink(redis_client).accept(table(batch))
    live = LiveCounters(redis_client)
    frame = live.series("input_tokens", "team", since=start, until=start + timedelta(minutes=6))
    assert list(frame["unique_id"].unique()) == ["(none)", "search", "support"]
    assert len(frame) == 3 * 6
    by_team = frame.pivot(index="ds", columns="unique_id", values="y")
    assert by_team["search"].tolist() == [1000, 0, 0, 0, 0, 0]
    assert by_team["support"].tolist() == [0, 0, 1037, 0, 0, 0]
    assert by_team["(none)"].tolist() == [0, 0, 0, 0, 1074, 0]
    assert str(frame["ds"].dtype) == "datetime64[us]"
    assert frame["ds"].iloc[0] == start.replace(tzinfo=None)


def test_a_range_with_no_events_is_empty(redis_client: redis.Redis) -> None:
    live = LiveCounters(redis_client)
    now = minute_now()
    frame = live.series("requests", "model", since=now - timedelta(hours=1), until=now)
    assert frame.empty
    assert list(frame.columns) == ["unique_id", "ds", "y"]
    total = live.series("requests", since=now - timedelta(minutes=3), until=now)
    assert total.empty


def test_expired_minutes_read_as_unknown_not_zero(redis_client: redis.Redis) -> None:
    start = minute_now() - timedelta(minutes=10)
    RedisSink(redis_client).accept(table(events(5, start=start)))
    # What the 7-day expiry does to a day's minutes; the daily total stays.
    redis_client.delete(minute_key(series_name(None), start.date()))
    live = LiveCounters(redis_client)
    frame = live.series("requests", since=start, until=start + timedelta(minutes=2))
    assert len(frame) == 2
    assert all(math.isnan(y) for y in frame["y"])
    daily = live.daily("requests", since=start, until=start + timedelta(minutes=2))
    assert daily["y"].tolist() == [5]


def test_cost_is_unknown_only_where_every_call_was_unpriced(redis_client: redis.Redis) -> None:
    start = minute_now() - timedelta(minutes=10)
    batch = events(12, start=start, spacing=timedelta(minutes=1))  # call 0 and 11: no cost
    RedisSink(redis_client).accept(table(batch))
    frame = LiveCounters(redis_client).series(
        "cost_usd", since=start, until=start + timedelta(minutes=12), exact=True
    )
    ys = frame["y"].tolist()
    assert ys[0] is None
    assert ys[11] is None
    assert ys[1] == batch[1].cost_usd
    assert sum(y for y in ys if y is not None) == sum(e.cost_usd for e in batch if e.cost_usd)


def test_bad_questions_get_clear_errors(redis_client: redis.Redis) -> None:
    live = LiveCounters(redis_client)
    now = minute_now()
    with pytest.raises(InvalidInput, match="unknown metric 'tokens'"):
        live.series("tokens", since=now - timedelta(hours=1), until=now)
    with pytest.raises(InvalidInput, match="split by model, team, feature, not 'user'"):
        live.series("requests", "user", since=now - timedelta(hours=1), until=now)
    with pytest.raises(InvalidInput, match="7 days"):
        live.series("requests", since=now - timedelta(days=9), until=now)
    with pytest.raises(InvalidInput, match="1,000 days"):
        live.daily("requests", since=now - timedelta(days=1200), until=now)


def test_minute_keys_live_seven_days_past_their_day(redis_client: redis.Redis) -> None:
    start = minute_now() - timedelta(minutes=1)
    RedisSink(redis_client).accept(table(events(1, start=start)))
    key = minute_key(series_name(None), day_of(int(start.timestamp()) // 60))
    ttl = redis_client.ttl(key)
    assert 7 * 86400 <= ttl <= 8 * 86400
    day_keys = redis_client.keys("tokenplan:day:total:*")
    assert len(day_keys) == 1
    assert redis_client.ttl(day_keys[0]) >= 400 * 86400
