"""Conformal calibration of forecast errors per horizon step; sample paths from the same
errors are `tokenplan.forecast.paths`.

Residuals come from the rolling-origin backtest, in each series' calibration space: for series
modelled in log1p, ``log(y + c)`` with ``c`` a multiple of the recent level (`log_shift`)
that each series' own backtest picks (`choose_shares`), so bands scale with the level without
an empty bucket counting as an infinite relative error. For step
``j`` the residuals of steps ``j - r .. j + r`` of every window are pooled (``r`` grows until
the pool holds about ``_POOL`` values), because a handful of windows alone gives too few; each
residual is divided by its step's spread first and the pool multiplied by step ``j``'s
(`step_scales`), so a pool that spans the whole horizon still widens along it. Bounds are the
split conformal order statistics of that pool. Few windows widen the bands as Student t says
(`small_sample_widening`), and a series whose windows erred one way gets their mirror image
too (`mirrored_bounds`).
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np

_POOL = 100
# The steepest growth of the error's spread along the horizon that `step_scales` fits: a
# random walk's, as the square root of the step. Judged on bench/forecast_accuracy.py (MSIS
# ratio to the best peer's over 29 cases, 80% interval score ratio; M4 MSIS, 95% coverage):
# no growth (the pools alone) 1.105, 1.015, 6.12, 93.8%; up to the step itself 1.076, 0.991,
# 6.12, 93.6%; up to its square root 1.061, 0.988, 6.08, 93.6%.
_MAX_GROWTH = 0.5
# Pooled residuals compared in one pass of `cross_coverage` (bounds its memory).
_BLOCK = 4_000_000
_RECENT_MAX_WIDEN = 2.0
# Fewer non-overlapping backtest windows than this cannot resolve a 2.5% tail by themselves.
TAIL_WINDOWS = 6
# `small_sample_widening` treats fewer windows as this many.
_MIN_WIDENING_WINDOWS = 3
# Log-space errors are read as log(y + c), c this share of the series' recent mean level
# unless another of `SHIFT_SHARES` scores clearly better in the backtest (`choose_shares`):
# by more than `_SHARE_MARGIN`, since a few windows are a noisy judge.
SHIFT_SHARE = 1.0
SHIFT_SHARES = (0.3, 1.0, 3.0, 10.0, 100.0)
_SHARE_MARGIN = 0.05


def radius(windows: int, h: int) -> int:
    """How many neighbouring steps each side to pool so that a step sees ~``_POOL`` values."""
    per_step = max(windows, 1)
    return int(min(h, max(1, -(-(_POOL // per_step - 1) // 2))))


def step_scales(errors: np.ndarray) -> np.ndarray:
    """``errors (n, W, h)`` -> each step's spread relative to the horizon's mean, ``(n, h)``.

    A forecast errs more the further ahead it looks, but with a handful of windows every step's
    pool spans much of the horizon (all of it for twelve steps from six windows), so its bounds
    were as wide at the first step as at the last: on one day of 10-minute history
    (bench/one_day.py) the 95% band covered 98% of the first buckets and 76% of the twelfth.
    The spread is fitted as ``(j + 1) ** b`` by least squares on the log of each step's mean
    absolute residual: two numbers from all windows, where each step's own mean from six is
    noise. ``b`` is held to ``[0, _MAX_GROWTH]``: errors that shrink along the horizon are a
    few windows' chance, and a steeper rise read off a few windows left the first steps'
    bands too narrow for what came (one day's 80% band: 75.6% of buckets without step scales,
    71.3% up to b = 1, 74.0% up to 0.5, its interval score 21.1, 19.5, 19.4). An isotonic fit
    of the steps' means (more freedom) took M4's 95% band to 92.7%, under its 93-97% target.
    """
    n, _, h = errors.shape
    if h < 2:
        return np.ones((n, h))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a step with no residual at all
        spread = np.nanmean(np.abs(errors), axis=1)  # (n, h)
    known = np.isfinite(spread) & (spread > 0)
    x = np.log(np.arange(1, h + 1, dtype=float))
    y = np.log(np.where(known, spread, 1.0))
    count = np.maximum(known.sum(axis=1), 1)
    dx = np.where(known, x - (known * x).sum(axis=1, keepdims=True) / count[:, None], 0.0)
    dy = np.where(known, y - (known * y).sum(axis=1, keepdims=True) / count[:, None], 0.0)
    sxx = (dx**2).sum(axis=1)
    slope = np.divide((dx * dy).sum(axis=1), sxx, out=np.zeros(n), where=sxx > 0)
    slope = np.where(known.sum(axis=1) >= 3, np.clip(slope, 0.0, _MAX_GROWTH), 0.0)
    return growth(h, slope)


def growth(h: int, exponent: float | np.ndarray) -> np.ndarray:
    """The spread ``(j + 1) ** exponent`` of steps ``0 .. h - 1`` over the horizon's mean;
    ``(h,)`` for one exponent, ``(n, h)`` for ``n``."""
    b = np.asarray(exponent, dtype=float)
    profile = np.exp(b[..., None] * np.log(np.arange(1, h + 1, dtype=float)))
    return profile / profile.mean(axis=-1, keepdims=True)


def step_pools(errors: np.ndarray, r: int) -> np.ndarray:
    """``errors (n, W, h)`` -> sorted pools ``(n, h, W * width)`` with NaN last.

    Each step pools a window of ``2r + 1`` neighbouring steps, slid inwards at the edges so the
    first and last steps get pools as large as the middle ones, in units of each step's spread
    (`step_scales`), then scaled to the pooling step's.
    """
    n, w, h = errors.shape
    width = min(2 * r + 1, h)
    first = np.clip(np.arange(h) - r, 0, h - width)
    idx = first[:, None] + np.arange(width)[None, :]  # (h, width)
    scale = step_scales(errors)
    unit = errors / scale[:, None, :]
    pool = unit[:, :, idx].transpose(0, 2, 1, 3).reshape(n, h, w * width)
    return np.sort(pool, axis=2) * scale[:, :, None]


def _ranks(count: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """0-based ranks of the split conformal lower and upper bounds in pools of ``count``."""
    alpha = 1.0 - level / 100.0
    k_hi = np.ceil((count + 1) * (1 - alpha / 2)).astype(int)
    k_lo = np.floor((count + 1) * (alpha / 2)).astype(int)
    return np.clip(k_lo - 1, 0, count - 1), np.clip(k_hi - 1, 0, count - 1)


def bounds(errors: np.ndarray, levels: tuple[float, ...]) -> dict[float, tuple[np.ndarray, ...]]:
    """Conformal ``(lo, hi)`` offsets per series and step for each level, shapes ``(n, h)``."""
    _n, w, h = errors.shape
    pools = step_pools(errors, radius(w, h))
    count = np.sum(~np.isnan(pools), axis=2)
    safe = np.maximum(count, 1)
    out: dict[float, tuple[np.ndarray, ...]] = {}
    for level in levels:
        lo_idx, hi_idx = _ranks(safe, level)
        hi = np.take_along_axis(pools, hi_idx[..., None], axis=2)[..., 0]
        lo = np.take_along_axis(pools, lo_idx[..., None], axis=2)[..., 0]
        empty = count == 0
        # A step with no residual at all (every actual missing) gets no band rather than NaN.
        hi = np.where(empty, 0.0, np.maximum(hi, 0.0))
        lo = np.where(empty, 0.0, np.minimum(lo, 0.0))
        out[level] = (lo, hi)
    return out


def adaptive_bounds(
    errors: np.ndarray, levels: tuple[float, ...], recent: int | None = None
) -> dict[float, tuple[np.ndarray, ...]]:
    """`bounds`, widened to the recent windows' bounds where those are wider.

    Windows are ordered most recent first. Usage drifts: when the latest half of the backtest
    erred more than the whole, the whole understates what comes next (the ServeGen traces
    covered 62-73% at nominal 80% with pooled bounds alone). Taking the wider of the two per
    side and step only ever widens, and costs nothing when errors are stable. Half the windows
    are a noisy estimate (one isolated burst in them would dominate), so they may widen a
    bound at most `_RECENT_MAX_WIDEN` times. ``recent`` is how many windows count as the latest
    (by default half, rounded up).
    """
    out = bounds(errors, levels)
    w = errors.shape[1]
    if w < 4:
        return out
    latest = bounds(errors[:, : recent or -(-w // 2)], levels)
    k = _RECENT_MAX_WIDEN
    return {
        level: (
            np.maximum(np.minimum(lo, latest[level][0]), k * lo),
            np.minimum(np.maximum(hi, latest[level][1]), k * hi),
        )
        for level, (lo, hi) in out.items()
    }


def independent_windows(cuts: list[int], h: int) -> int:
    """How many of the backtest windows ending ``cuts`` buckets before the end do not overlap."""
    return (max(cuts) - h) // h + 1 if cuts else 0


def reference_errors(z: np.ndarray, h: int, season: int, count: int) -> np.ndarray:
    """Seasonal naive's errors ``(k, h)``, ``k <= count``, on the last whole ``h``-blocks of z.

    Block ``b`` (0 the latest) is forecast from the origin ``(b + 1) h`` buckets before the end
    by repeating the cycle before it (``season`` 1: the last value), so each block is a genuine
    out-of-sample window of the simplest seasonal method: it needs one cycle of history instead
    of the models' two, and a short series has more of them than backtest windows.
    """
    m = max(season, 1)
    steps = np.arange(h)
    lags = m * (steps // m + 1)
    reach = int(lags[-1])  # the furthest lag a step of the horizon reads
    out = []
    for b in range(count):
        origin = len(z) - (b + 1) * h
        if origin - reach < 0:
            break
        out.append(z[origin + steps] - z[origin + steps - lags])
    return np.array(out).reshape(len(out), h)


def mirrored_bounds(
    errors: np.ndarray, levels: tuple[float, ...]
) -> dict[float, tuple[np.ndarray, ...]]:
    """`adaptive_bounds` at ``levels`` of ``errors (n, W, h)`` pooled with their mirror image.

    A backtest of fewer than `TAIL_WINDOWS` independent windows usually saw one regime: the
    ramp-up of a client that started a day ago, a week of growth. Its errors then lean one
    way, and the bands inherit the lean: on the side the backtest never erred they are tight,
    and the next fall (or rise) lands outside them. Each window's errors and their negation
    (interleaved, so the recent windows stay first) are equally likely draws when the windows
    cannot tell which way the series will err next. Every band takes this, and only to widen.
    Until 2026-12-05 only the outer one did: the 80% band sat at nominal without it when
    errors were still rescaled to recent volatility (bench/short_history.py, 3 to 7 days:
    77.6-78.1%), but covered 74.5-76.1% once they no longer were; with the mirror, 82.3-84.9%,
    and its interval score 2.132 / 1.982 / 2.034 -> 2.036 / 1.939 / 1.952 on 3 / 5 / 7 days.
    The 95% band covered 90.2-91.0% without it and 93.3-96.6% with it.
    """
    n, w, h = errors.shape
    both = np.stack([errors, -errors], axis=2).reshape(n, 2 * w, h)
    # The latest windows with their mirror images: half of the interleaved ones could end
    # between a window and its image, and the recent bounds would lean again.
    return adaptive_bounds(both, levels, recent=2 * -(-w // 2))


@cache
def small_sample_widening(windows: int) -> float:
    """How much wider a band read off ``windows`` independent windows should be: Student t.

    ``windows`` counts the independent windows in the pool: the series' own non-overlapping
    backtest windows and seasonal naive's that joined it. Its quantiles estimate the error
    scale from that many independent draws; with fewer than `TAIL_WINDOWS` the estimate is
    too narrow about as often as a normal quantile with an estimated scale is, so bands are
    scaled by ``t(k - 1) / t(TAIL_WINDOWS - 1)`` at the 90% quantile. Relative to
    `TAIL_WINDOWS`, the count at which the M4 hourly backtests calibrate (80% coverage 79.3%)
    without it: 1.28 for three windows, 1.04 for five.
    Fewer than three count as three: t with one degree of freedom would double log-space
    bands, and a day's sum of such steps would put its point forecast at the band's edge.
    """
    return _t_ratio(windows, 0.9)


@cache
def sum_widening(windows: int) -> float:
    """How much farther from its point a sum over many steps may fall, read off few windows.

    A day's total errs by about one number per backtest window, so its spread is estimated
    from ``windows`` independent draws, far fewer than a step's pool holds. The predictive
    interval of a new draw from ``k`` is Student t's with ``k - 1`` degrees of freedom, widened
    by ``sqrt(1 + 1 / k)``; relative to `TAIL_WINDOWS`, where sums calibrate without it, at the
    97.5% quantile (the 95% band's edge): 1.79 for three windows, 1.28 for four, 1.10 for five.
    On the open traces' short histories (bench/short_history.py) a day's total fell inside
    its 80% / 95% band 64.8% / 77.0% of the time without it, 77.0% / 86.7% with it (and the
    common shock's prior in `dependence`); at the 90% quantile, 75.6% / 82.6%.
    """
    k = max(windows, _MIN_WIDENING_WINDOWS)
    if k >= TAIL_WINDOWS:
        return 1.0
    return _t_ratio(k, 0.975) * float(np.sqrt((1 + 1 / k) / (1 + 1 / TAIL_WINDOWS)))


def _t_ratio(windows: int, quantile: float) -> float:
    """``t(k - 1) / t(TAIL_WINDOWS - 1)`` at ``quantile``, ``k`` the windows (at least
    `_MIN_WIDENING_WINDOWS`); 1 from `TAIL_WINDOWS` on."""
    from scipy.stats import t

    if windows >= TAIL_WINDOWS:
        return 1.0
    k = max(windows, _MIN_WIDENING_WINDOWS)
    return float(t.ppf(quantile, k - 1) / t.ppf(quantile, TAIL_WINDOWS - 1))


def log_shift(actual: np.ndarray, season: int, share: float = SHIFT_SHARE) -> float:
    """``c`` of the space ``log(y + c)`` where a log-space series' errors are calibrated.

    log1p (``c = 1``) suits counts, but on a series of millions of tokens an empty bucket sits
    17 units below a busy one: one outage or burst in the backtest gave errors of +-17 and
    95% bands of 10^15 tokens. With ``c`` ``share`` of the recent mean level, an empty bucket
    beside a typical one errs by log 2 (``share`` 1), while bands still grow with the level
    above it. Which share suits a series is chosen by `choose_shares`.
    """
    recent = actual[-max(2 * season, 24) :]
    known = recent[~np.isnan(recent)]
    level = float(np.mean(np.maximum(known, 0.0))) if known.size else 0.0
    return max(1.0, share * level)


def choose_shares(
    actual: np.ndarray, pred: np.ndarray, levels_c: np.ndarray, levels: tuple[float, ...]
) -> np.ndarray:
    """Per series, the index in `SHIFT_SHARES` of the space whose bands scored best.

    ``actual`` and ``pred`` ``(n, W, h)`` are the backtest's held-out actuals and the chosen
    method's forecasts, in usage units; ``levels_c`` ``(n, S)`` the shift each share gives.
    Each window is scored with the bands the other windows' errors give in that space (the
    interval score behind MSIS, summed over ``levels``, in usage units), so the choice is out
    of sample. How far a band reaches above the point depends on the space: in ``log(y + c)``
    with a small ``c`` a burst in the backtest stretches the upper band multiplicatively; with
    a large one the space is nearly linear and a steady series' band does not grow with its
    level. Ties, and series with fewer than three windows, keep `SHIFT_SHARE`.

    One share for every series (bench/forecast_accuracy.py, 29 cases: MSIS ratio to the best
    peer's) gave 1.58x in log1p, 1.50x, 1.42x, 1.35x and 1.32x at 0.1, 0.3, 1 and 3 times the
    level, and M4 hourly MSIS 7.24, 7.06, 7.01, 7.07 and 7.18: no one share suits both. Chosen
    per series among 0.3-10, tokenplan's own MSIS fell by 2.7% on geometric mean over the 29
    cases (M4 7.070 -> 7.006), pooled coverage within a point of before; adding 100 (nearly
    linear) took off another 1.9% (bursty ServeGen multimodal clients at 10 minutes 22%, the
    worst case 2.5% up), M4 unchanged.
    """
    from tokenplan.forecast.result import from_calibration, to_calibration  # result imports us

    n, w, _h = actual.shape
    default = SHIFT_SHARES.index(SHIFT_SHARE)
    out = np.full(n, default)
    if w < 3 or not levels or n == 0:
        return out
    scores = np.zeros((len(SHIFT_SHARES), n))
    for i in range(len(SHIFT_SHARES)):
        c = levels_c[:, i][:, None, None]
        zp = to_calibration(pred, True, c)
        err = to_calibration(actual, True, c) - zp
        for k in range(w):
            y = actual[:, k]
            for level, (lo, hi) in bounds(np.delete(err, k, axis=1), levels).items():
                lo_u = from_calibration(zp[:, k] + lo, True, c[:, 0])
                hi_u = from_calibration(zp[:, k] + hi, True, c[:, 0])
                penalty = 2.0 / (1.0 - level / 100.0)
                score = (
                    (hi_u - lo_u)
                    + penalty * np.maximum(lo_u - y, 0.0)
                    + penalty * np.maximum(y - hi_u, 0.0)
                )
                scores[i] += np.where(np.isnan(y), 0.0, score).sum(axis=1)
    finite = np.all(np.isfinite(scores), axis=0)
    best = np.argmin(scores, axis=0)
    better = scores[best, np.arange(n)] < scores[default] * (1.0 - _SHARE_MARGIN)
    return np.where(finite & better, best, default)


def cross_coverage(errors: np.ndarray, levels: tuple[float, ...]) -> dict[float, np.ndarray]:
    """Honest backtest coverage per series: each window is scored with bands from the others.

    Equal to calling `bounds` on all windows but one and testing the held-out one, without
    building and sorting a pool per held-out window: whether a value lies inside the bounds
    only needs how many pooled residuals fall below it, counted by comparison.
    """
    n, w, h = errors.shape
    if w < 2:
        return {level: np.full(n, np.nan) for level in levels}
    r = radius(w - 1, h)
    width = min(2 * r + 1, h)
    first = np.clip(np.arange(h) - r, 0, h - width)
    idx = first[:, None] + np.arange(width)[None, :]  # (h, width)
    hits = {level: np.zeros(n) for level in levels}
    seen = np.zeros(n)
    block = max(1, _BLOCK // (w * h * width))  # series per pass, to bound memory
    for start in range(0, n, block):
        part = slice(start, start + block)
        got, known = _held_out_hits(errors[part], idx, levels)
        seen[part] = known
        for level in levels:
            hits[level][part] = got[level]
    with np.errstate(invalid="ignore", divide="ignore"):
        return {level: np.where(seen > 0, hits[level] / seen, np.nan) for level in levels}


def _held_out_hits(
    errors: np.ndarray, idx: np.ndarray, levels: tuple[float, ...]
) -> tuple[dict[float, np.ndarray], np.ndarray]:
    """Per series: held-out residuals inside the other windows' bounds, and residuals known."""
    n, w, h = errors.shape
    by_window = np.ascontiguousarray(errors.transpose(1, 0, 2))  # (W, n, h)
    # (W, n, h, width): what each window adds to each step's pool; window-major, so that each
    # window's block is contiguous (numpy compares those several times faster than a slice).
    windows = np.take(by_window, idx, axis=2)
    missing = np.isnan(windows)
    present = idx.shape[1] - missing.sum(axis=3)  # (W, n, h)
    # A missing residual is never below a held-out one; +inf says so and compares faster
    # than NaN. (A held-out residual is never +inf: actuals are finite, forecasts >= 0.)
    windows[missing] = np.inf
    hits = {level: np.zeros(n, dtype=np.int64) for level in levels}
    seen = np.zeros(n, dtype=np.int64)
    for k in range(w):
        held = by_window[k, :, :, None]  # (n, h, 1)
        known = ~np.isnan(held[..., 0])
        seen += known.sum(axis=1)
        below = np.zeros((n, h), dtype=np.int64)  # pooled residuals < held
        at_most = np.zeros((n, h), dtype=np.int64)  # pooled residuals <= held
        # The other windows' step scales, and their residuals as `step_pools` rescales them (the
        # same operations, so each comparison is exactly the one `bounds` would make).
        scale = step_scales(np.delete(errors, k, axis=1))
        flat = bool(np.all(scale == 1.0))
        if not flat:
            # Gathered once for every other window; the division and product as before, into
            # one buffer.
            pooling, own = scale[:, idx], scale[:, :, None]
            pooled = np.empty_like(windows[0])
        for other in range(w):
            if other != k:
                if flat:
                    pooled = windows[other]
                else:
                    np.divide(windows[other], pooling, out=pooled)
                    np.multiply(pooled, own, out=pooled)
                below += np.count_nonzero(pooled < held, axis=2)
                at_most += np.count_nonzero(pooled <= held, axis=2)
        count = present.sum(axis=0) - present[k]
        held = held[..., 0]
        for level in levels:
            lo_idx, hi_idx = _ranks(np.maximum(count, 1), level)
            # held <= max(hi, 0) and held >= min(lo, 0), with hi and lo order statistics.
            under_hi = (below <= hi_idx) | (held <= 0)
            over_lo = (at_most >= lo_idx + 1) | (held >= 0)
            inside = np.where(count == 0, held == 0, under_hi & over_lo) & known
            hits[level] += inside.sum(axis=1)
    return hits, seen
