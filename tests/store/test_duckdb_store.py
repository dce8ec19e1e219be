"""The store contract: idempotent Arrow writes, atomic transactions, tidy zero-filled series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from tokenplan.errors import InvalidInput, StoreError
from tokenplan.events import USAGE_SCHEMA, UsageEvent, events_to_table
from tokenplan.store import DuckDBStore, open_store

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def _event(minutes: int, model: str = "m1", **kw: object) -> UsageEvent:
    fields: dict[str, object] = {
        "ts": T0 + timedelta(minutes=minutes),
        "provider": "anthropic",
        "model": model,
        "input_tokens": 100,
        "output_tokens": 10,
    }
    fields.update(kw)
    return UsageEvent(**fields)  # type: ignore[arg-type]


def test_file_store_persists_across_connections(db_path: Path) -> None:
    with DuckDBStore(db_path) as store:
        store.write(events_to_table([_event(0), _event(5)]))
    with DuckDBStore(db_path) as store:
        assert store.summary().rows == 2
        assert store.summary().total_tokens == 220


def test_env_variable_chooses_the_default_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENPLAN_DB", str(tmp_path / "env.duckdb"))
    with open_store() as store:
        assert store.path == str(tmp_path / "env.duckdb")
    assert (tmp_path / "env.duckdb").exists()


def test_request_id_is_counted_once_across_and_within_writes() -> None:
    store = DuckDBStore(":memory:")
    first = store.write(
        events_to_table([_event(0, request_id="a"), _event(1, request_id="a"), _event(2)])
    )
    assert (first.inserted, first.duplicates) == (2, 1)
    again = store.write(events_to_table([_event(0, request_id="a"), _event(3, request_id="b")]))
    assert (again.inserted, again.duplicates) == (1, 1)
    assert store.summary().requests == 3


def test_failed_write_inside_transaction_leaves_store_unchanged() -> None:
    store = DuckDBStore(":memory:")
    store.write(events_to_table([_event(0)]))
    before = store.summary()

    def fail_half_way() -> None:
        with store.transaction():
            store.write(events_to_table([_event(1), _event(2)]))
            raise RuntimeError("parser failed half way")

    with pytest.raises(RuntimeError):
        fail_half_way()
    assert store.summary() == before


def test_wrong_columns_are_refused() -> None:
    store = DuckDBStore(":memory:")
    with pytest.raises(StoreError, match="USAGE_SCHEMA"):
        store.write(pa.table({"ts": [T0]}))


def test_series_fills_empty_buckets_with_zero_and_splits_by_model() -> None:
    store = DuckDBStore(":memory:")
    store.write(
        events_to_table([_event(0, "a"), _event(10, "b"), _event(130, "a"), _event(131, "a")])
    )
    frame = store.series("requests", "1h", ["model"], exact=True)
    assert list(frame.columns) == ["unique_id", "ds", "y"]
    got = {(r.unique_id, r.ds.hour): r.y for r in frame.itertuples()}
    assert got == {("a", 0): 1, ("a", 1): 0, ("a", 2): 2, ("b", 0): 1, ("b", 1): 0, ("b", 2): 0}


def test_series_total_and_range_bounds() -> None:
    store = DuckDBStore(":memory:")
    store.write(events_to_table([_event(m) for m in range(0, 300, 30)]))
    frame = store.series(
        "total_tokens",
        "1h",
        since=T0 + timedelta(hours=1),
        until=T0 + timedelta(hours=6),
        exact=True,
    )
    assert set(frame.unique_id) == {"total"}
    assert [ts.hour for ts in frame.ds] == [1, 2, 3, 4, 5]
    assert list(frame.y) == [220, 220, 220, 220, 0]


def test_unknown_metric_is_nan_not_zero() -> None:
    store = DuckDBStore(":memory:")
    table = events_to_table([_event(0)]).set_column(
        USAGE_SCHEMA.get_field_index("input_tokens"),
        "input_tokens",
        pa.array([None], pa.int64()),
    )
    store.write(table)
    frame = store.series("total_tokens", "1h")
    assert frame.y.isna().all()


def test_cost_is_exact_decimal() -> None:
    store = DuckDBStore(":memory:")
    cost = Decimal("0.000000000001")
    store.write(events_to_table([_event(0, cost_usd=cost), _event(1, cost_usd=cost)]))
    frame = store.series("cost_usd", "1d", exact=True)
    assert frame.y.iloc[0] == Decimal("0.000000000002")


@pytest.mark.parametrize(
    ("metric", "by", "message"),
    [("tokens", [], "unknown metric"), ("requests", ["colour"], "cannot split by colour")],
)
def test_bad_query_names_the_problem(metric: str, by: list[str], message: str) -> None:
    store = DuckDBStore(":memory:")
    with pytest.raises(InvalidInput, match=message):
        store.series(metric, "1h", by)


def test_week_buckets_start_on_monday() -> None:
    store = DuckDBStore(":memory:")
    # 2025-03-01 is a Saturday.
    store.write(events_to_table([_event(0)]))
    frame = store.series("requests", "1w")
    assert frame.ds.iloc[0].weekday() == 0
    assert frame.ds.iloc[0].day == 24


def test_a_store_file_from_an_older_schema_is_upgraded(db_path: Path) -> None:
    import duckdb

    with duckdb.connect(str(db_path)) as con:
        con.execute(
            "CREATE TABLE usage (ts TIMESTAMP NOT NULL, bucket_s INTEGER NOT NULL, "
            "provider VARCHAR, model VARCHAR NOT NULL, team VARCHAR, feature VARCHAR, "
            '"user" VARCHAR, key_id VARCHAR, requests BIGINT, failed_requests BIGINT, '
            "rate_limited_requests BIGINT, input_tokens BIGINT, output_tokens BIGINT, "
            "cache_read_tokens BIGINT, cache_write_tokens BIGINT, latency_ms_sum DOUBLE, "
            "cost_usd DECIMAL(38, 12), request_id VARCHAR, source VARCHAR)"
        )
        con.execute(
            "INSERT INTO usage VALUES ('2025-03-01 00:00:00', 0, 'openai', 'gpt-4o', NULL, NULL,"
            " NULL, NULL, 1, 0, 0, 10, 5, 0, 0, NULL, NULL, 'old-1', 'old.csv')"
        )
    with DuckDBStore(db_path) as store:
        again = store.write(events_to_table([_event(0, request_id="old-1"), _event(1)]))
        assert (again.inserted, again.duplicates) == (1, 1)
        assert store.summary().rows == 2


def test_schema_1_usage_csv_ids_lose_their_inferred_width_and_twins_keep_the_later(
    db_path: Path,
) -> None:
    import duckdb

    from tokenplan.collect.columns import usage_table

    start = "bucket:usage_csv:2025-03-01T00:00:00.000000Z"
    ids = [f"{start}:3600::m::::", f"{start}:1800::m::::", "bucket:openai_usage:x:60::m::::"]
    with DuckDBStore(db_path) as store:
        for request_id, tokens in zip(ids, (10, 12, 7), strict=True):
            columns = {"ts": T0.replace(tzinfo=None), "bucket_s": 3600, "model": "m"}
            row = {**columns, "input_tokens": tokens, "output_tokens": 0}
            store.write(usage_table(1, {**row, "request_id": request_id}))
    with duckdb.connect(str(db_path)) as con:
        con.execute("UPDATE tokenplan_meta SET value = '1' WHERE key = 'schema_version'")
    with DuckDBStore(db_path) as store:
        kept = store.connection.execute(
            "SELECT request_id, input_tokens FROM usage ORDER BY request_id"
        ).fetchall()
        version = store.connection.execute("SELECT value FROM tokenplan_meta").fetchall()
        again = store.write(
            usage_table(
                1,
                {
                    "ts": T0.replace(tzinfo=None),
                    "bucket_s": 1800,
                    "model": "m",
                    "input_tokens": 12,
                    "output_tokens": 0,
                    "request_id": f"{start}::m::::",
                },
            )
        )
    assert kept == [("bucket:openai_usage:x:60::m::::", 7), (f"{start}::m::::", 12)]
    assert version == [("2",)]
    assert (again.inserted, again.duplicates) == (0, 1)


def test_series_pools_all_but_the_biggest_before_filling_the_grid() -> None:
    with DuckDBStore(":memory:") as store:
        events = [
            _event(60 * hour, model=f"m{k}", input_tokens=10 * (k + 1), output_tokens=0)
            for hour in range(3)
            for k in range(5)
        ]
        events.append(_event(60 * 3, model="m0", input_tokens=1, output_tokens=0))
        store.write(events_to_table(events))
        pooled = store.series("input_tokens", "1h", ["model"], top=3)
        whole = store.series("input_tokens", "1h", ["model"])
        few = store.series("input_tokens", "1h", ["model"], top=5)
    assert sorted(set(pooled["unique_id"])) == ["(other)", "m3", "m4"]
    assert pooled.groupby("ds")["y"].sum().tolist() == whole.groupby("ds")["y"].sum().tolist()
    other = pooled[pooled["unique_id"] == "(other)"]["y"].tolist()
    assert other == [60.0, 60.0, 60.0, 1.0]  # m0 + m1 + m2, zero-filled like any series
    assert few.equals(whole)
