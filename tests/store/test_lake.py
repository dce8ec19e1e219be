"""The Parquet lake: exact round trips, the Hive layout on disk, re-exports, a read-only source."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake_data import FILES, ODD_PROVIDER, build_store, raw_events
from tokenplan.collect import import_file
from tokenplan.errors import InvalidInput, StoreError
from tokenplan.events import COUNT_METRICS, USAGE_SCHEMA, events_to_table
from tokenplan.store import DuckDBStore, open_store
from tokenplan.store.lake import (
    FILES_GLOB,
    OPEN_MARKS_FILE,
    LakeExport,
    export_lake,
    lake_files,
)
from tokenplan.store.lake_store import LakeStore
from tokenplan.store.missing_prices import missing_prices
from tokenplan.store.pulls import checkpoint
from tokenplan.store.queries import DuckDBQueries
from tokenplan.store.rate_limits import read_rate_limits
from tokenplan.store.reconcile import reconcile_sides
from tokenplan.store.schema import COLUMNS

_COLS = ", ".join(f'"{c}"' for c in COLUMNS)
TOKEN_COLUMNS = (*COUNT_METRICS, "unsplit_tokens", "cache_write_1h_tokens")


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("lake-store") / "usage.duckdb")


@pytest.fixture
def lake(tmp_path: Path, store_path: Path) -> Path:
    with open_store(store_path, mode="read") as store:
        export_lake(store, str(tmp_path / "lake"))
    return tmp_path / "lake"


def _rows(store: DuckDBStore) -> list[tuple[Any, ...]]:
    return store.connection.execute(f"SELECT {_COLS} FROM usage ORDER BY ALL").fetchall()


def _totals(store: DuckDBStore) -> tuple[Any, ...]:
    sums = ", ".join(f'sum("{c}")::HUGEINT' for c in TOKEN_COLUMNS)
    sql = f"SELECT count(*), {sums}, sum(cost_usd) FROM usage"
    return store.connection.execute(sql).fetchall()[0]


def _files(lake: Path) -> list[str]:
    """The day files (the open-bucket marks beside them apart)."""
    return sorted(p.relative_to(lake).as_posix() for p in lake.glob(FILES_GLOB))


def _arrow(store: DuckDBStore) -> pa.Table:
    result = store.connection.sql(f"SELECT {_COLS} FROM usage").to_arrow_table()
    return result.read_all() if isinstance(result, pa.RecordBatchReader) else result


def test_store_to_lake_to_store_is_exact(tmp_path: Path, store_path: Path) -> None:
    with open_store(store_path, mode="read") as store:
        result = export_lake(store, str(tmp_path / "lake"))
        original, totals = _rows(store), _totals(store)
    assert result == LakeExport(
        str(tmp_path / "lake"), len(original), date(2023, 11, 16), date(2025, 8, 4), 4, 9
    )
    with open_store(f"parquet:{tmp_path / 'lake'}", mode="read") as lake:
        assert isinstance(lake, LakeStore)
        assert _rows(lake) == original
        assert _totals(lake) == totals
        rows = _arrow(lake)
    with DuckDBStore(tmp_path / "back.duckdb") as back:
        back.write(rows)
        assert _rows(back) == original
        assert _totals(back) == totals
    costs = [e.cost_usd for e in raw_events() if e.cost_usd is not None]
    assert totals[-1] == sum(costs, Decimal(0))
    assert isinstance(totals[-1], Decimal)
    assert totals[0] == 118 + 6 + 4 + len(raw_events())


def test_the_layout_is_hive_partitioned_by_utc_day_and_provider(
    lake: Path, store_path: Path
) -> None:
    with open_store(store_path, mode="read") as store:
        pairs = store.connection.execute("SELECT DISTINCT ts::DATE, provider FROM usage").fetchall()
    folders = {p.rsplit("/", 1)[0] for p in _files(lake)}
    null = "__HIVE_DEFAULT_PARTITION__"
    assert folders == {
        f"date={day.isoformat()}/provider={null if p is None else quote(p, safe='')}"
        for day, p in pairs
    }
    assert f"date=2023-11-16/provider={null}" in folders
    assert "date=2025-08-02/provider=my%2Frelay%3Dx%20y" in folders
    # Staged beside the lake, and nothing left there or inside it.
    assert sorted(p.name for p in lake.parent.iterdir()) == ["lake"]
    sides = {p.name for p in lake.glob("_tokenplan_*.csv")}
    assert OPEN_MARKS_FILE in sides
    assert sorted(p.name for p in lake.iterdir()) == sorted(
        {f.split("/")[0] for f in folders} | sides
    )
    # One microsecond before midnight UTC is the earlier day; midnight the later one.
    day_of = {
        row["request_id"]: part.parent.parent.name
        for part in lake.glob("date=*/provider=anthropic/*.parquet")
        for row in pq.read_table(part, columns=["request_id"]).to_pylist()
    }
    assert day_of["edge-2025-08-01T23:59:59.999999+00:00"] == "date=2025-08-01"
    assert day_of["edge-2025-08-02T00:00:00+00:00"] == "date=2025-08-02"


def test_files_keep_the_store_types_with_ts_as_a_utc_instant(lake: Path) -> None:
    expected = pa.schema(
        [
            pa.field(f.name, pa.timestamp("us", tz="UTC") if f.name == "ts" else f.type)
            for f in USAGE_SCHEMA
            if f.name != "provider"
        ]
    )
    for file in lake.glob(FILES_GLOB):
        assert pq.read_schema(file).remove_metadata().equals(expected, check_metadata=False)


def test_exporting_again_leaves_the_same_rows_and_files(lake: Path, store_path: Path) -> None:
    before = _files(lake)
    with open_store(store_path, mode="read") as store:
        original = _rows(store)
        export_lake(store, str(lake))
        inside_one_day = export_lake(
            store,
            f"parquet:{lake}",
            since=datetime(2025, 8, 2, 10, tzinfo=UTC),
            until=datetime(2025, 8, 2, 11, tzinfo=UTC),
        )
        on_that_day = store.connection.execute(
            "SELECT count(*) FROM usage WHERE ts::DATE = DATE '2025-08-02'"
        ).fetchall()[0][0]
    # A range inside a day widens to the whole day, so that day is replaced, not cut short.
    assert inside_one_day.first_day == date(2025, 8, 2)
    assert inside_one_day.end_day == date(2025, 8, 3)
    assert inside_one_day.rows == on_that_day
    assert _files(lake) == before
    with open_store(f"parquet:{lake}", mode="read") as again:
        assert _rows(again) == original


def test_an_export_replaces_exactly_the_days_of_its_range(
    tmp_path: Path, lake: Path, store_path: Path
) -> None:
    smaller = tmp_path / "smaller.duckdb"
    shutil.copy(store_path, smaller)
    with DuckDBStore(smaller) as store:
        store.connection.execute(
            "DELETE FROM usage WHERE provider = ? OR ts >= TIMESTAMP '2025-08-03'", [ODD_PROVIDER]
        )
    outside = {p: p.stat().st_ino for p in lake.glob("date=2023-11-16/*/*.parquet")}
    with open_store(smaller, mode="read") as store:
        result = export_lake(
            store,
            str(lake),
            since=datetime(2025, 8, 1, tzinfo=UTC),
            until=datetime(2025, 8, 4, tzinfo=UTC),
        )
        expected = _rows(store)
    assert (result.first_day, result.end_day) == (date(2025, 8, 1), date(2025, 8, 4))
    assert result.days == 2
    assert not list(lake.glob("date=*/provider=my%2F*"))  # the provider that left those days
    assert not (lake / "date=2025-08-03").exists()  # a day of the range with no rows now
    assert {p: p.stat().st_ino for p in outside} == outside  # days outside: not rewritten
    with open_store(f"parquet:{lake}", mode="read") as lake_store:
        assert _rows(lake_store) == expected


def test_only_day_and_provider_folders_are_the_lake(lake: Path, store_path: Path) -> None:
    files = lake_files(str(lake))
    crashed = lake / "_tokenplan_export-crashed" / "date=2025-08-01" / "provider=anthropic"
    crashed.mkdir(parents=True)
    shutil.copy(files[0], crashed / "part-0.parquet")
    (lake / "notes.parquet").write_bytes(b"not parquet")
    assert lake_files(f"parquet:{lake}") == files
    assert all(re.search(r"/date=[\d-]+/provider=[^/]+/part-0\.parquet$", f) for f in files)
    with (
        open_store(store_path, mode="read") as store,
        open_store(f"parquet:{lake}", mode="read") as lake_store,
    ):
        assert lake_store.summary() == store.summary()


def test_a_lake_source_refuses_every_write(
    lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = f"parquet:{lake}"
    for opening in (lambda: open_store(source), lambda: DuckDBStore(source)):
        with pytest.raises(InvalidInput, match=f"^{re.escape(source)} is a read-only source"):
            opening()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake"]  # no "parquet:…" file made
    rows = events_to_table(raw_events()[:2])
    with open_store(source, mode="read") as store:
        before = _rows(store)
        writes = (
            lambda: store.write(rows),
            lambda: store.write_once(rows, "k"),
            lambda: store.write_batches_once([("k", rows)]),
            lambda: store.write_each([rows]),
            lambda: import_file(store, FILES[1]),
        )
        for write in writes:
            with pytest.raises(InvalidInput, match="read-only source"):
                write()
        assert _rows(store) == before


def test_every_read_answers_as_the_store_does(lake: Path, store_path: Path) -> None:
    since, until = datetime(2025, 8, 1), datetime(2025, 8, 4)
    with (
        open_store(store_path, mode="read") as s,
        open_store(f"parquet:{lake}", mode="read") as lk,
    ):
        assert lk.summary() == s.summary()
        assert lk.time_bulk() == s.time_bulk()
        assert lk.bucket_seconds() == s.bucket_seconds() == 60
        for metric, freq, by in (
            ("cost_usd", "1d", ("provider",)),
            ("total_tokens", "1h", ("model", "team")),
            ("requests", "1w", ()),
        ):
            pd.testing.assert_frame_equal(
                lk.series(metric, freq, by, since, until, exact=True),
                s.series(metric, freq, by, since, until, exact=True),
            )
        ql, qs = DuckDBQueries(lk), DuckDBQueries(s)
        assert ql.usage_totals() == qs.usage_totals()
        assert ql.summary() == qs.summary()
        assert ql.model_providers(since) == qs.model_providers(since)
        assert ql.cache_read_share(since) == qs.cache_read_share(since)
        assert ql.widest_bucket_seconds(since) == qs.widest_bucket_seconds(since) == 86400
        pd.testing.assert_series_equal(
            ql.totals("total_tokens", "team", since).sort_index(),
            qs.totals("total_tokens", "team", since).sort_index(),
        )
        assert missing_prices(lk) == missing_prices(s)
        pd.testing.assert_frame_equal(
            reconcile_sides(lk, since, until), reconcile_sides(s, since, until)
        )
        # The store's other tables are there, empty: reads of them answer "nothing".
        assert read_rate_limits(lk) == []
        assert checkpoint(lk, "anthropic", "usage") is None
        assert lk.file_imported("0" * 64) is None
        assert not lk.batch_written("any")
        with lk.reader() as other:
            assert isinstance(other, LakeStore)
            assert other.summary() == s.summary()


def test_a_missing_or_empty_lake_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(StoreError, match=rf"no Parquet lake at {re.escape(str(missing))} \(no"):
        open_store(f"parquet:{missing}", mode="read")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StoreError, match=re.escape(f"no files match {FILES_GLOB}")):
        open_store(f"parquet:{empty}", mode="read")
    with pytest.raises(InvalidInput, match="names no lake folder"):
        open_store("parquet:", mode="read")


def test_a_file_without_a_store_column_is_named(lake: Path) -> None:
    file = sorted(lake.rglob("*.parquet"))[-1]
    pq.write_table(pq.read_table(file).drop_columns(["cost_usd", "ts"]), file)
    with pytest.raises(StoreError) as caught:
        open_store(f"parquet:{lake}", mode="read")
    assert f"{file} in the lake {lake} has no column ts, cost_usd" in str(caught.value)


def test_bad_targets_and_ranges_are_refused(tmp_path: Path, store_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with open_store(store_path, mode="read") as store:
        with pytest.raises(InvalidInput, match="ftp://host/lake: a lake cannot live at a ftp://"):
            export_lake(store, "ftp://host/lake")
        with pytest.raises(InvalidInput, match="is a file; give a folder"):
            export_lake(store, str(a_file))
        with pytest.raises(InvalidInput, match="is not before --until"):
            export_lake(
                store, str(tmp_path / "l"), since=datetime(2025, 8, 3), until=datetime(2025, 8, 1)
            )
        nothing = export_lake(store, str(tmp_path / "l"), since=datetime(2030, 1, 1))
        assert (nothing.rows, nothing.first_day) == (0, None)
    with pytest.raises(InvalidInput, match="ftp://"):
        open_store("parquet:ftp://host/lake", mode="read")


def test_an_unreachable_object_store_is_named() -> None:
    # No network is needed: without it DuckDB cannot fetch httpfs; with it, the bucket is absent.
    url = "s3://tokenplan-test-no-such-bucket-7f3a/lake"
    with pytest.raises(StoreError, match=re.escape(url)):
        open_store(f"parquet:{url}", mode="read")


def test_a_bucket_stored_still_open_is_open_in_the_lake_too(tmp_path: Path) -> None:
    """A pulled hour still open is forecast by the store's plan; the lake's must not read it
    as a whole hour, or the two would show different figures for the same data."""
    from tokenplan.capacity import PlanSettings, make_plan

    hours = pd.date_range("2025-06-01", periods=24 * 8, freq="h")
    given = {
        "ts": hours.to_pydatetime().tolist(),
        "bucket_s": [3600] * len(hours),
        "provider": ["anthropic"] * len(hours),
        "model": ["claude-sonnet-4-5"] * len(hours),
        "requests": [10] * len(hours),
        "input_tokens": [1_000 + 100 * (h.hour % 12) for h in hours],
        "output_tokens": [100] * len(hours),
        "request_id": [f"bucket-{h:%Y%m%d%H}" for h in hours],
        "source": ["pull"] * len(hours),
    }
    full = pa.table(
        {f.name: given.get(f.name, [None] * len(hours)) for f in USAGE_SCHEMA},
        schema=USAGE_SCHEMA,
    )
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        store.write(full)
        last = hours[-1].to_pydatetime()
        store.connection.execute(
            "INSERT INTO tokenplan_pull_partials VALUES ('anthropic', 'usage', ?, ?)",
            [f"bucket-{last:%Y%m%d%H}", last],
        )
        export_lake(store, str(tmp_path / "lake"))
        settings = PlanSettings(horizon_hours=24)
        from_store = make_plan(store, settings=settings)
        with open_store(f"parquet:{tmp_path / 'lake'}", mode="read") as lake:
            assert lake.open_since() == store.open_since() == last
            from_lake = make_plan(lake, settings=settings)
    assert from_lake.as_of == from_store.as_of == pd.Timestamp(last)
    # The marks are not Parquet: the documented Dask and pyarrow reads see the days alone.
    import dask.dataframe as dd
    import pyarrow.dataset as pads

    from tokenplan.store.lake import hive_partitioning

    parts = {"partitioning": hive_partitioning()}
    assert len(dd.read_parquet(tmp_path / "lake", dataset=parts)) == len(hours)
    assert pads.dataset(tmp_path / "lake", **parts).count_rows() == len(hours)
    pd.testing.assert_frame_equal(
        from_lake.forecast_frame("total_tokens"), from_store.forecast_frame("total_tokens")
    )


def test_reported_rate_limits_and_billed_costs_read_from_the_lake_as_from_the_store(
    tmp_path: Path,
) -> None:
    """Headroom reads the limits answers reported, `reconcile` the billed costs: from the lake
    they must be the store's, "no key" ('') and 12-decimal amounts included."""
    from tokenplan.events import ObservedLimit
    from tokenplan.store.pulls import CostRow, save_cost_page
    from tokenplan.store.rate_limits import record_rate_limits

    at = datetime(2025, 8, 1, 12)
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        store.write(events_to_table(raw_events()[:5]))
        record_rate_limits(
            store,
            [
                ObservedLimit(
                    provider="openai", model="gpt-4o", key_id=None, kind="tokens",
                    limit=800_000, remaining=799_000, reset="6ms", observed_at=at,
                ),
                ObservedLimit(
                    provider="anthropic", model='claude, "x"', key_id="k1", kind="requests",
                    limit=50, remaining=None, reset=None, observed_at=at,
                ),
            ],
        )  # fmt: skip
        cost = CostRow(
            "c1", "anthropic", at, 86_400, "claude-sonnet-4-5", None, "tokens",
            Decimal("12.345678901234"), "USD", Decimal("12.345678901234"), "pull",
        )  # fmt: skip
        save_cost_page(store, "anthropic", [cost], complete_until=None)
        export_lake(store, str(tmp_path / "lake"))
        with open_store(f"parquet:{tmp_path / 'lake'}", mode="read") as lake:
            assert read_rate_limits(lake) == read_rate_limits(store)
            assert len(read_rate_limits(lake)) == 2
            costs = "SELECT * FROM provider_costs ORDER BY ALL"
            assert (
                lake.connection.execute(costs).fetchall()
                == store.connection.execute(costs).fetchall()
            )
