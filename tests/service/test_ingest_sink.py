"""`DuckDBSink`: concurrent batches group-committed, each answered with its own result."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from app_harness import hourly_events

from tokenplan.errors import StoreError
from tokenplan.events import events_to_table
from tokenplan.service.contracts import AcceptResult
from tokenplan.service.sinks import DuckDBSink, SinkClosed
from tokenplan.store import open_store

EVENTS = hourly_events(hours=24)


def batch(start: int, n: int = 10) -> pa.Table:
    return events_to_table(EVENTS[start : start + n], source="test")


def test_concurrent_batches_share_commits_and_keep_their_own_counts(tmp_path: Path) -> None:
    groups: list[int] = []
    with open_store(tmp_path / "s.duckdb") as store:
        write_each = store.write_each

        def recording(tables: Any) -> Any:
            groups.append(len(tables))
            return write_each(tables)

        store.write_each = recording  # type: ignore[method-assign]
        commits = []
        sink = DuckDBSink(store, on_commit=[lambda: commits.append(1)])
        results: dict[int, AcceptResult] = {}
        gate = threading.Barrier(16)

        def post(i: int) -> None:
            gate.wait()
            # Batches 0-7 are fresh; 8-15 repeat 0-7 (a retry racing the original).
            results[i] = sink.accept(batch(10 * (i % 8)))

        threads = [threading.Thread(target=post, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        sink.close()
        rows = store.summary().rows
    assert rows == 80
    assert sum(r.accepted for r in results.values()) == 80
    assert sum(r.duplicates for r in results.values()) == 80
    for i in range(8):
        assert {results[i].accepted, results[i + 8].accepted} == {0, 10}
    assert sum(groups) >= 16
    assert max(groups) > 1  # some requests shared a commit
    assert commits


def test_a_failing_batch_fails_alone(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.duckdb") as store:
        sink = DuckDBSink(store)
        bad = batch(0).rename_columns([*batch(0).column_names[:-1], "origin"])
        results: dict[str, Any] = {}

        def post(name: str, table: pa.Table) -> None:
            try:
                results[name] = sink.accept(table)
            except StoreError as exc:
                results[name] = exc

        threads = [
            threading.Thread(target=post, args=(name, table))
            for name, table in (("good1", batch(0)), ("bad", bad), ("good2", batch(10)))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        sink.close()
        assert store.summary().rows == 20
    assert results["good1"] == AcceptResult(10, 0)
    assert results["good2"] == AcceptResult(10, 0)
    assert isinstance(results["bad"], StoreError)
    assert "USAGE_SCHEMA" in str(results["bad"])


def test_close_commits_what_is_queued_and_then_refuses(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.duckdb") as store:
        sink = DuckDBSink(store)
        assert sink.accept(batch(0)) == AcceptResult(10, 0)
        assert sink.accept(batch(0, 0)) == AcceptResult(0, 0)
        sink.close()
        sink.close()
        with pytest.raises(SinkClosed, match="shutting down") as info:
            sink.accept(batch(10))
        assert info.value.status == 503
        assert store.summary().rows == 10
