"""Bands of a bursty real series stay within reach of what it has recorded.

The series is a real ServeGen client (tests/data/shared/servegen_language): hourly tokens
that swing between empty hours (about one in six) and bursts at 20x the median hour. Its
log-space backtest errors once reached +-17 and put 95% bands near 10^18 tokens beside a
recorded peak of 7x10^8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tokenplan.forecast import Forecaster, forecast
from tokenplan.forecast.conformal import log_shift
from tokenplan.forecast.selection import RUNAWAY

CLIENTS = (
    Path(__file__).parents[1] / "data" / "shared" / "servegen_language" / "clients_10min.csv.gz"
)


@pytest.fixture(scope="module")
def bursty() -> pd.DataFrame:
    """Client m-large/61's hourly tokens, the first 12 days."""
    raw = pd.read_csv(CLIENTS)
    raw = raw[(raw["model"] == "m-large") & (raw["client"] == 61)]
    ds = pd.to_datetime(raw["timestamp"]).dt.tz_localize(None).dt.floor("1h")
    y = (raw["input_tokens"] + raw["output_tokens"]).astype(float)
    hourly = pd.DataFrame({"ds": ds, "y": y}).groupby("ds")["y"].sum()
    grid = pd.date_range(hourly.index.min(), periods=288, freq="1h")
    frame = hourly.reindex(grid, fill_value=0.0).rename_axis("ds").reset_index()
    frame.insert(0, "unique_id", "m-large/61")
    return frame


def test_the_series_is_as_bursty_as_described(bursty: pd.DataFrame) -> None:
    y = bursty["y"].to_numpy()
    assert (y == 0).mean() > 0.15
    assert y.max() > 10 * np.median(y[y > 0])


def test_bands_and_paths_stay_below_three_times_the_recorded_peak(bursty: pd.DataFrame) -> None:
    peak = float(bursty["y"].max())
    result = forecast(bursty, horizon=24, freq="1h", levels=(80, 95))
    frame = result.frame
    assert (frame["hi_95"] <= RUNAWAY * peak * (1 + 1e-9)).all()
    assert (frame["hi_80"] <= frame["hi_95"]).all()
    assert (frame["lo_95"] <= frame["lo_80"]).all()
    assert (frame["lo_80"] <= frame["mean"]).all()
    assert (frame["mean"] <= frame["hi_80"]).all()
    paths = result.sample_paths("m-large/61", n=500)
    assert paths.max() <= RUNAWAY * peak * (1 + 1e-9)
    day = result.sum_interval("m-large/61")
    assert day["lo_95"] <= day["point"] <= day["hi_95"] <= 24 * RUNAWAY * peak


def test_the_band_is_mostly_read_off_errors_not_cut(bursty: pd.DataFrame) -> None:
    # The ceiling is a guard, not the band: errors in log(y + level) leave most 80% bounds
    # below it (in log1p, every one of them was above).
    peak = float(bursty["y"].max())
    frame = forecast(bursty, horizon=24, freq="1h", levels=(80, 95)).frame
    assert (frame["hi_80"] < RUNAWAY * peak * 0.999).mean() > 0.5


def test_an_empty_hour_beside_a_busy_one_is_a_bounded_error() -> None:
    level = 5e7
    recent = np.full(48, level)
    c = log_shift(recent, 24)
    assert c == pytest.approx(level)
    assert np.log(level + c) - np.log(0 + c) == pytest.approx(np.log(2))
    # Counts keep log1p: the shift never goes below 1.
    assert log_shift(np.full(48, 0.2), 24) == 1.0
    assert log_shift(np.full(48, np.nan), 24) == 1.0


def test_a_saved_forecaster_keeps_the_shift_the_ceiling_and_the_tails(
    bursty: pd.DataFrame, tmp_path: Path
) -> None:
    fitted = Forecaster("1h", 24, (80, 95), local_models=False).fit(bursty)
    model = fitted.predict().paths["m-large/61"]
    assert model.shift > 1.0
    assert np.isfinite(model.ceiling)
    path = tmp_path / "f.json"
    fitted.save(str(path))
    loaded = Forecaster.load(str(path)).predict()
    again = loaded.paths["m-large/61"]
    assert (again.shift, again.ceiling) == (model.shift, model.ceiling)
    assert np.isfinite(model.tail_df)
    assert again.tail_df == model.tail_df
    assert loaded.sum_interval("m-large/61") == fitted.predict().sum_interval("m-large/61")
