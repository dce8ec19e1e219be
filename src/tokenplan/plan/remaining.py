"""Forecasts of the rest of a period: the forecast engine, the straight line, the last day's level.

Each is a candidate for the remaining total of a period, given the history up to an origin.
The straight line and the last day's level are run-rates: an isolated burst would be
extrapolated by them as a multiple of its cost, so their rates are taken on the history with
such bursts replaced by the usual level (the burst's own cost stays in the spend so far).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tokenplan.errors import TokenplanError
from tokenplan.frequency import Frequency

__all__ = [
    "CANDIDATES",
    "EngineOutlook",
    "History",
    "candidates",
    "engine_outlook",
    "plan_outlook",
    "usual_share",
]

# The order is the order of the notes: the engine first, then the two run-rates.
CANDIDATES = ("engine", "shape", "line", "level")
_PATHS = 2000
# A burst, as the forecast engine defines one: this many robust deviations above the local
# median and at least 4x it, in at most 2% of the buckets of a series with few zeros.
_BURST_Z = 8.0
_BURST_MIN_LOG = float(np.log(4.0))
_BURST_MAX_SHARE = 0.02
_ZERO_MAX_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class EngineOutlook:
    """The engine's forecast of the buckets after an origin: means, and the log-sd of their sum."""

    point: np.ndarray
    log_sd: float | None
    note: str


@dataclass(frozen=True, slots=True)
class History:
    """A regular series (NaN where unknown) with, per bucket, its usual level for run-rates."""

    values: np.ndarray
    first: pd.Timestamp
    step: pd.Timedelta
    usual: np.ndarray
    burst: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, first: pd.Timestamp, step: pd.Timedelta) -> History:
        """Flag bursts with a trailing window, so a flag never depends on later data."""
        day = max(round(pd.Timedelta(days=1) / step), 1)
        window = max(day, 6) + 1
        z = pd.Series(np.log1p(np.maximum(values, 0.0)))
        med = z.rolling(window, min_periods=1).median()
        mad = (z - med).abs().rolling(window, min_periods=1).median()
        band = np.maximum(_BURST_Z * 1.4826 * mad.to_numpy(), _BURST_MIN_LOG)
        burst = (z - med).to_numpy() > band
        return cls(values, first, step, np.expm1(med.to_numpy()), np.nan_to_num(burst) > 0)

    @property
    def day(self) -> int:
        """Buckets in a day (at least one)."""
        return max(round(pd.Timedelta(days=1) / self.step), 1)

    def rates(self, upto: int) -> np.ndarray:
        """Values of buckets ``[0, upto)`` with isolated bursts replaced by the usual level."""
        y = self.values[:upto]
        flags = self.burst[:upto]
        known = np.isfinite(y)
        if not known.any() or flags.mean() > _BURST_MAX_SHARE:
            return y
        # Many zeros: spikes are how such a series spends, not outliers (the engine's rule).
        if np.mean(y[known] == 0) > _ZERO_MAX_SHARE:
            return y
        return np.where(flags, self.usual[:upto], y)


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
    log_sd = None if paths is None else _log_sd(paths.sum(axis=1))
    return EngineOutlook(point, log_sd, result.notes.get("total", ""))


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
    return EngineOutlook(rows["mean"].to_numpy(float)[:r], _log_sd(sums), f"the plan's: {note}")


def _log_sd(sums: np.ndarray) -> float:
    """Spread of a positive total in log terms, read from its central 80% (robust to tails)."""
    lo, hi = np.quantile(sums, [0.1, 0.9])
    mid = max(float(np.median(sums)), 1e-12)
    return float(np.log(max(hi, mid) / max(lo, mid * 1e-3))) / (2 * 1.2816)
