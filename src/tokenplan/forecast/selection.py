"""Rolling-origin windows, accuracy scores, ensembles of the best few, and the choice.

Window ``k`` holds out the last ``cuts[k]`` buckets of every series and forecasts the next
``h`` of them from what is left; cut 0 is the final fit on all history. Scores are MASE
(scaled by the in-sample seasonal naive error of the whole series) and sMAPE.
"""

from __future__ import annotations

import numpy as np

from tokenplan.forecast.frequency import Cadence
from tokenplan.forecast.preparation import Series, min_train

ENSEMBLES = (
    ("ensemble_mean_top2", 2, "mean"),
    ("ensemble_median_top3", 3, "median"),
    ("ensemble_mean_top3", 3, "mean"),
)


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
    with np.errstate(invalid="ignore", divide="ignore"):
        smape_terms = np.where(denom > 0, 200.0 * err / denom, 0.0)
        smape_terms = np.where(np.isnan(err), np.nan, smape_terms)
        mase = np.nanmean(err, axis=(0, 2)) / scale
        smape = np.nanmean(smape_terms, axis=(0, 2))
    failed = np.any(np.isnan(pred) & ~np.isnan(actual), axis=(0, 2))
    mase = np.where(failed | np.isnan(mase), np.inf, mase)
    smape = np.where(failed, np.nan, smape)
    return mase, smape


def add_ensembles(
    preds: dict[str, np.ndarray], mase: dict[str, np.ndarray]
) -> dict[str, list[list[str]]]:
    """Add per-series ensembles of the best few candidates to ``preds`` (in place).

    Returns, per ensemble name, each series' member list; members are ranked on the same
    backtest, so the ensemble's own score is slightly optimistic (as any selection is).
    """
    names = list(preds)
    stack = np.stack([preds[m] for m in names])  # (M, C, n, h)
    table = np.stack([mase[m] for m in names])  # (M, n)
    order = np.argsort(table, axis=0, kind="stable")
    n = table.shape[1]
    members: dict[str, list[list[str]]] = {}
    for name, k, how in ENSEMBLES:
        if len(names) < k:
            continue
        top = order[:k]  # (k, n)
        picked = stack[top, :, np.arange(n)[None, :], :]  # (k, n, C, h)
        combined = np.median(picked, axis=0) if how == "median" else np.mean(picked, axis=0)
        finite = np.all(np.isfinite(np.take_along_axis(table, top, axis=0)), axis=0)
        combined[~finite] = np.nan
        preds[name] = combined.transpose(1, 0, 2)
        members[name] = [[names[i] for i in top[:, j]] for j in range(n)]
    return members


def choose(mase: dict[str, np.ndarray]) -> list[str]:
    """Per series, the method with the lowest backtest MASE (first listed wins ties)."""
    names = list(mase)
    table = np.stack([mase[m] for m in names])
    return [names[i] for i in np.argmin(table, axis=0)]
