"""Forecasts for series the model zoo cannot handle: all zeros, constant, too short to backtest.

Each returns the point forecast and a residual matrix in the series' modelling space (the
same shape the backtest produces), so intervals and sample paths work the same way, plus a
note that says what was done and why.
"""

from __future__ import annotations

import numpy as np

from tokenplan.forecast.baselines import seasonal_median
from tokenplan.forecast.preparation import CONSTANT, ZEROS, Series, min_history
from tokenplan.frequency import Cadence

# Without a backtest the spread of past values understates the error of a forecast made
# from them (on the ServeGen trace a 1.5x widening covered only ~50% at nominal 80%).
_WIDEN = 2.5


def fallback(series: Series, h: int, cadence: Cadence) -> tuple[np.ndarray, np.ndarray, str]:
    """Point forecast ``(h,)``, residuals ``(k, h)`` (modelling space) and a note."""
    if series.kind == ZEROS:
        return np.zeros(h), np.zeros((1, h)), "fallback: all-zero history, forecast 0"
    if series.kind == CONSTANT:
        value = float(series.y[0])
        return (
            np.full(h, series.z(np.array([value]))[0]),
            np.zeros((1, h)),
            f"fallback: constant history ({value:g}), forecast repeats it",
        )
    z = series.z()
    n = len(z)
    need = min_history(cadence, h)
    season = cadence.primary
    if season > 1 and n >= 2 * season:
        point_cycle = seasonal_median(z, season, season)
        k = min(4, n // season)
        fitted = np.tile(point_cycle, k)
        resid = z[n - k * season :] - fitted
        # The shape from every cycle, the level from the last one: a workload ramping up
        # over its first days sat a whole day behind at the median cycle's level (a steady
        # rise over three days forecast at 0.3x its last peak). No trend is extrapolated:
        # two or three cycles cannot tell a ramp from a step.
        shift = float(np.median(resid[-season:]))
        point = np.resize(point_cycle + shift, h)
        what = f"median profile of the last {k} cycles of {season}, at the last cycle's level"
    else:
        # The level as of now: a short horizon wants the last few hours, not the whole day
        # (a day of 10-minute buckets has a daily swing the median of all of it would miss).
        recent = z[-min(n, max(min(season, 2 * h), 8)) :]
        level = float(np.median(recent))
        resid = z[-min(n, max(season, 8)) :] - level
        point = np.full(h, level)
        what = f"median of the last {len(recent)} values"
        if season > 1:
            what += f"; no seasonal profile (needs {2 * season} buckets, two cycles of {season})"
    # Leave-one-out flavour: every past deviation is a plausible future error, widened.
    errors = np.repeat((resid * _WIDEN)[:, None], h, axis=1)
    note = f"fallback: short history ({n} buckets < {need} needed to backtest), {what}"
    return point, errors, note
