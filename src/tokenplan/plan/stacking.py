"""Weigh the candidates by how they did on the series' own past periods, and calibrate the range.

Past errors are log-ratios ``actual / forecast`` of the remaining total, from origins at the
same point of past periods. Weights are inverse mean squared errors, each shrunk toward the
candidates' common mean by `KAPPA` pseudo-periods (equal weights with no past at all). The
combination's own past errors, each made with weights from the other periods (leave one out),
give its bias and spread; a prior (no bias, worth `BIAS_KAPPA` periods; the spread of the
engine's own sample paths for the remaining total, worth `PRIOR_DOF`) fills in when past periods
are few, and the remaining total is log-Student-t with the usual predictive degrees of freedom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# scipy.special, not scipy.stats: the same Student-t, without a second of import time for
# every CLI command.
from scipy.special import stdtr, stdtrit

__all__ = ["BIAS_KAPPA", "KAPPA", "PRIOR_DOF", "Past", "RemainingTotal", "Stack", "stack"]

# Pseudo-periods the prior is worth in the shrinkage of the weights.
KAPPA = 2.0
# Pseudo-periods the "no bias" prior is worth: a full history of `MAX_PAST_PERIODS` (8) keeps
# half its measured bias. A bias read off a few periods is mostly noise, or a ramp that is
# over: at 2 (the weights' value) Azure's first days, ramping up, pushed every later day's
# projection 4-16% high while the days fell. On all three traces with past periods
# (`bench/project_calibration.py`) 8 beat 2 and 4 on MAE and Brier (pooled MAE 0.445x -> 0.43x
# the straight line's; Azure 0.86x -> 0.74x, ServeGen 0.55x -> 0.51x, NASA 0.40x -> 0.39x).
BIAS_KAPPA = 8.0
# Observations the prior spread is worth: the engine calibrates it on four backtest windows
# or more (and the day-total spread needs three days).
PRIOR_DOF = 4.0
# No projection is exact: the remaining total's log-sd never goes below this.
_MIN_SCALE = 0.01


@dataclass(frozen=True, slots=True)
class Past:
    """One past period at the same point: each candidate's remaining total and the actual one."""

    forecasts: Mapping[str, float]
    actual: float
    eps: float


@dataclass(frozen=True, slots=True)
class RemainingTotal:
    """``(centre + eps) * exp(mu + scale * T(dof)) - eps``, floored at 0."""

    centre: float
    eps: float
    mu: float = 0.0
    scale: float = 0.0
    dof: float = np.inf

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of the remaining total."""
        z = float(stdtrit(self.dof, q)) if self.scale > 0 else 0.0
        return max(
            (self.centre + self.eps) * float(np.exp(self.mu + self.scale * z)) - self.eps, 0.0
        )

    @property
    def median(self) -> float:
        """The median remaining total (the projection's point)."""
        return self.quantile(0.5)

    def p_above(self, x: float) -> float:
        """Probability that the remaining total exceeds ``x``."""
        if x < 0:
            return 1.0
        if self.centre + self.eps <= 0:
            return 0.0  # nothing left: the remaining total is 0
        d = float(np.log((x + self.eps) / (self.centre + self.eps))) - self.mu
        if self.scale <= 0:
            return float(d < 0)
        return float(stdtr(self.dof, -d / self.scale))


@dataclass(frozen=True, slots=True)
class Stack:
    """The weights, the combined remaining total's distribution and what it rests on."""

    weights: dict[str, float]
    remaining: RemainingTotal
    periods: int


def _log_errors(past: Sequence[Past], names: Sequence[str]) -> np.ndarray:
    """``(periods, candidates)`` log-ratios actual / forecast; NaN where a candidate was absent."""
    out = np.full((len(past), len(names)), np.nan)
    for j, p in enumerate(past):
        for k, name in enumerate(names):
            f = p.forecasts.get(name)
            if f is not None and np.isfinite(f):
                out[j, k] = np.log((p.actual + p.eps) / (max(f, 0.0) + p.eps))
    return out


def _weights(errors: np.ndarray) -> np.ndarray:
    """Inverse-MSE weights, each MSE shrunk toward the candidates' mean MSE by `KAPPA`."""
    m = errors.shape[1]
    known = np.isfinite(errors)
    count = known.sum(axis=0)
    if not count.any():
        return np.full(m, 1.0 / m)
    sq = np.where(known, errors, 0.0) ** 2
    mse = np.where(count > 0, sq.sum(axis=0) / np.maximum(count, 1), np.nan)
    pooled = float(np.nanmean(mse))
    shrunk = (count * np.nan_to_num(mse, nan=pooled) + KAPPA * pooled) / (count + KAPPA)
    inv = 1.0 / np.maximum(shrunk, 1e-12)
    return inv / inv.sum()


def stack(
    current: Mapping[str, float], past: Sequence[Past], *, eps: float, prior_sd: float
) -> Stack:
    """Combine ``current`` candidate forecasts of the remaining total, calibrated on ``past``.

    ``prior_sd`` is the log-sd of the remaining total the engine's own sample paths give.
    """
    names = [n for n in current if np.isfinite(current[n])]
    f = np.array([max(current[n], 0.0) for n in names])
    errors = _log_errors(past, names)
    # Past periods where a current candidate had no forecast still judge the others.
    w = _weights(errors)
    centre = float(np.dot(w, f))
    # The combination's past errors, each with weights from the other periods only.
    own = []
    for j, p in enumerate(past):
        row = np.array([p.forecasts.get(n, np.nan) for n in names], dtype=float)
        ok = np.isfinite(row)
        if not ok.any():
            continue
        wj = _weights(np.delete(errors, j, axis=0))[ok]
        guess = float(np.dot(wj / wj.sum(), np.maximum(row[ok], 0.0)))
        own.append(np.log((p.actual + p.eps) / (guess + p.eps)))
    e = np.asarray(own)
    k = len(e)
    prior_var = prior_sd**2
    # Normal / inverse-gamma posterior: prior mean 0 worth BIAS_KAPPA periods, prior variance
    # (the engine's) worth PRIOR_DOF; the predictive is Student-t with PRIOR_DOF + k degrees.
    mean = float(e.mean()) if k else 0.0
    mu = k * mean / (k + BIAS_KAPPA)
    ss = float(np.sum((e - mean) ** 2)) + k * BIAS_KAPPA / (k + BIAS_KAPPA) * mean**2
    var = (PRIOR_DOF * prior_var + ss) / (PRIOR_DOF + k)
    scale = max(float(np.sqrt(var * (1 + 1 / (k + BIAS_KAPPA)))), _MIN_SCALE)
    remaining = RemainingTotal(centre=centre, eps=eps, mu=mu, scale=scale, dof=PRIOR_DOF + k)
    return Stack(dict(zip(names, (float(x) for x in w), strict=True)), remaining, k)
