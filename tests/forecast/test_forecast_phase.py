"""A series keeps the phase of its own buckets: the forecast continues its grid."""

from __future__ import annotations

import pandas as pd
import pytest
from forecast_frames import usage

from tokenplan.forecast import forecast


@pytest.mark.parametrize(
    ("start", "n", "freq", "freq_arg"),
    [
        ("2024-01-01 16:00", 70, "1D", "1d"),  # days starting at 16:00Z
        ("2024-01-03 00:00", 30, "7D", "1w"),  # weeks starting on a Wednesday
        ("2024-01-01 00:03", 144 * 4, "10min", "10min"),  # ten-minute buckets at :03
        ("2024-01-01 00:30", 24 * 21, "1h", "1h"),  # hours at half past
    ],
)
def test_first_forecast_bucket_is_one_step_after_the_last(
    start: str, n: int, freq: str, freq_arg: str
) -> None:
    history = usage(n=n, start=start, freq=freq)
    res = forecast(history, horizon=7, freq=freq_arg, levels=(80,))
    step = pd.Timedelta(freq)
    expected = pd.date_range(history["ds"].max() + step, periods=7, freq=step)
    assert list(res.frame["ds"]) == list(expected)


def test_scattered_timestamps_snap_to_the_utc_grid() -> None:
    ds = pd.to_datetime(["2024-01-01 00:01:07", "2024-01-01 00:13:09", "2024-01-01 00:27:00"])
    history = pd.DataFrame({"unique_id": "s", "ds": ds, "y": [1.0, 2.0, 3.0]})
    res = forecast(history, horizon=2, freq="10min", levels=(80,))
    assert list(res.frame["ds"]) == list(pd.to_datetime(["2024-01-01 00:30", "2024-01-01 00:40"]))
