"""The combination of a series' candidates, with weights earned in the backtest.

With four to six noisy windows, picking the single candidate with the lowest backtest error
often picks wrong (the M4/M5 lesson), and a fixed median of "strong" candidates is dragged down
wherever some of them are weak (on M4 hourly the seasonal median and regression score MASE 5.9
and 7.1, and a fixed median of the core set 5.8). So every series gets ``combination``: the
weighted geometric mean (in log1p) of its `_TOP` best candidates, ranked by a score shrunk
toward how each candidate did on every series of the same panel (`selection.shrunk_scores`),
with weights proportional to the inverse square of that score. The first quarter of the
horizon (`early_steps`) is weighted by the same rule applied to the candidates'
errors on those steps only, ramping to the whole horizon's weights: a level-following model
that wins the next few buckets (after a jump an hour ago) need not win the day, and a seasonal
one that wins the day need not win the next bucket. Where the backtest holds six whole cycles
or more (`ensemble_evidence`), the whole horizon's weights come from ensemble selection instead
(`ensemble_weights`): every candidate within the gate may join, and a member earns weight by
what it adds to the others (one that errs low offsets two that err high), not by its own
score; each backtest window is combined with weights chosen on the other windows, so the
combination's backtest errors stay honest.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from tokenplan.forecast.conformal import independent_windows

COMBINATION = "combination"
# How many of the best-ranked candidates the combination averages.
_TOP = 3
# A member's shrunk score may be at most this many times the series' best one: a candidate
# that its own backtest and the panel both put far behind adds risk (an exploding trend on a
# short series), not diversity, however small its weight.
GATE = 1.5
# A member whose forecast for a window averages more than this factor away from the members'
# median (either way) is left out of that window's mean: three members that disagree by 2x
# are not three views of one future, and the odd one out (a trend compounding in log space,
# a one-day burst taken for a level) is what wrecked the combination on the open traces.
_OUTLIER = 2.0
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
