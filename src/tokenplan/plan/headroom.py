"""Rate-limit headroom: forecast busiest-minute usage against per-minute provider limits.

Hourly forecasts say nothing about the busiest minute inside an hour, and limits bite on
minutes. So we learn, at the finest bucket the history has, how the busiest minute of an hour
relates to that hour's mean minute (the peak-to-mean ratio), and combine that ratio's
distribution with each forecast bucket's own uncertainty. With minute data the ratio is
measured; with 10-minute data the busiest 10 minutes are measured and the minute inside them
inferred; with hourly data only the busiest minute is inferred, and every note says which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.special import ndtri

from tokenplan.plan.limits import LIMIT_KINDS, LimitsConfig, RateLimit

__all__ = [
    "DEFAULT_PEAK_RATIO",
    "HIT_PROBABILITY",
    "Headroom",
    "HeadroomCheck",
    "PTUAdvice",
    "PeakRatio",
    "check_headroom",
    "inferred_peak_ratio",
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
# From this chance of the window's busiest minute passing a limit on, the limit is "likely" hit
# and its alert is critical (the budgets' rule for a likely overrun).
LIKELY_HIT = 0.5
_FEW_HOURS = 24
_Z = ndtri((np.arange(64) + 0.5) / 64)  # fixed quantile grid: deterministic, no sampling


@dataclass(frozen=True, slots=True)
class PeakRatio:
    """Distribution of (busiest minute) / (mean minute) within an hour, and where it came from."""

    samples: tuple[float, ...]
    source: str
    # False when no history went into the ratio (the default, or inferred from hourly data).
    learned: bool = True

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of the ratio."""
        return float(np.quantile(np.asarray(self.samples), q))


def learn_peak_ratio(
    history: pd.DataFrame | None,
    *,
    bucket_s: int = 60,
    min_minutes: int = 30,
    default: float = DEFAULT_PEAK_RATIO,
) -> PeakRatio:
    """Learn the busiest-minute/mean-minute ratio per clock hour from a ``ds, y`` frame.

    ``history`` holds buckets of ``bucket_s`` seconds (60: minutes, measured directly; up to an
    hour: the busiest bucket is measured and the minute inside it inferred, see
    `inferred_peak_ratio`). Several ``unique_id`` are summed first (limits apply to the sum).
    Hours with under ``min_minutes`` minutes of data are skipped; with none left, the default.
    """
    if bucket_s >= 3600:
        return inferred_peak_ratio(bucket_s, default=default)
    if history is None or history.empty or history["y"].notna().sum() == 0:
        return _default(default, "no minute-level history")
    frame = history.groupby("ds", as_index=False)["y"].sum(min_count=1).dropna()
    ds = pd.to_datetime(frame["ds"])
    spacing = ds.diff().dropna().min()
    if pd.isna(spacing):
        return _default(default, "one bucket of history")
    # Buckets coarser than announced are read at their own width; finer ones as minutes.
    bucket_s = max(bucket_s, int(spacing.total_seconds()), 60)
    if bucket_s >= 3600:
        return inferred_peak_ratio(bucket_s, default=default)
    hours = frame.assign(hour=ds.dt.floor("h")).groupby("hour")["y"]
    stats = pd.DataFrame({"n": hours.size(), "peak": hours.max(), "total": hours.sum()})
    # Mean over the buckets present: the first and last hour of a trace are partial.
    stats = stats[(stats["n"] * bucket_s >= min_minutes * 60) & (stats["total"] > 0)]
    if stats.empty:
        return _default(default, f"no hour with {min_minutes}+ minutes of data")
    # Busiest bucket over the mean bucket; then the busiest minute inside that bucket.
    inside = _within_bucket(bucket_s, default)
    ratios = [float(r) * inside for r in stats["peak"] / (stats["total"] / stats["n"])]
    if bucket_s == 60:
        source = f"learned from {len(ratios)} hour(s) of minute data"
    else:
        width = _width_words(bucket_s)
        source = (
            f"inferred from {width} data: the busiest {width} of each hour is learned from "
            f"{len(ratios)} hour(s), times {inside:.2f} for the busiest minute inside it (the "
            f"{default:g}x hour-to-minute default scaled to {width}, as if bursts look alike "
            "at every scale)"
        )
    if len(ratios) < _FEW_HOURS:
        # A handful of hours cannot show the rare bursty hour, so keep the default in the mix.
        ratios.append(max(default, *ratios))
        source += f", plus the {default:g}x default as fewer than {_FEW_HOURS} hours were seen"
    return PeakRatio(tuple(ratios), source)


def inferred_peak_ratio(bucket_s: int, *, default: float = DEFAULT_PEAK_RATIO) -> PeakRatio:
    """The busiest minute inferred from buckets of an hour or more.

    Such buckets cannot show how usage moves inside them, so an hour's busiest minute is
    ``default`` x its mean minute. A wider bucket is spread evenly over its hours in the plan
    (`tokenplan.store.series_sql.spread_rows`), so its busiest minute is taken as usage as
    bursty at every scale gives it (`_within_bucket`): 11.7x the mean minute of a day with the
    4x default. The source says so, and how to learn the real one.
    """
    if bucket_s <= 3600:
        return PeakRatio(
            (default,),
            f"inferred from {_width_words(bucket_s)} data: the busiest minute is taken as "
            f"{default:g}x the hour's mean minute (the default ratio, as measured on the bursty "
            "Azure 2023 code trace); import minute-level usage to learn your own",
            learned=False,
        )
    ratio = _within_bucket(bucket_s, default)
    width = _width_words(bucket_s)
    return PeakRatio(
        (ratio,),
        f"inferred from {width} data: each {width} bucket is spread evenly over its hours, and "
        f"its busiest minute taken as {ratio:.3g}x its mean minute (the {default:g}x default "
        "per hour, measured on the bursty Azure 2023 code trace, carried to the wider bucket "
        "as usage as bursty at every scale); import hourly or minute-level usage to learn "
        "your own",
        learned=False,
    )


def _default(default: float, why: str) -> PeakRatio:
    return PeakRatio((default,), f"taken as the {default:g}x default ({why})", learned=False)


def _within_bucket(bucket_s: int, default: float) -> float:
    # The default links an hour (60 minutes) to its busiest minute; for a bucket of w minutes
    # the same self-similar burstiness gives default ** (ln w / ln 60): 1 for minutes, 2.18
    # for 10-minute buckets with the 4x default.
    minutes = bucket_s / 60
    return float(default ** (np.log(minutes) / np.log(60))) if minutes > 1 else 1.0


def _width_words(bucket_s: int) -> str:
    if bucket_s == 3600:
        return "hourly"
    if bucket_s == 86400:
        return "daily"
    if bucket_s % 3600 == 0:
        return f"{bucket_s // 3600}-hour"
    if bucket_s % 60 == 0:
        return f"{bucket_s // 60}-minute"
    return f"{bucket_s}-second"


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

    @property
    def severity(self) -> str:
        """``critical`` when the limit is likely hit in the window, ``warning`` from 5%, else ok."""
        if self.p_hit_max >= LIKELY_HIT:
            return "critical"
        return "warning" if self.p_hit_max > HIT_PROBABILITY else "ok"


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
    The p99 peak, P(hit) and the tier that holds all describe one event: the busiest minute of
    the whole forecast window.
    """
    rows: list[Headroom] = []
    for provider, family in limits.families():
        tiers = limits.tiers(provider, family)
        current = limits.current_tier.get(provider)
        shown = {t.tier for t in tiers if t.tier == current} or {t.tier for t in tiers}
        checked = {
            t.tier: _tier_rows(forecasts, t, ratios, cache_read_share, threshold) for t in tiers
        }
        # The smallest tier whose every enforced limit is above the window's p99 busiest minute.
        holding = next(
            (
                t.tier
                for t in tiers
                if checked[t.tier] and all(r.headroom >= 0 for r in checked[t.tier])
            ),
            None,
        )
        for tier in tiers:
            if tier.tier in shown:
                rows += [replace(r, holding_tier=holding) for r in checked[tier.tier]]
    return rows


def _tier_rows(
    forecasts: Mapping[str, pd.DataFrame],
    tier: RateLimit,
    ratios: Mapping[str, PeakRatio],
    cache_read_share: float,
    threshold: float,
) -> list[Headroom]:
    """One row per limit ``tier`` enforces whose metric is forecast (holding tier left empty)."""
    rows = []
    for kind, value in tier.values().items():
        frame, metric = _metric_frame(forecasts, tier, kind)
        if frame is None:
            continue
        ratio = ratios.get(metric) or learn_peak_ratio(None)
        scale = _scale(kind, tier, cache_read_share)
        per_bucket = peak_minutes(frame, ratio, scale=scale, limit=value)
        # When the chance of having hit the limit by then first passes ``threshold``: at the
        # window's end it is `window_peak`'s P(hit), so a row that warns always says from when
        # (each bucket's own chance may stay under it: 1-2% an hour is 42% over a week).
        running = 1.0 - np.cumprod(1.0 - per_bucket["p_hit"].to_numpy())
        risky = np.flatnonzero(running > threshold)
        # p99 and P(hit) of the same event: the window's busiest minute.
        p99, p_hit = window_peak(frame, ratio, scale=scale, limit=value)
        rows.append(
            Headroom(
                provider=tier.provider,
                family=tier.family,
                tier=tier.tier,
                kind=kind,
                metric=metric,
                limit=value,
                expected_peak=float(per_bucket["expected_peak"].max()),
                p99_peak=p99,
                headroom=value - p99,
                p_hit_max=float(p_hit or 0.0),
                first_risk_at=pd.Timestamp(per_bucket["ds"].iloc[risky[0]]) if len(risky) else None,
                holding_tier=None,
                note=f"busiest minute {ratio.source}",
            )
        )
    return rows


def _scale(kind: str, tier: RateLimit, cache_read_share: float) -> float:
    return 1.0 - cache_read_share if kind == "itpm" and not tier.cache_reads_count else 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadroomCheck:
    """Every limit checked, the PTU sizing, and the models no limit covers, for one limits file."""

    rows: tuple[Headroom, ...]
    ptu: tuple[PTUAdvice, ...]
    models: tuple[str, ...]
    unlimited: tuple[str, ...]
    source: str
    peaks: tuple[str, ...]

    @property
    def notes(self) -> list[str]:
        """Where the limits came from, how the busiest minute was found, what went unchecked."""
        out = [f"limits from {self.source}"]
        out += list(self.peaks)
        if self.unlimited:
            out.append(
                f"no rate limit configured in {self.source} for {', '.join(self.unlimited)}; "
                "add one to check it"
            )
        if not self.rows:
            out.append(f"no limit in {self.source} matches the models in the store")
        return out


def check_headroom(
    forecasts: Mapping[str, pd.DataFrame],
    limits: LimitsConfig,
    ratios: Mapping[str, PeakRatio],
    *,
    cache_read_share: float = 0.0,
) -> HeadroomCheck:
    """`plan_headroom` and `size_ptu` of one limits config, with every forecast model listed."""
    models = tuple(
        sorted({str(m) for f in forecasts.values() if "unique_id" in f for m in f["unique_id"]})
    )
    used = [m for m in ("requests", "input_tokens", "output_tokens", "total_tokens") if m in ratios]
    return HeadroomCheck(
        rows=tuple(plan_headroom(forecasts, limits, ratios, cache_read_share=cache_read_share)),
        ptu=tuple(size_ptu(forecasts, limits, ratios, cache_read_share=cache_read_share)),
        models=models,
        unlimited=tuple(limits.unlimited(models)),
        source=limits.source or "the given limits",
        peaks=_peak_notes(used, ratios),
    )


def _peak_notes(used: list[str], ratios: Mapping[str, PeakRatio]) -> tuple[str, ...]:
    """How each metric's busiest minute was found, metrics found the same way on one line."""
    named: dict[str, list[str]] = {}
    for metric in used:
        named.setdefault(ratios[metric].source, []).append(metric.replace("_", " "))
    return tuple(f"{', '.join(names)}: busiest minute {how}" for how, names in named.items())


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
        # The window's p99 busiest minute, as in the headroom rows.
        p99 = {
            m: window_peak(
                f,  # type: ignore[arg-type]
                ratios.get(m) or learn_peak_ratio(None),
                scale=(1.0 - cache_read_share) if m == "input_tokens" else 1.0,
            )[0]
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
