"""Redis live path benchmark: events/s through `RedisSink.accept` in batches of 500, and the
drain rate from the stream into DuckDB.

    python bench/redis_path.py [--batches 200] [--batch-size 500] [--clients 1 4] [--redis URL]

Without ``--redis`` it starts its own redis-server (Debian's, as the tests do) in a temporary
directory with ``appendonly yes`` and ``appendfsync always``: every accepted batch is fsync'd
before it is acknowledged. Tables are built before the clock starts; the figures are the sink
(dedupe, Arrow encoding, counters, one Lua script) and the drain (decode, DuckDB commit, XACK).
The CPU time per batch (this process; the redis-server process) tells the capacity apart from
what other load on the machine takes. The last lines check that the store, the counters and the
accepted count agree.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import redis

from tokenplan.events import COST_TYPE, USAGE_SCHEMA
from tokenplan.service.drain import Drainer
from tokenplan.service.live import RedisSink
from tokenplan.service.live_counters import LiveCounters
from tokenplan.store import open_store
from tokenplan.store.turns import StoreInTurns

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from redis_server import RedisServer

MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "gpt-4o", "gpt-4o-mini", "deepseek-chat"]
TEAMS = [f"team-{i}" for i in range(8)]
FEATURES = ["chat", "search", "batch"]


def make_batch(k: int, size: int, start: datetime, rng: np.random.Generator) -> pa.Table:
    """``size`` calls within one minute, with unique request ids; batch ``k``."""
    n = size
    base = np.datetime64(start.replace(tzinfo=None), "us") + np.timedelta64(k, "s")
    ts = base + rng.integers(0, 60 * 10**6, n).astype("timedelta64[us]")
    inputs = rng.lognormal(7, 1.2, n).astype(np.int64)
    micro = rng.integers(1, 10**9, n)
    cols = {
        "ts": pa.array(ts, pa.timestamp("us")),
        "bucket_s": pa.array(np.zeros(n, np.int32)),
        "provider": pa.array(["anthropic"] * n),
        "model": pa.array([MODELS[i] for i in rng.integers(0, len(MODELS), n)]),
        "team": pa.array([TEAMS[i] for i in rng.integers(0, len(TEAMS), n)]),
        "feature": pa.array([FEATURES[i] for i in rng.integers(0, len(FEATURES), n)]),
        "user": pa.nulls(n, pa.string()),
        "key_id": pa.nulls(n, pa.string()),
        "requests": pa.array(np.ones(n, np.int64)),
        "failed_requests": pa.array(np.zeros(n, np.int64)),
        "rate_limited_requests": pa.array(np.zeros(n, np.int64)),
        "input_tokens": pa.array(inputs),
        "output_tokens": pa.array(rng.lognormal(5, 1, n).astype(np.int64)),
        "cache_read_tokens": pa.array(np.zeros(n, np.int64)),
        "cache_write_tokens": pa.array(np.zeros(n, np.int64)),
        "unsplit_tokens": pa.nulls(n, pa.int64()),
        "latency_ms_sum": pa.array(rng.gamma(2, 400, n)),
        "cost_usd": pa.array([Decimal(int(m)).scaleb(-12) for m in micro], COST_TYPE),
        "request_id": pa.array([f"bench-{k}-{i}" for i in range(n)]),
        "source": pa.array(["bench"] * n),
        "cache_write_1h_tokens": pa.array(np.zeros(n, np.int64)),
        "cost_computed": pa.array(np.ones(n, bool)),
    }
    return pa.table(cols, schema=USAGE_SCHEMA)


def accept_all(client: redis.Redis, tables: list[pa.Table], clients: int) -> tuple[float, list]:
    """Send the tables from ``clients`` threads; return elapsed seconds and batch latencies."""
    latencies: list[float] = []
    lock = threading.Lock()
    queue = list(reversed(tables))

    def worker() -> None:
        sink = RedisSink(redis.Redis(connection_pool=client.connection_pool))
        while True:
            with lock:
                if not queue:
                    return
                rows = queue.pop()
            t0 = time.perf_counter()
            sink.accept(rows)
            with lock:
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, latencies


def _server_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run(url: str, batches: int, size: int, clients: list[int]) -> None:
    client = redis.Redis.from_url(url)
    rng = np.random.default_rng(11)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    total = 0
    for n_clients in clients:
        client.flushall()
        tables = [make_batch(k, size, start, rng) for k in range(batches)]
        cpu0, server0 = time.process_time(), _server_cpu(client)
        elapsed, lat = accept_all(client, tables, n_clients)
        cpu, server = time.process_time() - cpu0, _server_cpu(client) - server0
        total = batches * size
        lat_ms = sorted(x * 1000 for x in lat)
        p50, p99 = statistics.median(lat_ms), lat_ms[int(len(lat_ms) * 0.99) - 1]
        print(
            f"accept: {n_clients} client(s), {batches} batches of {size}: "
            f"{total / elapsed:,.0f} events/s; batch latency p50 "
            f"{p50:.1f} ms, p99 {p99:.1f} ms; "
            f"CPU per batch: sink {cpu / batches * 1000:.1f} ms, redis-server "
            f"{server / batches * 1000:.1f} ms"
        )
    info = client.info("memory")
    print(f"redis memory after the last run: {info['used_memory'] / 2**20:.1f} MiB")
    # `serve --redis` holds the store; `tokenplan drain` takes turns with other processes.
    for turns in (False, True):
        if turns:  # the same batches again, into a fresh store
            client.flushall()
            accept_all(client, tables, clients[-1])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.duckdb"
            with StoreInTurns(path) if turns else open_store(path) as store:
                t0 = time.perf_counter()
                stats = Drainer(client, store, consumer="bench").run(once=True)
                elapsed = time.perf_counter() - t0
                let_go = getattr(store, "turns", None)
                print(
                    f"drain ({'in turns, tokenplan drain' if turns else 'store held, serve'}): "
                    f"{stats.entries:,} entries, {stats.inserted:,} rows into DuckDB in "
                    f"{elapsed:.2f} s: {stats.inserted / elapsed:,.0f} rows/s"
                    + (f"; the file let go {let_go} times" if let_go is not None else "")
                )
            with open_store(path, mode="read") as reader:
                stored = reader.summary()
    live = LiveCounters(client).daily(
        "requests", since=start - timedelta(days=1), until=start + timedelta(days=2)
    )
    print(
        f"check: accepted {total:,}, stored {stored.requests:,}, "
        f"counted live {int(live['y'].sum()):,}, stream left {client.xlen('tokenplan:events')}"
    )
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--redis", help="use this server (it is FLUSHALLed!) instead of a new one")
    args = parser.parse_args()
    if args.redis:
        run(args.redis, args.batches, args.batch_size, args.clients)
        return
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as server:
        run(server.url, args.batches, args.batch_size, args.clients)


if __name__ == "__main__":
    main()
