"""Ingest benchmark: bulk import of 1M and 10M synthetic events, the hourly by-model query,
and peak memory. Each measurement runs in its own process so its peak RSS is its own.

    python bench/ingest.py [--sizes 1000000 10000000] [--keep DIR]

Targets (issue 2): import >= 1M events/s; hourly by-model query over 10M < 1 s;
peak RSS of the 10M import < 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "gpt-4o", "gpt-4o-mini", "deepseek-chat"]
PROVIDERS = ["anthropic", "anthropic", "openai", "openai", "deepseek"]


def make_events(n: int, seed: int = 7) -> pa.Table:
    """n synthetic calls over 30 days, in the raw-event file layout (one row per call)."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2025-06-01T00:00:00", "us")
    offsets = np.sort(rng.integers(0, 30 * 86400 * 10**6, n)).astype("timedelta64[us]")
    which = rng.integers(0, len(MODELS), n)
    inputs = rng.lognormal(7, 1.2, n).astype(np.int64)
    cache = (inputs * rng.uniform(0, 0.5, n)).astype(np.int64)
    return pa.table(
        {
            "ts": pa.array(start + offsets, pa.timestamp("us", tz="UTC")),
            "provider": pa.DictionaryArray.from_arrays(which, PROVIDERS).cast(pa.string()),
            "model": pa.DictionaryArray.from_arrays(which, MODELS).cast(pa.string()),
            "input_tokens": inputs,
            "output_tokens": rng.lognormal(5, 1, n).astype(np.int64),
            "cache_read_tokens": cache,
            "latency_ms": rng.gamma(2, 400, n),
            "status": pa.DictionaryArray.from_arrays(
                (rng.random(n) < 0.01).astype(np.int8), ["ok", "error"]
            ).cast(pa.string()),
            "team": pa.DictionaryArray.from_arrays(
                rng.integers(0, 8, n).astype(np.int8), [f"team-{i}" for i in range(8)]
            ).cast(pa.string()),
            "request_id": pa.array(np.char.add("req-", np.arange(n).astype("U10"))),
        }
    )


def _child(kind: str, path: str, db: str) -> None:
    # Runs in a fresh process: import or query, then report time and peak RSS as JSON.
    from tokenplan.collect.importer import import_file
    from tokenplan.pricing import PriceBook
    from tokenplan.store import DuckDBStore

    store = DuckDBStore(db)
    t0 = time.perf_counter()
    if kind == "import":
        summary = import_file(store, path, fmt="parquet", prices=PriceBook())
        rows = summary.inserted
    else:
        frame = store.series("total_tokens", "1h", ["model"])
        rows = len(frame)
    seconds = time.perf_counter() - t0
    store.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_rss_mb": peak_mb}))


def _run(kind: str, path: Path, db: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path), str(db)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Generate files, then time import and query in child processes; print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="*", type=int, default=[1_000_000, 10_000_000])
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--child", nargs=3, default=None)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    work = args.keep or Path(tempfile.mkdtemp(prefix="tokenplan-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"{'events':>12} {'import s':>9} {'events/s':>12} {'peak RSS MB':>12} "
        f"{'query s':>8} {'query rows':>10}"
    )
    for n in args.sizes:
        path = work / f"events_{n}.parquet"
        if not path.exists():
            pq.write_table(make_events(n), path, row_group_size=1_000_000)
        db = work / f"bench_{n}.duckdb"
        db.unlink(missing_ok=True)
        imp = _run("import", path, db)
        query = min((_run("query", path, db) for _ in range(3)), key=lambda r: r["seconds"])
        print(
            f"{n:>12,} {imp['seconds']:>9.2f} {imp['rows'] / imp['seconds']:>12,.0f} "
            f"{imp['peak_rss_mb']:>12,.0f} {query['seconds']:>8.3f} {query['rows']:>10,}"
        )
        db.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
