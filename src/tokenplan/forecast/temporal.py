"""Temporal hierarchy: nudge each block of k steps toward a forecast of the k-bucket sums.

The same history summed into blocks of ``k`` buckets (hours into four-hour blocks) is smoother:
its level and trend are estimated from fewer, less noisy points, and its daily cycle is shorter.
The whole engine is run once more on those sums (final fit only), and each block of ``k`` steps
of the forecast moves part of the way toward that block's forecast sum, keeping the base
forecast's shape inside the block. How far is each series' own call: the two forecasts' block
totals weighted by the inverse of their backtest mean squared errors, shrunk toward a fixed
`WEIGHT` by a prior worth `PRIOR` windows; sums too short to backtest are left out. A block
whose sum is forecast below half the base's total is left alone (`FLOOR`). This is temporal
hierarchies with variance scaling (Athanasopoulos, Hyndman, Kourentzes and Petropoulos,
"Forecasting with temporal hierarchies", EJOR 2017), reduced to one aggregation level.

Judged on the whole benchmark (bench/forecast_accuracy.py; M4 hourly MASE, and the geometric
mean of the MASE ratio to the best peer over the 28 trace cases; without it 0.846 and 1.014):
a fixed share of 0.15 / 0.25 / 0.35 at k=4 gave 0.834 / 0.827 / 0.821 and 0.995 / 0.996 /
1.008; all of k in (2, 3, 4, 6) at 0.25, 0.829 and 0.996; the block sums taken outright (share
1), 0.807 but 1.208 (a short 10-minute series whose last two blocks dipped was forecast at a
third of its level). The share from the backtests gives 0.813 and 0.997 (the fixed 0.25 with
the same run on the sums, 0.825 and 0.994), worst trace case 1.289 against 1.323.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tokenplan.forecast.preparation import REGULAR, Series, empty_tail

if TYPE_CHECKING:
    from tokenplan.forecast.assembly import Fitted

# Block sizes tried in this order: the first that divides the horizon is used.
FACTORS = (4, 3, 2)
# The prior the backtests' share is shrunk toward, and the share when they say nothing of the
# base (the sums' backtest alone cannot set it). Sums too short to backtest are not used at all
# (`adjust`).
WEIGHT = 0.25
# Blocks of history a series needs for the summed forecast to count.
MIN_BLOCKS = 8
# Backtest windows of the run on the sums (fewer if the caller asked for fewer): it only
# chooses among the sums' candidates. Against the default six (with the fixed share): M4 hourly
# MASE 0.827 -> 0.825, the 29 cases' geometric mean 0.987 -> 0.984, M4 in 183 s, not 213-225 s.
WINDOWS = 4
# The prior share `WEIGHT` counts as this many backtest windows. With the floor below (29 cases'
# geometric mean, trace cases, M4 hourly MASE): as here 0.977, 0.986, 0.813; a prior share of
# 0.4 or 0.5, 0.985 and 0.993, 0.996 and 1.004, 0.809 and 0.806; a prior worth 2 windows,
# 0.979, 0.989, 0.809. M4 takes more of the sums than the traces can bear.
PRIOR = 4.0
# A block whose forecast sum is below this share of the base forecast's total is left as the base
# has it. The sums are of the history as recorded (short gaps in the record aside,
# `repairs._short_gaps`), so a lull or a short run of zeros in the last blocks (too short to
# count as an outage, only damped for the base models) is read as the new level: five zeros before
# the last bucket of a 10-minute series put its sums' forecast at 0.27x the base's, and moved its
# next two hours to 0.76x. The sums still pull upward without a limit, where they have been right:
# after the base models rescaled older history to a falsely detected drop (M4 hourly H346 and H374,
# the sums at 2-4x the base; H374's one-day dip is no longer taken for a shift, see
# `repairs._rescale_level_shift`). Judged on the whole benchmark (bench/forecast_accuracy.py,
# geometric mean of the MASE ratio over the 28 trace cases, then M4 hourly MASE), before that
# change: without it 0.997 and 0.813; left alone below 0.5x, 0.986 and 0.813; left alone outside
# 0.5-2x (as the combination leaves out a member), 0.987 and 0.820.
FLOOR = 0.5


def block_size(h: int) -> int | None:
    """The aggregation factor for horizon ``h`` (None: no factor divides it)."""
    return next((k for k in FACTORS if h % k == 0 and h >= k), None)


def block_sums(series: Sequence[Series], k: int) -> pd.DataFrame:
    """``unique_id, ds, y`` of each series' sums over blocks of ``k`` buckets ending at its end.

    A block with unknown buckets sums its known ones scaled to the whole block (the last block
    always holds the series' last known bucket, so the sums end where the series does); a block
    with none is a gap for the engine to fill. Series of fewer than `MIN_BLOCKS` blocks are
    left out.
    """
    parts = []
    for s in series:
        m = len(s.actual) // k
        if m < MIN_BLOCKS:
            continue
        values = s.actual
        for stand_in in (s.gaps, s.bursts):
            if stand_in is not None:
                values = np.where(np.isnan(stand_in), values, stand_in)
        tail = values[len(values) - m * k :].reshape(m, k)
        known = (~np.isnan(tail)).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            sums = np.where(known > 0, np.nansum(tail, axis=1) * k / np.maximum(known, 1), np.nan)
        starts = s.start + (len(s.actual) - m * k + k * np.arange(m)) * s.step
        parts.append(pd.DataFrame({"unique_id": s.uid, "ds": starts, "y": sums}))
    if not parts:
        return pd.DataFrame({"unique_id": [], "ds": pd.to_datetime([]), "y": []})
    return pd.concat(parts, ignore_index=True)


def share(base_errors: np.ndarray | None, sum_errors: np.ndarray | None, k: int) -> float:
    """How far to move: the sums' share by inverse backtest MSE of block totals, shrunk
    toward `WEIGHT` by a prior worth `PRIOR` windows."""
    if base_errors is None or sum_errors is None:
        return WEIGHT
    h = base_errors.shape[1]
    blocks = base_errors.reshape(base_errors.shape[0], h // k, k).sum(axis=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a backtest with no known actual
        v_base = float(np.nanmean(blocks**2))
        v_sums = float(np.nanmean(sum_errors**2))
    if not (np.isfinite(v_base) and np.isfinite(v_sums)) or v_base + v_sums <= 0:
        return WEIGHT
    raw = v_base / (v_base + v_sums)
    n = min(blocks.shape[0], sum_errors.shape[0])
    return (n * raw + PRIOR * WEIGHT) / (n + PRIOR)


def nudge(
    point: np.ndarray, summed: np.ndarray, k: int, weight: float
) -> tuple[np.ndarray, float, float, int]:
    """``point`` (h,) with each block of ``k`` scaled ``weight`` of the way toward ``summed``
    (h / k,); also the smallest and largest factor applied, and how many blocks were left
    alone because their sum was forecast below `FLOOR` times the base's total. A block the
    base forecasts at zero stays at zero (no shape to scale)."""
    base = point.reshape(-1, k).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = summed / base
        low = (base > 0) & (ratio < FLOOR)
        factor = np.where((base > 0) & ~low, 1.0 - weight + weight * ratio, 1.0)
    # Never below zero: a block below `FLOOR` keeps 1, any other moves at most ``weight`` of the
    # way down to half its total.
    factor = np.where(np.isfinite(factor), factor, 1.0)
    return point * np.repeat(factor, k), float(factor.min()), float(factor.max()), int(low.sum())


def sums_frame(series: Sequence[Series], h: int) -> tuple[int, list[Series], pd.DataFrame] | None:
    """The block size, the series whose forecasts the sums may move (the backtested ones:
    those too short for a backtest keep their fallback, whose sums would be shorter still) and
    the frame of their block sums; None when there is nothing to sum. Known once the series
    are classified and planned (`Forecaster._plan`), before any is fitted."""
    k = block_size(h)
    if k is None:
        return None
    chosen = [s for s in series if s.kind == REGULAR]
    frame = block_sums(chosen, k)
    if frame.empty:
        return None
    return k, chosen, frame


def adjust(
    fitted: dict[str, Fitted],
    errors: dict[str, np.ndarray],
    prepared: tuple[int, list[Series], pd.DataFrame],
    summed: dict[str, Fitted],
    sum_errors: dict[str, np.ndarray],
) -> None:
    """Nudge every backtested series' point forecast (in place) toward the forecast of its block
    sums. ``errors`` are the chosen forecasts' backtest errors (usage units, ``(W, h)``);
    ``prepared`` is `sums_frame` of the series; ``summed`` and ``sum_errors`` each series'
    `Fitted` and chosen backtest errors from the fit of that frame's sums."""
    k, chosen, _ = prepared
    for s in chosen:
        if s.uid not in summed:
            continue
        f = fitted[s.uid]
        if sum_errors.get(s.uid) is None:
            # A forecast nobody could test does not move one that was: a candidate without a
            # backtest is never chosen either. Moved a quarter of the way regardless, as until
            # 2026-12-06: bench/forecast_accuracy.py's trace cases 0.9484 -> 0.9533 (Azure
            # 2023's minutes 0.929 / 0.996 -> 0.989 / 1.088, Azure 2024 1.179 -> 1.153), the
            # M4 hourly series read as 10-minute buckets from 72 (bench/no_season.py) 0.989
            # -> 1.546, bench/short_history.py --days 3 MAE 0.972 -> 0.978 and interval scores
            # 1.907 / 3.595 -> 1.890 / 3.491.
            f.note += (
                f"; the {k}-bucket sums' forecast left out: too short to backtest, so nothing"
                " says how far to trust it (temporal hierarchy)"
            )
            continue
        weight = share(errors.get(s.uid), sum_errors.get(s.uid), k)
        f.point, low, high, kept = nudge(f.point, summed[s.uid].point, k, weight)
        f.note += (
            f"; totals of {k}-bucket blocks moved {weight:.2f} of the way to a forecast of the"
            f" {k}-bucket sums, as the two backtests' errors say (temporal hierarchy,"
            f" x{low:.3f} to x{high:.3f})"
        )
        between = _gaps_between_busy(s)
        if between:
            f.note += (
                f"; {between} empty bucket(s) between busy ones read as a gap in the record for"
                " the sums"
            )
        if kept:
            f.note += (
                f"; {kept} block(s) left as they were: their sums forecast below"
                f" {FLOOR:g}x the base's total"
            )


def _gaps_between_busy(s: Series) -> int:
    """Stand-ins for gaps in the record before the last busy bucket (an outage still going
    after it has stand-ins too, and a note of its own)."""
    if s.gaps is None:
        return 0
    end = max(len(s.actual) - 1 - empty_tail(s.actual), 0)  # the last busy bucket
    return int(np.sum(~np.isnan(s.gaps[:end])))
