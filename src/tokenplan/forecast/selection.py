"""Rolling-origin windows, accuracy scores, the caps on runaway forecasts, and the choice.

Window ``k`` holds out the last ``cuts[k]`` buckets of every series and forecasts the next
``h`` of them from what is left; cut 0 is the final fit on all history. Scores are MASE
(scaled by the in-sample seasonal naive error of the whole series) and sMAPE, shrunk toward
the whole panel's (`shrunk_scores`). Every series gets the combination of its best candidates
(`tokenplan.forecast.combination`); a single candidate replaces it only when it dominates it
clearly: MASE below `DOMINANCE` times the combination's and better in most windows, so the
chosen method is never clearly worse than the best candidate in its own backtest (`choose`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from tokenplan.forecast.combination import COMBINATION
from tokenplan.forecast.preparation import Series, min_train
from tokenplan.frequency import Cadence

# The panel's evidence counts as this many windows of the series' own. Judged on the whole
# benchmark (bench/forecast_accuracy.py, 29 cases with M4 hourly): with the gate at 1.5, a
# panel worth 4 windows gave M4 MASE 0.863, 2 gave 0.852 and 1 gives 0.844; the geometric-mean
# ratio to the best peer 1.049 with 2, 1.046 with 1.
_PANEL_WEIGHT = 1.0
# A relative score beyond this is "failed"; it keeps one awful fit from swamping the panel mean.
_MAX_RATIO = 20.0
# A single candidate replaces the combination below this share of its score (`choose`).
DOMINANCE = 0.75
# No candidate may forecast above this multiple of the highest value the series has recorded
# up to its origin: a trend extrapolated in log space compounds into a runaway (a short series
# rising through its history forecast at 5x its peak a day later), and the backtest, which
# sees shorter histories, does not always catch it. The same limit caps the bands and sample
# paths (`ceiling`).
RUNAWAY = 3.0
_MIN_WINDOWS_TO_SELECT = 4


def default_windows(h: int) -> int:
    """Backtest windows to aim for: more for short horizons, so intervals see enough errors.

    Judged on the whole benchmark (bench/forecast_accuracy.py; M4 hourly MASE, and the
    geometric mean and worst of the MASE ratio to the best peer over the 28 trace cases), for
    horizons up to 48: 6 windows 0.846, 1.016, 1.367; 7: 0.838, 1.019, 1.242; 8: 0.836, 1.008,
    1.209; 9: 0.853 (M4 only); 10: 0.856, 1.009, 1.281. The trace figures move within +-0.01
    (noise). Six stay: with eight, a series whose level tripled two days before the end was
    forecast at 1.47x its new level (tests/forecast/test_forecast_robustness.py), because six
    windows from before the shift let MSTL into the combination and it carried the jump on as
    a trend; with six or seven the forecast is within 2% of the new level. Older windows judge
    a regime that has ended. Weighting six windows by recency instead (half-life three
    windows) gave M4 0.839 but traces 1.017, seven cases above 1.10: not taken. Longer
    horizons keep 4: each window costs every candidate a fit at 168 steps.
    """
    return 6 if h <= 48 else 4


def plan_windows(
    n: int, h: int, cadence: Cadence, max_windows: int
) -> tuple[tuple[int, ...], list[int]]:
    """Seasons and backtest cuts for a series of ``n`` buckets (no cuts: too short to test).

    Keep every season the full history allows if at least two windows can still train on two
    of its cycles; otherwise drop the longest season. Windows step by ``h`` when history
    allows, else overlap (smaller steps) to keep enough of them for calibration.
    """
    room = n - h - min_train(cadence, n)  # how far the earliest origin may move back
    if room < 0:
        return (), []
    seasons = cadence.usable(n)
    while True:
        longest = 2 * seasons[-1] if seasons else min_train(cadence, n)
        span = n - h - max(longest, min_train(cadence, n))
        if span >= 0:
            step = h if span // h + 1 >= max_windows else max(1, span // max(max_windows - 1, 1))
            step = min(step, h)
            count = min(max_windows, span // step + 1)
            if count >= 2 or not seasons or len(seasons) == 1:
                return seasons, [h + k * step for k in range(count)]
        seasons = seasons[:-1]


def actual_windows(
    series: list[Series], cuts: list[int], h: int, *, judged: bool = False
) -> np.ndarray:
    """Held-out actuals ``(len(cuts), n, h)``, as recorded or (``judged``) at a level shift's
    new level (`Series.judged`); NaN where unknown."""
    out = np.full((len(cuts), len(series), h), np.nan)
    for j, s in enumerate(series):
        values = s.judged() if judged else s.actual
        for i, cut in enumerate(cuts):
            start = len(values) - cut
            chunk = values[start : start + h]
            out[i, j, : len(chunk)] = chunk
    return out


def judged_windows(
    preds: dict[str, np.ndarray], actual: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``actual (W, n, h)`` without the windows a candidate could not forecast, where it ran on
    at least half of them and on `_MIN_WINDOWS_TO_SELECT` (NaN there), so that every candidate
    is judged on the same windows;
    and, per candidate, the series ``(n,)`` where it left windows out. The global model has
    no forecast for the windows before which it had nothing to learn from: judged on them,
    it would never be chosen however well it did on the rest. A candidate that ran on fewer
    counts as failed, as one that ran on none: fewer windows would judge every candidate
    (a single intermittent series a week ahead, judged on two of its four windows, was
    forecast at a sixth of its rate)."""
    out = actual
    partial: dict[str, np.ndarray] = {}
    for name, pred in preds.items():
        ran = ~np.isnan(pred[1:]).all(axis=2)  # (W, n)
        count = ran.sum(axis=0)
        some = ~ran.all(axis=0) & (2 * count >= len(ran)) & (count >= _MIN_WINDOWS_TO_SELECT)
        if some.any():
            partial[name] = some
            out = np.where((some[None, :] & ~ran)[:, :, None], np.nan, out)
    return out, partial


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


def window_weights(series: list[Series], cuts: list[int]) -> np.ndarray:
    """``(len(cuts), n)``: each backtest window's weight in the scores, the history it fitted on.

    An early window fits on less history than the forecast will: on a short series the models
    that need history (a seasonal decomposition, a trend) look worse in it than they will be,
    and a window that trained on two days is a poorer likeness of the final fit on five than
    the latest one. On long series the weights are nearly equal. Judged on the whole benchmark
    (bench/forecast_accuracy.py, 29 cases / the trace cases / worst; bench/m4_hourly.py MASE,
    sMAPE): equal weights 0.9594 / 0.9691 / 1.231, 0.795, 8.632; these 0.9587 / 0.9684 /
    1.199 (Azure 2024's five days), 0.794, 8.625.
    """
    return np.array([[max(len(s.y) - cut, 1) for s in series] for cut in cuts], dtype=float)


def _window_mean(values: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Mean over windows and steps of ``values (W, n, h)``, NaN left out, windows weighted."""
    if weights is None:
        return np.nanmean(values, axis=(0, 2))
    w = np.where(np.isnan(values), 0.0, weights[:, :, None])
    return np.sum(w * np.nan_to_num(values), axis=(0, 2)) / np.sum(w, axis=(0, 2))


def scores(
    pred: np.ndarray,
    actual: np.ndarray,
    scale: np.ndarray,
    squared: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """MASE and sMAPE (percent) per series over all windows and steps; inf when a fit failed.

    Series flagged ``squared`` get the root mean squared error over the same scale instead of
    the mean absolute one: what ranks candidates for intermittent series, as in M5 (RMSSE).
    ``weights (W, n)`` weight the windows (`window_weights`); None: equally.
    """
    err = np.abs(actual - pred)
    denom = np.abs(actual) + np.abs(pred)
    # A candidate that could not run leaves all-NaN rows: their mean is NaN (then inf), silently.
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        smape_terms = np.where(denom > 0, 200.0 * err / denom, 0.0)
        smape_terms = np.where(np.isnan(err), np.nan, smape_terms)
        mase = _window_mean(err, weights) / scale
        if squared is not None:
            rms = np.sqrt(_window_mean(err**2, weights)) / scale
            mase = np.where(squared, rms, mase)
        smape = _window_mean(smape_terms, weights)
    failed = np.any(np.isnan(pred) & ~np.isnan(actual), axis=(0, 2))
    mase = np.where(failed | np.isnan(mase), np.inf, mase)
    smape = np.where(failed, np.nan, smape)
    return mase, smape


def shrunk_scores(mase: dict[str, np.ndarray], windows: int) -> dict[str, np.ndarray]:
    """Per candidate and series: MASE relative to the series' best, shrunk toward the panel.

    ``exp((W log r + k log g) / (W + k))`` with ``r`` the series' own ratio, ``g`` the
    candidate's geometric-mean ratio over every series of the panel and ``k`` =
    `_PANEL_WEIGHT`: with few windows the panel decides, with many the series itself.
    """
    names = list(mase)
    table = np.stack([mase[m] for m in names])  # (M, n)
    finite = np.isfinite(table)
    best = np.min(np.where(finite, table, np.inf), axis=0)
    best = np.where(np.isfinite(best) & (best > 0), best, 1.0)
    ratio = np.where(finite, np.clip(table / best, 1.0, _MAX_RATIO), _MAX_RATIO)
    log_r = np.log(ratio)
    # The panel's evidence is where a candidate ran: one offered only to some series (the
    # untransformed fits of series too short for the variance test) is not judged by the rest.
    offered = np.where(finite, log_r, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        log_g = np.nanmean(offered, axis=1, keepdims=True)
    log_g = np.where(np.isnan(log_g), np.log(_MAX_RATIO), log_g)
    w = float(max(windows, 1))
    shrunk = np.exp((w * log_r + _PANEL_WEIGHT * log_g) / (w + _PANEL_WEIGHT))
    shrunk = np.where(finite, shrunk, np.inf)
    return {m: shrunk[i] for i, m in enumerate(names)}


def peak(values: np.ndarray) -> float:
    """The highest recorded value (0 when nothing is known)."""
    known = values[~np.isnan(values)]
    return float(known.max()) if known.size else 0.0


def ceiling(s: Series) -> float:
    """The most one bucket of ``s`` may be forecast to reach, band and sample paths included:
    `RUNAWAY` times its recorded peak (no limit for a series that never recorded usage)."""
    top = peak(s.actual)
    return RUNAWAY * top if top > 0 else float("inf")


def cap_runaway(preds: dict[str, np.ndarray], series: list[Series], cuts: list[int]) -> None:
    """Clip every candidate's forecasts (in place) to `RUNAWAY` times the series' peak before
    each origin; ``cuts`` are the origins' distances from the end, 0 for the final fit."""
    peaks = np.zeros((len(cuts), len(series)))
    for j, s in enumerate(series):
        for c, cut in enumerate(cuts):
            peaks[c, j] = peak(s.actual[: len(s.actual) - cut])
    limit = (RUNAWAY * np.maximum(peaks, 0.0))[:, :, None]
    for name, pred in preds.items():
        preds[name] = np.minimum(pred, limit)  # NaN (a failed fit) stays NaN


def window_errors(
    pred: np.ndarray, actual: np.ndarray, squared: np.ndarray | None = None
) -> np.ndarray:
    """Mean absolute error per window and series ``(W, n)``; NaN where nothing is known.
    Root mean squared for the series flagged ``squared`` (see `scores`)."""
    err = np.abs(actual - pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = np.nanmean(err, axis=2)
        if squared is not None:
            out = np.where(squared[None, :], np.sqrt(np.nanmean(err**2, axis=2)), out)
        return out


@dataclass
class Choice:
    """One series' pick: ``method``, and where the combination was kept although a single
    candidate scored lower, that candidate (``rival``) with the windows it won of those both
    were judged on (the note says why it did not replace the combination)."""

    method: str
    rival: str | None = None
    wins: int = 0
    judged: int = 0


def choose(mase: dict[str, np.ndarray], per_window: dict[str, np.ndarray]) -> list[Choice]:
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
            out.append(Choice(name))
            continue
        mine, theirs = per_window[name][:, j], per_window[COMBINATION][:, j]
        known = ~np.isnan(mine) & ~np.isnan(theirs)
        wins, judged = int(np.sum(mine[known] < theirs[known])), int(known.sum())
        dominant = mase[name][j] < DOMINANCE * mase[COMBINATION][j] and (
            # Clearly better on the whole backtest and in most windows: never hand the user a
            # combination that its own backtest shows well behind one of its candidates.
            2 * wins >= judged or (judged >= _MIN_WINDOWS_TO_SELECT and wins == judged)
        )
        if dominant:
            out.append(Choice(name))
        elif mase[name][j] < mase[COMBINATION][j]:
            out.append(Choice(COMBINATION, name, wins, judged))
        else:
            out.append(Choice(COMBINATION))
    return out
