"""Series that begin or end inside the history: a model launched last week, one retired.

A split by model is zero-filled over the whole span of its neighbours: the buckets before a
model's launch, and after its retirement, are zeros in the frame, not usage that happened to be
empty.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tokenplan.forecast import forecast


def _steady(days: int, level: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(days * 24)
    noise = np.exp(rng.normal(0, 0.15, t.size))
    return level * (1 + 0.5 * np.sin(2 * np.pi * (t - 8) / 24)) * noise


def _frame(**series: np.ndarray) -> pd.DataFrame:
    n = len(next(iter(series.values())))
    ds = pd.date_range("2026-09-01", periods=n, freq="1h")
    return pd.concat(
        [pd.DataFrame({"unique_id": uid, "ds": ds, "y": y}) for uid, y in series.items()],
        ignore_index=True,
    )


def test_a_model_launched_four_days_ago_is_forecast_from_its_launch() -> None:
    new = _steady(60, 1e6, 1)
    new[: 56 * 24] = 0.0  # zero-filled back to the start of the other model's history
    df = _frame(old=_steady(60, 2e6, 2), new=new)
    res = forecast(df, horizon=24, freq="1h", hierarchy="total")
    note = res.notes["new"]
    assert "1344 empty bucket(s) before its first usage left out" in note
    assert "intermittent" not in note  # 93% of its buckets were empty before
    part = res.frame[res.frame["unique_id"] == "new"]
    # Read as intermittent, its first day's bands had no width at all.
    assert (part["hi_80"] > part["lo_80"]).all()
    assert 0.5e6 < part["mean"].mean() < 1.5e6


def test_a_client_idle_at_its_start_as_often_as_later_keeps_its_start() -> None:
    # Busy every other day: the idle first day is its habit, not a launch.
    busy = np.repeat(np.arange(28) % 2 == 1, 24)
    y = np.where(busy, _steady(28, 500.0, 3), 0.0)
    res = forecast(_frame(x=y), horizon=24, freq="1h")
    assert "before its first usage" not in res.notes["x"]


def test_a_retired_model_is_forecast_at_zero_and_takes_none_of_the_total() -> None:
    retired = _steady(61, 5e5, 4)
    retired[50 * 24 :] = 0.0  # nothing for the last eleven days
    df = _frame(kept=_steady(61, 2e6, 5), retired=retired)
    res = forecast(df, horizon=168, freq="1h", hierarchy="total")
    assert res.chosen["retired"] == "fallback: stopped"
    assert "no usage since 2026-10-21 00:00 (264 buckets" in res.notes["retired"]
    part = res.frame[res.frame["unique_id"] == "retired"]
    # Its backtest windows from before the stop put its upper band at its old peak, every hour.
    cols = ["mean", "lo_80", "hi_80", "lo_95", "hi_95"]
    assert (part[cols].to_numpy() == 0.0).all()
    wide = res.frame.pivot(index="ds", columns="unique_id", values="mean")
    np.testing.assert_allclose(wide["kept"], wide["total"], rtol=1e-9)


def test_a_weekend_off_is_not_a_stop() -> None:
    # Weekday traffic only, the history ending on a Sunday night: 54 empty hours, as every
    # weekend before.
    y = _steady(56, 1e4, 6)  # 2026-09-01 is a Tuesday; 56 days end on Sunday 2026-10-25
    ds = pd.date_range("2026-09-01", periods=y.size, freq="1h")
    y[(ds.dayofweek >= 5) | ((ds.dayofweek == 4) & (ds.hour >= 18))] = 0.0
    res = forecast(_frame(x=y), horizon=24, freq="1h")
    assert not res.chosen["x"].startswith("fallback")
    assert res.frame["mean"].sum() > 0.5 * y[-7 * 24 :].sum() / 5


def test_a_migration_leaves_each_model_at_its_new_level_with_bands_of_it() -> None:
    # Over three days 90% of the traffic moved from one model to another, five days before the
    # end. The old model's backtest windows from before the move were scored against its old
    # level, ten times the new one: its week's 95% band ran to 13.6x its new level (and in a
    # split it takes a share of the total's gap by that error variance).
    rng = np.random.default_rng(7)
    days = 61
    t = np.arange(days * 24)
    moved = np.clip(0.3 * ((t - 55 * 24) / 24 + 1), 0.0, 0.9)
    moved[t < 55 * 24] = 0.0
    base = 3e6 * (1 + 0.6 * np.sin(2 * np.pi * (t - 14) / 24))
    noise = np.exp(rng.normal(0, 0.15, (2, t.size)))
    df = _frame(old=base * (1 - moved) * noise[0], new=base * moved * noise[1])
    res = forecast(df, horizon=168, freq="1h", hierarchy="total")
    week = res.frame.groupby("unique_id")[["mean", "hi_95"]].sum()
    level = 3e6 * 168
    assert 0.07 * level < week.loc["old", "mean"] < 0.14 * level
    assert week.loc["old", "hi_95"] < 0.3 * level
    assert 0.75 * level < week.loc["new", "mean"] < 1.05 * level
