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
