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
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, cast

import pandas as pd

from tokenplan.errors import InvalidInput, TokenplanError
from tokenplan.frequency import Frequency, parse_freq
from tokenplan.plan.coherence import TOTAL, cohere
from tokenplan.plan.history import (
    GRID_ORIGIN,
    frames,
    grid_phase,
    has_costs,
    naive_utc,
    partly_covered,
    reaches,
    token_metric,
)
from tokenplan.plan.known import records, unrecorded
from tokenplan.plan.model_forecasts import OTHER, model_forecasts, model_frames
from tokenplan.store.duckdb_store import DuckDBStore, StoreSummary
from tokenplan.store.queries import UsageQueries, queries_for, twice_extent
from tokenplan.timestamps import iso_utc
from tokenplan.untrusted import visible

if TYPE_CHECKING:
    from tokenplan.plan.budgets import BudgetsConfig
    from tokenplan.plan.headroom import HeadroomCheck
    from tokenplan.plan.limits import LimitsConfig
    from tokenplan.plan.projection import Projection
    from tokenplan.plan.spikes import Anomaly
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
    "grid_phase",
    "make_plan",
    "open_planner",
]

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
    # Judge on data up to this time (buckets starting at or before it); None: the last bucket.
    as_of: datetime | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.horizon_hours <= MAX_HORIZON_HOURS:
            raise InvalidInput(
                f"horizon_hours {self.horizon_hours} is outside 1..{MAX_HORIZON_HOURS} "
                "(a year of hours)."
            )


@dataclass(slots=True, kw_only=True)
class CapacityPlan:
    """Every frame the faces show: history, coherent forecasts, per-model forecasts, notes.

    Forecasts are made on first read and kept: a command that reads only budgets or spikes
    never pays for them, and a figure read twice is one number. ``as_of`` is the end of the
    last bucket judged (exclusive); every reading stops there.
    """

    settings: PlanSettings
    queries: UsageQueries
    summary: StoreSummary
    as_of: pd.Timestamp | None = None
    # The share of the bucket after ``as_of`` the data covers: under 1 while it is still
    # filling (it is forecast, not judged; spikes read it, see `reads_to`).
    filled: float = 1.0
    since: datetime | None = None
    metric: str = "total_tokens"
    history: dict[str, pd.DataFrame] = field(default_factory=dict)
    # What the forecasts read: ``history`` with the hours that do not say their metric left
    # unknown (the forecaster fills them for fitting and scores none), where ``history`` shows
    # them as zero. Read as zeros, NASA's missed log hours took a week-ahead MASE from 0.447
    # to 1.532 (a week of zeros read as the weekly cycle).
    inputs: dict[str, pd.DataFrame] = field(default_factory=dict)
    # Requests and token counts per model (``unique_id`` = model), for headroom and advice;
    # hours that do not say their count are unknown.
    model_history: dict[str, pd.DataFrame] = field(default_factory=dict)
    providers: dict[str, str | None] = field(default_factory=dict)
    spend_all: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    forecaster: Forecaster | None = field(default=None, repr=False)
    _results: dict[str, ForecastLike] | None = field(default=None, init=False, repr=False)
    _forecasts: dict[str, pd.DataFrame] = field(default_factory=dict, init=False, repr=False)
    _per_model: dict[str, pd.DataFrame] | str | None = field(default=None, init=False, repr=False)
    _forecast_notes: list[str] = field(default_factory=list, init=False, repr=False)
    _engine_found: bool | None = field(default=None, init=False, repr=False)
    projections: dict[tuple[str, str], Projection | None] = field(
        default_factory=dict, init=False, repr=False
    )

    @property
    def empty(self) -> bool:
        """True when the store holds no usage."""
        return self.as_of is None

    @property
    def step(self) -> pd.Timedelta:
        """The plan's bucket width (``settings.freq``)."""
        return pd.Timedelta(seconds=parse_freq(self.settings.freq).seconds)

    @property
    def last_bucket(self) -> pd.Timestamp | None:
        """Start of the last bucket the plan judges (naive UTC), or None when empty."""
        return None if self.as_of is None else self.as_of - self.step

    @property
    def reads_to(self) -> pd.Timestamp | None:
        """End of the bucket holding the data's last row: one step after ``as_of`` when that
        bucket is still filling (spikes read it: a part of a bucket only undercounts a surge)."""
        if self.as_of is None:
            return None
        return self.as_of + self.step if self.filled < 1 else self.as_of

    @property
    def newest_bucket(self) -> pd.Timestamp | None:
        """Start of the bucket holding the data's last row (naive UTC): ``last_bucket``, or the
        bucket still filling after it. Budgets and projections judge the period holding it."""
        return None if self.reads_to is None else self.reads_to - self.step

    @property
    def results(self) -> dict[str, ForecastLike]:
        """The engine's result per usage metric (for joint-path ranges), made on first read."""
        self._forecast_usage()
        return self._results or {}

    @property
    def forecasts(self) -> dict[str, pd.DataFrame]:
        """The coherent forecast frame per usage metric, made on first read."""
        self._forecast_usage()
        return self._forecasts

    @property
    def forecast_notes(self) -> list[str]:
        """What the engine said about each usage series it forecast."""
        self._forecast_usage()
        return self._forecast_notes

    @property
    def per_model(self) -> dict[str, pd.DataFrame] | str:
        """Per-model forecasts of requests and tokens (metric → frame), or why there are none."""
        if self._per_model is None:
            fn = self._engine()
            if fn is None or self.as_of is None:
                self._per_model = "no forecast of requests and tokens per model"
            else:
                self._per_model = model_forecasts(
                    self.model_history, self.queries, fn, self.settings, self._forecast_notes
                )
        return self._per_model

    def _engine(self) -> Forecaster | None:
        if self.forecaster is None and self._engine_found is None:
            self.forecaster = _engine(self.notes)
            self._engine_found = self.forecaster is not None
        return self.forecaster

    def _forecast_usage(self) -> None:
        if self._results is not None:
            return
        self._results = {}
        fn = self._engine()
        if fn is None:
            return
        for metric, shown in self.history.items():
            frame = self.inputs.get(metric, shown)
            what = "cost" if metric == "cost_usd" else metric.replace("_", " ")
            result = _forecast(fn, frame, self.settings, self._forecast_notes, what)
            self._results[metric] = result
            fc = result.frame.copy()
            fc["ds"] = pd.to_datetime(fc["ds"])
            self._forecasts[metric] = cohere(fc, self.settings.levels)

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

        if self.as_of is None or not budgets:
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
        # The plan's own spend forecast carries the rest of each period it covers.
        forecast = self.results.get("cost_usd")
        found = evaluate_budgets(
            budgets,
            spend,
            fx=fx,
            as_of=self.last_bucket,
            forecast=forecast,
            period_of=self.newest_bucket,
        )
        return list(found)

    def spend_projection(self, period: str = "month", tz: str = "UTC") -> Projection | None:
        """All spend of the current ``period`` projected to its end (computed once per plan).

        The same computation as a budget on all spend over that period, without the limit.
        """
        from tokenplan.errors import TokenplanError
        from tokenplan.plan.projection import project

        key = (period, tz)
        if key in self.projections:
            return self.projections[key]
        spend, proj = self.spend_all, None
        if self.as_of is not None and spend is not None and records(spend["y"]):
            try:
                proj = project(
                    spend[["ds", "y"]],
                    period=period,
                    tz=tz,
                    as_of=self.last_bucket,
                    forecast=self.results.get("cost_usd"),
                    period_of=self.newest_bucket,
                )
            except TokenplanError:
                proj = None
        self.projections[key] = proj
        return proj

    def projection(
        self, metric: str, *, period: str, limit: float | None = None, tz: str = "UTC"
    ) -> Projection:
        """``metric``'s total for the period holding the plan's as-of time, with ranges.

        The budgets' computation (`tokenplan.plan.projection.project`) on the plan's series;
        `budget_statuses` gives the same numbers for a budget of ``limit`` on all spend.
        """
        from tokenplan.plan.projection import project

        if self.as_of is None or self.since is None:
            raise InvalidInput("the store holds no usage to project; import some first.")
        frame = self.queries.series(
            metric, self.settings.freq, (), self.since, self.as_of.to_pydatetime()
        )
        if not records(frame["y"]):
            # A total of nothing known is not a total of zero.
            raise InvalidInput(f"the usage does not record {metric}: {unrecorded(metric)}.")
        shift = self._phase()
        # The plan's own forecast of the metric carries the rest of the period, as for budgets
        # (on the grid only: a shifted phase would not line up with its buckets).
        planned = metric in self.history and shift == pd.Timedelta(0)
        forecast = self.results.get(metric) if planned else None
        return project(
            frame.assign(ds=frame["ds"] + shift)[["ds", "y"]],
            period=period,
            limit=limit,
            as_of=None if self.last_bucket is None else self.last_bucket + shift,
            tz=tz,
            freq=self.settings.freq,
            forecast=forecast,
            period_of=None if self.newest_bucket is None else self.newest_bucket + shift,
        )

    def _phase(self) -> pd.Timedelta:
        """How far the data's own buckets start after the grid (16h for days at 16:00Z).

        At the data's own width the store puts each bucket on its grid line; shifting back by
        this keeps the series' phase, so a day bucket of Asia/Shanghai stays in its own day.
        """
        width = int(self.step.total_seconds())
        if self.since is None or self.queries.widest_bucket_seconds(self.since) != width:
            return pd.Timedelta(0)
        return grid_phase(self.summary.start, width)

    def headroom(self, limits: LimitsConfig) -> HeadroomCheck | str:
        """Busiest-minute use per model against ``limits`` (`check_headroom`), or why not.

        The busiest minute is learned from the last week at the finest bucket every row there
        has: measured on minute data, inferred (and said so) from coarser buckets.
        """
        from tokenplan.plan.headroom import check_headroom, learn_peak_ratio

        per_model = self.per_model
        if isinstance(per_model, str):
            return per_model
        if self.as_of is None or self.since is None:
            return "the store is empty"
        forecasts = {m: f for m, f in per_model.items() if m != "cache_read_tokens"}
        recent = max(self.as_of - pd.Timedelta(days=PEAK_RATIO_DAYS), pd.Timestamp(self.since))
        # The widest bucket in the window is the finest grid the whole window can be read at.
        width = self.queries.widest_bucket_seconds(recent.to_pydatetime())
        metrics = list(forecasts)
        if {"input_tokens", "output_tokens"} & set(forecasts):
            metrics.append("total_tokens")
        ratios = {}
        for metric in metrics:
            history = None
            if width < 3600:
                freq = "1min" if width <= 60 else f"{width}s"
                until = self.as_of.to_pydatetime()
                history = self.queries.series(metric, freq, (), recent.to_pydatetime(), until)
            ratios[metric] = learn_peak_ratio(history, bucket_s=max(width, 60))
        share = self.queries.cache_read_share(self.since)
        return check_headroom(forecasts, limits, ratios, cache_read_share=share)

    def anomalies(
        self,
        recent: int = 24,
        *,
        metric: str | None = None,
        by: str = "model",
        k: int = 2,
        tz: str = "UTC",
        since: datetime | None = None,
    ) -> list[Anomaly]:
        """Spikes and drops of ``metric`` (default: the plan's) in the newest ``recent`` buckets.

        Each is attributed to a value of ``by``; ``since`` moves the start of the history the
        usual level is learned from (default: the plan's window).
        """
        from tokenplan.plan.spikes import find_anomalies

        if self.since is None or self.reads_to is None:
            return []
        metric = metric or self.metric
        frame = self.queries.series(
            metric, self.settings.freq, (by,), since or self.since, self.reads_to.to_pydatetime()
        )
        found = find_anomalies(
            frame,
            recent=recent,
            k=k,
            dimension=by,
            tz=tz,
            metric=metric,
            filled=self.filled,
        )
        return list(found)

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
        from tokenplan.forecast.result import contract_frame

        prefix = f"{dimension}="
        keep = fc["unique_id"].eq(TOTAL)
        if dimension is not None:
            keep |= fc["unique_id"].str.startswith(prefix)
        # Total first, then the parts by name, each in time order.
        out = fc[keep].assign(_part=fc["unique_id"].ne(TOTAL))
        out = out.sort_values(["_part", "unique_id", "ds"], kind="stable")
        out["unique_id"] = out["unique_id"].str.removeprefix(prefix)
        return contract_frame(out, self.settings.levels)


def make_plan(
    store: DuckDBStore | UsageQueries,
    *,
    settings: PlanSettings | None = None,
    forecaster: Forecaster | None = None,
) -> CapacityPlan:
    """Read the usage once; tokens, cost and per-model usage are forecast once, when first read."""
    settings = settings or PlanSettings()
    queries = queries_for(store)
    summary = queries.summary()
    plan = CapacityPlan(settings=settings, queries=queries, summary=summary, forecaster=forecaster)
    if summary.rows == 0 or summary.end is None:
        plan.notes.append("The store holds no usage yet: import some with `tokenplan import`.")
        return plan
    first = naive_utc(summary.start) if summary.start else naive_utc(summary.end)
    cut = naive_utc(summary.end) if settings.as_of is None else naive_utc(settings.as_of)
    if cut < first:
        raise InvalidInput(
            f"as-of time {iso_utc(cut)} is before the first usage in the store "
            f"({iso_utc(first)}); choose a later one."
        )
    step = plan.step
    as_of = GRID_ORIGIN + ((cut - GRID_ORIGIN) // step + 1) * step
    # Never before the first data: the store zero-fills a window, and fake zeros would
    # drag the forecast and the spike baselines down.
    start = GRID_ORIGIN + ((first - GRID_ORIGIN) // step) * step
    width = queries.widest_bucket_seconds((as_of - step).to_pydatetime())
    reach = reaches(cut, width, queries.open_since())
    if settings.as_of is None and reach > as_of:
        # The last stored bucket is wider than a step (a daily export): all of it is read,
        # spread over its steps, not its first hour with the rest forecast.
        as_of = GRID_ORIGIN - ((GRID_ORIGIN - reach) // step) * step
    judged = GRID_ORIGIN + ((reach - GRID_ORIGIN) // step) * step  # the bucket holding reach
    if settings.as_of is None and reach < as_of and judged - start >= 2 * step:
        # The newest hour of live data is still filling (or a pull stored it still open): read
        # as history it is a collapse the forecasts follow (M4 hourly with the last hour 10%
        # filled: MASE 0.73 -> 7.9). It is forecast, as `tokenplan forecast` does; spikes
        # still read it (`anomalies`), and nothing after it.
        as_of = judged
        plan.filled = (reach - as_of) / step
        note = partly_covered(as_of)
        plan.notes.append(f"{note[0].upper()}{note[1:]}.")
    since = max(as_of - pd.Timedelta(days=settings.train_days), start).to_pydatetime()
    until = as_of.to_pydatetime()
    plan.as_of, plan.since = as_of, since
    wide = queries.widest_bucket_seconds(since)
    if wide > step.total_seconds() and wide % step.total_seconds() == 0:
        # What `DuckDBQueries.series` does to them; the charts would otherwise look measured.
        label = Frequency(int(wide)).label
        plan.notes.append(
            f"The store holds buckets {label} wide: the plan spreads each evenly over its "
            f"{Frequency(int(step.total_seconds())).label} steps, so those steps are flat (no "
            "busiest hour inside them) and busiest-minute figures are inferred."
        )
    twice = queries.counted_twice(since)
    if twice:
        # Both views of the same calls sum: every total (and budget) would read double.
        top = twice[0]
        plan.notes.append(
            f"Counted twice: {twice_extent(twice)} "
            f"are stored both as calls and as a provider's report buckets (the most: "
            f"{visible(top.provider or '?')} {visible(top.model)}, {top.days} day(s) from "
            f"{top.first:%Y-%m-%d}), so usage and spend there are summed from both (only "
            "`tokenplan reconcile` reads them apart). To plan on one of them, keep the other "
            "in another store."
        )
    plan.metric = token_metric(queries, since, until, settings.freq, plan.notes)
    metrics = [plan.metric] + (["cost_usd"] if has_costs(queries, since, until) else [])
    for metric in metrics:
        frame = frames(queries, metric, since, until, settings, plan.notes)
        plan.history[metric] = frame.assign(y=frame["y"].fillna(0.0))
        # An hour without a priced call costs nothing the plan can count: cost stays zero.
        plan.inputs[metric] = plan.history[metric] if metric == "cost_usd" else frame
    if "cost_usd" in metrics:
        plan.spend_all = queries.series("cost_usd", settings.freq, (), since, until)
    if summary.unpriced_models:
        plan.notes.append(
            "Costs leave out models without a price: "
            + ", ".join(summary.unpriced_models)
            + " (see `tokenplan prices MODEL`)."
        )
    plan.model_history = model_frames(queries, since, until, settings)
    plan.providers = queries.model_providers(since)
    return plan


# -- forecasting -----------------------------------------------------------------------------


def _engine(notes: list[str]) -> Forecaster | None:
    try:
        from tokenplan.forecast import forecast
    except ImportError:
        notes.append("not available: the forecast engine (tokenplan.forecast) is not installed.")
        return None
    # The plan reads forecasts and their sample paths, never the backtest table: its
    # per-candidate coverage is not counted.
    return cast(Forecaster, partial(forecast, backtest_coverage=False))


def _forecast(
    fn: Forecaster, frame: pd.DataFrame, settings: PlanSettings, notes: list[str], what: str
) -> ForecastLike:
    result = fn(frame, horizon=settings.horizon_hours, freq=settings.freq, levels=settings.levels)
    said = result.notes
    lines = [f"{k}: {v}" for k, v in said.items()] if isinstance(said, Mapping) else list(said)
    notes.extend(f"{what} · {line}" for line in lines)
    return result


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
    """Open a DuckDB store (default ``tokenplan.duckdb`` or ``TOKENPLAN_DB``) for planning.

    ``parquet:DIR`` plans from a Parquet lake (`tokenplan.store.lake`), read-only.
    """
    from tokenplan.store import open_store
    from tokenplan.store.duckdb_store import resolve_db_path
    from tokenplan.store.files import is_lake

    resolved = resolve_db_path(path)
    return Planner(open_store(resolved, mode="read" if is_lake(resolved) else "write"))
