"""The figures of one plan that ``/metrics`` shows, read once per plan and never on a scrape.

Budgets and headroom run the period projection and the busiest-minute model (a second or so,
and the projection may fit the forecast engine on past periods), so a scrape cannot afford
them. `read_plan` reads every figure of a `PlanSnapshot`; `PlanReadingsCache` keeps the
newest readings and computes those of a new snapshot once, either when the plan refresher
calls `PlanReadingsCache.prepare` right after computing it, or on a worker thread the first
time a scrape sees it (the scrape itself serves what is ready and never waits).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from tokenplan.capacity import CapacityPlan
from tokenplan.errors import TokenplanError
from tokenplan.plan.budgets import BudgetsConfig
from tokenplan.plan.limits import LimitsConfig
from tokenplan.pricing import FxRate
from tokenplan.service.contracts import PlanSnapshot

__all__ = [
    "HORIZONS",
    "BudgetFigure",
    "ForecastFigure",
    "HeadroomFigure",
    "PlanReadings",
    "PlanReadingsCache",
    "read_plan",
]

log = logging.getLogger(__name__)

# The windows the forecast gauges cover, from the first hour after the plan's as-of time.
HORIZONS: dict[str, pd.Timedelta] = {"1h": pd.Timedelta(hours=1), "24h": pd.Timedelta(hours=24)}


@dataclass(frozen=True, slots=True)
class ForecastFigure:
    """The forecast total of ``metric`` over the next ``horizon``: its mean or one bound."""

    metric: str  # the plan's metric: total_tokens, requests or cost_usd
    horizon: str
    bound: str  # mean, lo_80, hi_80, lo_95, hi_95 (the forecast CSV's columns)
    value: float


@dataclass(frozen=True, slots=True)
class BudgetFigure:
    """One budget's period in USD: spent so far, projected, its limit and the overrun chance."""

    name: str
    period: str
    spent_usd: float | None
    projected_usd: float | None
    limit_usd: float | None
    overrun_probability: float | None


@dataclass(frozen=True, slots=True)
class HeadroomFigure:
    """One rate limit of one tier: headroom over the window's p99 busiest minute."""

    provider: str
    family: str
    tier: str
    kind: str  # rpm, itpm, otpm, tpm
    ratio: float  # (limit - p99 busiest minute) / limit; negative when over
    hit_probability: float


@dataclass(frozen=True, slots=True)
class PlanReadings:
    """Every figure ``/metrics`` shows of one snapshot, and the sections it could not read."""

    snapshot: PlanSnapshot
    forecasts: tuple[ForecastFigure, ...] = ()
    budgets: tuple[BudgetFigure, ...] = ()
    headroom: tuple[HeadroomFigure, ...] = ()
    unconfigured_models: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    # A plan of an empty store has nothing to show (not a problem: there is no usage yet).
    empty: bool = False


def read_plan(
    snapshot: PlanSnapshot,
    *,
    budgets: BudgetsConfig | None = None,
    limits: LimitsConfig | None = None,
    fx: FxRate | None = None,
) -> PlanReadings:
    """Read the forecast totals, budget statuses and headroom of ``snapshot``'s plan.

    Slow (it runs the budgets' projections and the headroom check): call it off the scrape
    path. A section that fails is left out and named in ``problems``; the others still show.
    """
    plan = snapshot.plan
    problems: list[str] = []
    forecasts: tuple[ForecastFigure, ...] = ()
    budget_rows: tuple[BudgetFigure, ...] = ()
    headroom_rows: tuple[HeadroomFigure, ...] = ()
    unconfigured: tuple[str, ...] = ()
    if plan.empty:
        return PlanReadings(snapshot, empty=True)
    try:
        forecasts = _forecast_figures(plan)
    except (TokenplanError, ValueError) as exc:
        problems.append(f"forecast: {exc}")
    if budgets is not None:
        try:
            budget_rows = _budget_figures(plan, budgets, fx)
        except (TokenplanError, ValueError) as exc:
            problems.append(f"budgets: {exc}")
    if limits is not None:
        try:
            check = plan.headroom(limits)
        except (TokenplanError, ValueError) as exc:
            check = str(exc)
        if isinstance(check, str):
            problems.append(f"headroom: {check}")
        else:
            headroom_rows = tuple(
                HeadroomFigure(
                    provider=r.provider,
                    family=r.family,
                    tier=r.tier,
                    kind=r.kind,
                    ratio=float(r.headroom_share),
                    hit_probability=float(r.p_hit_max),
                )
                for r in check.rows
            )
            unconfigured = tuple(check.unlimited)
    for problem in problems:
        log.warning("metrics: cannot read the plan's %s", problem)
    return PlanReadings(
        snapshot, forecasts, budget_rows, headroom_rows, unconfigured, tuple(problems)
    )


def _forecast_figures(plan: CapacityPlan) -> tuple[ForecastFigure, ...]:
    """Mean and ranges of the total over each horizon, as the forecast CSV and report give them.

    A window of one bucket is that bucket's row of the coherent forecast (the CSV's numbers);
    a longer one sums the means, with ranges from the engine's joint paths (the report's).
    """
    out: list[ForecastFigure] = []
    for metric in (plan.metric, "cost_usd"):
        frame = plan.forecast_frame(metric)
        if frame is None:
            continue
        total = frame[frame["unique_id"] == "total"].sort_values("ds")
        if total.empty:
            continue
        start = pd.Timestamp(total["ds"].iloc[0])
        covered = pd.Timestamp(total["ds"].iloc[-1]) + plan.step
        for name, span in HORIZONS.items():
            end = start + span
            if end > covered:
                continue  # the plan's horizon is shorter than this window
            window = total[(total["ds"] >= start) & (total["ds"] < end)]
            bounds: dict[str, float | None]
            if len(window) == 1:
                row = window.iloc[0]
                bounds = {"mean": float(row["mean"])}
                for level in plan.settings.levels:
                    for side in ("lo", "hi"):
                        bounds[f"{side}_{level}"] = float(row[f"{side}_{level}"])
            else:
                bounds = {"mean": plan.total(metric, start, end)}
                for level in plan.settings.levels:
                    lo, hi = plan.sum_range(metric, start, end, level)
                    bounds[f"lo_{level}"], bounds[f"hi_{level}"] = lo, hi
            out += [
                ForecastFigure(metric, name, bound, value)
                for bound, value in bounds.items()
                if value is not None
            ]
    return tuple(out)


def _budget_figures(
    plan: CapacityPlan, budgets: BudgetsConfig, fx: FxRate | None
) -> tuple[BudgetFigure, ...]:
    out = []
    seen: dict[str, int] = {}
    for status in plan.budget_statuses(budgets, fx=fx):
        name = status.budget.name
        # Two budgets of one name would be one series twice: an invalid exposition.
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name} #{seen[name]}"
        proj = status.projection
        out.append(
            BudgetFigure(
                name=name,
                period=status.budget.period.value,
                spent_usd=None if proj is None else float(proj.so_far),
                projected_usd=None if proj is None else float(proj.projected),
                limit_usd=status.limit_usd,
                overrun_probability=status.p_overrun,
            )
        )
    return tuple(out)


class PlanReadingsCache:
    """The newest `PlanReadings`, computed once per snapshot and never on the caller's thread.

    ``served(snapshot)`` returns the newest readings that are ready (those of an older plan
    while the new one is read, None before any) and starts reading ``snapshot`` on one worker
    thread if it is new; ``prepare(snapshot)`` reads it on the calling thread (the plan
    refresher, so the store is never read from two threads at once).
    """

    def __init__(
        self,
        *,
        budgets: BudgetsConfig | None = None,
        limits: LimitsConfig | None = None,
        fx: FxRate | None = None,
        reader: Callable[..., PlanReadings] = read_plan,
    ) -> None:
        self._args = {"budgets": budgets, "limits": limits, "fx": fx}
        self._reader = reader
        self._lock = threading.Lock()
        self._ready: PlanReadings | None = None
        self._pending: tuple[PlanSnapshot, Future[PlanReadings]] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    def prepare(self, snapshot: PlanSnapshot) -> PlanReadings:
        """Read ``snapshot`` now (or return its readings if already read) and serve them."""
        with self._lock:
            if self._ready is not None and self._ready.snapshot is snapshot:
                return self._ready
        readings = self._reader(snapshot, **self._args)
        self._publish(readings)
        return readings

    def served(self, snapshot: PlanSnapshot) -> PlanReadings | None:
        """The newest ready readings; a new ``snapshot`` is read in the background."""
        with self._lock:
            ready = self._ready
            if ready is not None and ready.snapshot is snapshot:
                return ready
            if self._closed or (self._pending is not None and self._pending[0] is snapshot):
                return ready
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="tokenplan-metrics")
            future = self._executor.submit(self._read, snapshot)
            self._pending = (snapshot, future)
            return ready

    def wait(self, timeout: float | None = None) -> PlanReadings | None:
        """Wait for the background read in progress (if any); the newest ready readings."""
        with self._lock:
            pending = self._pending
        if pending is not None:
            with contextlib.suppress(CancelledError):
                pending[1].result(timeout)
        with self._lock:
            return self._ready

    def close(self) -> None:
        """Stop the worker thread (a read in progress finishes; none is started again)."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _read(self, snapshot: PlanSnapshot) -> PlanReadings:
        try:
            readings = self._reader(snapshot, **self._args)
        except Exception:
            # A bug in one plan's readings must not stop the next plan's; the log has it.
            log.exception("metrics: reading the plan computed at %s failed", snapshot.computed_at)
            readings = PlanReadings(snapshot, problems=("the plan could not be read",))
        self._publish(readings)
        return readings

    def _publish(self, readings: PlanReadings) -> None:
        with self._lock:
            current = self._ready
            # Never replace a newer plan's readings with an older one's.
            if current is None or aware_utc(readings.snapshot.computed_at) >= aware_utc(
                current.snapshot.computed_at
            ):
                self._ready = readings
            if self._pending is not None and self._pending[0] is readings.snapshot:
                self._pending = None


def aware_utc(when: datetime) -> datetime:
    """``when`` as aware UTC (a naive time is taken as UTC, the store's convention)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
