"""Cheap local candidates in numpy: seasonal naive, seasonal median and a re-levelled profile.

Each returns predictions for several backtest cuts at once: ``cut`` buckets are held out from
the end of every series (0 means the final forecast from all history).
"""

from __future__ import annotations

import numpy as np

from tokenplan.forecast.preparation import Series

_RIDGE = 1.0  # penalty on the phase effects of `seasonal_regression`
# `seasonal_regression` runs only on series with this many primary cycles (twice the four the
# seasonal median uses): with fewer it adds no information the median does not already carry.
_REGRESSION_MIN_CYCLES = 8


def _tile(cycle: np.ndarray, h: int) -> np.ndarray:
    """Repeat one season's values forward over ``h`` steps."""
    reps = -(-h // len(cycle))
    return np.tile(cycle, reps)[:h]


def seasonal_naive(z: np.ndarray, season: int, h: int) -> np.ndarray:
    """The last full cycle repeated; with no season, the last value."""
    if season <= 1 or len(z) < season:
        return np.full(h, z[-1])
    return _tile(z[-season:], h)


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


def run_baselines(
    series: list[Series], cuts: list[int], h: int, seasons: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """Predict every cut for every series; returns ``{method: array(cuts, series, h)}``."""
    # The last value stays a candidate at every frequency: a few steps ahead on fine buckets
    # it is hard to beat (ServeGen per model at 10 minutes, h=12).
    names = ["naive", *(f"seasonal_naive_{s}" for s in seasons)]
    if seasons:
        names += ["seasonal_median", "relevelled_profile", "seasonal_regression"]
    out = {name: np.full((len(cuts), len(series), h), np.nan) for name in names}
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
            if seasons:
                preds["seasonal_median"] = seasonal_median(z, seasons[-1], h)
                preds["relevelled_profile"] = relevelled_profile(z, seasons, h)
                if regress:
                    preds["seasonal_regression"] = seasonal_regression(z, seasons, h)
            for name, value in preds.items():
                out[name][i, j] = s.unz(value)
    return out
