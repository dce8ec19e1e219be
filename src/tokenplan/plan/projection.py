"""Where the current period's total will land: spend so far (exact) plus a calibrated rest.

The rest of the period is forecast four ways (`tokenplan.plan.remaining`): by the forecast
engine (or the plan's own forecast, when it covers the rest), by the straight line of the
period so far, by the period so far over the share it usually makes of a period, and by the
last day's level. All are replayed at the same point of the series' own past periods; how
each did there sets its weight and the combination's errors there set the range
(`tokenplan.plan.stacking`). ``projected`` is the median of the period total; the ranges and
``p_over_limit`` are read from the same distribution, so a limit below the projection is more
likely than not to be passed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from tokenplan.errors import InvalidInput
from tokenplan.frequency import parse_freq
from tokenplan.plan.known import records
from tokenplan.plan.periods import Period, parse_period, period_bounds
from tokenplan.plan.remaining import (
    CANDIDATES,
    EngineOutlook,
    History,
    candidates,
    day_spread,
    engine_outlook,
    plan_outlook,
    usual_share,
)
from tokenplan.plan.stacking import Past, RemainingTotal, Stack, stack
from tokenplan.timestamps import iso_utc

__all__ = ["Projection", "project"]

# Past periods replayed at most: enough to weigh the candidates and see their spread, few
# enough that a projection stays around a second (each replay is one fast engine fit).
MAX_PAST_PERIODS = 8
_NAMES = {
    "engine": "forecast engine",
    "shape": "period so far over its usual share",
    "line": "straight line",
    "level": "last day's level",
}


@dataclass(frozen=True, slots=True)
class _Path:
    """Bucket starts and amounts of a running total (spent, or expected), for crossing times."""

    index: pd.DatetimeIndex
    amounts: np.ndarray
    base: float

    def crossing(self, level: float, step: pd.Timedelta) -> pd.Timestamp | None:
        """When the running total reaches ``level``, interpolated within the bucket."""
        if len(self.amounts) == 0:
            return None
        cum = self.base + np.cumsum(self.amounts)
        if not cum[-1] >= level:
            return None
        i = int(np.argmax(cum >= level))
        y = self.amounts[i]
        frac = (level - (cum[i] - y)) / y if y > 0 else 0.0
        at = pd.Timestamp(self.index[i]) + step * float(min(max(frac, 0.0), 1.0))
        return at.tz_localize("UTC")


_EMPTY = _Path(pd.DatetimeIndex([]), np.zeros(0), 0.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Projection:
    """The current period's total: so far, projected median, ranges and the chance of a limit."""

    period_start: pd.Timestamp
    period_end: pd.Timestamp
    as_of: pd.Timestamp
    so_far: float
    projected: float
    lo_80: float
    hi_80: float
    lo_95: float
    hi_95: float
    limit: float | None
    p_over_limit: float | None
    breach_at: pd.Timestamp | None
    method: str
    weights: dict[str, float] = field(default_factory=dict, compare=False)
    past_periods: int = field(default=0, compare=False)
    candidates: dict[str, float] = field(default_factory=dict, compare=False)
    remaining: RemainingTotal = field(
        default_factory=lambda: RemainingTotal(0.0, 0.0), repr=False, compare=False
    )
    step: pd.Timedelta = field(default=pd.Timedelta(hours=1), repr=False, compare=False)
    spent: _Path = field(default=_EMPTY, repr=False, compare=False)
    expected: _Path = field(default=_EMPTY, repr=False, compare=False)

    def p_over(self, limit: float) -> float:
        """Probability that the period total exceeds ``limit`` (1 once the spend has passed it)."""
        if self.so_far > limit:
            return 1.0
        return min(max(self.remaining.p_above(limit - self.so_far), 0.0), 1.0)

    def crossed_at(self, level: float) -> pd.Timestamp | None:
        """When the spend so far passed ``level``, from the data (None if it has not)."""
        return self.spent.crossing(level, self.step)

    def expected_at(self, level: float) -> pd.Timestamp | None:
        """When the running total passes ``level``: in the data, or along the median path."""
        return self.crossed_at(level) or self.expected.crossing(level, self.step)

    def to_dict(self) -> dict[str, Any]:
        """The ``tokenplan project`` JSON object (times as ISO 8601 UTC)."""

        def iso(t: pd.Timestamp | None) -> str | None:
            return None if t is None else iso_utc(t)

        return {
            "period_start": iso(self.period_start),
            "period_end": iso(self.period_end),
            "so_far": self.so_far,
            "projected": self.projected,
            "lo_80": self.lo_80,
            "hi_80": self.hi_80,
            "lo_95": self.lo_95,
            "hi_95": self.hi_95,
            "p_over_limit": self.p_over_limit,
            "breach_at": iso(self.breach_at),
        }


def project(
    series: pd.DataFrame,
    *,
    period: str | Period,
    limit: float | None = None,
    as_of: Any = None,
    tz: str = "UTC",
    freq: str | None = None,
    forecast: Any = None,
    series_id: str = "total",
    period_of: Any = None,
) -> Projection:
    """Project the total of ``series`` (``ds, y``; several ``unique_id`` are summed) by period end.

    Judged only on buckets starting at or before ``as_of`` (default: the last one). The period
    is the one holding ``period_of`` (default: ``as_of``): the plan names the bucket still
    filling after ``as_of``, so at 00:10 the day projected is the new one. Missing
    buckets are zero usage; NaN (unknown) buckets count as zero in ``so_far``. ``forecast``
    (a `tokenplan.forecast.ForecastResult` of the same series, as the capacity plan holds) is
    used for the rest of the period when it starts right after ``as_of`` and covers it;
    otherwise the forecast engine is run here.
    """
    kind = parse_period(period)
    values, step, start, end = _grid(series, as_of, freq, kind, tz, period_of)
    start_n, end_n = start.tz_localize(None), end.tz_localize(None)
    in_period = values[values.index >= start_n]
    so_far = float(np.nansum(in_period.to_numpy()))
    remaining = pd.date_range(
        values.index[-1] + step, end_n - pd.Timedelta(microseconds=1), freq=step
    )
    spent = _Path(pd.DatetimeIndex(in_period.index), np.nan_to_num(in_period.to_numpy(float)), 0.0)
    proj = Projection(
        period_start=start,
        period_end=end,
        as_of=pd.Timestamp(values.index[-1]).tz_localize("UTC"),
        so_far=so_far,
        projected=so_far,
        lo_80=so_far,
        hi_80=so_far,
        lo_95=so_far,
        hi_95=so_far,
        limit=limit,
        p_over_limit=None,
        breach_at=None,
        method="the period is complete: the total is the spend",
        step=step,
        spent=spent,
    )
    if len(remaining):
        history = History.of(values.to_numpy(float), values.index[0], step)
        outlook = plan_outlook(forecast, series_id, remaining) if forecast is not None else None
        outlook = outlook or engine_outlook(history, len(values), len(remaining), spread=True)
        if outlook is not None and outlook.stopped:
            # Past periods, all of them before the stop, would weigh the straight line of the
            # period so far: a model retired four days ago was projected 19% above its spend.
            detail = outlook.note.split("stopped, ", 1)[-1]
            proj = replace(proj, method=f"stopped, {detail}: the rest of the period at zero")
            return _with_limit(proj, limit)
        windows = _windows(history, start_n, end_n, kind, tz, len(values))
        # The usual share only fits a period seen from its start.
        seen_all = values.index[0] <= start_n
        share = usual_share(history, windows, len(values)) if seen_all else None
        current = candidates(history, len(values), len(in_period), len(remaining), outlook, share)
        eps = _eps(history.values, len(remaining))
        prior = _prior_spread(history, outlook, len(values), eps)
        fit = stack(current, list(_past(history, windows)), eps=eps, prior_sd=prior)
        proj = _with_rest(proj, fit, current, remaining, outlook, kind)
    return _with_limit(proj, limit)


def _with_limit(proj: Projection, limit: float | None) -> Projection:
    if limit is None:
        return proj
    return replace(proj, p_over_limit=proj.p_over(limit), breach_at=proj.expected_at(limit))


def _with_rest(
    proj: Projection,
    fit: Stack,
    current: dict[str, float],
    remaining: pd.DatetimeIndex,
    outlook: EngineOutlook | None,
    kind: Period,
) -> Projection:
    """``proj`` (spend so far only) with the calibrated rest of the period added."""
    dist, so_far = fit.remaining, proj.so_far
    projected = so_far + dist.median
    lo95, lo80, hi80, hi95 = (so_far + dist.quantile(q) for q in (0.025, 0.1, 0.9, 0.975))
    return replace(
        proj,
        projected=projected,
        # Interpolated t quantiles can land a hair beside the median: widen, never move it.
        lo_80=min(lo80, projected),
        hi_80=max(hi80, projected),
        lo_95=min(lo95, lo80, projected),
        hi_95=max(hi95, hi80, projected),
        method=_note(fit.weights, fit.periods, kind, outlook),
        weights=fit.weights,
        past_periods=fit.periods,
        candidates=current,
        remaining=dist,
        expected=_Path(remaining, _shape(outlook, len(remaining)) * dist.median, so_far),
    )


def _grid(
    series: pd.DataFrame,
    as_of: Any,
    freq: str | None,
    kind: Period,
    tz: str,
    period_of: Any = None,
) -> tuple[pd.Series, pd.Timedelta, pd.Timestamp, pd.Timestamp]:
    """The series on a regular grid up to the ``as_of`` bucket, its step and the period."""
    if series.empty or not records(pd.to_numeric(series["y"], errors="coerce")):
        raise InvalidInput("the series has no known values to project from.")
    if "unique_id" in series:
        series = series.groupby("ds", as_index=False)["y"].sum(min_count=1)  # type: ignore[assignment]
    ds = _naive_utc(series["ds"])
    step = _step(ds, freq)
    cut = ds.max() if as_of is None else _naive_utc([as_of])[0]
    if cut < ds.min():
        raise InvalidInput(
            f"--as-of {cut.isoformat()}Z is before the first data point {ds.min().isoformat()}Z."
        )
    values = _regular(series.assign(ds=ds), step, cut)
    first = values.index[0]
    last_bucket = first + ((cut - first) // step) * step
    values = values[values.index <= last_bucket]
    anchor = last_bucket if as_of is None else cut
    if period_of is not None:
        anchor = max(anchor, _naive_utc([period_of])[0])
    start, end = period_bounds(anchor, kind, tz)
    # Coarser buckets for long minute-level histories: same answer, far less work.
    if step < pd.Timedelta(hours=1) and values.index[-1] - first > pd.Timedelta(days=3):
        values, step = _to_hours(values, start.tz_localize(None)), pd.Timedelta(hours=1)
    return values, step, start, end


def _windows(
    history: History, start: pd.Timestamp, end: pd.Timestamp, kind: Period, tz: str, n: int
) -> list[tuple[int, int, int]]:
    """Bucket indices (start, origin, end) of complete, fully known past periods, newest first.

    The origin is at the same share of each past period as ``n`` buckets are of the current
    one (so whole days for weeks, and a month's share for months of other lengths).
    """
    step, first, y = history.step, history.first, history.values
    share = ((first + n * step) - start) / (end - start)
    out = []
    s = start
    for _ in range(MAX_PAST_PERIODS):
        before = (s - pd.Timedelta(microseconds=1)).tz_localize("UTC")
        ps, pe = (t.tz_localize(None) for t in period_bounds(before, kind, tz))
        s = ps
        if ps < first:
            break
        i_start = int(np.ceil((ps - first) / step))
        i_end = int(np.ceil((pe - first) / step))
        upto = i_start + max(round(share * (i_end - i_start)), 1)
        if upto < i_end and np.isfinite(y[i_start:i_end]).all():
            out.append((i_start, upto, i_end))
    return out


def _past(history: History, windows: list[tuple[int, int, int]]) -> Iterator[Past]:
    """Every candidate at the origin of each past period, from the data before it only."""
    y = history.values
    for j, (i_start, upto, i_end) in enumerate(windows):
        r = i_end - upto
        outlook = engine_outlook(history, upto, r, spread=False)
        share = usual_share(history, windows[j + 1 :], upto)
        forecasts = candidates(history, upto, upto - i_start, r, outlook, share)
        yield Past(forecasts, float(y[upto:i_end].sum()), _eps(y[:upto], r))


def _prior_spread(history: History, outlook: EngineOutlook | None, upto: int, eps: float) -> float:
    """The engine's spread of the remaining total when it is backtested, else day totals'."""
    engine = outlook.log_sd(eps) if outlook is not None else None
    if outlook is not None and outlook.calibrated and engine is not None:
        return engine
    spread = day_spread(history, upto)
    if spread is not None:
        return spread
    return engine if engine is not None else 0.0


def _eps(values: np.ndarray, r: int) -> float:
    """A tenth of a typical remaining total: below it errors are additive, not multiplicative.

    Log-ratios of totals near zero (a quiet night, an intermittent series) would otherwise
    read a few cents as a hundredfold error and blow the range up.
    """
    known = values[np.isfinite(values)]
    level = float(np.mean(np.abs(known))) if len(known) else 0.0
    return max(0.1 * level * r, 1e-9)


def _shape(outlook: EngineOutlook | None, r: int) -> np.ndarray:
    """How the rest of the period spreads over its buckets: the engine's, else evenly."""
    if outlook is not None and len(outlook.point) == r and outlook.point.sum() > 0:
        return np.maximum(outlook.point, 0.0) / outlook.point.sum()
    return np.full(r, 1.0 / r)


def _note(
    weights: dict[str, float], periods: int, kind: Period, outlook: EngineOutlook | None
) -> str:
    parts = " + ".join(
        f"{_NAMES[name]} {weights[name]:.2f}" for name in CANDIDATES if name in weights
    )
    where = f"{periods} past {kind.value}(s) at the same point" if periods else "no past period"
    engine = f"; engine: {outlook.note}" if outlook is not None and outlook.note else ""
    return f"weighted {parts} (weights and range from {where}){engine}"


def _naive_utc(values: Any) -> pd.DatetimeIndex:
    ds = pd.DatetimeIndex(pd.to_datetime(values))
    return ds.tz_convert("UTC").tz_localize(None) if ds.tz is not None else ds


def _regular(series: pd.DataFrame, step: pd.Timedelta, until: pd.Timestamp) -> pd.Series:
    """One value per bucket from the first to ``until``; absent buckets are 0, unknown stay NaN."""
    ds = _naive_utc(series["ds"])
    y = pd.Series(pd.to_numeric(series["y"], errors="coerce").to_numpy(float), index=ds)
    first = ds.min()
    y = y.groupby(first + ((ds - first) // step) * step).sum(min_count=1)
    grid = pd.date_range(first, max(until, y.index.max()), freq=step)
    out = y.reindex(grid)
    out[~grid.isin(y.index)] = 0.0
    return out


def _step(ds: pd.DatetimeIndex, freq: str | None) -> pd.Timedelta:
    if freq is not None:
        return pd.Timedelta(seconds=parse_freq(freq).seconds)
    gaps = ds.drop_duplicates().sort_values().to_series().diff().dropna()
    gaps = gaps[gaps > pd.Timedelta(0)]
    if gaps.empty:
        raise InvalidInput("cannot infer the bucket width from one timestamp; pass --freq.")
    return gaps.min()


def _to_hours(values: pd.Series, start: pd.Timestamp) -> pd.Series:
    # Hours aligned to the period start, so no hour straddles the period boundary.
    offset = start - start.floor("h")
    return values.resample("1h", offset=offset).sum(min_count=1)
