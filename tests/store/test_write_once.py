"""`DuckDBStore.write_once`: a keyed batch is written once, even when its rows carry no ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from tokenplan.errors import StoreError
from tokenplan.events import UsageEvent, events_to_table
from tokenplan.store import DuckDBStore, open_store

T0 = datetime(2025, 5, 1, 12, tzinfo=UTC)


def _rows(n: int, *, ids: bool) -> pa.Table:
    return events_to_table(
        UsageEvent(
            ts=T0 + timedelta(seconds=i),
            provider="anthropic",
            model="claude-haiku-4-5",
            input_tokens=100 + i,
            output_tokens=10,
            cost_usd=Decimal("0.000123456789"),
            request_id=f"r{i}" if ids else None,
        )
        for i in range(n)
    )


def test_a_key_written_twice_stores_its_rows_once(db_path: Path) -> None:
    with open_store(db_path) as store:
        first = store.write_once(_rows(5, ids=False), "stream/1-0")
        again = store.write_once(_rows(5, ids=False), "stream/1-0")
        other = store.write_once(_rows(2, ids=False), "stream/2-0")
        summary = store.summary()
        assert store.batch_written("stream/1-0")
        assert not store.batch_written("stream/3-0")
    assert (first.inserted, first.duplicates) == (5, 0)
    assert (again.inserted, again.duplicates) == (0, 5)
    assert (other.inserted, other.duplicates) == (2, 0)
    assert summary.requests == 7
    assert summary.cost_usd == Decimal("0.000864197523")


def test_request_ids_still_count_once_across_keys(db_path: Path) -> None:
    with open_store(db_path) as store:
        store.write_once(_rows(3, ids=True), "a")
        result = store.write_once(_rows(4, ids=True), "b")
        assert store.summary().requests == 4
    assert (result.inserted, result.duplicates) == (1, 3)


def test_a_failed_write_records_no_key(db_path: Path) -> None:
    bad = _rows(2, ids=False).drop_columns(["source"])
    with open_store(db_path) as store:
        with pytest.raises(StoreError, match="columns"):
            store.write_once(bad, "k")
        assert not store.batch_written("k")
        assert store.write_once(_rows(2, ids=False), "k").inserted == 2


def test_write_once_joins_an_outer_transaction(db_path: Path) -> None:
    with open_store(db_path) as store:
        with pytest.raises(RuntimeError, match="crash"):
            _write_then_crash(store)
        assert not store.batch_written("x")
        assert store.summary().rows == 0


def _write_then_crash(store: DuckDBStore) -> None:
    with store.transaction():
        store.write_once(_rows(2, ids=False), "x")
        raise RuntimeError("crash before commit")


def test_a_store_from_before_the_table_gets_it_on_open(db_path: Path) -> None:
    with open_store(db_path) as store:
        store.write(_rows(1, ids=False))
    con = duckdb.connect(str(db_path))
    con.execute("DROP TABLE tokenplan_batches")
    con.close()
    with open_store(db_path, mode="read") as store:
        assert not store.batch_written("k")
    with open_store(db_path) as store:
        assert store.write_once(_rows(1, ids=False), "k").inserted == 1
        assert store.summary().rows == 2


def test_many_keyed_batches_skip_the_written_and_the_repeated(db_path: Path) -> None:
    with open_store(db_path) as store:
        store.write_once(_rows(2, ids=False), "old")
        result = store.write_batches_once(
            [
                ("old", _rows(2, ids=False)),
                ("new", _rows(3, ids=False)),
                ("new", _rows(4, ids=False)),
            ]
        )
        assert (result.inserted, result.duplicates) == (3, 6)
        assert store.summary().rows == 5
        assert store.batch_written("new")
