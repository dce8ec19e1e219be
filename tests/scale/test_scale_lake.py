"""Usage series rolled up from a Parquet lake on an engine equal the DuckDB store's own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lake_data import build_store
from tokenplan.errors import InvalidInput
from tokenplan.events import UsageEvent, events_to_table
from tokenplan.scale.lake_rollup import files_by_provider, rollup_lake
from tokenplan.store import DuckDBStore, open_store
from tokenplan.store.lake import export_lake

T0 = datetime(2025, 3, 1, 22, tzinfo=UTC)
PROVIDERS = ("anthropic", "my/relay", None)


def _events(n: int = 400, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    events = []
    for i in range(n):
        minute = int(rng.integers(0, 3 * 24 * 60))
        # Three hours of openai streams without usage: their tokens are unknown (NULL).
        known = not 24 * 60 <= minute < 27 * 60
        events.append(
            UsageEvent(
                ts=T0 + timedelta(minutes=minute),
                provider="anthropic",
                model=str(rng.choice(["claude-a", "claude-b", "gpt-x"])),
                input_tokens=int(rng.integers(0, 5000)) if known else 0,
                output_tokens=int(rng.integers(0, 800)) if known else 0,
                team=None if i % 5 == 0 else str(rng.choice(["ml", "web"])),
                cost_usd=Decimal(int(rng.integers(0, 10**6))) / Decimal(10**9),
                tokens_known=known,
            )
        )
    table = events_to_table(events)
    provider = pa.array([PROVIDERS[i % 3] for i in range(n)], pa.string())
    return table.set_column(table.schema.get_field_index("provider"), "provider", provider)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DuckDBStore]:
    """The same rows in a DuckDB store and in the lake `tokenplan export --parquet` writes."""
    root = tmp_path_factory.mktemp("lake") / "usage-lake"
    store = DuckDBStore(":memory:")
    store.write(_events())
    export_lake(store, str(root))
    return root, store


@pytest.fixture(scope="module")
def bundled_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DuckDBStore]:
    """The lake tests' store (real traces, report buckets, every column) and its lake."""
    folder = tmp_path_factory.mktemp("bundled")
    store = DuckDBStore(build_store(folder / "store.duckdb"))
    export_lake(store, str(folder / "lake"))
    return folder / "lake", store


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got = got.assign(ds=pd.to_datetime(got["ds"]).astype("datetime64[ns]"))
    want = want.assign(ds=pd.to_datetime(want["ds"]).astype("datetime64[ns]"))
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), want.reset_index(drop=True), check_dtype=False, rtol=1e-12
    )


def test_each_file_is_read_with_its_provider(lake: tuple[Path, DuckDBStore]) -> None:
    root, _ = lake
    files = files_by_provider(str(root))
    assert {p for _, p in files} == {"anthropic", "my/relay", None}
    assert all(path.endswith(".parquet") for path, _ in files)


@pytest.mark.parametrize(
    ("metric", "freq", "by"),
    [
        ("total_tokens", "1h", ("provider",)),
        ("cost_usd", "1d", ("model", "team")),
        ("requests", "10min", ()),
    ],
)
def test_bundled_lake_rollup_equals_the_store_and_the_lake_store(
    bundled_lake: tuple[Path, DuckDBStore], metric: str, freq: str, by: tuple[str, ...]
) -> None:
    from fugue import NativeExecutionEngine

    root, store = bundled_lake
    got = rollup_lake(str(root), metric, freq, by, engine=NativeExecutionEngine())
    _same(got, store.series(metric, freq, by))
    with open_store(f"parquet:{root}", mode="read") as lake_store:
        _same(got, lake_store.series(metric, freq, by))


@pytest.mark.parametrize(
    ("metric", "freq", "by"),
    [
        ("total_tokens", "1h", ()),
        ("total_tokens", "1h", ("provider", "team")),
        ("cost_usd", "6h", ("model",)),
        ("requests", "1d", ("provider",)),
    ],
)
def test_native_rollup_equals_the_stores(
    lake: tuple[Path, DuckDBStore], metric: str, freq: str, by: tuple[str, ...]
) -> None:
    from fugue import NativeExecutionEngine

    root, store = lake
    got = rollup_lake(str(root), metric, freq, by, engine=NativeExecutionEngine())
    want = store.series(metric, freq, by)
    _same(got, want)
    if metric == "total_tokens":
        assert got["y"].isna().any()  # unknown tokens stay unknown, never 0


def test_dask_rollup_equals_the_stores(dask_client: object, lake: tuple[Path, DuckDBStore]) -> None:
    root, store = lake
    since, until = T0 + timedelta(hours=5), T0 + timedelta(days=2)
    got = rollup_lake(
        str(root), "total_tokens", "1h", ("model",), since=since, until=until, engine=dask_client
    )
    _same(got, store.series("total_tokens", "1h", ("model",), since, until))


def test_dask_rollup_by_provider_names_the_missing_one(
    dask_client: object, lake: tuple[Path, DuckDBStore]
) -> None:
    # Dask hands a file's missing provider to its task as NA, not None.
    root, store = lake
    got = rollup_lake(str(root), "requests", "1d", ("provider",), engine=dask_client)
    _same(got, store.series("requests", "1d", ("provider",)))
    assert "(none)" in set(got["unique_id"])


def test_months_stay_with_duckdb(lake: tuple[Path, DuckDBStore]) -> None:
    root, _ = lake
    with pytest.raises(InvalidInput, match="calendar months"):
        rollup_lake(str(root), "requests", "1mo", engine="dask")
