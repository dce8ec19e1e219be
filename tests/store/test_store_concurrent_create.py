"""A new store file opened by several connections of one process at the same moment."""

from __future__ import annotations

import threading
from pathlib import Path

from tokenplan.store import DuckDBStore


def test_connections_creating_one_new_store_together_all_open_it(tmp_path: Path) -> None:
    # An SDK sink's batcher and a reader can be first to a new file together; DuckDB rolls
    # the later CREATE back with a write-write conflict, which must not lose the batch.
    for attempt in range(10):
        path = tmp_path / f"new-{attempt}.duckdb"
        start = threading.Barrier(6)
        failures: list[BaseException] = []

        def open_it(
            path: Path = path,
            start: threading.Barrier = start,
            failures: list[BaseException] = failures,
        ) -> None:
            start.wait()
            try:
                with DuckDBStore(path):
                    pass
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
