"""Cheap local candidates in numpy: seasonal naive, seasonal median, a re-levelled profile, a
ridge phase regression and seasonally adjusted exponential smoothing.

Each returns predictions for several backtest cuts at once: ``cut`` buckets are held out from
the end of every series (0 means the final forecast from all history).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from tokenplan.forecast.preparation import Series

_RIDGE = 1.0  # penalty on the phase effects of `seasonal_regression`
# `seasonal_regression` runs only on series with this many primary cycles (twice the four the
# seasonal median uses): with fewer it adds no information the median does not already carry.
_REGRESSION_MIN_CYCLES = 8
# Smoothing weights `seasonal_ses` chooses from, by one-step absolute error on the history.
_SES_ALPHAS = np.array([0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
# Cycles the profile of `seasonal_ses` is read from.
_PROFILE_CYCLES = 6


def _tile(cycle: np.ndarray, h: int) -> np.ndarray:
    """Repeat one season's values forward over ``h`` steps."""
    reps = -(-h // len(cycle))
    return np.tile(cycle, reps)[:h]


def seasonal_naive(z: np.ndarray, season: int, h: int) -> np.ndarray:
    """The last full cycle repeated; with no season, the last value."""
    if season <= 1 or len(z) < season:
        return np.full(h, z[-1])
    return _tile(z[-season:], h)


def seasonal_naive_once(z: np.ndarray, season: int, primary: int, h: int) -> np.ndarray:
    """The last cycle of a season seen once, moved by a fresh change of level.

    A week repeated as it was is at the old level for a day or two after a level shift (the
    level-shift rescale waits two days before it trusts a new level). Each primary cycle (day)
    with a counterpart a season before has a change over it; the last day's change, less the
    median of the earlier days' changes, moves the week repeated. A weekend is its own
    counterpart (no change); a shift a week old changed every day alike (nothing fresh: it is in
    the week repeated already, and moving it again overshot 3x, bench/level_shifts.py).
    """
    naive = seasonal_naive(z, season, h)
    days = (len(z) - season) // primary  # days with a counterpart a season before
    if days < 3 or season < 3 * primary:
        return naive
    recent = z[len(z) - days * primary :].reshape(days, primary).mean(axis=1)
    before = z[len(z) - days * primary - season : len(z) - season].reshape(days, primary)
    change = recent - before.mean(axis=1)
    move = float(change[-1] - np.median(change[:-1]))
    return naive + move if np.isfinite(move) else naive  # an unknown day: as it was


def seasonal_median(z: np.ndarray, season: int, h: int, cycles: int = 4) -> np.ndarray:
    """Median over the last few cycles of the same phase: snaive without its noise."""
    k = min(cycles, len(z) // season)
    if k < 2:
        return seasonal_naive(z, season, h)
    block = z[len(z) - k * season :].reshape(k, season)
    return _tile(np.median(block, axis=0), h)


def relevelled_profile(z: np.ndarray, seasons: tuple[int, ...], h: int) -> np.ndarray:
    """Mean profile of the longest season, shifted to the level of the most recent cycle.

    Tracks a level change within a day while keeping the weekly shape; the shift is halved
    because one recent cycle is a noisy estimate of a lasting change.
    """
    season = seasons[-1]
    k = min(4, len(z) // season)
    block = z[len(z) - k * season :].reshape(k, season)
    profile = block.mean(axis=0)
    recent = seasons[0]
    offset = float(np.mean(z[-recent:] - profile[-recent:]))
    return _tile(profile, h) + 0.5 * offset


def seasonal_regression(z: np.ndarray, seasons: tuple[int, ...], h: int) -> np.ndarray:
    """Additive phase effects fitted by ridge regression on all history: a Prophet-like profile.

    ``z = level + phase[t mod s0] (+ block[(t // s0) mod (s1 / s0)])``: hour of day plus day of
    week on hourly data, with a small ridge penalty on the effects. No trend: extrapolated
    trends are what made Prophet and MSTL overshoot on bursty traces. Unlike the seasonal
    median (last few cycles) it averages every cycle, so it is the steadiest member of the
    combination; measured on the six real traces it lowered the combination's MASE on the four
    ServeGen ones (0.3-3%); on Azure's 4-5 days it only duplicated the seasonal median (and
    cost 3%), hence `_REGRESSION_MIN_CYCLES`.
    """
    n = len(z)
    m = seasons[0]
    blocks = seasons[1] // m if len(seasons) > 1 and seasons[1] % m == 0 else 1
    t = np.arange(n + h)
    phase, block = t % m, (t // m) % blocks
    # Normal equations of the dummy-variable design, from counts and sums (no design matrix).
    # Unknowns: level, phases 1..m-1, blocks 1..blocks-1 (phase 0 and block 0 are the base).
    cp = np.bincount(phase[:n], minlength=m).astype(float)
    cb = np.bincount(block[:n], minlength=blocks).astype(float)
    cross = np.bincount(phase[:n] * blocks + block[:n], minlength=m * blocks)
    cross = cross.reshape(m, blocks).astype(float)
    k = m + blocks - 1
    gram = np.zeros((k, k))
    gram[0, 0] = n
    gram[0, 1:m] = gram[1:m, 0] = cp[1:]
    gram[0, m:] = gram[m:, 0] = cb[1:]
    gram[1:m, 1:m] = np.diag(cp[1:])
    gram[m:, m:] = np.diag(cb[1:])
    gram[1:m, m:] = cross[1:, 1:]
    gram[m:, 1:m] = cross[1:, 1:].T
    gram[1:, 1:] += _RIDGE * np.eye(k - 1)
    rhs = np.concatenate(
        [
            [z.sum()],
            np.bincount(phase[:n], weights=z, minlength=m)[1:],
            np.bincount(block[:n], weights=z, minlength=blocks)[1:],
        ]
    )
    beta = np.linalg.solve(gram, rhs)
    phase_effect = np.concatenate([[0.0], beta[1:m]])
    block_effect = np.concatenate([[0.0], beta[m:]])
    return beta[0] + phase_effect[phase[n:]] + block_effect[block[n:]]


def smoothed_level(x: np.ndarray) -> float:
    """Simple exponential smoothing's last level, its weight chosen by one-step absolute error.

    Absolute rather than squared error: a burst or an outage bucket should not pull the
    weight toward chasing every jump.
    """
    if len(x) < 3:
        return float(x[-1])
    best_err, best_level = np.inf, float(x[-1])
    for a in _SES_ALPHAS:
        # level_t = a x_t + (1 - a) level_{t-1}, started at x_0: a first-order recursive filter.
        level = lfilter([a], [1.0, a - 1.0], x[1:], zi=[(1.0 - a) * x[0]])[0]
        before = np.concatenate([[x[0]], level[:-1]])  # the level each x_t was predicted from
        err = float(np.mean(np.abs(x[1:] - before)))
        if err < best_err:
            best_err, best_level = err, float(level[-1])
    return best_level


def seasonal_profile(z: np.ndarray, season: int) -> np.ndarray:
    """Median shape of the last few cycles, each centred on its own mean, shrunk toward flat.

    The shrinkage is the share of the profile's spread that is not noise (James-Stein style):
    the noise is the cycles' scatter around their median, so on a day or two of noisy
    10-minute buckets the profile counts for little, on weeks of regular traffic for all.
    """
    k = min(_PROFILE_CYCLES, len(z) // season)
    block = z[len(z) - k * season :].reshape(k, season)
    block = block - block.mean(axis=1, keepdims=True)
    if k < 2:
        return 0.5 * block[0]  # one cycle: no scatter to judge it by
    profile = np.median(block, axis=0)
    # Variance of a median of k draws is about pi/2 times that of their mean.
    noise = np.pi / 2 * float(np.var(block - profile)) / (k - 1)
    signal = float(np.var(profile))
    keep = max(0.0, 1.0 - noise / signal) if signal > 0 else 0.0
    return keep * profile


def seasonal_ses(z: np.ndarray, seasons: tuple[int, ...], h: int) -> np.ndarray:
    """Seasonally adjusted exponential smoothing (M4's Naive2 idea, with a smoothed level).

    The profile is the longest season with two full cycles in the history (the primary one
    otherwise); the level is smoothed on the adjusted series, so a shift moves it at the
    pace the history's own noise allows, while the season is never extrapolated as a trend.
    """
    fitting = [s for s in seasons if s > 1 and len(z) >= 2 * s]
    season = fitting[-1] if fitting else (seasons[0] if seasons else 1)
    if season <= 1 or len(z) < season:
        return np.full(h, smoothed_level(z))
    # The level is read over the span the profile is read from: older cycles add little to
    # the choice of its weight, and on three months of hourly data cost half the time.
    z = z[-_PROFILE_CYCLES * season :]
    profile = seasonal_profile(z, season)
    n = len(z)
    phase = (np.arange(n) - n) % season  # the last bucket sits at phase season - 1
    level = smoothed_level(z - profile[phase])
    return level + profile[np.arange(h) % season]


def seen_once(cycles: tuple[int, ...], seasons: tuple[int, ...], shortest: int) -> tuple[int, ...]:
    """Seasons of the cadence (``cycles``) left out of ``seasons`` whose whole cycle lies in
    the ``shortest`` history before the earliest backtest cut.

    The models need two cycles of a season (`Cadence.usable`), but its seasonal naive needs
    one: 13 days of hourly traffic have seen each weekday once, and "the same hour last week"
    is then the only candidate that knows a weekend is quiet (`seasonal_naive_once`). Judged on
    the whole benchmark (bench/forecast_accuracy.py, geometric-mean MASE ratio to the best peer
    over the 29 cases): 0.9587 -> 0.9564, trace cases 0.9684 -> 0.9660 (ServeGen's 10-minute
    clients at h=36, two weeks of buckets: 0.958 -> 0.864), worst 1.199 as before; M4 hourly and
    every series with two weekly cycles do not move. bench/short_history.py on 13 days: MAE
    over seasonal naive's 0.988 -> 0.830; bench/level_shifts.py better at every age.
    """
    return tuple(c for c in cycles if c not in seasons and c <= shortest)


def run_baselines(
    series: list[Series],
    cuts: list[int],
    h: int,
    seasons: tuple[int, ...],
    once: tuple[int, ...] = (),
) -> dict[str, np.ndarray]:
    """Predict every cut for every series; returns ``{method: array(cuts, series, h)}``.

    ``once``: longer seasons with a single cycle of history, offered as seasonal naive only.
    """
    # The last value stays a candidate at every frequency: a few steps ahead on fine buckets
    # it is hard to beat (ServeGen per model at 10 minutes, h=12).
    names = ["naive", *(f"seasonal_naive_{s}" for s in (*seasons, *once)), "seasonal_ses"]
    if seasons:
        names += ["seasonal_median", "relevelled_profile", "seasonal_regression"]
    out = {name: np.full((len(cuts), len(series), h), np.nan) for name in names}
    primary = seasons[0] if seasons else 1
    for j, s in enumerate(series):
        z_all = s.z()
        # Over a few cycles the regression is the seasonal median again, counted twice.
        regress = bool(seasons) and len(z_all) >= _REGRESSION_MIN_CYCLES * seasons[0]
        for i, cut in enumerate(cuts):
            z = z_all[: len(z_all) - cut]
            preds: dict[str, np.ndarray] = {}
            preds["naive"] = seasonal_naive(z, 1, h)
            for season in seasons:
                preds[f"seasonal_naive_{season}"] = seasonal_naive(z, season, h)
            for season in once:
                preds[f"seasonal_naive_{season}"] = seasonal_naive_once(z, season, primary, h)
            preds["seasonal_ses"] = seasonal_ses(z, seasons, h)
            if seasons:
                preds["seasonal_median"] = seasonal_median(z, seasons[-1], h)
                preds["relevelled_profile"] = relevelled_profile(z, seasons, h)
                if regress:
                    preds["seasonal_regression"] = seasonal_regression(z, seasons, h)
            for name, value in preds.items():
                out[name][i, j] = s.unz(value)
    return out
