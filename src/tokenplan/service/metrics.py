"""Prometheus metrics: a collector that reads the store and the latest plan at scrape time.

There is no second set of counters to drift from the store: each scrape totals the store in
one query (`UsageTotalsSource.usage_totals`), so ``tokenplan_tokens_total`` is what
``tokenplan usage`` sums to, and only goes up as events arrive. Plan gauges (forecast totals,
budgets, rate-limit headroom, the plan's age) come from readings made once per plan off the
scrape path (`tokenplan.service.readings`): a scrape never forecasts and never waits for one.

    collector = register_metrics(registry, totals=queries_for(store), plans=refresher,
                                 budgets=budgets, limits=limits, fx=fx, clock=clock)
    collector.prepare(snapshot)   # from the plan refresher, right after each new plan

Series (units in the names):

- ``tokenplan_requests_total{model,provider,status}`` (ok, error, rate_limited, unknown),
  ``tokenplan_tokens_total{model,provider,kind}`` (input, output, cache_read, cache_write,
  unsplit; input includes the cache kinds, so total tokens are input + output + unsplit),
  ``tokenplan_cost_usd_total{model,provider}`` (priced usage only: unknown is never 0);
- ``tokenplan_plan_ready`` (1 once a plan's readings are served), and then
  ``tokenplan_plan_{as_of,computed}_timestamp_seconds``, ``tokenplan_plan_age_seconds``,
  ``tokenplan_plan_problems``;
- ``tokenplan_forecast_tokens{horizon,bound}`` (``tokenplan_forecast_requests`` when the
  usage has no token counts), ``tokenplan_forecast_cost_usd{horizon,bound}``: horizon 1h or
  24h after the plan's as-of time, bound mean, lo_80, hi_80, lo_95, hi_95;
- ``tokenplan_budget_{spent,projected,limit}_usd{budget,period}``,
  ``tokenplan_budget_overrun_probability{budget,period}``;
- ``tokenplan_ratelimit_headroom_ratio{provider,family,tier,kind}`` and
  ``tokenplan_ratelimit_hit_probability{...}`` per limit (a family is the models one limit
  covers), ``tokenplan_ratelimit_unconfigured{model}`` = 1 for models no limit covers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pandas as pd
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from tokenplan.plan.budgets import BudgetsConfig
from tokenplan.plan.limits import LimitsConfig
from tokenplan.pricing import FxRate
from tokenplan.service.contracts import PlanSnapshot, PlanSource
from tokenplan.service.readings import PlanReadings, PlanReadingsCache, aware_utc
from tokenplan.store.queries import UsageTotalsSource

__all__ = ["DEFAULT_MAX_MODELS", "MetricsCollector", "register_metrics"]

# Beyond this many model/provider pairs the smallest are pooled as "(other)": model names
# come from clients, and a flood of made-up ones must not flood Prometheus with series.
DEFAULT_MAX_MODELS = 200
FORECAST_METRICS = {
    "total_tokens": "tokenplan_forecast_tokens",
    "requests": "tokenplan_forecast_requests",
    "cost_usd": "tokenplan_forecast_cost_usd",
}
PAIR = ["model", "provider"]
LIMIT = ["provider", "family", "tier", "kind"]


class MetricsCollector(Collector):
    """Yields the store's totals and the latest plan's figures, read fresh at each scrape."""

    def __init__(
        self,
        *,
        totals: UsageTotalsSource,
        plans: PlanSource,
        readings: PlanReadingsCache,
        clock: Callable[[], datetime],
        max_models: int | None = DEFAULT_MAX_MODELS,
    ) -> None:
        self._totals = totals
        self._plans = plans
        self._readings = readings
        self._clock = clock
        self._max_models = max_models

    def describe(self) -> list[Metric]:
        """Nothing up front: registering must not read the store (the scrape does)."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The counters from one store query, then the plan gauges if a plan is served."""
        yield from self._counters()
        snapshot = self._plans.latest()
        readings = None if snapshot is None else self._readings.served(snapshot)
        yield _gauge(
            "tokenplan_plan_ready",
            "1 when a plan's figures are served, else 0 (none yet, or the store is empty).",
            1.0 if readings is not None and not readings.empty else 0.0,
        )
        if readings is not None:
            yield from self._plan_gauges(readings)

    def prepare(self, snapshot: PlanSnapshot) -> PlanReadings:
        """Read a new plan's figures now (from the plan refresher, before it publishes the plan).

        Then no scrape finds the plan unread, and the plan's store is read from one thread.
        """
        return self._readings.prepare(snapshot)

    def wait(self, timeout: float | None = None) -> PlanReadings | None:
        """Wait for a background read in progress; the readings now served (None before any)."""
        return self._readings.wait(timeout)

    def close(self) -> None:
        """Stop the background reader."""
        self._readings.close()

    def _counters(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "tokenplan_requests",
            "API calls recorded, by outcome (unknown: the source does not say).",
            labels=[*PAIR, "status"],
        )
        tokens = CounterMetricFamily(
            "tokenplan_tokens",
            "Tokens recorded, by kind (input includes cache reads and writes).",
            labels=[*PAIR, "kind"],
        )
        cost = CounterMetricFamily(
            "tokenplan_cost_usd",
            "Spend recorded in USD (usage without a price is left out, not counted as 0).",
            labels=PAIR,
        )
        for row in self._totals.usage_totals(self._max_models):
            pair = [row.model, row.provider]
            for status, count in row.requests.items():
                requests.add_metric([*pair, status], float(count))
            for kind, count in row.tokens.items():
                tokens.add_metric([*pair, kind], float(count))
            if row.cost_usd is not None:
                cost.add_metric(pair, float(row.cost_usd))
        yield from (requests, tokens, cost)

    def _plan_gauges(self, readings: PlanReadings) -> Iterator[Metric]:
        snap = readings.snapshot
        as_of = snap.as_of if snap.as_of is not None else _stamp(snap.plan.as_of)
        if as_of is not None:
            yield _gauge(
                "tokenplan_plan_as_of_timestamp_seconds",
                "End of the newest usage the plan judges (Unix time).",
                aware_utc(as_of).timestamp(),
            )
        computed = aware_utc(snap.computed_at)
        yield _gauge(
            "tokenplan_plan_computed_timestamp_seconds",
            "When the plan was computed (Unix time).",
            computed.timestamp(),
        )
        yield _gauge(
            "tokenplan_plan_age_seconds",
            "Seconds since the plan served was computed.",
            max((aware_utc(self._clock()) - computed).total_seconds(), 0.0),
        )
        yield _gauge(
            "tokenplan_plan_problems",
            "Sections of the plan (forecast, budgets, headroom) that could not be read.",
            float(len(readings.problems)),
        )
        yield from _forecast_gauges(readings)
        yield from _budget_gauges(readings)
        yield from _headroom_gauges(readings)


def _forecast_gauges(readings: PlanReadings) -> Iterator[Metric]:
    families: dict[str, GaugeMetricFamily] = {}
    for fig in readings.forecasts:
        name = FORECAST_METRICS.get(fig.metric)
        if name is None:
            continue
        if name not in families:
            what = {"cost_usd": "cost in USD", "total_tokens": "tokens"}.get(fig.metric, fig.metric)
            families[name] = GaugeMetricFamily(
                name,
                f"Forecast {what} over the next horizon after the plan's as-of time: "
                "mean and 80%/95% bounds.",
                labels=["horizon", "bound"],
            )
        families[name].add_metric([fig.horizon, fig.bound], fig.value)
    yield from families.values()


def _budget_gauges(readings: PlanReadings) -> Iterator[Metric]:
    if not readings.budgets:
        return
    labels = ["budget", "period"]
    spent = GaugeMetricFamily(
        "tokenplan_budget_spent_usd", "Spend so far in the budget's period (USD).", labels=labels
    )
    projected = GaugeMetricFamily(
        "tokenplan_budget_projected_usd",
        "Projected spend by the end of the budget's period (USD, median).",
        labels=labels,
    )
    limit = GaugeMetricFamily(
        "tokenplan_budget_limit_usd", "The budget's amount in USD.", labels=labels
    )
    overrun = GaugeMetricFamily(
        "tokenplan_budget_overrun_probability",
        "Probability that the period's spend exceeds the budget (0-1).",
        labels=labels,
    )
    for fig in readings.budgets:
        key = [fig.name, fig.period]
        for family, value in (
            (spent, fig.spent_usd),
            (projected, fig.projected_usd),
            (limit, fig.limit_usd),
            (overrun, fig.overrun_probability),
        ):
            if value is not None:
                family.add_metric(key, float(value))
    yield from (spent, projected, limit, overrun)


def _headroom_gauges(readings: PlanReadings) -> Iterator[Metric]:
    if readings.headroom:
        ratio = GaugeMetricFamily(
            "tokenplan_ratelimit_headroom_ratio",
            "Share of a per-minute rate limit left above the forecast p99 busiest minute "
            "(negative when over).",
            labels=LIMIT,
        )
        hit = GaugeMetricFamily(
            "tokenplan_ratelimit_hit_probability",
            "Probability that the busiest minute of the plan's horizon passes the limit.",
            labels=LIMIT,
        )
        for fig in readings.headroom:
            key = [fig.provider, fig.family, fig.tier, fig.kind]
            ratio.add_metric(key, fig.ratio)
            hit.add_metric(key, fig.hit_probability)
        yield from (ratio, hit)
    if readings.unconfigured_models:
        unconfigured = GaugeMetricFamily(
            "tokenplan_ratelimit_unconfigured",
            "1 for each model no configured rate limit covers (no headroom is computed).",
            labels=["model"],
        )
        for model in readings.unconfigured_models:
            unconfigured.add_metric([model], 1.0)
        yield unconfigured


def register_metrics(
    registry: CollectorRegistry,
    *,
    totals: UsageTotalsSource,
    plans: PlanSource,
    budgets: BudgetsConfig | None = None,
    limits: LimitsConfig | None = None,
    fx: FxRate | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    max_models: int | None = DEFAULT_MAX_MODELS,
) -> MetricsCollector:
    """Register tokenplan's collector on ``registry``; serve it with any prometheus exposition.

    ``totals`` answers `usage_totals` (`tokenplan.store.queries.DuckDBQueries`), ``plans``
    is the service's `PlanSource`; ``budgets``, ``limits`` and ``fx`` are what
    ``tokenplan budget`` and ``tokenplan headroom`` read. Close the returned collector on
    shutdown.
    """
    readings = PlanReadingsCache(budgets=budgets, limits=limits, fx=fx)
    collector = MetricsCollector(
        totals=totals, plans=plans, readings=readings, clock=clock, max_models=max_models
    )
    registry.register(collector)
    return collector


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _stamp(value: pd.Timestamp | None) -> datetime | None:
    return None if value is None else value.to_pydatetime()
