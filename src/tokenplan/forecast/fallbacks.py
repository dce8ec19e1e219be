"""Forecasts for series the model zoo cannot handle: all zeros, constant, too short to backtest.

Each returns the point forecast in the series' modelling space and a residual matrix (the
same shape the backtest produces; a log-space series' in log(y + its recent level), where a
backtested series' errors are by default), so intervals and sample paths work the same way,
plus a note that says what was done and why. A series seen for a cycle or more but too short to
backtest then gets the median of several forecasts (`blind_median`), since nothing can choose
one; under two cycles the local models among them fit no season, so they see the history with
its last cycle's shape taken out (`cycle_shape`, `adjusted`) and have it put back.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np

from tokenplan.forecast.baselines import seasonal_median, seasonal_naive
from tokenplan.forecast.conformal import growth, log_shift
from tokenplan.forecast.preparation import (
    CONSTANT,
    STOPPED,
    ZEROS,
    Series,
    min_history,
    stopped_for,
)
from tokenplan.frequency import Cadence

# Without a backtest the spread of past values understates the error of a forecast made
# from them (on the ServeGen trace a 1.5x widening covered only ~50% at nominal 80%). Judged
# by the interval score, which charges width as well as misses, on bench/short_fallback.py
# --quick (4,482 slices of M4 hourly, M4 daily totals and the open traces, too short to
# backtest): 2.5x 9.36 / 16.60 at 80% / 95%, coverage 86.1% / 95.9%; 2x 8.65 / 15.96, 80.8%
# / 92.5% (lower at 80% in 14 of its 15 rows, at 95% in 13); 1.5x 8.25 / 16.45, 72.8% / 86.5%.
_WIDEN = 2.0
# The errors' growth along the horizon, ``(j + 1) ** _GROWTH`` over its mean (the shape the
# backtest fits, `conformal.step_scales`). Past deviations say nothing about how fast errors
# grow, and bands as wide a week ahead as the next hour covered 87% of the first day and 61%
# of the seventh at nominal 80% (M4 hourly, three days of history, a week ahead). Judged on
# bench/short_fallback.py --quick (4,482 slices), the interval score at 80% / 95% (each
# row's, mean over the 15 rows): flat 9.66 / 19.00; 0.25 9.59 / 18.57 (a week ahead from
# three days on M4 13.77 / 27.69 -> 13.42 / 25.51), the days' coverage there 75-66% instead
# of 87-61%; flat through the first cycle, then the square root of the cycles ahead (a
# seasonal random walk) 9.61 / 18.60, the first two days at 72% / 65%.
_GROWTH = 0.25
# Seasonal naive's in-sample errors (a cycle apart) that a series seen for more than one cycle
# but less than two needs before they, not the cycle's swing, set its band.
_MIN_NAIVE_ERRORS = 8
# The member of the no-backtest median the engine counts twice where it has a forecast (see
# `blind_median`).
MSTL = "mstl"
# The local models that join the no-backtest median (`blind_median`) besides the profile and
# seasonal naive. AutoETS untransformed where it was fitted both ways: that is the AutoETS
# the median was judged with (see `blind_median`).
BLIND_MODELS = (("auto_ets_raw", "auto_ets"), ("auto_theta",), (MSTL,))


def drifting_errors(n: int, season: int) -> bool:
    """Whether a series seen for one to two cycles has seasonal naive's errors a cycle apart
    for its band (which hold the level's drift between cycles), not its cycle's swing."""
    return n - season >= _MIN_NAIVE_ERRORS


def level_moves(z: np.ndarray, h: int) -> np.ndarray:
    """How far the series moved ``1 .. h`` buckets on from each bucket ``(n - h, h)``, less
    their mean: the errors of a level held for ``h`` buckets, for the band of a series seen
    for a cycle but not for the eight cycle-apart errors of `drifting_errors` (eight of these
    at least: one alone, centred, is no spread at all).

    Such a series has no repeat to measure the errors of a seasonal forecast by, and its
    cycle's swing (the spread about its median, widened as under a cycle) made bands that
    covered 93% / 97% of one day of 10-minute buckets two hours ahead at nominal 80% / 95%
    (bench/one_day.py). These moves are measured, not guessed, so they are not widened; they
    grow along the horizon as the series did within its cycle. Centred, as the level-following
    members of the median (`short_series.blind`) already follow the drift they hold.
    """
    ahead = np.lib.stride_tricks.sliding_window_view(z, h + 1)  # (n - h, h + 1)
    moves = ahead[:, 1:] - ahead[:, :1]
    return moves - moves.mean(axis=0)


def cycle_shape(z: np.ndarray, season: int) -> tuple[np.ndarray, float]:
    """The last cycle's deviations from its mean ``(season,)``, shrunk by the share of them
    that is noise (modelling space), and the share kept.

    One cycle cannot tell a daily shape from one day's noise, so the shape is kept in
    proportion to how far it stands above the noise: seasonal naive's in-sample errors (each
    bucket against the same phase a cycle before) hold twice the noise variance (and the
    level's move between the cycles), and the shape keeps ``1 - noise / its variance`` of
    itself. An hourly day's swing stands far above it (kept whole on most M4 hourly slices,
    about half on the open traces' 36 hours); a week of daily totals that grow keeps little
    or none, which is right for them: last week repeated forecast M4's daily totals from ten
    days at 1.5x AutoETS's error, the median with the shape shrunk so at 0.99x
    (bench/short_fallback.py). The shape read as noise-free (the variance of those errors,
    not their mean square, taken as the noise, so a move of level does not count) gave the
    daily totals 0.99x seasonal naive's error instead of 0.68x, and the traces' 36 hours
    1.01x instead of 0.97x (`--quick`).
    """
    last = z[-season:]
    shape = last - float(np.mean(last))
    again = z[season:] - z[:-season]
    if again.size == 0:
        # Exactly one cycle: its two ends are the nearest pair a cycle apart, less a bucket;
        # less the cycle's own move over that bucket (the mean of the steps beside them),
        # they differ as a cycle later would. Read as noise-free instead, the whole shape was
        # kept and every member of the median became seasonal naive, whose error on one day
        # of 10-minute buckets two hours ahead was 1.84x AutoETS's (bench/one_day.py), the
        # median's so 0.98x; without the move, a day of M4 hourly read its cycle as noise
        # (bench/one_cycle.py: 1.22x seasonal naive's error 12 hours ahead, 1.03x with it).
        step = (last[1] - last[0] + last[-1] - last[-2]) / 2
        again = np.array([last[-1] - last[0] + step])
    noise = float(np.mean(again**2)) / 2
    spread = float(np.mean(shape**2))
    keep = float(np.clip(1.0 - noise / spread, 0.0, 1.0)) if spread > 0 else 0.0
    return keep * shape, keep


def shape_at(shape: np.ndarray, n: int, start: int, stop: int) -> np.ndarray:
    """``shape`` (its phase set by the last cycle of ``n`` buckets) at buckets ``start:stop``."""
    season = len(shape)
    return shape[(np.arange(start, stop) - (n - season)) % season]


def adjusted(series: Series, shape: np.ndarray) -> Series:
    """The series with ``shape`` taken out, for the local models to fit without a season."""
    z = series.z()
    flat = z - shape_at(shape, len(z), 0, len(z))
    y = np.expm1(flat) if series.log else flat
    return replace(series, y=y)


# The method (`ForecastResult.chosen`) of a series that has stopped (`preparation.stopped_for`).
STOPPED_METHOD = "fallback: stopped"


def fallback(series: Series, h: int, cadence: Cadence) -> tuple[np.ndarray, np.ndarray, str, float]:
    """Point forecast ``(h,)`` (modelling space), residuals ``(k, h)``, a note, and the
    ``c`` of the space ``log(y + c)`` the residuals are in (1 where they are not in logs)."""
    if series.kind == ZEROS:
        return np.zeros(h), np.zeros((1, h)), "fallback: all-zero history, forecast 0", 1.0
    if series.kind == STOPPED:
        run = stopped_for(series.y, cadence)
        since = series.start + (len(series.y) - run) * series.step
        return (
            np.zeros(h),
            np.zeros((1, h)),
            f"{STOPPED_METHOD}, no usage since {since:%Y-%m-%d %H:%M} ({run} buckets, more than"
            " twice as long as it was ever empty before, when it was busy most of the time),"
            " forecast 0",
            1.0,
        )
    if series.kind == CONSTANT:
        value = float(series.y[0])
        return (
            np.full(h, series.z(np.array([value]))[0]),
            np.zeros((1, h)),
            f"fallback: constant history ({value:g}), forecast repeats it",
            1.0,
        )
    z = series.z()
    n = len(z)
    need = min_history(cadence, h)
    season = cadence.primary
    moves: np.ndarray | None = None  # measured errors that need no widening (`level_moves`)
    # The residuals, of a log-space series, in log(y + its recent level), as a backtested
    # series' errors are by default (`conformal.log_shift`); the point stays in log1p. In log1p
    # a move to an empty bucket of a series of thousands is 8.5 and set the band's tails: one
    # day of 10-minute history's level moves (below) scored MSIS 37.2 / 47.2 two and six hours
    # ahead, now 26.9 / 33.7, coverage 83.1% / 94.1% then, 83.2% / 94.8% now (bench/one_day.py).
    # The other residuals, judged on bench/short_fallback.py --quick (4,482 slices, too short
    # to backtest): interval score 8.21 / 15.12 -> 7.90 / 14.36 at 80% / 95%, coverage 82.7% /
    # 92.7% -> 82.8% / 92.5%, points unchanged.
    space = 1.0
    w = z
    if series.log:
        usage = np.maximum(series.y, 0.0)
        space = log_shift(usage, season)
        w = np.log(usage + space)
    if season > 1 and n >= 2 * season:
        point_cycle = seasonal_median(z, season, season)
        k = min(4, n // season)
        off = z[n - k * season :] - np.tile(point_cycle, k)
        resid = w[n - k * season :] - np.tile(seasonal_median(w, season, season), k)
        # The shape from every cycle, the level from the last one: a workload ramping up
        # over its first days sat a whole day behind at the median cycle's level (a steady
        # rise over three days forecast at 0.3x its last peak). No trend is extrapolated:
        # two or three cycles cannot tell a ramp from a step.
        shift = float(np.median(off[-season:]))
        point = np.resize(point_cycle + shift, h)
        what = f"median profile of the last {k} cycles of {season}, at the last cycle's level"
    elif season > 1 and n >= season:
        # One cycle seen and part of another: the last cycle repeated (seasonal naive). A flat
        # level drops the day's shape: on a day and a half of hourly history (bench/
        # short_fallback.py) its MAE was 1.7x seasonal naive's on the open traces, 6x on M4.
        point = seasonal_naive(z, season, h)
        errors_seen = w[season:] - w[:-season]
        what = (
            f"the last cycle of {season} repeated (seasonal naive); no seasonal profile"
            f" (needs {2 * season} buckets, two cycles of {season})"
        )
        if drifting_errors(n, season):
            resid = errors_seen
        elif n - h >= _MIN_NAIVE_ERRORS:
            moves = level_moves(w, h)
        else:
            resid = w[-season:] - float(np.median(w[-season:]))
    else:
        # The level as of now: a short horizon wants the last few hours, not the whole day
        # (a day of 10-minute buckets has a daily swing the median of all of it would miss).
        recent = z[-min(n, max(min(season, 2 * h), 8)) :]
        level = float(np.median(recent))
        resid = w[-min(n, max(season, 8)) :] - float(np.median(w[-len(recent) :]))
        point = np.full(h, level)
        what = f"median of the last {len(recent)} values"
        if season > 1:
            what += f"; no seasonal profile (needs {2 * season} buckets, two cycles of {season})"
    # Leave-one-out flavour: every past deviation is a plausible future error, widened, and
    # more so the further ahead (`_GROWTH`).
    errors = (resid * _WIDEN)[:, None] * growth(h, _GROWTH)[None, :] if moves is None else moves
    note = f"fallback: short history ({n} buckets < {need} needed to backtest), {what}"
    return point, errors, note, space


def blind_median(profile: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """Per step, the median of the profile and the other forecasts ``(h,)`` (modelling space);
    a member with no forecast (NaN: its fit failed) is left out.

    Too short to backtest, a series has nothing to choose among its candidates by, and which
    one wins depends on the data: seasonal naive on hourly LLM traffic, a trend model on
    daily totals that grow. The median of five (the profile, seasonal naive, AutoETS,
    AutoTheta, MSTL) stays near the best of them, since no single one sets it (the median
    combination of Petropoulos and Svetunkov's M4 benchmark, SCUM). Judged on
    bench/short_fallback.py (M4 hourly, M4 daily totals and the open traces' hourly series,
    histories of two to eight cycles, too short to backtest, and under two with the last cycle
    repeated): MAE over the in-sample seasonal naive's, geometric mean, 1.418 with the profile
    alone, 0.904 with the median (0.860 replayed on the bench's own statsforecast fits); within
    1% of the best peer on the traces, 5% on M4 hourly, 14% on M4's daily totals.

    The engine passes MSTL's forecast twice where it has one, so the median of six is the mean
    of the middle two: MSTL is the one member that fits the cycle and the trend together, and
    alone it beat the median by up to 10% on M4 hourly and its daily totals, while on the traces'
    noisier hours seasonal naive and the profile did better than it (replayed on
    `--quick`'s 3,441 slices with two cycles or more: the median 0.868, MSTL alone 0.832, MSTL
    twice 0.817; the traces' next day 0.942 / 0.945 -> 0.956 / 0.958 from 48 / 60 hours).
    """
    stack = np.vstack([profile[None, :], *(o[None, :] for o in others)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = np.nanmedian(stack, axis=0)
    return np.where(np.isfinite(out), out, profile)
