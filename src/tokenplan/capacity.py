"""The capacity plan: read the usage once, forecast each metric once, derive everything from it.

    plan = make_plan(store, settings=PlanSettings(horizon_hours=168))
    plan.forecast_frame("total_tokens")   # total, model=…, team=… rows, coherent

This is the one wiring module of DESIGN.md: the report, the demo, the CLI and the coming HTTP
service read a `CapacityPlan` and compute nothing of their own, so a figure shown twice is the
same number. Per metric, the total and every split series are forecast in one call, then the
parts are reconciled to the one total (parts sum to it, no part's quantile exceeds the
total's): the total never depends on which split is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import pandas as pd

from tokenplan.errors import InvalidInput, TokenplanError
from tokenplan.store.duckdb_store import DuckDBStore, StoreSummary
from tokenplan.store.queries import UsageQueries, queries_for
from tokenplan.timestamps import ISO_FORMAT

if TYPE_CHECKING:
    from tokenplan.plan.budgets import BudgetsConfig
    from tokenplan.pricing import FxRate

__all__ = [
    "MAX_HORIZON_HOURS",
    "OTHER",
    "CapacityPlan",
    "ForecastLike",
    "Forecaster",
    "PlanSettings",
    "Planner",
    "cohere",
    "make_plan",
    "open_planner",
]

OTHER = "(other)"
TOTAL = "total"
# Per-model metrics that rate-limit headroom and costed advice need.
MODEL_METRICS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens")
# Minute history that far back is enough to learn how spiky the busiest minute of an hour is.
PEAK_RATIO_DAYS = 7
# A plan looks at most a year ahead: beyond that an hourly forecast says nothing, and its
# arrays (paths x hours x series) would exhaust memory long before.
MAX_HORIZON_HOURS = 8784


class ForecastLike(Protocol):
    """What the forecast engine returns: a frame of means and ranges, and notes per series."""

    @property
    def frame(self) -> pd.DataFrame: ...

    @property
    def notes(self) -> Mapping[str, str] | Sequence[str]: ...


Forecaster = Callable[..., ForecastLike]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanSettings:
    """How far back to learn, how far ahead to forecast, and which splits to plan."""

    horizon_hours: int = 168
    # Twelve weeks is enough for weekly seasonality and keeps the forecast fast on big stores.
    train_days: int = 84
    history_days: int = 14
    dimensions: tuple[str, ...] = ("model", "team")
    # Beyond this many values of a dimension the rest is pooled, so charts stay legible.
    max_series: int = 8
    # Per-model forecasts (headroom, advice): the biggest models are forecast one by one, the
    # rest as one pool shared out by their recent use, so 5,000 models cost 10 series.
    max_model_series: int = 10
    levels: tuple[int, ...] = (80, 95)
    freq: str = "1h"

    def __post_init__(self) -> None:
        if not 1 <= self.horizon_hours <= MAX_HORIZON_HOURS:
            raise InvalidInput(
                f"horizon_hours {self.horizon_hours} is outside 1..{MAX_HORIZON_HOURS} "
                "(a year of hours)."
            )


@dataclass(slots=True, kw_only=True)
class CapacityPlan:
    """Every frame the faces show: history, coherent forecasts, per-model forecasts, notes."""

    settings: PlanSettings
    queries: UsageQueries
    summary: StoreSummary
    as_of: pd.Timestamp | None = None
    since: datetime | None = None
    metric: str = "total_tokens"
    history: dict[str, pd.DataFrame] = field(default_factory=dict)
    results: dict[str, ForecastLike] = field(default_factory=dict)
    forecasts: dict[str, pd.DataFrame] = field(default_factory=dict)
    per_model: dict[str, pd.DataFrame] | str = "no forecast of requests and tokens per model"
    providers: dict[str, str | None] = field(default_factory=dict)
    spend_all: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    forecast_notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when the store holds no usage."""
        return self.as_of is None

    @property
    def unpriced_models(self) -> list[str]:
        """Models whose cost is unknown (no price): their cost is shown as unknown, not 0."""
        return list(self.summary.unpriced_models)

    def forecast_frame(self, metric: str) -> pd.DataFrame | None:
        """The coherent forecast of ``metric``: ``unique_id`` total, ``dim=value``; ds naive UTC."""
        return self.forecasts.get(metric)

    def total(self, metric: str, start: pd.Timestamp, end: pd.Timestamp) -> float | None:
        """Forecast mean of ``metric``'s total over ``[start, end)``."""
        fc = self.forecasts.get(metric)
        if fc is None:
            return None
        part = fc[(fc["unique_id"] == TOTAL) & (fc["ds"] >= start) & (fc["ds"] < end)]
        return float(part["mean"].sum())

    def sum_range(
        self, metric: str, start: pd.Timestamp, end: pd.Timestamp, level: int = 80
    ) -> tuple[float | None, float | None]:
        """Range of the total over ``[start, end)`` from the engine's joint paths, if any."""
        interval = getattr(self.results.get(metric), "sum_interval", None)
        if interval is None:
            return None, None
        got = interval(TOTAL, start, end, levels=(level,))
        return float(got[f"lo_{level}"]), float(got[f"hi_{level}"])

    def budget_statuses(self, budgets: BudgetsConfig, *, fx: FxRate | None = None) -> list[Any]:
        """Each budget judged on the plan's spend (``tokenplan.plan.budgets.evaluate_budgets``)."""
        from tokenplan.plan.budgets import evaluate_budgets, scopes_needed

        if self.as_of is None:
            return []
        spend = {
            scope: self.queries.series(
                "cost_usd",
                self.settings.freq,
                () if scope == "all" else (scope,),
                self.since,
                self.as_of.to_pydatetime(),
            )
            for scope in scopes_needed(budgets)
        }
        last = self.as_of - pd.Timedelta(hours=1)
        return list(evaluate_budgets(budgets, spend, fx=fx, as_of=last))

    def headroom(self, limits: Any) -> list[Any] | str:
        """Busiest-minute use per model against ``limits`` (``plan_headroom``), or why not."""
        from tokenplan.plan.headroom import learn_peak_ratio, plan_headroom

        if isinstance(self.per_model, str):
            return self.per_model
        if self.as_of is None or self.since is None:
            return "the store is empty"
        forecasts = {m: f for m, f in self.per_model.items() if m != "cache_read_tokens"}
        ratios = {}
        # Minute peaks are only learnable when every row in the window is minute-or-finer.
        if self.queries.widest_bucket_seconds(self.since) <= 60:
            recent = (self.as_of - pd.Timedelta(days=PEAK_RATIO_DAYS)).to_pydatetime()
            for metric in forecasts:
                ratios[metric] = learn_peak_ratio(self.queries.series(metric, "1min", (), recent))
        share = self.queries.cache_read_share(self.since)
        return list(plan_headroom(forecasts, limits, ratios, cache_read_share=share))

    def anomalies(self, recent: int = 24) -> list[Any]:
        """Spikes and drops in the newest ``recent`` buckets, attributed to a model."""
        from tokenplan.plan.spikes import find_anomalies

        if self.since is None:
            return []
        frame = self.queries.series(self.metric, self.settings.freq, ("model",), self.since)
        return list(find_anomalies(frame, recent=recent, dimension="model", metric=self.metric))

    def advice(
        self, prices: Any, *, alternatives: Mapping[str, str] | None = None
    ) -> tuple[list[Any], list[str]] | str:
        """Costed advice on the forecast month and the models without a price, or why not."""
        from tokenplan.plan.advice import advise, monthly_usage

        if isinstance(self.per_model, str):
            return self.per_model
        if self.as_of is None:
            return "the store is empty"
        at = self.as_of.to_pydatetime()
        usage = [
            u
            for u in monthly_usage(self.per_model, self.providers)
            if u.input_tokens or u.output_tokens
        ]
        if not usage:
            return "the usage has no token counts per model to price"
        found = advise(usage, prices, at=at, alternatives=alternatives)
        unpriced = sorted(
            u.model
            for u in usage
            if prices.cost(u.provider, u.model, at, u.input_tokens, u.output_tokens) is None
        )
        return list(found), unpriced

    def contract_csv(self, metric: str, dimension: str | None = None) -> pd.DataFrame:
        """`forecast.csv` of DESIGN.md: ``series, timestamp, mean, lo_/hi_`` (total, then parts)."""
        fc = self.forecasts.get(metric)
        if fc is None:
            raise TokenplanError(f"the plan has no forecast of {metric}.")
        prefix = f"{dimension}="
        keep = fc["unique_id"].eq(TOTAL)
        if dimension is not None:
            keep |= fc["unique_id"].str.startswith(prefix)
        out = fc[keep].copy()
        out["series"] = out["unique_id"].str.removeprefix(prefix)
        out["timestamp"] = out["ds"].dt.strftime(ISO_FORMAT)
        cols = ["series", "timestamp", "mean"]
        for level in self.settings.levels:
            cols += [f"lo_{level}", f"hi_{level}"]
        # Total first, then the parts by name, each in time order.
        out = out.assign(_part=out["unique_id"].ne(TOTAL))
        out = out.sort_values(["_part", "unique_id", "ds"], kind="stable")
        return out[cols].reset_index(drop=True)


def make_plan(
    store: DuckDBStore | UsageQueries,
    *,
    settings: PlanSettings | None = None,
    forecaster: Forecaster | None = None,
) -> CapacityPlan:
    """Read the usage once and forecast tokens, cost and per-model usage once each."""
    settings = settings or PlanSettings()
    queries = queries_for(store)
    summary = queries.summary()
    plan = CapacityPlan(settings=settings, queries=queries, summary=summary)
    if summary.rows == 0 or summary.end is None:
        plan.notes.append("The store holds no usage yet: import some with `tokenplan import`.")
        return plan
    as_of = pd.Timestamp(summary.end).floor("h") + pd.Timedelta(hours=1)
    # Never before the first data: the store zero-fills a window, and fake zeros would
    # drag the forecast and the spike baselines down.
    start = pd.Timestamp(summary.start).floor("h") if summary.start else as_of
    since = max(as_of - pd.Timedelta(days=settings.train_days), start).to_pydatetime()
    plan.as_of, plan.since = as_of, since
    plan.metric = _token_metric(queries, since, settings.freq, plan.notes)
    plan.history[plan.metric] = _frames(queries, plan.metric, since, settings, plan.notes)
    if _has_costs(queries, since):
        plan.history["cost_usd"] = _frames(queries, "cost_usd", since, settings, plan.notes)
        plan.spend_all = queries.series("cost_usd", settings.freq, (), since, as_of.to_pydatetime())
    if summary.unpriced_models:
        plan.notes.append(
            "Costs leave out models without a price: "
            + ", ".join(summary.unpriced_models)
            + " (see `tokenplan prices MODEL`)."
        )
    fn = forecaster or _engine(plan.notes)
    if fn is not None:
        for metric, frame in plan.history.items():
            what = "cost" if metric == "cost_usd" else "tokens"
            result = _forecast(fn, frame, settings, plan.forecast_notes, what)
            plan.results[metric] = result
            fc = result.frame.copy()
            fc["ds"] = pd.to_datetime(fc["ds"])
            plan.forecasts[metric] = cohere(fc, settings.levels)
        plan.per_model = _model_forecasts(queries, fn, since, settings, plan.forecast_notes)
    plan.providers = queries.model_providers(since)
    return plan


def cohere(frame: pd.DataFrame, levels: Sequence[int] = (80, 95)) -> pd.DataFrame:
    """Reconcile each dimension's parts to the ``total`` rows: sums match, quantiles stay under.

    Parts are scaled per timestamp so their means sum to the total's mean (ranges scale with
    them), then each part's quantile is capped at the total's, since a part never exceeds the
    whole. A part series never splits the total by more than the total itself.
    """
    cols = ["mean"] + [f"{side}_{lv}" for lv in levels for side in ("lo", "hi")]
    total = frame[frame["unique_id"] == TOTAL].set_index("ds")[cols]
    if total.empty:
        return frame
    out = [frame[frame["unique_id"] == TOTAL]]
    dims = frame["unique_id"].str.partition("=")[0]
    for dim in sorted(set(dims[frame["unique_id"] != TOTAL])):
        part = frame[(dims == dim) & (frame["unique_id"] != TOTAL)].copy()
        sums = part.groupby("ds")["mean"].transform("sum").to_numpy()
        tot = total.reindex(part["ds"])
        target = tot["mean"].to_numpy()
        n = part.groupby("ds")["mean"].transform("size").to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(sums > 0, target / sums, 0.0)
        for col in cols:
            part[col] = part[col].to_numpy() * scale
        # Where every part forecasts zero but the total does not, split the total evenly.
        even = (sums <= 0) & (target > 0)
        part.loc[even, "mean"] = target[even] / n[even]
        for col in cols[1:]:
            capped = np.minimum(part[col].to_numpy(), tot[col].to_numpy())
            if col.startswith("lo_"):
                capped = np.minimum(capped, part["mean"].to_numpy())
            else:
                capped = np.maximum(capped, part["mean"].to_numpy())
            part[col] = np.maximum(capped, 0.0)
        out.append(part)
    return pd.concat(out, ignore_index=True)


# -- reading ---------------------------------------------------------------------------------


def _token_metric(queries: UsageQueries, since: datetime, freq: str, notes: list[str]) -> str:
    """Total tokens, unless the source does not know them (some traces only count requests)."""
    total = queries.series("total_tokens", freq, (), since)
    if total["y"].notna().any():
        return "total_tokens"
    notes.append("The usage has no token counts, so the plan forecasts requests instead.")
    return "requests"


def _has_costs(queries: UsageQueries, since: datetime) -> bool:
    return bool(queries.series("cost_usd", "1d", (), since)["y"].notna().any())


def _frames(
    queries: UsageQueries, metric: str, since: datetime, settings: PlanSettings, notes: list[str]
) -> pd.DataFrame:
    """``total`` and one series per value of each dimension, stacked in one tidy frame."""
    parts = [queries.series(metric, settings.freq, (), since)]
    for dim in settings.dimensions:
        # Pooled in the store: 5,000 models arrive as max_series series, not 5,000.
        frame = queries.series(metric, settings.freq, (dim,), since, top=settings.max_series)
        if frame.empty or set(frame["unique_id"]) == {"(none)"}:
            continue
        parts.append(_pool(frame, dim, settings.max_series))
    out = pd.concat(parts, ignore_index=True)
    if out["y"].isna().any():
        notes.append(f"Some hours do not say their {metric}; they count as zero.")
        out["y"] = out["y"].fillna(0.0)
    out["y"] = out["y"].astype(float)
    return out


def _pool(frame: pd.DataFrame, dim: str, max_series: int) -> pd.DataFrame:
    """Keep the biggest series of a dimension and pool the rest as ``(other)``."""
    sizes = frame.groupby("unique_id")["y"].sum().sort_values(ascending=False)
    keep = set(sizes.index[: max_series - 1]) if len(sizes) > max_series else set(sizes.index)
    frame = frame.assign(unique_id=frame["unique_id"].where(frame["unique_id"].isin(keep), OTHER))
    pooled = frame.groupby(["unique_id", "ds"])["y"].sum(min_count=1).reset_index()
    pooled["unique_id"] = f"{dim}=" + pooled["unique_id"]
    return pooled


# -- forecasting -----------------------------------------------------------------------------


def _engine(notes: list[str]) -> Forecaster | None:
    try:
        from tokenplan.forecast import forecast
    except ImportError:
        notes.append("not available: the forecast engine (tokenplan.forecast) is not installed.")
        return None
    return cast(Forecaster, forecast)


def _forecast(
    fn: Forecaster, frame: pd.DataFrame, settings: PlanSettings, notes: list[str], what: str
) -> ForecastLike:
    result = fn(frame, horizon=settings.horizon_hours, freq=settings.freq, levels=settings.levels)
    said = result.notes
    lines = [f"{k}: {v}" for k, v in said.items()] if isinstance(said, Mapping) else list(said)
    notes.extend(f"{what} · {line}" for line in lines)
    return result


def _model_forecasts(
    queries: UsageQueries,
    fn: Forecaster,
    since: datetime,
    settings: PlanSettings,
    notes: list[str],
) -> dict[str, pd.DataFrame] | str:
    """Per-model forecasts of requests and tokens (metric → frame), or why not.

    Beyond ``max_model_series`` models, the biggest are forecast one by one and the rest as one
    pool, shared out by each model's use over the last ``history_days`` (top-down), so
    headroom and advice still see every model and the parts still sum to the pool.
    """
    out: dict[str, pd.DataFrame] = {}
    pooled_models = 0
    for metric in MODEL_METRICS:
        top = settings.max_model_series
        frame = queries.series(metric, settings.freq, ("model",), since, top=top)
        if frame.empty or not frame["y"].fillna(0).any():
            continue
        frame["y"] = frame["y"].fillna(0.0).astype(float)
        shares = _tail_shares(queries, metric, frame, settings)
        pooled_models = max(pooled_models, len(shares))
        try:
            result = fn(
                frame, horizon=settings.horizon_hours, freq=settings.freq, levels=settings.levels
            ).frame
        except (TokenplanError, ValueError) as exc:
            # One failed section must not cost the reader the rest of the plan.
            return f"the per-model {metric.replace('_', ' ')} forecast failed: {exc}"
        result = result.assign(ds=pd.to_datetime(result["ds"]))
        out[metric] = _share_out(result, shares)
    if not out:
        return "the usage has no requests or token counts per model"
    if pooled_models:
        notes.append(
            f"per-model forecasts (headroom, advice): the {settings.max_model_series - 1} "
            f"biggest models are forecast one by one; the other {pooled_models:,} share one "
            f"pooled forecast in proportion to their last {settings.history_days} days."
        )
    return out


def _tail_shares(
    queries: UsageQueries, metric: str, frame: pd.DataFrame, settings: PlanSettings
) -> pd.Series:
    """Each pooled model's share of the ``(other)`` series (empty when nothing was pooled).

    Shares come from the last ``history_days`` (the whole window when the pool was idle
    then), so a model that went quiet is not given a slice of the future.
    """
    if OTHER not in set(frame["unique_id"]):
        return pd.Series(dtype=float)
    kept = set(frame["unique_id"]) - {OTHER}
    end = frame["ds"].max() + pd.Timedelta(settings.freq)
    start = frame["ds"].min()
    recent = max(end - pd.Timedelta(days=settings.history_days), start)
    for since in (recent, start):
        sums = queries.totals(metric, "model", since.to_pydatetime(), end.to_pydatetime())
        sums = sums[~sums.index.isin(kept)]
        if sums.sum() > 0:
            return sums[sums > 0] / sums.sum()
    return pd.Series(dtype=float)


def _share_out(result: pd.DataFrame, shares: pd.Series) -> pd.DataFrame:
    """Split the ``(other)`` forecast into its models by ``shares`` (means and quantiles)."""
    if shares.empty:
        return result
    pool = result[result["unique_id"] == OTHER]
    values = [
        c
        for c in result.columns
        if c not in ("unique_id", "ds") and pd.api.types.is_numeric_dtype(result[c])
    ]
    n, k = len(pool), len(shares)
    parts: dict[str, Any] = {
        "unique_id": np.repeat(shares.index.to_numpy(dtype=object), n),
        "ds": np.tile(pool["ds"].to_numpy(), k),
    }
    weight = np.repeat(shares.to_numpy(float), n)
    for col in values:
        parts[col] = np.tile(pool[col].to_numpy(float), k) * weight
    split = pd.DataFrame(parts)
    return pd.concat([result[result["unique_id"] != OTHER], split], ignore_index=True)


class Planner:
    """A store opened for planning: ``tp.open("usage.duckdb").plan(horizon_hours=168)``."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store

    def plan(self, *, forecaster: Forecaster | None = None, **settings: object) -> CapacityPlan:
        """The capacity plan of the store's usage; ``settings`` are `PlanSettings` fields."""
        return make_plan(self.store, settings=PlanSettings(**settings), forecaster=forecaster)  # type: ignore[arg-type]

    def series(self, metric: str, freq: str = "1h", by: Sequence[str] = ()) -> pd.DataFrame:
        """A tidy ``unique_id, ds, y`` frame of ``metric`` (what `tokenplan.forecast` takes)."""
        return self.store.series(metric, freq, tuple(by))

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __enter__(self) -> Planner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_planner(path: str | os.PathLike[str] | None = None) -> Planner:
    """Open a DuckDB store (default ``tokenplan.duckdb`` or ``TOKENPLAN_DB``) for planning."""
    from tokenplan.store import open_store
    from tokenplan.store.duckdb_store import resolve_db_path

    return Planner(open_store(resolve_db_path(path)))
