"""Rate-limit headroom: forecast busiest-minute usage against per-minute provider limits.

Hourly forecasts say nothing about the busiest minute inside an hour, and limits bite on
minutes. So we learn from minute-level history how the busiest minute of an hour relates to
that hour's mean minute (the peak-to-mean ratio), and combine that ratio's distribution with
each forecast bucket's own uncertainty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtri

from tokenplan.plan.limits import LIMIT_KINDS, LimitsConfig, RateLimit

__all__ = [
    "DEFAULT_PEAK_RATIO",
    "HIT_PROBABILITY",
    "Headroom",
    "PTUAdvice",
    "PeakRatio",
    "learn_peak_ratio",
    "peak_minutes",
    "plan_headroom",
    "size_ptu",
    "window_peak",
]

# Used when there is no minute-level history: the bursty Azure 2023 code service showed a
# busiest minute 4.0x its hour's mean, so 4 errs on the side of not running out.
DEFAULT_PEAK_RATIO = 4.0
HIT_PROBABILITY = 0.05
_FEW_HOURS = 24
_Z = ndtri((np.arange(64) + 0.5) / 64)  # fixed quantile grid: deterministic, no sampling


@dataclass(frozen=True, slots=True)
class PeakRatio:
    """Distribution of (busiest minute) / (mean minute) within an hour, and where it came from."""

    samples: tuple[float, ...]
    source: str

    @property
    def learned(self) -> bool:
        """True when the ratio comes from minute-level history, not the default."""
        return not self.source.startswith("default")

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of the ratio."""
        return float(np.quantile(np.asarray(self.samples), q))


def learn_peak_ratio(
    minutely: pd.DataFrame | None, *, min_minutes: int = 30, default: float = DEFAULT_PEAK_RATIO
) -> PeakRatio:
    """Learn the busiest-minute/mean-minute ratio per clock hour from a ``ds, y`` minute frame.

    Series with several ``unique_id`` are summed first (limits apply to the sum). Hours with
    fewer than ``min_minutes`` minutes of data are skipped; with none left, ``default`` is used.
    """
    if minutely is None or minutely.empty or minutely["y"].notna().sum() == 0:
        return PeakRatio((default,), f"default {default:g}x (no minute-level history)")
    frame = minutely.groupby("ds", as_index=False)["y"].sum(min_count=1).dropna()
    ds = pd.to_datetime(frame["ds"])
    spacing = ds.diff().dropna().min()
    if pd.isna(spacing) or spacing > pd.Timedelta(minutes=1):
        return PeakRatio((default,), f"default {default:g}x (history is not per minute)")
    hours = frame.assign(hour=ds.dt.floor("h")).groupby("hour")["y"]
    stats = pd.DataFrame({"n": hours.size(), "peak": hours.max(), "total": hours.sum()})
    # Mean over the minutes present: the first and last hour of a trace are partial.
    stats = stats[(stats["n"] >= min_minutes) & (stats["total"] > 0)]
    if stats.empty:
        return PeakRatio((default,), f"default {default:g}x (no hour with {min_minutes}+ minutes)")
    ratios = [float(r) for r in stats["peak"] / (stats["total"] / stats["n"])]
    source = f"learned from {len(ratios)} hour(s) of minute data"
    if len(ratios) < _FEW_HOURS:
        # A handful of hours cannot show the rare bursty hour, so keep the default in the mix.
        ratios.append(max(default, *ratios))
        source += f", plus the {default:g}x default as fewer than {_FEW_HOURS} hours were seen"
    return PeakRatio(tuple(ratios), source)


def _bucket_minutes(forecast: pd.DataFrame) -> float:
    ds = pd.to_datetime(forecast["ds"]).drop_duplicates().sort_values()
    if len(ds) < 2:
        return 60.0
    return float(ds.diff().dropna().min() / pd.Timedelta(minutes=1))


def _sigma(frame: pd.DataFrame) -> np.ndarray:
    # Log-normal spread of each bucket from whichever upper quantiles the forecast carries.
    mean = frame["mean"].to_numpy(float)
    safe = np.where(mean > 0, mean, 1.0)
    sig = np.zeros(len(frame))
    for col, z in (("hi_95", 1.959964), ("hi_80", 1.281552), ("hi_99", 2.575829)):
        if col in frame:
            hi = frame[col].to_numpy(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                s = np.where((mean > 0) & (hi > mean), np.log(hi / safe) / z, 0.0)
            sig = np.maximum(sig, np.nan_to_num(s))
    return sig


def _minute_draws(
    forecast: pd.DataFrame, total: pd.DataFrame, ratio: PeakRatio, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each bucket's mean minute, and draws of its busiest minute (one row per bucket).

    Mean-minute draws are log-normal around the forecast mean, times the peak-ratio draws.
    """
    mean = total["mean"].to_numpy(float) * scale / _bucket_minutes(forecast)
    sig = _sigma(total)
    r = np.asarray(ratio.samples, float)
    draws = mean[:, None, None] * np.exp(
        sig[:, None, None] * _Z[None, :, None] - sig[:, None, None] ** 2 / 2
    )
    return mean, (draws * r[None, None, :]).reshape(len(total), -1)


def peak_minutes(
    forecast: pd.DataFrame, ratio: PeakRatio, *, scale: float = 1.0, limit: float | None = None
) -> pd.DataFrame:
    """Per forecast bucket: expected, p99 busiest minute and (with ``limit``) P(minute > limit).

    ``forecast`` has ``ds, mean`` and optional ``hi_80/hi_95``; series are summed, which is
    conservative for the quantiles. ``scale`` multiplies usage (e.g. the uncached share).
    """
    total = forecast.groupby("ds", as_index=False).sum(numeric_only=True).sort_values("ds")
    mean, peaks = _minute_draws(forecast, total, ratio, scale)
    r = np.asarray(ratio.samples, float)
    out = pd.DataFrame(
        {
            "ds": total["ds"].to_numpy(),
            "expected_peak": mean * float(r.mean()),
            "p99_peak": np.quantile(peaks, 0.99, axis=1) if len(total) else np.array([]),
        }
    )
    if limit is not None:
        out["p_hit"] = (peaks > limit).mean(axis=1) if len(total) else np.array([])
    return out


def window_peak(
    forecast: pd.DataFrame,
    ratio: PeakRatio,
    *,
    scale: float = 1.0,
    limit: float | None = None,
    q: float = 0.99,
) -> tuple[float, float | None]:
    """The ``q`` quantile of the whole window's busiest minute, and P(it exceeds ``limit``).

    Both describe one event (the busiest minute anywhere in the window), so P(hit) is above
    ``1 - q`` exactly when the p99 peak is above the limit. Buckets are taken as independent.
    """
    total = forecast.groupby("ds", as_index=False).sum(numeric_only=True).sort_values("ds")
    if total.empty:
        return 0.0, None if limit is None else 0.0
    peaks = np.sort(_minute_draws(forecast, total, ratio, scale)[1], axis=1)

    def p_below(x: float) -> float:
        # P(every bucket's busiest minute <= x), from each bucket's sorted draws.
        share = np.array([np.searchsorted(row, x, side="right") for row in peaks]) / peaks.shape[1]
        return float(np.prod(share))

    lo, hi = float(peaks[:, 0].min()), float(peaks[:, -1].max())
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if p_below(mid) < q else (lo, mid)
    p_hit = None if limit is None else 1.0 - p_below(limit)
    return hi, p_hit


@dataclass(frozen=True, slots=True, kw_only=True)
class Headroom:
    """One limit of one tier against the forecast busiest minute of the coming buckets."""

    provider: str
    family: str
    tier: str
    kind: str
    metric: str
    limit: int
    expected_peak: float
    p99_peak: float
    headroom: float
    p_hit_max: float
    first_risk_at: pd.Timestamp | None
    holding_tier: str | None
    note: str

    @property
    def headroom_share(self) -> float:
        """Headroom as a share of the limit (negative when the p99 peak is over it)."""
        return self.headroom / self.limit


@dataclass(frozen=True, slots=True, kw_only=True)
class PTUAdvice:
    """The Azure PTU count that holds the p99 busiest minute of a model."""

    model: str
    deployment: str
    p99_input_tpm: float
    p99_output_tpm: float
    units: int
    note: str


def _matching(forecast: pd.DataFrame | None, limit: RateLimit) -> pd.DataFrame | None:
    if forecast is None:
        return None
    if "unique_id" not in forecast:
        return forecast
    ids = forecast["unique_id"].astype(str)
    picked = forecast[ids.map(limit.matches)]
    return picked if not picked.empty else None


def _metric_frame(
    forecasts: Mapping[str, pd.DataFrame], limit: RateLimit, kind: str
) -> tuple[pd.DataFrame | None, str]:
    metric = LIMIT_KINDS[kind]
    if metric == "total_tokens" and "total_tokens" not in forecasts:
        parts = [_matching(forecasts.get(m), limit) for m in ("input_tokens", "output_tokens")]
        if any(p is None for p in parts):
            return None, metric
        return pd.concat(parts), metric
    return _matching(forecasts.get(metric), limit), metric


def plan_headroom(
    forecasts: Mapping[str, pd.DataFrame],
    limits: LimitsConfig,
    ratios: Mapping[str, PeakRatio],
    *,
    cache_read_share: float = 0.0,
    threshold: float = HIT_PROBABILITY,
) -> list[Headroom]:
    """Headroom per limit of the current tier (all tiers when none is set) for matching models.

    ``forecasts`` maps a metric (``requests``, ``input_tokens``, ``output_tokens``, optionally
    ``total_tokens``) to a forecast frame whose ``unique_id`` is the model. ``ratios`` maps a
    metric to its learned `PeakRatio` (missing → the default). ``cache_read_share`` is the share
    of input tokens read from cache, removed where the provider does not count cache reads.
    """
    rows: list[Headroom] = []
    for provider, family in limits.families():
        tiers = limits.tiers(provider, family)
        current = limits.current_tier.get(provider)
        shown = [t for t in tiers if t.tier == current] or tiers
        peaks: dict[str, pd.DataFrame] = {}
        for kind in LIMIT_KINDS:
            frame, metric = _metric_frame(forecasts, tiers[0], kind)
            if frame is None:
                continue
            scale = 1.0
            if kind == "itpm" and not tiers[0].cache_reads_count:
                scale = 1.0 - cache_read_share
            ratio = ratios.get(metric) or learn_peak_ratio(None)
            peaks[kind] = peak_minutes(frame, ratio, scale=scale)
            peaks[kind].attrs["metric"], peaks[kind].attrs["ratio"] = metric, ratio
        if not peaks:
            continue
        holding = _holding_tier(tiers, peaks)
        for tier in shown:
            for kind, value in tier.values().items():
                if kind not in peaks:
                    continue
                p = peaks[kind]
                ratio = p.attrs["ratio"]
                tier_frame = _metric_frame(forecasts, tier, kind)[0]
                tier_scale = _scale(kind, tier, cache_read_share)
                hit = peak_minutes(
                    tier_frame,  # type: ignore[arg-type]
                    ratio,
                    scale=tier_scale,
                    limit=value,
                )["p_hit"].to_numpy()
                risky = np.flatnonzero(hit > threshold)
                # p99 and P(hit) of the same event: the window's busiest minute.
                p99, p_window = window_peak(
                    tier_frame,  # type: ignore[arg-type]
                    ratio,
                    scale=tier_scale,
                    limit=value,
                )
                rows.append(
                    Headroom(
                        provider=provider,
                        family=family,
                        tier=tier.tier,
                        kind=kind,
                        metric=p.attrs["metric"],
                        limit=value,
                        expected_peak=float(p["expected_peak"].max()),
                        p99_peak=p99,
                        headroom=value - p99,
                        p_hit_max=float(p_window or 0.0),
                        first_risk_at=pd.Timestamp(p["ds"].iloc[risky[0]]) if len(risky) else None,
                        holding_tier=holding,
                        note=f"busiest minute per hour: {ratio.source}",
                    )
                )
    return rows


def _scale(kind: str, tier: RateLimit, cache_read_share: float) -> float:
    return 1.0 - cache_read_share if kind == "itpm" and not tier.cache_reads_count else 1.0


def _holding_tier(tiers: Sequence[RateLimit], peaks: Mapping[str, pd.DataFrame]) -> str | None:
    # The smallest tier whose every enforced limit is above the p99 busiest minute.
    for tier in tiers:
        needed = [k for k in tier.values() if k in peaks]
        if needed and all(float(peaks[k]["p99_peak"].max()) <= tier.values()[k] for k in needed):
            return tier.tier
    return None


def size_ptu(
    forecasts: Mapping[str, pd.DataFrame],
    limits: LimitsConfig,
    ratios: Mapping[str, PeakRatio],
    *,
    cache_read_share: float = 0.0,
) -> list[PTUAdvice]:
    """PTUs per configured Azure model that hold the p99 busiest minute (cache reads deducted)."""
    out: list[PTUAdvice] = []
    for sizing in limits.ptu:
        frames = {}
        for metric in ("input_tokens", "output_tokens"):
            f = forecasts.get(metric)
            if f is not None and "unique_id" in f:
                f = f[f["unique_id"].astype(str).map(sizing.matches)]
            frames[metric] = f
        if any(f is None or f.empty for f in frames.values()):
            continue
        p99 = {
            m: float(
                peak_minutes(
                    f,  # type: ignore[arg-type]
                    ratios.get(m) or learn_peak_ratio(None),
                    scale=(1.0 - cache_read_share) if m == "input_tokens" else 1.0,
                )["p99_peak"].max()
            )
            for m, f in frames.items()
        }
        units = sizing.units(p99["input_tokens"], p99["output_tokens"])
        out.append(
            PTUAdvice(
                model=sizing.model,
                deployment=sizing.deployment,
                p99_input_tpm=p99["input_tokens"],
                p99_output_tpm=p99["output_tokens"],
                units=units,
                note=(
                    f"ceil(({p99['input_tokens']:,.0f} + {p99['output_tokens']:,.0f} x "
                    f"{sizing.output_ratio:g}) / {sizing.input_tpm_per_ptu:,}) rounded up to "
                    f"{sizing.minimum} + k x {sizing.increment}"
                ),
            )
        )
    return out
