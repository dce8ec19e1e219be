"""Several short series with a long horizon: the boosting candidate drops out, nothing crashes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tokenplan.forecast import forecast


def test_six_two_week_series_with_a_week_horizon() -> None:
    rng = np.random.default_rng(3)
    ds = pd.date_range("2025-01-01", periods=14 * 24, freq="h")
    daily = 1 + 0.5 * np.sin(2 * np.pi * np.arange(len(ds)) / 24)
    frames = [
        pd.DataFrame(
            {
                "unique_id": f"s{i}",
                "ds": ds,
                "y": 100 * (i + 1) * daily * rng.gamma(20, 0.05, len(ds)),
            }
        )
        for i in range(6)
    ]
    result = forecast(pd.concat(frames, ignore_index=True), horizon=168, freq="1h")
    assert len(result.frame) == 6 * 168
    assert result.frame[["mean", "lo_80", "hi_80"]].notna().all().all()
    assert (result.frame["lo_80"] <= result.frame["mean"]).all()


def test_a_panel_of_short_series_is_judged_where_the_global_model_could_learn() -> None:
    # Thirty series of 18 hours at 10 minutes with a 4-hour cycle no model is told of: the
    # global model learns it from the lags. Before its two earliest backtest windows there is
    # too little history to learn from; judged there too, it had no score and never joined.
    rng = np.random.default_rng(0)
    t = np.arange(108 + 36)
    frames, future = [], {}
    for i in range(30):
        y = 100 + 30 * np.sin(2 * np.pi * t / 24 + rng.uniform(0, 2 * np.pi))
        y = y + rng.normal(0, 3, len(t))
        ds = pd.date_range("2024-01-01", periods=108, freq="10min")
        frames.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": y[:108]}))
        future[f"s{i}"] = y[108:]
    result = forecast(pd.concat(frames, ignore_index=True), horizon=36, freq="10min")
    backtest = result.backtest
    assert np.isfinite(backtest.loc[backtest["method"] == "lightgbm", "mase"]).all()
    mean = result.frame.groupby("unique_id")["mean"].apply(np.asarray)
    error = np.mean([np.abs(mean[u] - future[u]).mean() for u in future])
    last = np.mean(
        [np.abs(f["y"].iloc[-1] - future[f["unique_id"].iloc[0]]).mean() for f in frames]
    )
    assert error < 0.3 * last  # about 0.16x; 0.74x judged on every window
    note = result.notes["s0"]
    assert "judged without the 2 window(s) that lightgbm could not forecast" in note
