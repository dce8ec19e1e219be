"""Parquet lake benchmark: export a store of synthetic calls, re-export one day, and read the
hourly by-model series from the lake against the same query on the store.

    python bench/lake.py [--rows 1000000] [--keep DIR]

Prints rows/s of the export, the lake's size beside the store file's, and query seconds (all
30 days, and the last day alone, where the lake skips the other days' row groups).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from ingest import make_events
from tokenplan.collect.importer import import_file
from tokenplan.pricing import PriceBook
from tokenplan.store import open_store
from tokenplan.store.lake import export_lake


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def _timed(work):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    result = work()
    return result, time.perf_counter() - t0


def run(rows: int, folder: Path) -> None:
    events, db, lake = folder / "events.parquet", folder / "usage.duckdb", folder / "lake"
    pq.write_table(make_events(rows), events)
    with open_store(db) as store:
        import_file(store, events, fmt="parquet", prices=PriceBook())
    with open_store(db, mode="read") as store:
        result, export_s = _timed(lambda: export_lake(store, str(lake)))
        _, again_s = _timed(lambda: export_lake(store, str(lake)))
        day, next_day = datetime(2025, 6, 15, tzinfo=UTC), datetime(2025, 6, 16, tzinfo=UTC)
        one, day_s = _timed(lambda: export_lake(store, str(lake), since=day, until=next_day))
        last = datetime(2025, 6, 30)
        _, store_q = _timed(lambda: store.series("total_tokens", "1h", ["model"]))
        _, store_day = _timed(lambda: store.series("total_tokens", "1h", ["model"], since=last))
    source, open_s = _timed(lambda: open_store(f"parquet:{lake}", mode="read"))
    with source:
        _, lake_q = _timed(lambda: source.series("total_tokens", "1h", ["model"]))
        _, lake_day = _timed(lambda: source.series("total_tokens", "1h", ["model"], since=last))
    print(f"rows                 {result.rows:,} over {result.days} days, {result.files} files")
    print(f"export               {export_s:.2f} s ({result.rows / export_s:,.0f} rows/s)")
    print(f"export again (same)  {again_s:.2f} s")
    print(f"export one day       {day_s:.2f} s ({one.rows:,} rows)")
    print(f"size                 lake {_size_mb(lake):.1f} MB, store {_size_mb(db):.1f} MB")
    print(f"open parquet:DIR     {open_s:.3f} s")
    print(f"hourly by model      store {store_q:.3f} s, lake {lake_q:.3f} s")
    print(f"  the last day only  store {store_day:.3f} s, lake {lake_day:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="Folder to keep the store and lake in.")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args.rows, args.keep)
        return
    with tempfile.TemporaryDirectory() as folder:
        run(args.rows, Path(folder))


if __name__ == "__main__":
    main()
