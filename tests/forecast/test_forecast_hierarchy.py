"""Splits add up: the total is forecast on its own and the parts are reconciled to it."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenplan.errors import InvalidInput
from tokenplan.forecast import forecast
from tokenplan.forecast.calendar import forecast_months
from tokenplan.forecast.engine import Forecaster
from tokenplan.forecast.hierarchy import reconcile_to_total


def test_parts_sum_to_total(panel: pd.DataFrame) -> None:
    res = forecast(panel, horizon=24, freq="1h", hierarchy="total", local_models=False)
    frame = res.frame.pivot(index="ds", columns="unique_id", values="mean")
    assert set(frame.columns) == {"m0", "m1", "m2", "total"}
    assert np.allclose(frame[["m0", "m1", "m2"]].sum(axis=1), frame["total"], rtol=1e-9)
    assert "reconciled" in res.notes["total"]


def test_total_id_clash_is_refused(panel: pd.DataFrame) -> None:
    with pytest.raises(InvalidInput, match="already a series"):
        forecast(panel, horizon=4, freq="1h", hierarchy="m0", local_models=False)


@settings(max_examples=60, deadline=None)
@given(
    total=st.lists(st.floats(0, 1e6), min_size=3, max_size=3),
    parts=st.lists(st.lists(st.floats(0, 1e6), min_size=3, max_size=3), min_size=1, max_size=4),
    variances=st.lists(st.floats(1e-6, 1e6), min_size=4, max_size=4),
)
def test_reconcile_is_coherent_and_non_negative(
    total: list[float], parts: list[list[float]], variances: list[float]
) -> None:
    p = reconcile_to_total(np.array(total), np.array(parts), np.array(variances[: len(parts)]))
    assert (p >= 0).all()
    assert np.allclose(p.sum(axis=0), total)


def test_reconcile_moves_the_less_accurate_part() -> None:
    p = reconcile_to_total(np.array([100.0]), np.array([[30.0], [30.0]]), np.array([1e-6, 1.0]))
    assert p[0, 0] == pytest.approx(30.0, rel=1e-4)
    assert p[1, 0] == pytest.approx(70.0, rel=1e-4)


def test_total_is_the_same_whichever_split(panel: pd.DataFrame) -> None:
    alone = panel.groupby("ds", as_index=False)["y"].sum().assign(unique_id="total")
    plain = forecast(alone, horizon=24, freq="1h", local_models=False).frame
    split = forecast(panel, horizon=24, freq="1h", hierarchy="total", local_models=False).frame
    by_total = split[split["unique_id"] == "total"].reset_index(drop=True)
    pd.testing.assert_frame_equal(by_total, plain.reset_index(drop=True))


@st.composite
def panels(draw: st.DrawFn) -> pd.DataFrame:
    """A few hourly series of random length, level, noise, outages and bursts."""
    k = draw(st.integers(1, 3))
    n = draw(st.sampled_from([30, 80, 200]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2024-03-04", periods=n, freq="1h")
    frames = []
    for i in range(k):
        level = 10 ** rng.uniform(0, 5)
        y = level * (1 + 0.5 * np.sin(2 * np.pi * np.arange(n) / 24))
        y = y * np.exp(rng.normal(0, rng.uniform(0.01, 1.0), n))
        if draw(st.booleans()):
            start = int(rng.integers(0, n - 5))
            y[start : start + 5] = 0.0
        if draw(st.booleans()):
            y[int(rng.integers(0, n))] *= 10
        frames.append(pd.DataFrame({"unique_id": f"p{i}", "ds": ds, "y": np.round(y)}))
    return pd.concat(frames, ignore_index=True)


@settings(max_examples=8, deadline=None)
@given(panel=panels())
def test_intervals_nest_parts_stay_below_the_total_and_the_total_ignores_the_split(
    panel: pd.DataFrame,
) -> None:
    options = {"local_models": False, "lightgbm": False}
    split = forecast(panel, horizon=12, freq="1h", hierarchy="total", **options).frame
    cols = ["lo_95", "lo_80", "mean", "hi_80", "hi_95"]
    values = split[cols].to_numpy()
    assert (values[:, 0] >= 0).all()
    assert (np.diff(values, axis=1) >= -1e-9 * np.abs(values[:, 1:]).clip(1)).all()
    wide = split.set_index(["ds", "unique_id"])[cols].unstack("unique_id")
    for col in cols:
        parts = wide[col].drop(columns="total")
        assert (parts.le(wide[col]["total"] * (1 + 1e-9) + 1e-9, axis=0)).all().all()
    assert np.allclose(wide["mean"].drop(columns="total").sum(axis=1), wide["mean"]["total"])
    alone = panel.groupby("ds", as_index=False)["y"].sum().assign(unique_id="total")
    plain = forecast(alone, horizon=12, freq="1h", **options).frame
    total = split[split["unique_id"] == "total"]
    assert np.allclose(total[cols].to_numpy(), plain[cols].to_numpy())


def test_a_part_that_stops_early_stays_in_order_and_below_the_total() -> None:
    # The total is quiet at night; the part that stops eight hours before it was last seen
    # busy at 01:00, so its own forecast is above the total's at that hour.
    ds = pd.date_range("2024-03-04 09:00", periods=73, freq="1h")
    day = np.where((ds.hour >= 9) & (ds.hour < 15), 700.0, 0.0)
    a = pd.DataFrame({"unique_id": "a", "ds": ds, "y": day})
    y_b = np.zeros(65)
    y_b[-1] = 215.0
    b = pd.DataFrame({"unique_id": "b", "ds": ds[:65], "y": y_b})
    frame = forecast(pd.concat([a, b]), horizon=48, freq="1h", hierarchy="total").frame
    cols = ["lo_95", "lo_80", "mean", "hi_80", "hi_95"]
    values = frame[cols].to_numpy()
    assert (np.diff(values, axis=1) >= -1e-9 * np.abs(values[:, 1:]).clip(1)).all()
    wide = frame.set_index(["ds", "unique_id"])[cols].unstack("unique_id")
    both = wide["mean"]["total"].notna() & wide["mean"]["b"].notna()
    assert both.sum() >= 40  # the part's forecast overlaps the total's
    for col in cols:
        part, total = wide[col]["b"][both], wide[col]["total"][both]
        assert (part <= total * (1 + 1e-9) + 1e-9).all(), col


def _dominant_part_days() -> pd.DataFrame:
    """150 days of a part that is nearly all of the total and a small, patchy one."""
    rng = np.random.default_rng(3)
    ds = pd.date_range("2026-01-01", periods=150, freq="D")
    week = 1 + 0.1 * np.sin(np.arange(150) * 2 * np.pi / 7)
    big = 1e6 * np.exp(rng.normal(0, 0.3, 150)) * week
    small = 1e3 * np.exp(rng.normal(0, 1.0, 150)) * (rng.random(150) < 0.7)
    return pd.concat(
        [
            pd.DataFrame({"unique_id": "big", "ds": ds, "y": big}),
            pd.DataFrame({"unique_id": "small", "ds": ds, "y": small}),
        ],
        ignore_index=True,
    )


def test_a_parts_month_is_never_above_the_totals(tmp_path: Path) -> None:
    # The part's and the total's month bands come from separate path models: drawn alone, the
    # dominant part's 95% band reached 4% above the total's.
    fast = partial(forecast, local_models=False)
    months, _ = forecast_months(_dominant_part_days(), months=3, hierarchy="total", forecaster=fast)
    cols = ["lo_95", "lo_80", "mean", "hi_80", "hi_95"]
    wide = months.set_index(["ds", "unique_id"])[cols].unstack("unique_id")
    for col in cols:
        for part in ("big", "small"):
            assert (wide[col][part] <= wide[col]["total"]).all(), (col, part)
    assert (np.diff(months[cols].to_numpy(), axis=1) >= 0).all()
    # A saved model keeps its hierarchy, so its sums keep the rule.
    path = tmp_path / "model.json"
    forecaster = Forecaster("1d", 30, (80.0, 95.0), hierarchy="total", local_models=False)
    forecaster.fit(_dominant_part_days()).save(str(path))
    loaded = Forecaster.load(str(path)).predict()
    part, whole = loaded.sum_interval("big"), loaded.sum_interval("total")
    assert all(part[k] <= whole[k] for k in part if k != "buckets")
    assert part == forecaster.predict().sum_interval("big")


def test_a_parts_paths_and_chances_are_never_above_the_totals() -> None:
    # Budgets on a part read its paths (`plan_outlook`, `prob_sum_above`), not `sum_interval`:
    # drawn from its own model, the dominant part's path went above the total's.
    from tokenplan.plan.remaining import plan_outlook

    res = forecast(
        _dominant_part_days(), horizon=30, freq="1d", hierarchy="total", local_models=False
    )
    whole = res.sample_paths("total", 2000, seed=5)
    for part in ("big", "small"):
        paths = res.sample_paths(part, 2000, seed=5)
        assert (paths <= whole).all(), part
    big_days = res.sample_paths("big", 2000, seed=5).sum(axis=1)
    assert np.mean(big_days < whole.sum(axis=1)) > 0.5  # capped, not replaced by the total
    sums = whole.sum(axis=1)
    for limit in np.quantile(sums, [0.05, 0.5, 0.9, 0.99]):
        assert res.prob_sum_above("big", limit) <= res.prob_sum_above("total", limit)
    remaining = pd.DatetimeIndex(res.frame.loc[res.frame["unique_id"] == "total", "ds"])
    part, total = plan_outlook(res, "big", remaining), plan_outlook(res, "total", remaining)
    assert part is not None
    assert total is not None
    assert part.band is not None
    assert total.band is not None
    assert part.band[0] <= total.band[0]
    assert part.band[1] <= total.band[1]
    # Asking for a part does not change the total's draw.
    assert np.array_equal(res.sample_paths("total", 2000, seed=5), whole)
