"""Rolling-origin windows, accuracy scores, the combination of candidates, and the choice.

Window ``k`` holds out the last ``cuts[k]`` buckets of every series and forecasts the next
``h`` of them from what is left; cut 0 is the final fit on all history. Scores are MASE
(scaled by the in-sample seasonal naive error of the whole series) and sMAPE.

Combination over selection. With four to six noisy windows, picking the candidate with the
lowest backtest error often picks wrong (the M4/M5 lesson): on the six real traces of
``bench/forecast_accuracy.py``, per-series selection scored mean MASE 1.08, the best-few
ensembles 1.08-1.12, while the plain median of a fixed, diverse set of strong candidates
scored 1.01 and was never far from the best single candidate on any trace. So every series
gets ``combination``, the bucket-wise median of the `CORE` candidates it has (a fixed rule, so
its own backtest score is honest and its errors can calibrate the intervals). A single
candidate replaces it when it dominates clearly: MASE below `_DOMINANCE` times the
combination's and better in at least half of the windows, so the chosen method is never clearly
worse than the best candidate in its own backtest (a seasonal naive at 0.445 beats a
combination at 0.783).
"""

from __future__ import annotations

import warnings

import numpy as np

from tokenplan.forecast.preparation import Series, min_train
from tokenplan.frequency import Cadence

COMBINATION = "combination"
# Diverse strong candidates: two seasonal decompositions (usage units and log1p), exponential
# smoothing, theta, the global gradient-boosted model, the robust recent seasonal profile and
# the additive phase regression over all history.
CORE = (
    "mstl",
    "mstl_log",
    "auto_ets",
    "auto_theta",
    "lightgbm",
    "seasonal_median",
    "seasonal_regression",
)
# When fewer than three core candidates ran (many series: no local models), these join.
_SPARE = ("relevelled_profile", "seasonal_naive_168", "seasonal_naive_24", "naive")
_DOMINANCE = 0.75
_MIN_WINDOWS_TO_SELECT = 4


def default_windows(h: int) -> int:
    """Backtest windows to aim for: more for short horizons, so intervals see enough errors."""
    return 6 if h <= 48 else 4


def plan_windows(
    n: int, h: int, cadence: Cadence, max_windows: int
) -> tuple[tuple[int, ...], list[int]]:
    """Seasons and backtest cuts for a series of ``n`` buckets (no cuts: too short to test).

    Keep every season the full history allows if at least two windows can still train on two
    of its cycles; otherwise drop the longest season. Windows step by ``h`` when history
    allows, else overlap (smaller steps) to keep enough of them for calibration.
    """
    room = n - h - min_train(cadence)  # how far the earliest origin may move back
    if room < 0:
        return (), []
    seasons = cadence.usable(n)
    while True:
        longest = 2 * seasons[-1] if seasons else min_train(cadence)
        span = n - h - max(longest, min_train(cadence))
        if span >= 0:
            step = h if span // h + 1 >= max_windows else max(1, span // max(max_windows - 1, 1))
            step = min(step, h)
            count = min(max_windows, span // step + 1)
            if count >= 2 or not seasons or len(seasons) == 1:
                return seasons, [h + k * step for k in range(count)]
        seasons = seasons[:-1]


def actual_windows(series: list[Series], cuts: list[int], h: int) -> np.ndarray:
    """Held-out actuals ``(len(cuts), n, h)``; NaN where unknown."""
    out = np.full((len(cuts), len(series), h), np.nan)
    for j, s in enumerate(series):
        for i, cut in enumerate(cuts):
            start = len(s.actual) - cut
            chunk = s.actual[start : start + h]
            out[i, j, : len(chunk)] = chunk
    return out


def mase_scale(series: list[Series], cadence: Cadence) -> np.ndarray:
    """In-sample MAE of seasonal naive on the primary season (lag 1 without a season)."""
    out = np.ones(len(series))
    for j, s in enumerate(series):
        m = cadence.primary if len(s.actual) > cadence.primary else 1
        diff = np.abs(s.actual[m:] - s.actual[:-m])
        value = float(np.nanmean(diff)) if np.any(~np.isnan(diff)) else 0.0
        if not np.isfinite(value) or value <= 0:
            value = float(np.nanmean(np.abs(s.actual))) or 1.0
        out[j] = value
    return out


def scores(
    pred: np.ndarray, actual: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """MASE and sMAPE (percent) per series over all windows and steps; inf when a fit failed."""
    err = np.abs(actual - pred)
    denom = np.abs(actual) + np.abs(pred)
    # A candidate that could not run leaves all-NaN rows: their mean is NaN (then inf), silently.
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        smape_terms = np.where(denom > 0, 200.0 * err / denom, 0.0)
        smape_terms = np.where(np.isnan(err), np.nan, smape_terms)
        mase = np.nanmean(err, axis=(0, 2)) / scale
        smape = np.nanmean(smape_terms, axis=(0, 2))
    failed = np.any(np.isnan(pred) & ~np.isnan(actual), axis=(0, 2))
    mase = np.where(failed | np.isnan(mase), np.inf, mase)
    smape = np.where(failed, np.nan, smape)
    return mase, smape


def combination_members(names: list[str]) -> list[str]:
    """The candidates the combination takes the median of, among those that ran."""
    members = [m for m in CORE if m in names]
    if len(members) < 3:
        members += [m for m in _SPARE if m in names][: 3 - len(members)]
    if len(members) < 2:
        return []
    return members


def add_combination(preds: dict[str, np.ndarray]) -> list[str]:
    """Add the bucket-wise median of `combination_members` to ``preds`` (in place).

    A member whose fit failed for a series (NaN) is left out of that series' median.
    """
    members = combination_members(list(preds))
    if not members:
        return []
    stack = np.stack([preds[m] for m in members])  # (M, C, n, h)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all members failed: stays NaN
        preds[COMBINATION] = np.nanmedian(stack, axis=0)
    return members


def window_errors(pred: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Mean absolute error per window and series ``(W, n)``; NaN where nothing is known."""
    err = np.abs(actual - pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(err, axis=2)


def choose(mase: dict[str, np.ndarray], per_window: dict[str, np.ndarray]) -> list[str]:
    """Per series: the combination, unless one candidate clearly dominates it.

    Without a combination, the lowest backtest MASE (first listed wins ties).
    """
    singles = [m for m in mase if m != COMBINATION]
    table = np.stack([mase[m] for m in singles])
    best = np.argmin(table, axis=0)
    out = []
    for j, i in enumerate(best):
        name = singles[i]
        if COMBINATION not in mase or not np.isfinite(mase[COMBINATION][j]):
            out.append(name)
            continue
        mine, theirs = per_window[name][:, j], per_window[COMBINATION][:, j]
        known = ~np.isnan(mine) & ~np.isnan(theirs)
        wins = int(np.sum(mine[known] < theirs[known]))
        dominant = mase[name][j] < _DOMINANCE * mase[COMBINATION][j] and (
            # Clearly better on the whole backtest and in most windows: never hand the user a
            # combination that its own backtest shows well behind one of its candidates.
            2 * wins >= known.sum()
            or (known.sum() >= _MIN_WINDOWS_TO_SELECT and wins == known.sum())
        )
        out.append(name if dominant else COMBINATION)
    return out
