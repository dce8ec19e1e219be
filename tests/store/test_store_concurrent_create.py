"""A store file opened by several connections of one process at the same moment, or held by
another process."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tokenplan.errors import StoreError
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


def test_a_store_another_process_holds_names_that_process(tmp_path: Path) -> None:
    # The usual case: `tokenplan serve` owns the file and a user runs `tokenplan budget` on it.
    path = tmp_path / "held.duckdb"
    DuckDBStore(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, duckdb; con = duckdb.connect(sys.argv[1]); print('open', flush=True); "
            "sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreError) as info:
            DuckDBStore(path, mode="read")
        message = str(info.value)
        assert f"in use by another process (PID {holder.pid})" in message
        assert "/v1/plan" in message
    finally:
        holder.communicate("")
    with DuckDBStore(path, mode="read"):
        pass  # free again once the holder is gone
