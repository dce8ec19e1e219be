"""Rolling-origin windows, accuracy scores, the combination of candidates, and the choice.

Window ``k`` holds out the last ``cuts[k]`` buckets of every series and forecasts the next
``h`` of them from what is left; cut 0 is the final fit on all history. Scores are MASE
(scaled by the in-sample seasonal naive error of the whole series) and sMAPE.

Combination over selection, with weights earned in the backtest. With four to six noisy
windows, picking the single candidate with the lowest backtest error often picks wrong (the
M4/M5 lesson), and a fixed median of "strong" candidates is dragged down wherever some of them
are weak (on M4 hourly the seasonal median and regression score MASE 5.9 and 7.1, and a fixed
median of the core set 5.8). So every series gets ``combination``: the weighted geometric mean
(in log1p) of its `_TOP` best candidates, ranked by a score shrunk toward how each candidate
did on every series of the same panel (one series' few windows are a noisy judge; the panel's
are steadier), with weights proportional to the inverse square of that score. The first quarter
of the horizon (`early_steps`) is weighted by the same rule applied to the candidates' errors
on those steps only, ramping to the whole horizon's weights: a level-following model that wins
the next few buckets (after a jump an hour ago) need not win the day, and a seasonal one that
wins the day need not win the next bucket. Where the backtest holds six whole cycles or more
(`ensemble_evidence`), the whole horizon's weights come from ensemble selection instead
(`ensemble_weights`): every candidate within the gate may join, and a member earns weight by
what it adds to the others (one that errs low offsets two that err high), not by its own
score; each backtest window is combined with weights chosen on the other windows, so the
combination's backtest errors stay honest. A single candidate replaces the combination only
when it dominates it clearly: MASE below `DOMINANCE` times the combination's and better in
most windows, so the chosen method is never clearly worse than the best candidate in its own
backtest.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from tokenplan.forecast.conformal import independent_windows
from tokenplan.forecast.preparation import Series, min_train
from tokenplan.frequency import Cadence

COMBINATION = "combination"
# How many of the best-ranked candidates the combination averages.
_TOP = 3
# The panel's evidence counts as this many windows of the series' own. Judged on the whole
# benchmark (bench/forecast_accuracy.py, 29 cases with M4 hourly): with the gate at 1.5, a
# panel worth 4 windows gave M4 MASE 0.863, 2 gave 0.852 and 1 gives 0.844; the geometric-mean
# ratio to the best peer 1.049 with 2, 1.046 with 1.
_PANEL_WEIGHT = 1.0
# A relative score beyond this is "failed"; it keeps one awful fit from swamping the panel mean.
_MAX_RATIO = 20.0
# A member's shrunk score may be at most this many times the series' best one: a candidate
# that its own backtest and the panel both put far behind adds risk (an exploding trend on a
# short series), not diversity, however small its weight.
GATE = 1.5
DOMINANCE = 0.75
# A member whose forecast for a window averages more than this factor away from the members'
# median (either way) is left out of that window's mean: three members that disagree by 2x
# are not three views of one future, and the odd one out (a trend compounding in log space,
# a one-day burst taken for a level) is what wrecked the combination on the open traces.
_OUTLIER = 2.0
# No candidate may forecast above this multiple of the highest value the series has recorded
# up to its origin: a trend extrapolated in log space compounds into a runaway (a short series
# rising through its history forecast at 5x its peak a day later), and the backtest, which
# sees shorter histories, does not always catch it. The same limit caps the bands and sample
# paths (`ceiling`).
RUNAWAY = 3.0
_MIN_WINDOWS_TO_SELECT = 4
# Ensemble selection (`ensemble_weights`): rounds of greedy selection with replacement (each
# adds one vote for one member); and the evidence it needs: at least this many
# non-overlapping backtest windows, each a whole cycle of the main season or longer.
ROUNDS = 20
ENSEMBLE_WINDOWS = 6
# The rule's weights (`_weights`) start the selection, worth this many rounds: a shrinkage
# toward the ranking by shrunk scores, as the scores themselves are shrunk toward the panel.
# Judged on the whole benchmark (bench/forecast_accuracy.py, 29 cases / the trace cases;
# M4 MASE; pooled trace coverage 80% / 95%; bench/short_history.py --days 13 MAE over
# seasonal naive's): from nothing 0.9498 / 0.9600, 0.774, 83.1% / 94.9%, 0.846; from the rule
# worth 20 rounds 0.9500 / 0.9599, 0.780, 82.4% / 94.6%, 0.836; the rule alone 0.9564 /
# 0.9660, 0.794, 81.2% / 94.5%, 0.830.
PRIOR_ROUNDS = 20
# Series are selected for in blocks of this many, to bound the (members, windows, series,
# steps) arrays on thousands of series at long horizons.
_BLOCK = 256


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


def early_steps(h: int) -> int:
    """Steps whose combination weights come from the candidates' errors on those steps.

    Judged on the whole benchmark (bench/forecast_accuracy.py geometric-mean MASE ratio to the
    best peer over the 29 cases / the 28 trace cases; bench/m4_hourly.py MASE / sMAPE): one
    set of weights for the whole horizon 0.971 / 0.982, 0.798 / 8.62; the first quarter
    weighted by its own errors 0.966 / 0.976, 0.793 / 8.61.
    """
    return h // 4


def _weights(names: list[str], scores: dict[str, np.ndarray]) -> np.ndarray:
    """``(M, n)``: inverse squared score of each series' `_TOP` best within `GATE`, else 0."""
    table = np.stack([scores[m] for m in names])  # (M, n)
    order = np.argsort(table, axis=0, kind="stable")[: min(_TOP, len(names))]  # (K, n)
    top = np.zeros(table.shape, dtype=bool)
    np.put_along_axis(top, order, True, axis=0)
    with np.errstate(divide="ignore"):
        return np.where(top & _within_gate(names, scores), 1.0 / table**2, 0.0)


def ensemble_evidence(cuts: list[int], h: int, primary: int) -> bool:
    """Whether the backtest holds out enough to choose weights by `ensemble_weights`: at least
    `ENSEMBLE_WINDOWS` non-overlapping windows of at least one whole main cycle each, so every
    window judges the members on a whole day's shape. Short horizons on fine buckets (an hour
    of 10-minute buckets six times over) are a few hours of evidence: there the greedy weights
    fitted noise (bench/forecast_accuracy.py, ServeGen per model at 10 minutes, h=12: MASE
    0.48 -> 0.96)."""
    return bool(cuts) and h >= primary and independent_windows(cuts, h) >= ENSEMBLE_WINDOWS


def _select(
    space: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray,
    allowed: np.ndarray,
    intermittent: np.ndarray,
    prior: np.ndarray,
) -> np.ndarray:
    """Counts ``(M, n)``: ``prior`` weights scaled to `PRIOR_ROUNDS`, then `ROUNDS` rounds, each
    adding, per series, the allowed member whose addition gives the mean (in ``space``) the
    lowest weighted error over ``weight (W, n, h)``. ``space (M, W, n, h)``: log1p
    forecasts; for ``intermittent`` series the forecasts themselves (an arithmetic mean),
    judged by squared errors, as `add_combination` and `scores` treat them."""
    n = space.shape[2]
    counts = PRIOR_ROUNDS * prior / np.maximum(prior.sum(axis=0, keepdims=True), 1e-300)
    total = np.einsum("mn,mwnh->wnh", counts, space)
    series = np.arange(n)
    # Only the log-space series go through expm1: a plain series' values would overflow it.
    plain = intermittent[None, None, :, None]
    for r in range(ROUNDS):
        trial = (total[None] + space) / (PRIOR_ROUNDS + r + 1)
        value = np.where(plain, trial, np.expm1(np.where(plain, 0.0, trial)))
        err = value - target[None]
        err = np.where(plain, err**2, np.abs(err))
        loss = np.where(allowed, np.sum(err * weight[None], axis=(1, 3)), np.inf)
        pick = np.argmin(loss, axis=0)
        counts[pick, series] += 1
        total += space[pick, :, series, :].transpose(1, 0, 2)
    return counts


def ensemble_weights(
    stack: np.ndarray,
    actual: np.ndarray,
    window_w: np.ndarray,
    pool: np.ndarray,
    rule: np.ndarray,
    intermittent: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``(M, C, n)``: combination weights by ensemble selection with replacement (Caruana et
    al. 2004), per series and per cut, over the candidates in ``pool (M, n)`` (those within
    `GATE` of the series' best shrunk score), started from ``rule``'s weights. The final
    forecast's weights (cut 0) come from every backtest window; each window's from the other
    windows only, so the combination's backtest errors, which rank it and set its bands, stay
    out of sample. Series with fewer than two such candidates, or judged on fewer than two
    windows, keep ``rule``; the second array ``(n,)`` is False for them.

    ``stack (M, C, n, h)``: the members' forecasts, cut 0 first; ``actual (W, n, h)`` and
    ``window_w (W, n)`` the backtest's actuals and window weights.
    """
    c, n = stack.shape[1], stack.shape[2]
    out = np.repeat(rule[:, None, :], c, axis=1)
    backtest = stack[:, 1:]
    allowed = pool & ~np.isnan(backtest).any(axis=(1, 3))
    known = ~np.isnan(actual)
    judged = np.count_nonzero(known.any(axis=2), axis=0) >= 2
    ok = (allowed.sum(axis=0) >= 2) & judged
    safe = np.maximum(np.nan_to_num(backtest), 0.0)
    space = np.where(intermittent[None, None, :, None], safe, np.log1p(safe))
    target = np.nan_to_num(actual)
    weight = np.where(known, window_w[:, :, None], 0.0)
    for start in range(0, n, _BLOCK):
        cols = np.arange(start, min(start + _BLOCK, n))
        cols = cols[ok[cols]]
        if not cols.size:
            continue
        block = space[:, :, cols], target[:, cols]
        allowed_here, flags, prior = allowed[:, cols], intermittent[cols], rule[:, cols]
        # Cut 0 (the final forecast) from every window; cut k + 1 from all but window k.
        for cut in range(c):
            held = weight[:, cols].copy()
            if cut:
                held[cut - 1] = 0.0
            out[:, cut, cols] = _select(*block, held, allowed_here, flags, prior)
    return out, ok


def _within_gate(names: list[str], scores: dict[str, np.ndarray]) -> np.ndarray:
    """``(M, n)``: every candidate within `GATE` of each series' best score."""
    table = np.stack([scores[m] for m in names])
    return np.isfinite(table) & (table <= GATE * np.min(table, axis=0))


@dataclass
class Combination:
    """What `add_combination` made of each series: its members, heaviest first (as the notes
    list them), and whether ensemble selection set their weights (else the ranking's rule)."""

    members: list[list[str]]
    selected: np.ndarray


def add_combination(
    preds: dict[str, np.ndarray],
    scores: dict[str, np.ndarray],
    early: dict[str, np.ndarray] | None = None,
    arithmetic: np.ndarray | None = None,
    ensemble: tuple[np.ndarray, np.ndarray] | None = None,
) -> Combination:
    """Add the per-series weighted geometric mean of the `_TOP` best-scored candidates (in
    place), taken in log1p: usage is right-skewed, so the member that forecasts highest is
    the one most often far off, and an arithmetic mean follows it (members at 100, 100 and 190
    average 130, geometrically 124). Judged on the whole benchmark (bench/forecast_accuracy.py
    over the 29 cases / the 28 trace cases; M4 hourly MASE): arithmetic 0.966 / 0.976, 0.793;
    geometric 0.959 / 0.969, 0.795; geometric on log-modelled series only 0.962 / 0.971.
    Series flagged ``arithmetic`` (intermittent ones) take the arithmetic mean: their members'
    forecasts are rates, and one at zero would drag a geometric mean to about nothing.

    With ``early`` (scores on the first `early_steps` steps), the weights move from those
    scores' at the first step to ``scores``' at the last early step: a level-following model
    that wins the next few buckets need not win the day. With ``ensemble`` (the backtest's
    actuals and window weights), the weights come from `ensemble_weights` where it can judge.
    A member whose forecast is missing for a cut (NaN) is left out of that cut's mean, the
    weights of the others renormalised.
    """
    names = [m for m in preds if m in scores]
    if len(names) < 2:
        return Combination([], np.zeros(0, dtype=bool))
    stack = np.stack([preds[m] for m in names])  # (M, C, n, h)
    h = stack.shape[-1]
    whole = used = _weights(names, scores)
    per_cut = whole[:, None, :]
    selected = np.zeros(stack.shape[2], dtype=bool)
    if ensemble is not None:
        flags = np.zeros(stack.shape[2], dtype=bool) if arithmetic is None else arithmetic
        pool = _within_gate(names, scores)
        per_cut, selected = ensemble_weights(stack, *ensemble, pool, whole, flags)
        whole = used = per_cut[:, 0, :]
    known = ~np.isnan(stack)
    # Agreement is judged within each set of members (with `_TOP`, the median is one).
    w = np.where(known & _agreeing(stack, per_cut > 0)[..., None], per_cut[..., None], 0.0)
    e = early_steps(h)
    if early is not None and e > 0:
        first = _weights(names, early)
        # No early score (windows whose first steps are unknown): the whole-horizon weights.
        first = np.where(first.sum(axis=0) > 0, first, whole)
        # The first steps' members agree or not on the first steps' forecasts.
        agree = _agreeing(stack[..., :e], first > 0)[..., None]
        w_first = np.where(known & agree, first[:, None, :, None], 0.0)
        ramp = np.minimum(np.arange(h) / e, 1.0)  # 0 at the first step, 1 from step e on
        early_w, whole_w = _unit(w_first), _unit(w)
        # Where one set has no forecast at all (its members failed that cut), the other decides.
        early_w = np.where(early_w.sum(axis=0) > 0, early_w, whole_w)
        whole_w = np.where(whole_w.sum(axis=0) > 0, whole_w, early_w)
        w = early_w * (1 - ramp) + whole_w * ramp
        used = np.maximum(whole, first)
    # Heaviest over the whole horizon first, as the notes list them; a member of the early
    # weights only says so.
    members = [
        [
            names[i] if whole[i, j] > 0 else f"{names[i]} (first {e} steps)"
            for i in np.lexsort((-used[:, j], -whole[:, j]))
            if used[i, j] > 0
        ]
        for j in range(used.shape[1])
    ]
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        # log1p, not log: a member forecasting zero stays a member.
        values = np.nan_to_num(stack)
        weight = np.where(total > 0, total, 1.0)
        combined = np.expm1((np.log1p(np.maximum(values, 0.0)) * w).sum(axis=0) / weight)
        if arithmetic is not None and arithmetic.any():
            plain = (values * w).sum(axis=0) / weight
            combined = np.where(arithmetic[None, :, None], plain, combined)
        combined = np.where(total > 0, combined, np.nan)
    preds[COMBINATION] = combined
    return Combination(members, selected)


def _unit(w: np.ndarray) -> np.ndarray:
    """Weights over the first axis scaled to sum to one (all-zero stays zero)."""
    total = w.sum(axis=0, keepdims=True)
    return np.divide(w, total, out=np.zeros_like(w), where=total > 0)


def _agreeing(stack: np.ndarray, member: np.ndarray) -> np.ndarray:
    """``(M, C, n)``: False where a member's mean forecast over the window is more than
    `_OUTLIER` times off the median of the series' members (three members or more).
    ``member``: ``(M, n)``, or ``(M, C, n)`` when each cut has members of its own."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        level = np.nanmean(np.maximum(stack, 0.0), axis=3)  # (M, C, n)
        member = member if member.ndim == 3 else member[:, None, :]  # (M, C or 1, n)
        level = np.where(member, level, np.nan)
        median = np.nanmedian(level, axis=0)  # (C, n)
        off = np.abs(np.log(level / median)) > np.log(_OUTLIER)
    enough = member.sum(axis=0) >= 3  # (C or 1, n)
    # A member at zero beside a non-zero median is off; all at zero agree (log(0/0) is NaN).
    return ~(off & enough[None])


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
