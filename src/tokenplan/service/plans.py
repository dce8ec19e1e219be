"""The plan the read API serves, recomputed in the background, never on a request.

`PlanRefresher` builds a `tokenplan.capacity.CapacityPlan` on a schedule and soon after new
data (at most once per ``min_gap``), reading through its own DuckDB cursor inside one read
transaction, so the plan sees one consistent store while ingest keeps committing. With each
plan it computes the readings the API serves (`PlanReadings`: the JSON of `tokenplan budget`,
`headroom` and `spikes`, and the HTML report), then publishes both at once and calls the
``on_refresh`` callbacks (alerts plug in there). Reads only ever pick up the latest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pandas as pd

from tokenplan.capacity import CapacityPlan, Forecaster, PlanSettings, make_plan
from tokenplan.errors import TokenplanError
from tokenplan.readings import budgets_json, headroom_json, spikes_json
from tokenplan.service.contracts import PlanSnapshot, PlanSource
from tokenplan.store import DuckDBStore, StoreSummary
from tokenplan.store.queries import DuckDBQueries, TwiceCounted, UsageQueries

__all__ = [
    "NotReady",
    "PlanConfig",
    "PlanReader",
    "PlanReadings",
    "PlanRefresher",
    "read_plan",
]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class NotReady(TokenplanError):
    """No plan to serve yet (the first is being computed, or the store is empty)."""

    status = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanConfig:
    """What each plan is made with and read against (as `tokenplan budget`/`headroom` take)."""

    settings: PlanSettings = field(default_factory=PlanSettings)
    budgets: Any = None  # tokenplan.plan.budgets.BudgetsConfig
    limits: Any = None  # tokenplan.plan.limits.LimitsConfig; None: no headroom
    prices: Any = None  # tokenplan.pricing.PriceBook for the report's advice
    # What `tokenplan spikes` looks at by default: the newest day, attributed to a model.
    spikes_recent: int = 24
    spikes_by: str = "model"
    spikes_k: int = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanReadings:
    """Everything the read API serves from one plan, computed when the plan was."""

    snapshot: PlanSnapshot
    budgets: dict[str, Any] | None
    headroom: dict[str, Any]
    spikes: dict[str, Any]
    report_html: str


class PlanReader(PlanSource, Protocol):
    """A `PlanSource` that also has the readings of its latest plan."""

    def readings(self) -> PlanReadings | None:
        """The readings of the latest plan, or ``None`` before the first."""
        ...

    def stale(self) -> bool:
        """Whether events were committed after the latest plan read the store."""
        ...


def read_plan(snapshot: PlanSnapshot, config: PlanConfig, *, clock: Clock) -> PlanReadings:
    """The budgets, headroom, spikes and report of ``snapshot``'s plan (the CLI's readings)."""
    from tokenplan.report import render_html, report_from_plan

    plan = snapshot.plan
    budgets = None
    if config.budgets is not None:
        budgets = budgets_json(plan, plan.budget_statuses(config.budgets))
    headroom: dict[str, Any] = {"available": False, "reason": "no rate limits configured"}
    if config.limits is not None:
        check = plan.headroom(config.limits)
        headroom = (
            {"available": False, "reason": check}
            if isinstance(check, str)
            else {"available": True, **headroom_json(check, plan)}
        )
    found = plan.anomalies(config.spikes_recent, by=config.spikes_by, k=config.spikes_k)
    spikes = spikes_json(plan, found, metric=plan.metric, freq=plan.settings.freq)
    report = report_from_plan(
        plan,
        prices=config.prices,
        budgets=config.budgets,
        limits=config.limits,
        generated_at=clock(),
    )
    return PlanReadings(
        snapshot=snapshot,
        budgets=budgets,
        headroom=headroom,
        spikes=spikes,
        report_html=render_html(report),
    )


class PlanRefresher:
    """A `PlanReader` recomputing the plan in a background thread.

    ``open_reader`` gives a store handle for the refresher's thread (`DuckDBStore.reader`);
    each refresh uses a fresh one. A plan is made at start, every ``interval`` seconds, and
    ``min_gap`` seconds after `data_changed` (not more often). A failed refresh is logged
    and the previous plan kept.
    """

    def __init__(
        self,
        open_reader: Callable[[], DuckDBStore],
        config: PlanConfig,
        *,
        interval: float = 300.0,
        min_gap: float = 30.0,
        clock: Clock = lambda: datetime.now(UTC),
        on_refresh: Sequence[Callable[[PlanSnapshot], object]] = (),
        forecaster: Forecaster | None = None,
    ) -> None:
        self._open_reader = open_reader
        self.config = config
        self.interval = interval
        self.min_gap = min(min_gap, interval)
        self._clock = clock
        self._on_refresh = list(on_refresh)
        self._forecaster = forecaster
        self._readings: PlanReadings | None = None
        self._dirty = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    # -- PlanReader ---------------------------------------------------------------------

    def latest(self) -> PlanSnapshot | None:
        """The newest completed plan, or ``None``."""
        readings = self._readings
        return None if readings is None else readings.snapshot

    def readings(self) -> PlanReadings | None:
        """The readings of the newest plan, or ``None``."""
        return self._readings

    def stale(self) -> bool:
        """Whether events were committed after the latest plan read the store (a new plan is
        due ``min_gap`` seconds after them)."""
        return self._dirty

    # -- running ------------------------------------------------------------------------

    def data_changed(self) -> None:
        """New events were committed: plan again once ``min_gap`` has passed."""
        self._dirty = True
        self._wake.set()

    def start(self) -> None:
        """Start the background thread (it makes the first plan at once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tokenplan-plans", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the thread; False if a refresh under way outlasted ``timeout`` (still reading)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def add_listener(self, callback: Callable[[PlanSnapshot], object]) -> None:
        """Call ``callback(snapshot)`` after each refresh (metrics readings, alerts)."""
        self._on_refresh.append(callback)

    def refresh(self) -> PlanReadings:
        """Make a plan and its readings now, publish them, call ``on_refresh``; return them."""
        self._dirty = False
        reader = self._open_reader()
        queries = LockedQueries(DuckDBQueries(reader))
        # One read transaction: every query of the plan sees the same committed data.
        with reader.transaction():
            plan = make_plan(queries, settings=self.config.settings, forecaster=self._forecaster)
            plan.forecasts  # noqa: B018 (made here, not on a request)
            plan.per_model  # noqa: B018
            snapshot = PlanSnapshot(plan=plan, computed_at=self._clock(), as_of=_aware(plan))
            readings = read_plan(snapshot, self.config, clock=self._clock)
        self._readings = readings
        self.last_error = None
        for callback in self._on_refresh:
            try:
                callback(snapshot)
            except Exception:  # one listener must not stop the plans
                log.exception("an on_refresh callback failed")
        return readings

    def _run(self) -> None:
        last = -float("inf")
        while not self._stop.is_set():
            due = last + self.interval
            if self._dirty:
                due = min(due, last + self.min_gap)
            now = time.monotonic()
            if now < due:
                self._wake.wait(due - now)
                self._wake.clear()
                continue
            last = now
            try:
                self.refresh()
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("refreshing the plan failed: %s", self.last_error)


def _aware(plan: CapacityPlan) -> datetime | None:
    if plan.as_of is None:
        return None
    return pd.Timestamp(plan.as_of).tz_localize(UTC).to_pydatetime()


class LockedQueries:
    """`UsageQueries` through one cursor, one question at a time (a cursor is not shared-safe).

    A plan reads lazily (budgets, headroom, spikes query the store when first asked); any
    thread may ask, so the questions are serialized here.
    """

    def __init__(self, inner: UsageQueries) -> None:
        self._inner = inner
        self._lock = threading.RLock()

    def series(
        self,
        metric: str,
        freq: str,
        by: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        top: int | None = None,
    ) -> pd.DataFrame:
        """See `UsageQueries.series`."""
        with self._lock:
            return self._inner.series(metric, freq, by, since, until, top)

    def totals(
        self, metric: str, dimension: str, since: datetime, until: datetime | None = None
    ) -> pd.Series:
        """See `UsageQueries.totals`."""
        with self._lock:
            return self._inner.totals(metric, dimension, since, until)

    def summary(self) -> StoreSummary:
        """See `UsageQueries.summary`."""
        with self._lock:
            return self._inner.summary()

    def widest_bucket_seconds(self, since: datetime) -> int:
        """See `UsageQueries.widest_bucket_seconds`."""
        with self._lock:
            return self._inner.widest_bucket_seconds(since)

    def open_since(self) -> datetime | None:
        """See `UsageQueries.open_since`."""
        with self._lock:
            return self._inner.open_since()

    def counted_twice(self, since: datetime) -> list[TwiceCounted]:
        """See `UsageQueries.counted_twice`."""
        with self._lock:
            return self._inner.counted_twice(since)

    def cache_read_share(self, since: datetime) -> float:
        """See `UsageQueries.cache_read_share`."""
        with self._lock:
            return self._inner.cache_read_share(since)

    def model_providers(self, since: datetime) -> dict[str, str | None]:
        """See `UsageQueries.model_providers`."""
        with self._lock:
            return self._inner.model_providers(since)
