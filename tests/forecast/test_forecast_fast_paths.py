"""The fast paths of the engine compute exactly what their direct definitions do."""

from __future__ import annotations

import multiprocessing
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from forecast_frames import usage
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tokenplan.forecast import conformal, engine
from tokenplan.forecast.boosting import _Design, _training_rows, run_boosting
from tokenplan.forecast.conformal import bounds, cross_coverage
from tokenplan.forecast.preparation import (
    Series,
    column_medians,
    to_series,
    validate,
)
from tokenplan.forecast.repairs import _rescale_level_shift, classify
from tokenplan.forecast.statistical import SharedPool, StatisticalRun
from tokenplan.frequency import make_cadence

LEVELS = (50.0, 80.0, 95.0)


def coverage_by_definition(errors: np.ndarray) -> dict[float, np.ndarray]:
    """Each window scored against `bounds` built from all the other windows."""
    n, w, _h = errors.shape
    hits = {level: np.zeros(n) for level in LEVELS}
    seen = np.zeros(n)
    for k in range(w):
        held = errors[:, k, :]
        known = ~np.isnan(held)
        seen += known.sum(axis=1)
        for level, (lo, hi) in bounds(np.delete(errors, k, axis=1), LEVELS).items():
            hits[level] += ((held >= lo) & (held <= hi) & known).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {level: np.where(seen > 0, hits[level] / seen, np.nan) for level in LEVELS}


@st.composite
def residuals(draw: st.DrawFn) -> np.ndarray:
    """Backtest residuals ``(n, W, h)`` with ties, gaps and whole missing windows."""
    shape = (draw(st.integers(1, 3)), draw(st.integers(2, 7)), draw(st.integers(1, 40)))
    values = st.sampled_from([0.0, -0.5, 0.5, 1.0]) | st.floats(-3, 3, allow_nan=False)
    errors = draw(hnp.arrays(np.float64, shape, elements=values))
    gaps = draw(hnp.arrays(np.bool_, shape))
    errors[gaps & draw(st.booleans())] = np.nan
    return errors


@settings(max_examples=150, deadline=None)
@given(residuals())
def test_cross_coverage_is_leave_one_window_out_bounds(errors: np.ndarray) -> None:
    got = cross_coverage(errors, LEVELS)
    want = coverage_by_definition(errors)
    for level in LEVELS:
        np.testing.assert_array_equal(got[level], want[level])


def test_cross_coverage_of_a_large_panel_matches_in_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conformal, "_BLOCK", 50_000)  # a few series per pass
    rng = np.random.default_rng(0)
    errors = rng.standard_t(3, size=(40, 4, 168))
    errors[:5, 3, 100:] = np.nan  # the latest actuals not known yet
    got = cross_coverage(errors, LEVELS)
    want = coverage_by_definition(errors)
    for level in LEVELS:
        np.testing.assert_array_equal(got[level], want[level])


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=9),
        elements=st.floats(-1e6, 1e6) | st.just(np.nan),
    )
)
def test_column_medians_are_numpys_nanmedian(values: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        want = np.nanmedian(values, axis=0)
    np.testing.assert_array_equal(column_medians(values), want)


def shift_by_definition(y: np.ndarray, block: int) -> tuple[int, float]:
    """The split (in blocks) and log gap `_rescale_level_shift` should pick, tried one by one."""
    n_blocks = len(y) // block
    level = np.median(np.log1p(y[len(y) - n_blocks * block :]).reshape(n_blocks, block), axis=1)
    best, best_gap = 0, 0.0
    for cut in range(2, n_blocks - 1):  # the new level held two blocks at least
        before, after = level[:cut], level[cut:]
        recent = before[-min(len(before), 7) :]
        gap = float(np.median(after) - np.median(recent))
        spread = max(np.ptp(after), np.ptp(recent))
        if abs(gap) >= np.log(3.0) and spread < abs(gap) and abs(gap) > abs(best_gap):
            best, best_gap = cut, gap
    return best, best_gap


@settings(max_examples=60, deadline=None)
@given(
    st.integers(4 * 24, 60 * 24),
    st.floats(0.0, 1.0),
    st.floats(-4.0, 4.0),
    st.integers(0, 2**32 - 1),
)
def test_level_shift_search_picks_the_split_a_direct_search_picks(
    n: int, where: float, jump: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    y = rng.lognormal(3.0, 0.3, n)
    y[: int(where * n)] *= np.exp(jump)
    start, step = pd.Timestamp("2024-01-01"), pd.Timedelta("1h")
    series = Series("s", start, step, y.copy(), y.copy())
    _rescale_level_shift(series, make_cadence("1h"))
    best, gap = shift_by_definition(y, 24)
    if best == 0:
        assert series.notes == []
        np.testing.assert_array_equal(series.y, y)
    else:
        split = n - (n // 24 - best) * 24
        assert series.notes
        assert f"x{np.exp(gap):.2g}" in series.notes[0]
        np.testing.assert_array_equal(series.y[split:], y[split:])
        want = np.expm1(np.maximum(np.log1p(y[:split]) + gap, 0.0))
        np.testing.assert_array_equal(series.y[:split], want)


@pytest.mark.parametrize(
    ("n", "cuts"),
    [
        (600, [0, 24, 48]),  # final and backtest models of similar size: side by side
        (300, [0, 200]),  # little before the cut: one large model, on both threads
    ],
)
def test_boosting_fits_side_by_side_as_one_after_the_other(n: int, cuts: list[int]) -> None:
    cadence = make_cadence("1h")
    df = pd.concat([usage(n=n, seed=i, uid=f"s{i}") for i in range(3)], ignore_index=True)
    series = to_series(validate(df), cadence)
    alone = run_boosting(series, cuts, 24, (24,), threads=1)["lightgbm"]
    paired = run_boosting(series, cuts, 24, (24,), threads=2)["lightgbm"]
    np.testing.assert_array_equal(alone, paired)
    assert np.isfinite(alone).all()


def test_boosting_rows_keep_their_budget_on_many_series() -> None:
    design = _Design(48, (24,))
    rng = np.random.default_rng(3)
    logs = [np.log1p(rng.poisson(50.0, 600).astype(float)) for _ in range(40)]
    # 40 series: a budget of 10 origins of 48 steps each, or of half an origin each.
    for budget, origins in ((40 * 480, 10), (40 * 24, 2)):
        rows = _training_rows(design, logs, 0, budget)
        assert rows is not None
        assert len(rows[1]) == 40 * origins * 48


def short_panel(count: int) -> list[Series]:
    cadence = make_cadence("1h")
    df = pd.concat(
        [usage(n=96, seed=i, uid=f"s{i:02d}", level=100.0 * (i + 1)) for i in range(count)],
        ignore_index=True,
    )
    series = to_series(validate(df), cadence)
    for s in series:
        classify(s, cadence, 12)
    return series


def _children() -> set[int]:
    """Live child processes: a session's engines (a Dask cluster of another test module on the
    same pytest worker) are there before and after, and are not this test's to judge."""
    return {p.pid for p in multiprocessing.active_children()}


def test_local_models_in_workers_match_in_process() -> None:
    before = _children()
    series = short_panel(16)  # two workers' worth
    with StatisticalRun(series, [0, 12, 24], 12, (), n_jobs=2) as run:
        assert run.workers == 2
        parallel = run.result()
    with StatisticalRun(series, [0, 12, 24], 12, (), n_jobs=1) as run:
        assert run.workers == 0
        serial = run.result()
    assert parallel.keys() == serial.keys() == {"auto_ets", "auto_theta"}
    for name in serial:
        np.testing.assert_array_equal(parallel[name], serial[name])
        assert np.isfinite(serial[name]).any()
    assert _children() <= before


def test_leaving_local_models_unread_stops_the_workers() -> None:
    before = _children()
    with StatisticalRun(short_panel(16), [0, 12, 24], 12, (), n_jobs=2) as run:
        assert run.workers == 2
        assert len(_children() - before) == 2
    assert _children() <= before


def test_a_large_panel_in_the_shared_pool_matches_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Baselines and backtest coverage go to the workers from 200 series; from 8 here, so a
    # small panel takes every path of the pool (with the local models of the panel and of
    # its sums) and the same panel in one process is quick to compare with.
    monkeypatch.setattr(engine, "_MIN_POOLED_BASELINES", 8)
    df = pd.concat(
        [usage(n=120, seed=i, uid=f"s{i:02d}", level=50.0 * (i % 7 + 1)) for i in range(24)],
        ignore_index=True,
    )
    before = _children()
    pooled = engine.Forecaster("1h", 24, (80, 95), threads=2).fit(df).result
    alone = engine.Forecaster("1h", 24, (80, 95), threads=1).fit(df).result
    assert pooled is not None
    assert alone is not None
    pd.testing.assert_frame_equal(pooled.frame, alone.frame, check_exact=True)
    pd.testing.assert_frame_equal(pooled.backtest, alone.backtest, check_exact=True)
    # The coverage counted in the workers reached the rows (only never-run candidates lack it).
    ran = np.isfinite(pooled.backtest["mase"])
    assert pooled.backtest.loc[ran, "coverage_80"].notna().all()
    assert "temporal hierarchy" in " ".join(pooled.notes.values())
    assert _children() <= before


@pytest.mark.parametrize("threads", [1, 2])
def test_skipping_backtest_coverage_leaves_forecasts_alone(
    monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    # From 8 series the coverage would be counted in the pool's workers (threads=2).
    monkeypatch.setattr(engine, "_MIN_POOLED_BASELINES", 8)
    df = pd.concat(
        [usage(n=120, seed=i, uid=f"s{i:02d}", level=40.0 * (i % 5 + 1)) for i in range(10)],
        ignore_index=True,
    )
    full = engine.Forecaster("1h", 24, (80, 95), threads=threads).fit(df).result
    lean = engine.Forecaster("1h", 24, (80, 95), threads=threads, backtest_coverage=False)
    lean.fit(df)
    assert full is not None
    assert lean.result is not None
    pd.testing.assert_frame_equal(lean.result.frame, full.frame, check_exact=True)
    assert lean.result.notes == full.notes
    # The backtest keeps its scores and choices, without the columns it did not count.
    assert not [c for c in lean.result.backtest.columns if c.startswith("coverage_")]
    kept = [c for c in full.backtest.columns if not c.startswith("coverage_")]
    pd.testing.assert_frame_equal(lean.result.backtest, full.backtest[kept], check_exact=True)
    assert full.backtest["coverage_95"].notna().any()
    assert lean.config()["backtest_coverage"] is False


def test_the_shared_pool_is_busy_until_its_last_work_is_done() -> None:
    with SharedPool(2) as pool:
        assert not pool.busy()  # nothing submitted: no worker started either
        first = pool.submit(time.sleep, 0.0)
        slow = pool.submit(time.sleep, 1.0)
        first.result()
        assert pool.busy()  # the slow one is still running
        slow.result()
        assert not pool.busy()
