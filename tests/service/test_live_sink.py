"""`RedisSink` against a real redis-server: counters, dedupe, atomicity, durability."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import redis
from live_fixtures import assert_live_matches_store, events, minute_now, table

from redis_server import RedisServer, free_port
from tokenplan.errors import InvalidInput, StoreError
from tokenplan.events import UsageEvent
from tokenplan.service.contracts import AcceptResult, EventSink
from tokenplan.service.live import RedisSink, open_redis_sink
from tokenplan.service.live_batches import decode_rows
from tokenplan.service.live_counters import LiveCounters
from tokenplan.service.live_keys import STREAM
from tokenplan.service.redis_connection import check_persistence, connect, redact
from tokenplan.store import open_store


def _stream_rows(client: redis.Redis) -> int:
    return sum(decode_rows(f[b"data"]).num_rows for _, f in client.xrange(STREAM))


def test_counters_and_daily_totals_add_up_to_the_events(redis_client: redis.Redis) -> None:
    start = minute_now() - timedelta(minutes=50)
    batch = events(400, start=start, spacing=timedelta(seconds=6))
    sink: EventSink = RedisSink(redis_client)
    assert sink.accept(table(batch[:250])) == AcceptResult(250, 0)
    assert sink.accept(table(batch[250:])) == AcceptResult(150, 0)
    with open_store(":memory:") as store:
        store.write(table(batch))
        assert_live_matches_store(
            LiveCounters(redis_client),
            store,
            start - timedelta(minutes=5),
            minute_now(),
            metrics=("requests", "failed_requests", "total_tokens", "cost_usd"),
        )
    total = LiveCounters(redis_client).daily(
        "input_tokens", since=start - timedelta(days=1), until=start + timedelta(days=1)
    )
    assert total["y"].sum() == sum(e.input_tokens for e in batch)
    cost = LiveCounters(redis_client).daily(
        "cost_usd", since=start - timedelta(days=1), until=start + timedelta(days=1), exact=True
    )
    assert sum(cost["y"]) == sum(e.cost_usd for e in batch if e.cost_usd is not None)
    assert _stream_rows(redis_client) == 400


def test_a_retried_batch_counts_once(redis_client: redis.Redis) -> None:
    start = minute_now() - timedelta(minutes=10)
    batch = table(events(60, start=start))
    sink = RedisSink(redis_client)
    assert sink.accept(batch) == AcceptResult(60, 0)
    assert sink.accept(batch) == AcceptResult(0, 60)
    # A retry that overlaps: the new half counts, the known half does not.
    overlap = table(events(60, start=start, first=30))
    assert sink.accept(overlap) == AcceptResult(30, 30)
    live = LiveCounters(redis_client)
    requests = live.series("requests", since=start, until=minute_now() + timedelta(minutes=1))
    assert requests["y"].sum() == 90
    assert _stream_rows(redis_client) == 90
    assert redis_client.xlen(STREAM) == 2  # the all-duplicate retry added no entry


def test_ids_repeated_within_a_batch_count_once_and_events_without_ids_always(
    redis_client: redis.Redis,
) -> None:
    start = minute_now() - timedelta(minutes=5)
    same = events(3, start=start, prefix=None)
    first = events(1, start=start, prefix="dup")[0]
    rows = [first, first, first, *same, *same]
    result = RedisSink(redis_client).accept(table(rows))
    assert result == AcceptResult(7, 2)
    live = LiveCounters(redis_client)
    assert live.series("requests", since=start, until=minute_now())["y"].sum() == 7


def test_concurrent_collectors_sending_one_batch_count_it_once(redis_client: redis.Redis) -> None:
    start = minute_now() - timedelta(minutes=20)
    batches = [
        table(events(200, start=start, first=k * 50, spacing=timedelta(seconds=1)))
        for k in range(4)
    ]
    barrier = threading.Barrier(len(batches))
    results: list[AcceptResult] = []

    def send(rows: object) -> None:
        sink = RedisSink(redis.Redis(connection_pool=redis_client.connection_pool))
        barrier.wait(timeout=10)
        results.append(sink.accept(rows))  # type: ignore[arg-type]

    threads = [threading.Thread(target=send, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 4
    # Ids 0..349 overall: each counted by exactly one collector.
    assert sum(r.accepted for r in results) == 350
    assert sum(r.duplicates for r in results) == 800 - 350
    live = LiveCounters(redis_client)
    assert live.series("requests", since=start, until=minute_now())["y"].sum() == 350
    assert _stream_rows(redis_client) == 350


def test_a_batch_that_would_overflow_a_counter_is_refused_whole(
    redis_client: redis.Redis,
) -> None:
    start = minute_now() - timedelta(minutes=3)
    one = UsageEvent(ts=start, provider="p", model="m", input_tokens=10**15, output_tokens=0)
    # 5,000 calls at the per-row ceiling: 5e18 tokens, over half the counters' 9e18 range.
    big = table([one]).take(pa.array([0] * 5000))
    sink = RedisSink(redis_client)
    assert sink.accept(big).accepted == 5000
    before = {k: redis_client.dump(k) for k in redis_client.keys("tokenplan:*")}
    with pytest.raises(InvalidInput, match="beyond"):
        sink.accept(big)
    after = {k: redis_client.dump(k) for k in redis_client.keys("tokenplan:*")}
    assert after == before  # no id marked seen, no entry, no counter moved
    huge_cost = UsageEvent(
        ts=start, provider="p", model="m", input_tokens=1, output_tokens=1, cost_usd=Decimal(10**8)
    )
    with pytest.raises(InvalidInput, match="nothing was stored"):
        sink.accept(table([huge_cost]))
    assert {k: redis_client.dump(k) for k in redis_client.keys("tokenplan:*")} == before


def test_a_foreign_key_in_the_namespace_fails_the_batch_before_any_write(
    redis_client: redis.Redis,
) -> None:
    redis_client.set(STREAM, "not a stream")
    rows = table(events(5, start=minute_now()))
    with pytest.raises(StoreError, match="WRONGTYPE"):
        RedisSink(redis_client).accept(rows)
    assert redis_client.keys("tokenplan:*") == [STREAM.encode()]


def test_acknowledged_batches_survive_a_redis_crash(tmp_path: Path) -> None:
    start = minute_now() - timedelta(minutes=2)
    batch = table(events(100, start=start, prefix=None))
    with RedisServer(tmp_path / "redis") as server:
        sink = open_redis_sink(server.url)
        assert sink.accept(batch).accepted == 100
        sink.close()
        server.kill()  # SIGKILL: no shutdown save; only the fsync'd append-only file remains
        server.start()
        client = redis.Redis.from_url(server.url)
        assert _stream_rows(client) == 100
        live = LiveCounters(client)
        assert live.series("requests", since=start, until=minute_now())["y"].sum() == 100
        client.close()


def test_persistence_that_can_lose_events_is_reported(redis_client: redis.Redis) -> None:
    assert check_persistence(redis_client, "here") is None
    try:
        redis_client.config_set("appendfsync", "everysec")
        problem = check_persistence(redis_client, "here")
        assert problem is not None
        assert "last second" in problem
    finally:
        redis_client.config_set("appendfsync", "always")


def test_urls_with_passwords_are_never_shown() -> None:
    url = f"redis://drainer:s3cret-pw@127.0.0.1:{free_port()}/0"
    assert "s3cret" not in redact(url)
    assert redact(url) == f"redis://drainer:***@127.0.0.1:{url.split(':')[-1]}"
    with pytest.raises(StoreError) as caught:
        connect(url, timeout_s=2)
    assert "s3cret" not in str(caught.value)
    assert "cannot reach Redis" in str(caught.value)
    with pytest.raises(InvalidInput, match="not a Redis URL"):
        connect("http://user:s3cret@127.0.0.1/")
