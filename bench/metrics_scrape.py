"""Scrape benchmark: how long ``/metrics`` takes as the store grows (one totals query per scrape).

    python bench/metrics_scrape.py [--sizes 1000000 10000000] [--models 5 5000] [--repeat 7]

For each store size and model count, prints the median and worst time of the store query
(`DuckDBQueries.usage_totals`) and of a whole scrape (`generate_latest`, no plan), and how many
series the scrape holds (models beyond 200 are pooled as "(other)"). The query groups every row
by model and provider, so its time grows with the store: it must stay far below Prometheus'
scrape timeout (10 s by default) and interval.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from prometheus_client import CollectorRegistry, generate_latest

from tokenplan.events import USAGE_SCHEMA
from tokenplan.service.metrics import register_metrics
from tokenplan.store import open_store
from tokenplan.store.queries import DuckDBQueries

CHUNK = 1_000_000


class NoPlan:
    """A `PlanSource` with no plan yet: the scrape is the counters alone."""

    def latest(self) -> None:
        """None."""
        return None


def rows(n: int, models: int, seed: int) -> pa.Table:
    """``n`` raw-event rows over 30 days across ``models`` models of 4 providers."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2025-06-01T00:00:00", "us")
    which = rng.integers(0, models, n)
    names = [f"model-{i}" for i in range(models)]
    providers = [f"provider-{i % 4}" for i in range(models)]
    status = rng.random(n)
    inputs = rng.lognormal(7, 1.2, n).astype(np.int64)
    cols = {
        "ts": pa.array(start + rng.integers(0, 30 * 86400 * 10**6, n).astype("timedelta64[us]")),
        "bucket_s": pa.array(np.zeros(n, np.int32)),
        "provider": pa.DictionaryArray.from_arrays(which, providers).cast(pa.string()),
        "model": pa.DictionaryArray.from_arrays(which, names).cast(pa.string()),
        "requests": pa.array(np.ones(n, np.int64)),
        "failed_requests": pa.array((status < 0.02).astype(np.int64)),
        "rate_limited_requests": pa.array((status < 0.01).astype(np.int64)),
        "input_tokens": pa.array(inputs),
        "output_tokens": pa.array(rng.lognormal(5, 1, n).astype(np.int64)),
        "cache_read_tokens": pa.array((inputs * rng.uniform(0, 0.5, n)).astype(np.int64)),
        "cache_write_tokens": pa.array(np.zeros(n, np.int64)),
    }
    table = {f.name: cols.get(f.name, pa.nulls(n, f.type)).cast(f.type) for f in USAGE_SCHEMA}
    return pa.table(table, schema=USAGE_SCHEMA)


def timed(fn: object, repeat: int) -> list[float]:
    """Wall times of ``repeat`` calls (after one warm-up call)."""
    fn()  # type: ignore[operator]
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    """Build each store, scrape it, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--models", type=int, nargs="+", default=[5, 5000])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"{'rows':>11} {'models':>7} {'series':>7}  query median / max    scrape median / max")
    for models in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(Path(tmp) / "scrape.duckdb")
            written = 0
            for size in sorted(args.sizes):
                while written < size:
                    n = min(CHUNK, size - written)
                    store.write(rows(n, models, seed=written))
                    written += n
                queries = DuckDBQueries(store)
                registry = CollectorRegistry()
                register_metrics(registry, totals=queries, plans=NoPlan())
                query = timed(lambda q=queries: q.usage_totals(200), args.repeat)
                scrape = timed(lambda r=registry: generate_latest(r), args.repeat)
                text = generate_latest(registry).decode()
                series = sum(1 for line in text.splitlines() if line and line[0] != "#")
                print(
                    f"{size:>11,} {models:>7,} {series:>7,}  "
                    f"{statistics.median(query) * 1000:7.1f} / {max(query) * 1000:7.1f} ms  "
                    f"{statistics.median(scrape) * 1000:7.1f} / {max(scrape) * 1000:7.1f} ms",
                    flush=True,
                )
            store.close()


if __name__ == "__main__":
    sys.exit(main())
