"""The series a forecast reads: a bucket holding one the source did not log is unknown.

A usage series file may leave a metric empty for an hour its log missed (NASA's 1995 trace
does, for 3.4 days). Summed into days, the hours around it would read as a real dip, and a
forecast would take an outage of the log for one of the traffic: with ``complete`` (what
`tokenplan forecast` reads) the day is unknown instead, in the DuckDB store, in the Parquet
lake store and in the engine rollup alike. Without it (what `tokenplan usage` shows) a day
sums what was recorded.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tokenplan.collect import import_file
from tokenplan.events import UsageEvent, events_to_table
from tokenplan.scale.lake_rollup import rollup_lake
from tokenplan.store import DuckDBStore, open_store
from tokenplan.store.lake import export_lake

START = pd.Timestamp("2025-03-03T00:00:00Z")
MISSED = START + pd.Timedelta(hours=24 + 13)  # the second UTC day, 13:00


def _hours(path: Path) -> Path:
    """Three days of hourly requests and tokens, the requests of one hour not logged."""
    stamps = pd.date_range(START, periods=72, freq="h")
    requests = pd.Series(np.arange(1, 73) * 10, dtype="Int64")
    requests[stamps == MISSED] = pd.NA
    pd.DataFrame(
        {
            "timestamp": stamps.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model": "gpt-4o",
            "requests": requests,
            "input_tokens": 1000,
            "output_tokens": 100,
        }
    ).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> DuckDBStore:
    folder = tmp_path_factory.mktemp("unknown")
    store = DuckDBStore(":memory:")
    import_file(store, _hours(folder / "hours.csv"))
    return store


def _by_day(frame: pd.DataFrame) -> dict[str, float]:
    return {f"{ds:%Y-%m-%d %H:%M}": y for ds, y in zip(frame["ds"], frame["y"], strict=True)}


def test_the_hour_stays_unknown_and_its_day_too(store: DuckDBStore) -> None:
    hours = store.series("requests", "1h", complete=True)
    assert hours["y"].isna().sum() == 1
    assert hours.loc[hours["y"].isna(), "ds"].iloc[0] == MISSED.tz_localize(None)
    days = _by_day(store.series("requests", "1d", complete=True))
    first, third = sum(range(1, 25)) * 10, sum(range(49, 73)) * 10
    assert days["2025-03-03 00:00"] == first
    assert np.isnan(days["2025-03-04 00:00"])  # 23 hours known: not a day's total
    assert days["2025-03-05 00:00"] == third
    # What was recorded (`tokenplan usage`): the day sums its 23 logged hours.
    recorded = _by_day(store.series("requests", "1d"))
    assert recorded["2025-03-04 00:00"] == sum(range(25, 49)) * 10 - 380
    assert np.isnan(store.series("requests", "1h")["y"]).sum() == 1
    # A metric every hour of which was logged is summed as before.
    assert store.series("input_tokens", "1d", complete=True)["y"].tolist() == [24_000.0] * 3


def test_a_local_day_holding_the_hour_is_unknown(store: DuckDBStore) -> None:
    # Days from 16:00Z (midnight in UTC+8): 13:00Z on the 4th falls in the day from 16:00Z
    # on the 3rd, whose first and last local days are cut by the data (kept here: the store
    # reports what it has; the forecast command drops partial ends).
    days = _by_day(store.series("requests", "1d", tz="Asia/Shanghai", complete=True))
    assert np.isnan(days["2025-03-03 16:00"])
    assert not np.isnan(days["2025-03-02 16:00"])
    assert not np.isnan(days["2025-03-04 16:00"])
    assert days["2025-03-04 16:00"] == sum(range(41, 65)) * 10


def test_one_models_missed_hour_leaves_the_total_unknown(tmp_path: Path) -> None:
    # Two models in one file; the second's log missed an hour. Its total at that hour, and
    # that day's, would otherwise be the first model's alone. A third model never records
    # tokens (a requests-only source): that is not a missed hour, and the totals keep the
    # tokens that are known.
    stamps = pd.date_range(START, periods=48, freq="h")
    rows = []
    for model, tokens in (("a", 1000), ("b", 10), ("c", None)):
        for stamp in stamps:
            missed = model == "b" and stamp == MISSED
            rows.append(
                {
                    "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "model": model,
                    "requests": None if missed else 1,
                    "input_tokens": None if missed or tokens is None else tokens,
                    "output_tokens": None if missed or tokens is None else 0,
                }
            )
    path = tmp_path / "models.csv"
    pd.DataFrame(rows).astype({"requests": "Int64", "input_tokens": "Int64"}).to_csv(
        path, index=False
    )
    store = DuckDBStore(":memory:")
    import_file(store, path)
    hours = store.series("input_tokens", "1h", complete=True)
    assert hours["y"].isna().sum() == 1
    assert hours.loc[hours["ds"] == MISSED.tz_localize(None), "y"].isna().all()
    assert store.series("input_tokens", "1d", complete=True)["y"].tolist()[0] == 24 * 1010
    assert np.isnan(store.series("input_tokens", "1d", complete=True)["y"].tolist()[1])
    by_model = store.series("input_tokens", "1d", ("model",), complete=True)
    assert by_model.groupby("unique_id")["y"].apply(lambda y: int(y.isna().sum())).to_dict() == {
        "a": 0,
        "b": 1,
        "c": 2,  # never recorded: unknown, never a made-up 0
    }
    assert store.series("requests", "1d", complete=True)["y"].tolist()[0] == 72


def test_calls_with_unknown_tokens_do_not_blank_their_day() -> None:
    # A raw call whose usage the stream did not report is one call, not an hour nobody
    # recorded: the day keeps the tokens that are known, as before.
    store = DuckDBStore(":memory:")
    calls = [
        UsageEvent(
            ts=START.to_pydatetime() + pd.Timedelta(hours=h),
            provider="openai",
            model="gpt-4o",
            input_tokens=100 if h != 5 else 0,
            output_tokens=10 if h != 5 else 0,
            tokens_known=h != 5,
            cost_usd=Decimal("0.01"),
        )
        for h in range(24)
    ]
    store.write(events_to_table(calls))
    assert store.series("total_tokens", "1d", complete=True)["y"].tolist() == [23 * 110.0]


def test_the_lake_and_its_engine_rollup_agree(store: DuckDBStore, tmp_path: Path) -> None:
    from fugue import NativeExecutionEngine

    export_lake(store, str(tmp_path / "lake"))
    want = store.series("requests", "1d", complete=True)
    got = rollup_lake(
        str(tmp_path / "lake"), "requests", "1d", engine=NativeExecutionEngine(), complete=True
    )
    assert _by_day(got).keys() == _by_day(want).keys()
    assert np.isnan(got["y"].to_numpy()[1])
    np.testing.assert_array_equal(got["y"].to_numpy(), want["y"].to_numpy())
    with open_store(f"parquet:{tmp_path / 'lake'}", mode="read") as lake_store:
        np.testing.assert_array_equal(
            lake_store.series("requests", "1d", complete=True)["y"].to_numpy(), want["y"].to_numpy()
        )
    hours = rollup_lake(
        str(tmp_path / "lake"), "requests", "1h", engine=NativeExecutionEngine(), complete=True
    )
    assert int(hours["y"].isna().sum()) == 1
