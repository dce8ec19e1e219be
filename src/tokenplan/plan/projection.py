"""Where the current period's total will land: so far + a forecast of the rest, calibrated.

The remaining buckets are forecast by a seasonal profile model (same hour of day, and day of
week once two weeks are seen, times a recent level). The spread of the remaining total is not
assumed: the same model is replayed at past origins with the same number of buckets left, and
the log-ratios actual / forecast of those remaining totals form the error distribution. With
few past origins it is shrunk toward a normal whose width grows with the horizon.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from tokenplan.errors import InvalidInput
from tokenplan.frequency import parse_freq
from tokenplan.plan.periods import Period, parse_period, period_bounds

__all__ = ["Projection", "project"]

_MAX_ORIGINS = 160
_PRIOR_WEIGHT = 2.0
_MIN_WINDOWS_TO_SELECT = 3.0
_BLEND = 0  # window key of the blended level (since period start + last day)
_MAX_STRETCH = 2.5  # past windows' worth of trust given to the prior spread
_GRID = ndtri((np.arange(200) + 0.5) / 200)


@dataclass(frozen=True, slots=True, kw_only=True)
class Projection:
    """The current period's total: so far, projected mean, ranges and the chance of a limit."""

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
    remaining_draws: np.ndarray = field(
        default_factory=lambda: np.zeros(1), repr=False, compare=False
    )
    draw_weights: np.ndarray = field(default_factory=lambda: np.ones(1), repr=False, compare=False)

    def p_over(self, limit: float) -> float:
        """Probability that the period total exceeds ``limit`` (for several thresholds at once)."""
        if self.so_far > limit:
            return 1.0
        return float(np.sum(self.draw_weights[self.so_far + self.remaining_draws > limit]))

    def to_dict(self) -> dict[str, Any]:
        """The ``tokenplan project`` JSON object (times as ISO 8601 UTC)."""

        def iso(t: pd.Timestamp | None) -> str | None:
            return None if t is None else t.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")

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


def project(
    series: pd.DataFrame,
    *,
    period: str | Period,
    limit: float | None = None,
    as_of: Any = None,
    tz: str = "UTC",
    freq: str | None = None,
) -> Projection:
    """Project the total of ``series`` (``ds, y``; several ``unique_id`` are summed) by period end.

    Judged only on buckets starting at or before ``as_of`` (default: the last one). Missing
    buckets are zero usage; NaN (unknown) buckets count as zero in ``so_far``.
    """
    kind = parse_period(period)
    if series.empty or pd.to_numeric(series["y"], errors="coerce").notna().sum() == 0:
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
    start, end = period_bounds(last_bucket if as_of is None else cut, kind, tz)
    start_n, end_n = start.tz_localize(None), end.tz_localize(None)
    # Coarser buckets for long minute-level histories: same answer, far less work.
    if step < pd.Timedelta(hours=1) and values.index[-1] - first > pd.Timedelta(days=3):
        values, step = _to_hours(values, start_n), pd.Timedelta(hours=1)
    in_period = values[(values.index >= start_n)]
    so_far = float(np.nansum(in_period.to_numpy()))
    remaining = pd.date_range(
        values.index[-1] + step, end_n - pd.Timedelta(microseconds=1), freq=step
    )
    y = values.to_numpy(float)
    r = len(remaining)
    model = _fit(y, r, step, len(in_period))
    fut = model.forecast
    rest = float(fut.sum())
    draws = model.log_ratios
    weights = model.weights
    ratio = np.exp(draws)
    remaining_total = rest * ratio
    # The bias-corrected forecast (the centre of the log-ratio distribution), not the
    # arithmetic mean of the draws: a wide log-normal's mean is dragged up by its tail; kept
    # inside the draws' own 80% range.
    lo, hi = _weighted_quantiles(remaining_total, weights, [0.1, 0.9])
    centre = min(max(rest, lo), hi)
    # Re-centre the draws on it (their median becomes the projection), so P(overrun), read from
    # the same draws, agrees: a limit under the projection has P > 0.5, one above it P < 0.5.
    median = _weighted_quantiles(remaining_total, weights, [0.5])[0]
    if median > 0 and centre > 0:
        remaining_total = remaining_total * (centre / median)
    q = _weighted_quantiles(remaining_total, weights, [0.025, 0.1, 0.9, 0.975])
    projected = so_far + centre
    # Many identical past errors make a point mass whose interpolated quantiles can land a
    # hair beside the median: widen the range to hold the projection rather than move it.
    lo95, lo80 = (min(so_far + v, projected) for v in q[:2])
    hi80, hi95 = (max(so_far + v, projected) for v in q[2:])
    p = None
    breach = None
    if limit is not None:
        p = 1.0 if so_far > limit else float(np.sum(weights[so_far + remaining_total > limit]))
        p = min(max(p, 0.0), 1.0)
        breach = _breach(in_period, fut, rest, remaining, step, limit, so_far)
    return Projection(
        period_start=start,
        period_end=end,
        as_of=pd.Timestamp(values.index[-1]).tz_localize("UTC"),
        so_far=so_far,
        projected=projected,
        lo_80=lo80,
        hi_80=hi80,
        lo_95=lo95,
        hi_95=hi95,
        limit=limit,
        p_over_limit=p,
        breach_at=breach,
        method=model.note,
        remaining_draws=remaining_total,
        draw_weights=weights,
    )


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


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, qs: list[float]) -> list[float]:
    order = np.argsort(x)
    xs, cw = x[order], np.cumsum(w[order])
    cw = (cw - w[order] / 2) / cw[-1]
    return [float(np.interp(q, cw, xs)) for q in qs]


def _breach(
    in_period: pd.Series,
    fut: np.ndarray,
    mean_rem: float,
    remaining: pd.DatetimeIndex,
    step: pd.Timedelta,
    limit: float,
    so_far: float,
) -> pd.Timestamp | None:
    """When the running total crosses ``limit``: in the data, or along the mean path."""
    if so_far > limit:
        y = np.nan_to_num(in_period.to_numpy(float))
        index, base = in_period.index, 0.0
    elif so_far + mean_rem > limit and len(fut):
        scale = mean_rem / fut.sum() if fut.sum() > 0 else 0.0
        y, index, base = fut * scale, remaining, so_far
    else:
        return None
    cum = base + np.cumsum(y)
    i = int(np.argmax(cum > limit))
    before = cum[i] - y[i]
    frac = (limit - before) / y[i] if y[i] > 0 else 0.0
    return (pd.Timestamp(index[i]) + step * float(min(max(frac, 0.0), 1.0))).tz_localize("UTC")


# -- the model ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Fit:
    forecast: np.ndarray
    log_ratios: np.ndarray
    weights: np.ndarray
    note: str


def _season(step: pd.Timedelta) -> int:
    s = pd.Timedelta(days=1) / step
    if step < pd.Timedelta(days=1) and float(s).is_integer():
        return int(s)
    return 1


def _profile(y: np.ndarray, t: int, season: int) -> np.ndarray | None:
    """Hour-of-day shape from up to 28 days before ``t``; column j is phase (t + j) mod season."""
    days = min(t // season, 28) if season > 1 else 0
    if days < 1:
        return None
    block = y[t - days * season : t].reshape(days, season)
    with np.errstate(invalid="ignore"), _quiet():
        col = np.nanmean(block, axis=0)
        overall = np.nanmean(block)
    if not np.isfinite(overall) or overall <= 0:
        return None
    shape = np.nan_to_num(col / overall, nan=1.0)
    w = days / (days + 1.0)  # one day of history is a noisy shape: lean toward flat
    return w * shape + (1 - w)


def _weekday(y: np.ndarray, t: int, season: int) -> np.ndarray | None:
    """Day-of-week factors (7 slots, slot 0 = the day starting at ``t``) from 2+ full weeks."""
    weeks = min(t // (7 * season), 8) if season > 1 else 0
    if weeks < 2:
        return None
    block = y[t - weeks * 7 * season : t].reshape(weeks, 7, season)
    with np.errstate(invalid="ignore"), _quiet():
        days = np.nanmean(block, axis=2)
        per_slot = np.nanmean(days, axis=0)
        overall = np.nanmean(days)
    if not np.isfinite(overall) or overall <= 0:
        return None
    w = weeks / (weeks + 1.0)
    return w * np.nan_to_num(per_slot / overall, nan=1.0) + (1 - w)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's all-NaN slice warnings (pytest turns warnings into errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _forecasts(
    y: np.ndarray, t: int, r: int, season: int, windows: list[int], blend: tuple[int, ...] = ()
) -> dict[int, np.ndarray]:
    """Forecast buckets ``t .. t+r-1`` from ``y[:t]`` per level window: level × day × weekday."""
    prof = _profile(y, t, season)
    week = _weekday(y, t, season)
    lookback = min(max([*windows, *blend]), t)
    past = np.arange(t - lookback, t)
    fut = np.arange(t, t + r)

    def factor(pos: np.ndarray) -> np.ndarray:
        f = np.ones(len(pos))
        if prof is not None:
            f = f * prof[(pos - t) % season]
        if week is not None:
            f = f * week[((pos - t) % (7 * season)) // season]
        return f

    fp = factor(past)
    hist = y[past]
    # Phases that are nearly always empty say little about the level; leave them out.
    ok = np.isfinite(hist) & (fp > 0.05)
    if not ok.any():
        ok = np.isfinite(hist)
    # Suffix sums give the level over the last w buckets for every window at once.
    num = np.cumsum(np.where(ok, np.nan_to_num(hist), 0.0)[::-1])
    den = np.cumsum(np.where(ok, fp, 0.0)[::-1])
    ff = factor(fut)
    out, levels = {}, {}
    for w in {*windows, *blend} - {_BLEND}:
        i = min(w, lookback) - 1
        levels[w] = float(num[i] / den[i]) if i >= 0 and den[i] > 0 else 0.0
        if w in windows:
            out[w] = np.maximum(levels[w] * ff, 0.0)
    if _BLEND in windows:
        # Today so far and the last day, averaged: a new level shows early, noise is halved.
        out[_BLEND] = np.maximum(np.mean([levels[w] for w in blend]) * ff, 0.0)
    return out


def _fit(y: np.ndarray, r: int, step: pd.Timedelta, elapsed: int) -> _Fit:
    """Forecast the next ``r`` buckets and the calibrated log-ratio distribution of their sum."""
    n = len(y)
    season = _season(step)
    if r == 0:
        return _Fit(np.zeros(0), np.zeros(1), np.ones(1), "period complete")
    # Level windows: since the period started (what the straight line uses, but deseasonalised),
    # the last quarter day, day and week; the backtest below picks one.
    blend: tuple[int, ...] = ()
    if season > 1:
        blend = (max(elapsed, 1), season)
        windows = sorted({_BLEND, *blend, max(season // 4, 1), 7 * season})
    else:
        windows = sorted({max(elapsed, 1), n})
    scale = float(np.nanmean(np.abs(y))) if np.isfinite(y).any() else 0.0
    eps = max(scale * 0.05, 1e-9) * r
    lo = max(min(season, n // 2), 1) if season > 1 else max(n // 2, 1)
    horizon = min(r, n - lo)
    e_all: dict[int, list[float]] = {w: [] for w in windows}
    used: list[int] = []
    if horizon >= 1:
        origins = np.arange(lo, n - horizon + 1)
        if len(origins) > _MAX_ORIGINS:
            origins = origins[np.linspace(0, len(origins) - 1, _MAX_ORIGINS).astype(int)]
        for t in origins:
            actual = y[t : t + horizon]
            if not np.isfinite(actual).all():
                continue
            for w, f in _forecasts(y, int(t), horizon, season, windows, blend).items():
                e_all[w].append(float(np.log((actual.sum() + eps) / (f.sum() + eps))))
            used.append(int(t))
    u = np.asarray(used, dtype=int)
    # Origins at the same position in the day as now matter most for this projection.
    same = ((n - u) % season == 0) if season > 1 else np.ones(len(u), bool)
    w_origin = np.where(same, 4.0, 1.0)
    # Independent past windows of this horizon: overlapping origins share most of their errors.
    n_eff = (u.max() - u.min() + horizon) / max(horizon, 1) if len(u) else 0.0
    # Default level: the last day once the daily shape is known, else everything seen. Picking
    # another window by backtest needs a few independent windows, or it chases noise.
    window = _BLEND if season > 1 and n >= season else max(windows)
    if n_eff >= _MIN_WINDOWS_TO_SELECT:
        window = min(windows, key=lambda w: float(np.sum(w_origin * np.abs(e_all[w]))))
    e = np.asarray(e_all[window]) if len(u) else np.zeros(0)
    forecast = _forecasts(y, n, r, season, [window], blend)[window]
    # Errors seen over a shorter horizon than needed: widen them, as a level that wanders
    # would (sqrt), but capped, since usage is mean-reverting over days.
    stretch = min(np.sqrt(r / horizon), _MAX_STRETCH) if 1 <= horizon < r else 1.0
    # Spread seen in n past windows understates the next one's: the usual sqrt(1 + 1/n)
    # prediction-interval factor, applied around the errors' centre.
    inflate = float(np.sqrt(1 + 1 / max(n_eff, 1.0)))
    if len(e):
        centre = float(np.median(e))
        e = centre + (e - centre) * inflate
    e = e * stretch
    prior = _prior_sigma(r, n, season, e, stretch)
    w_emp = n_eff / (n_eff + _PRIOR_WEIGHT) if len(e) else 0.0
    emp_w = w_origin / w_origin.sum() if len(e) else np.zeros(0)
    # Bias of the model at this horizon, in log-ratio, shrunk toward none when evidence is thin.
    mu = float(np.sum(emp_w * e / stretch)) * w_emp if len(e) else 0.0
    draws = np.concatenate([e, mu + prior * _GRID])
    weights = np.concatenate([w_emp * emp_w, np.full(len(_GRID), (1 - w_emp) / len(_GRID))])
    level = "today and the last day" if window == _BLEND else f"{window} buckets"
    note = (
        f"seasonal profile (level over {level}), errors from {len(e)} past origins "
        f"(~{n_eff:.1f} independent windows) blended with a {prior:.2f} log-sd prior"
    )
    return _Fit(forecast * float(np.exp(mu)), draws - mu, weights / weights.sum(), note)


def _prior_sigma(r: int, n: int, season: int, e: np.ndarray, stretch: float) -> float:
    """Log-sd of the remaining total when past origins are few: their spread, above a floor."""
    # Without a full day seen, the daily cycle is unknown: a day's total is then uncertain by
    # about the day/night swing of typical API traffic.
    floor = 0.1 if season > 1 and n >= season else 0.35
    if len(e) >= 2:
        spread = 1.4826 * float(np.median(np.abs(e - np.median(e))))
        return max(spread, float(np.std(e)), floor)
    return max(floor, 0.25 * stretch)
