"""Candidate forecasts of the rest of a period, from the history up to an origin.

The forecast engine; the straight line (the period's run-rate so far); the period so far over
the share of a period's total its elapsed part usually holds; the last day's level. The three
run-rates would extrapolate an isolated burst as a multiple of its cost, so their rates are
taken on the history with such bursts replaced by the usual level (the burst's own cost stays
in the spend so far).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tokenplan.errors import TokenplanError
from tokenplan.forecast.preparation import empty_tail, longest_zero_run
from tokenplan.frequency import Frequency

__all__ = [
    "CANDIDATES",
    "EngineOutlook",
    "History",
    "candidates",
    "day_spread",
    "engine_outlook",
    "plan_outlook",
    "usual_share",
]

# The order of the notes: the engine first, then the run-rates.
CANDIDATES = ("engine", "shape", "line", "level")
_PATHS = 2000
_Z90 = 1.2816  # the standard normal's 90% quantile
# A burst, with the forecast engine's thresholds: this many robust deviations above the usual
# level and at least 4x it, in at most 2% of the buckets of a series with few zeros.
_BURST_Z = 8.0
_BURST_MIN_LOG = float(np.log(4.0))
_BURST_MAX_SHARE = 0.02
# The usual level of a bucket: the median of the same time on this many previous days.
_USUAL_DAYS = 7
_ZERO_MAX_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class EngineOutlook:
    """The engine's forecast of the buckets after an origin: means, and their sum's 80% band."""

    point: np.ndarray
    band: tuple[float, float] | None
    note: str
    calibrated: bool = True
    # The engine found the series stopped (`tokenplan.forecast.fallbacks.STOPPED_METHOD`).
    stopped: bool = False

    def log_sd(self, eps: float) -> float | None:
        """Spread of the remaining total in log terms, read from its central 80% (robust to
        tails); ``eps`` keeps a total near zero from reading as infinitely uncertain."""
        if self.band is None:
            return None
        lo, hi = self.band
        return float(np.log((max(hi, lo) + eps) / (max(lo, 0.0) + eps))) / (2 * _Z90)


@dataclass(frozen=True, slots=True)
class History:
    """A regular series (NaN where unknown), with each bucket's usual level and burst flag."""

    values: np.ndarray
    first: pd.Timestamp
    step: pd.Timedelta
    usual: np.ndarray
    burst: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, first: pd.Timestamp, step: pd.Timedelta) -> History:
        """Flag bursts against the same time of the previous days (else the last hours).

        Only earlier buckets set a bucket's usual level, so a flag never depends on later data.
        """
        day = max(round(pd.Timedelta(days=1) / step), 1)
        z = np.log1p(np.maximum(values, 0.0))
        n = len(z)
        lagged = np.full((n, _USUAL_DAYS), np.nan)
        for k in range(1, _USUAL_DAYS + 1):
            if k * day < n:
                lagged[k * day :, k - 1] = z[: n - k * day]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no earlier day yet: all NaN
            usual = np.nanmedian(lagged, axis=1)
        recent = pd.Series(z).rolling(max(day, 6) + 1, min_periods=1).median().to_numpy()
        usual = np.where(np.isnan(usual), recent, usual)
        dev = z - usual
        spread = pd.Series(np.abs(dev)).rolling(_USUAL_DAYS * day, min_periods=1).median()
        band = np.maximum(_BURST_Z * 1.4826 * spread.to_numpy(), _BURST_MIN_LOG)
        burst = np.nan_to_num(dev, nan=0.0) > band
        return cls(values, first, step, np.expm1(usual), burst)

    @property
    def day(self) -> int:
        """Buckets in a day (at least one)."""
        return max(round(pd.Timedelta(days=1) / self.step), 1)

    def rates(self, upto: int) -> np.ndarray:
        """Values of buckets ``[0, upto)`` with isolated bursts, and an outage still going,
        replaced by the usual level."""
        y = self.values[:upto]
        flags = self.burst[:upto]
        known = np.isfinite(y)
        if not known.any() or flags.mean() > _BURST_MAX_SHARE:
            return y
        # Many zeros: spikes are how such a series spends, not outliers (the engine's rule).
        if np.mean(y[known] == 0) > _ZERO_MAX_SHARE:
            return y
        return np.where(flags | self._ongoing_outage(upto), self.usual[:upto], y)

    def _ongoing_outage(self, upto: int) -> np.ndarray:
        """Flags of a run of zeros that reaches bucket ``upto - 1`` and reads as an outage still
        going, as the engine reads one (`tokenplan.forecast.repairs._ongoing_outage`): a
        day at most, the series never empty for as long before, its usual level above zero.
        Counted as spent at nothing, six empty hours of steady spend took the last day's level,
        and a month's projected rest with it, 8% lower."""
        y = np.nan_to_num(self.values[:upto], nan=1.0)  # unknown buckets are no silence
        flags = np.zeros(upto, dtype=bool)
        run = empty_tail(y)
        start = upto - run
        if (
            0 < run < upto
            and run <= self.day
            and run > longest_zero_run(y[:start])
            and (self.usual[start:upto] > 0).all()
        ):
            flags[start:] = True
        return flags


def candidates(
    history: History,
    upto: int,
    elapsed: int,
    r: int,
    outlook: EngineOutlook | None,
    share: float | None = None,
) -> dict[str, float]:
    """Remaining total after bucket ``upto - 1`` per candidate (``elapsed`` buckets of period).

    ``share`` is the part of a period's total that its first ``elapsed`` buckets usually hold
    (from past periods): the period so far, divided by it, is the straight line bent to the
    period's own shape (weekends, nights).
    """
    y = history.rates(upto)
    out: dict[str, float] = {}
    if outlook is not None:
        out["engine"] = float(np.sum(outlook.point))
    part = y[max(upto - elapsed, 0) :]
    if np.isfinite(part).any():
        out["line"] = float(np.nanmean(part)) * r
        if share is not None and 0 < share < 1:
            out["shape"] = float(np.nansum(part)) * (1 - share) / share
    recent = y[max(upto - history.day, 0) :]
    if np.isfinite(recent).any():
        out["level"] = float(np.nanmean(recent)) * r
    return out


def usual_share(history: History, windows: list[tuple[int, int, int]], upto: int) -> float | None:
    """Share of past periods' totals (``start, origin, end`` bucket indices) before the origin."""
    y = history.rates(upto)
    before = sum(float(np.nansum(y[s:o])) for s, o, _ in windows)
    total = sum(float(np.nansum(y[s:e])) for s, _, e in windows)
    return before / total if total > 0 else None


def engine_outlook(history: History, upto: int, r: int, *, spread: bool) -> EngineOutlook | None:
    """The forecast engine's fast candidates on buckets ``[0, upto)``, ``r`` buckets ahead.

    The library's statistical models and LightGBM are left out: the projection replays the
    engine at many past origins, and the cheap candidates keep that to a fraction of a second.
    """
    from tokenplan.forecast import forecast

    y = history.values[:upto]
    known = np.flatnonzero(np.isfinite(y))
    if len(known) == 0:
        return None
    # The engine forecasts from its last known bucket: unknown trailing buckets add horizon.
    gap = upto - 1 - int(known[-1])
    ds = pd.date_range(history.first, periods=upto, freq=history.step)
    frame = pd.DataFrame({"unique_id": "total", "ds": ds, "y": y})
    label = Frequency(int(history.step.total_seconds())).label
    try:
        with warnings.catch_warnings():
            # The engine's copula warns on windows with no known actual (long outages).
            warnings.simplefilter("ignore", RuntimeWarning)
            result = forecast(
                frame, horizon=r + gap, freq=label, levels=(80,), local_models=False, lightgbm=False
            )
            paths = result.sample_paths("total", _PATHS)[:, gap:] if spread else None
    except (TokenplanError, ValueError):
        return None
    point = result.frame["mean"].to_numpy(float)[gap:]
    band = None if paths is None else _band(paths.sum(axis=1))
    return EngineOutlook(
        point,
        band,
        result.notes.get("total", ""),
        _calibrated(result, "total"),
        _stopped(result, "total"),
    )


def plan_outlook(
    forecast: Any, series_id: str, remaining: pd.DatetimeIndex
) -> EngineOutlook | None:
    """The plan's own forecast of ``series_id`` when it starts right after the origin and covers
    the rest of the period (``forecast`` is a `tokenplan.forecast.ForecastResult`)."""
    paths = getattr(forecast, "paths", None)
    if not isinstance(paths, Mapping) or series_id not in paths or len(remaining) == 0:
        return None
    frame = forecast.frame
    rows = frame[frame["unique_id"] == series_id]
    ds = pd.DatetimeIndex(pd.to_datetime(rows["ds"]))
    if ds.tz is not None:
        ds = ds.tz_convert("UTC").tz_localize(None)
    if len(ds) < len(remaining) or ds[0] != remaining[0] or ds[len(remaining) - 1] != remaining[-1]:
        return None
    r = len(remaining)
    sums = forecast.sample_paths(series_id, _PATHS)[:, :r].sum(axis=1)
    notes = getattr(forecast, "notes", {})
    note = notes.get(series_id, "") if isinstance(notes, Mapping) else ""
    return EngineOutlook(
        rows["mean"].to_numpy(float)[:r],
        _band(sums),
        f"the plan's: {note}",
        _calibrated(forecast, series_id),
        _stopped(forecast, series_id),
    )


def _stopped(forecast: Any, series_id: str) -> bool:
    from tokenplan.forecast.fallbacks import STOPPED_METHOD

    chosen = getattr(forecast, "chosen", {})
    return isinstance(chosen, Mapping) and chosen.get(series_id) == STOPPED_METHOD


def day_spread(history: History, upto: int) -> float | None:
    """Robust log-sd of the series' own day totals before ``upto`` (None under three days).

    The prior spread of a remaining total when the engine could not backtest its own: how much
    a day's usage moves is what a projection of the next days cannot know.
    """
    y = history.rates(upto)
    block = history.day
    count = upto // block
    if count < 3:
        return None
    sums = y[upto - count * block : upto].reshape(count, block)
    known = np.isfinite(sums).all(axis=1)
    totals = sums[known].sum(axis=1)
    totals = totals[totals > 0]
    if len(totals) < 3:
        return None
    logs = np.log(totals)
    return float(1.4826 * np.median(np.abs(logs - np.median(logs))))


def _calibrated(result: Any, series_id: str) -> bool:
    """Whether the engine backtested this series (a fallback's spread is a guess)."""
    chosen = getattr(result, "chosen", {})
    method = chosen.get(series_id, "") if isinstance(chosen, Mapping) else ""
    return not str(method).startswith("fallback")


def _band(sums: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(sums, [0.1, 0.9])
    return float(lo), float(hi)
