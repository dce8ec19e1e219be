"""Candidates never read the future, and the statistical zoo works on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from conftest import usage
from tokenplan.forecast import forecast
from tokenplan.forecast.boosting import lags_for, run_boosting
from tokenplan.forecast.frequency import make_cadence
from tokenplan.forecast.preparation import to_series, validate


def test_lags_are_never_shorter_than_the_horizon() -> None:
    for h in (1, 6, 24, 48, 168):
        assert min(lags_for(h, (24, 168), 10_000)) >= h


def test_boosting_ignores_values_after_the_origin() -> None:
    cadence = make_cadence("1h")
    df = validate(usage(n=600))
    changed = df.copy()
    changed.loc[changed.index[-48:], "y"] *= 50  # the held-out stretch of cut 48
    a = run_boosting(to_series(df, cadence), [0, 48], 24, (24, 168), cadence)["lightgbm"]
    b = run_boosting(to_series(changed, cadence), [0, 48], 24, (24, 168), cadence)["lightgbm"]
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[0], b[0])


def test_pure_hour_of_day_series_is_learned_exactly() -> None:
    ds = pd.date_range("2024-01-01", periods=24 * 30, freq="1h")
    df = pd.DataFrame({"unique_id": "x", "ds": ds, "y": 100.0 + 10 * ds.hour})
    res = forecast(df, horizon=48, freq="1h", local_models=False)
    expected = 100.0 + 10 * res.frame["ds"].dt.hour
    assert np.abs(res.frame["mean"] - expected).max() < 1.0


def test_full_zoo_on_real_trace(shared_data: Path) -> None:
    raw = pd.read_csv(shared_data / "azure_llm_2024_conv_hourly" / "hourly.csv")
    df = pd.DataFrame(
        {
            "unique_id": raw["model"],
            "ds": pd.to_datetime(raw["timestamp"]).dt.tz_localize(None),
            "y": raw["requests"].astype(float),
        }
    )
    res = forecast(df, horizon=24, freq="1h", local_models=True)
    methods = set(res.backtest["method"])
    assert {"auto_ets", "auto_theta", "mstl", "seasonal_naive_24"} <= methods
    mean = res.frame["mean"]
    assert mean.between(0.3 * df["y"].min(), 2 * df["y"].max()).all()


def test_ten_minute_series_uses_daily_season() -> None:
    df = usage(n=144 * 5, freq="10min")
    res = forecast(df, horizon=36, freq="10min", local_models=False)
    assert "seasons [144]" in res.notes["s"]
