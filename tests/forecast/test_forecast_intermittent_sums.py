"""Totals of intermittent series: sample paths are blocks of the series' own recent history."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tokenplan.errors import ModelFileError
from tokenplan.forecast import Forecaster, forecast
from tokenplan.forecast.bootstrap import HISTORY_CYCLES, block_starts, bootstrap_paths
from tokenplan.forecast.paths import COMMON_PRIOR
from tokenplan.forecast.persistence import _digest


def _office_hours(days: int, extra: int, seed: int) -> np.ndarray:
    """Hourly usage busy only from 09:00 to 17:00, ``extra`` hours past whole days."""
    rng = np.random.default_rng(seed)
    hours = np.arange(days * 24 + extra) % 24
    busy = (hours >= 9) & (hours < 17) & (rng.random(len(hours)) < 0.5)
    return np.where(busy, rng.lognormal(8, 1, len(hours)), 0.0)


def test_blocks_keep_the_time_of_day_of_the_horizon() -> None:
    # The history ends at 04:00, so the first forecast hour is 05:00.
    history = _office_hours(20, 5, seed=0)
    paths = bootstrap_paths(history, np.full(30, 100.0), 24, n=500, seed=1)
    hour = (5 + np.arange(30)) % 24
    office = (hour >= 9) & (hour < 17)
    assert paths[:, ~office].max() == 0.0
    assert (paths[:, office] > 0).mean() > 0.3


def test_half_the_paths_run_at_the_forecasts_rate() -> None:
    history = _office_hours(20, 0, seed=2)
    rate = history.mean()
    point = np.full(48, 3 * rate)  # the forecast says three times the history's rate
    paths = bootstrap_paths(history, point, 24, n=4000, seed=3)
    # Half at the history's rate, half at the forecast's: on average twice the history's.
    assert paths.sum(axis=1).mean() / (48 * rate) == pytest.approx(2.0, rel=0.1)
    raw = np.isin(paths, history).all(axis=1)
    assert 0.4 < raw.mean() < 0.6  # the unscaled half is made of recorded values only


def test_paths_need_a_history_with_usage_and_short_ones_start_anywhere() -> None:
    point = np.array([5.0, 0.0, 7.0])
    assert (bootstrap_paths(np.zeros(100), point, 24, n=10, seed=0) == point).all()
    assert (bootstrap_paths(np.array([]), point, 24, n=10, seed=0) == point).all()
    # Forty days hourly: one block a day, each starting at the horizon's hour.
    assert len(block_starts(40 * 24, 24, 24)) == 40
    assert (block_starts(40 * 24 + 7, 24, 24) % 24 == 7).all()
    # Three days: too few aligned blocks for a 95% band, so a block may start at any hour.
    assert len(block_starts(72, 24, 24)) == 49
    # No cycle: blocks are the whole horizon.
    paths = bootstrap_paths(np.arange(1.0, 41.0), np.ones(4), 1, n=200, seed=0)
    steps = np.diff(paths, axis=1)  # consecutive history values, some of them scaled
    assert np.allclose(steps, steps[:, :1])
    assert (steps > 0).all()


def test_less_than_a_cycle_of_history_still_gives_a_spread_of_totals() -> None:
    # Six hours of minutes, busy one minute in five: a day-long block would be the whole
    # history, and every path the same.
    rng = np.random.default_rng(4)
    history = np.where(rng.random(360) < 0.2, rng.lognormal(6, 1, 360), 0.0)
    paths = bootstrap_paths(history, np.full(60, history.mean()), 1440, n=1000, seed=0)
    assert len(np.unique(paths.sum(axis=1))) > 100


def _on_off_days(seed: int) -> pd.DataFrame:
    """A client that works on about half its days, 30% of the hours of those days."""
    rng = np.random.default_rng(seed)
    days = 28
    working = np.repeat(rng.random(days) < 0.5, 24)
    y = np.where(working & (rng.random(days * 24) < 0.3), rng.lognormal(10, 1, days * 24), 0.0)
    ds = pd.date_range("2024-01-01", periods=days * 24, freq="1h")
    return pd.DataFrame({"unique_id": "x", "ds": ds, "y": y})


def test_a_client_idle_on_half_its_days_may_be_idle_tomorrow() -> None:
    # Before: the day's band came from per-hour backtest errors tied by a copula, which cannot
    # make a day on which every hour is empty: its 80% band started at 62k (point 145k).
    result = forecast(_on_off_days(1), horizon=24, freq="1h", levels=(80, 95))
    got = result.sum_interval("x")
    assert got["point"] > 0
    assert got["lo_80"] == 0.0
    assert got["hi_95"] > 2 * got["point"]
    note = result.notes["x"]
    assert "intermittent" in note
    assert f"blocks of its last {HISTORY_CYCLES} cycle(s)" in note
    assert result.paths["x"].history is not None
    assert len(result.paths["x"].history) == HISTORY_CYCLES * 24


def test_a_busy_series_keeps_paths_from_its_errors(series: pd.DataFrame) -> None:
    result = forecast(series, horizon=24, freq="1h", local_models=False)
    assert all(model.history is None for model in result.paths.values())
    assert "block bootstrap" not in next(iter(result.notes.values()))


def test_the_history_behind_sums_round_trips_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    fitted = Forecaster("1h", 24, (80, 95), local_models=False).fit(_on_off_days(2))
    path = tmp_path / "f.json"
    fitted.save(str(path))
    loaded = Forecaster.load(str(path)).predict()
    want = fitted.predict()
    assert loaded.paths["x"].history.tobytes() == want.paths["x"].history.tobytes()
    assert loaded.paths["x"].season == 24
    assert loaded.sum_interval("x") == want.sum_interval("x")
    doc = json.loads(path.read_text())
    doc["body"]["result"]["paths"]["x"]["history"][3] = -1.0
    doc["digest"] = _digest(doc["body"], None)
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match="bad history"):
        Forecaster.load(str(path))


def test_a_file_from_before_the_bootstrap_loads_with_error_paths(tmp_path: Path) -> None:
    fitted = Forecaster("1h", 24, (80, 95), local_models=False).fit(_on_off_days(2))
    path = tmp_path / "f.json"
    fitted.save(str(path))
    doc = json.loads(path.read_text())
    for model in doc["body"]["result"]["paths"].values():
        model.pop("history")
        model.pop("season")
        model.pop("common_prior")
    doc["digest"] = _digest(doc["body"], None)
    path.write_text(json.dumps(doc))
    loaded = Forecaster.load(str(path)).predict()
    assert loaded.paths["x"].history is None
    assert loaded.paths["x"].common_prior == COMMON_PRIOR
    pd.testing.assert_frame_equal(loaded.frame, fitted.predict().frame)
    got = loaded.sum_interval("x")
    assert got["lo_95"] <= got["point"] <= got["hi_95"]
