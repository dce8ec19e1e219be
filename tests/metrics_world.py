"""A small real world for the metrics tests: a DuckDB file of events, a plan, budgets, limits.

Built once per session (the `metrics_world` fixture in conftest.py): the plan forecasts four
days of hourly usage 24 hours ahead, a few seconds of work the metrics and deploy tests share.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tokenplan.capacity import CapacityPlan, PlanSettings, make_plan
from tokenplan.events import UsageEvent, events_to_table
from tokenplan.plan.budgets import Budget, BudgetsConfig
from tokenplan.plan.limits import LimitsConfig, RateLimit
from tokenplan.service.contracts import PlanSnapshot
from tokenplan.service.metrics import MetricsCollector, register_metrics
from tokenplan.store import DuckDBStore, open_store
from tokenplan.store.queries import queries_for

START = datetime(2025, 3, 3, tzinfo=UTC)
DAYS = 4
# The plan was computed ten minutes after the newest data; the scrape is 25 minutes later.
COMPUTED_AT = START + timedelta(days=DAYS, minutes=10)
NOW = COMPUTED_AT + timedelta(minutes=25)
SETTINGS = PlanSettings(horizon_hours=24, train_days=14)
# (model, provider, calls per hour at the daily mean, priced)
MODELS = (
    ("claude-sonnet-4-5", "anthropic", 6, True),
    ("gpt-4o", "openai", 3, True),
    ("local-llama", "self-hosted", 2, False),
)
BUDGETS = BudgetsConfig(
    (
        # Far below the spend: an overrun is certain.
        Budget(name="all models, weekly", amount=Decimal("2"), period="week"),
        # Far above it: no chance of an overrun.
        Budget(
            name="gpt-4o, monthly",
            amount=Decimal("1000"),
            period="month",
            scope="model",
            match="gpt-4o",
        ),
        # In CNY with the file's rate: the limit is shown in USD.
        Budget(
            name="claude, daily",
            amount=Decimal("36"),
            currency="CNY",
            period="day",
            scope="model",
            match="claude-sonnet-4-5",
        ),
        # In EUR, with no rate for it: there is no limit in USD to show.
        Budget(name="euro budget", amount=Decimal("100"), currency="EUR", period="month"),
    ),
    fx_currency="CNY",
    fx_per_usd=Decimal("7.2"),
)
LIMITS = LimitsConfig(
    (
        RateLimit(
            provider="anthropic",
            family="claude-sonnet-4",
            models=("claude-sonnet-4*",),
            tier="tier-1",
            rank=1,
            rpm=50,
            itpm=30_000,
        ),
    ),
    source="test limits",
)


class FixedPlans:
    """A `PlanSource` serving one snapshot (or none)."""

    def __init__(self, snapshot: PlanSnapshot | None) -> None:
        self.snapshot = snapshot

    def latest(self) -> PlanSnapshot | None:
        """The snapshot given."""
        return self.snapshot


class SpyForecaster:
    """The real forecast engine, noting which thread each call ran on."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from tokenplan.forecast import forecast

        self.threads.append(threading.get_ident())
        return forecast(*args, **kwargs)


@dataclass
class World:
    """The store, its plan wrapped in a snapshot, the collector and scrapes of it.

    ``first_text`` is the scrape that found the plan unread (it must not have waited for it),
    ``text`` one made after the background read finished.
    """

    db: Path
    store: DuckDBStore
    plan: CapacityPlan
    snapshot: PlanSnapshot
    registry: CollectorRegistry
    collector: MetricsCollector
    forecaster: SpyForecaster
    scrape_thread: int
    first_text: str
    text: str

    def samples(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """The scraped samples of ``name``: sorted label pairs → value."""
        return samples(self.text, name)


def usage_events(days: int = DAYS, seed: int = 0) -> list[UsageEvent]:
    """Calls with a daily cycle over ``days`` days; some fail, some are rate limited."""
    rng = np.random.default_rng(seed)
    events = []
    for hour in range(24 * days):
        cycle = 1.5 + np.sin(hour / 24 * 2 * np.pi)
        for model, provider, rate, priced in MODELS:
            for i in range(int(rate * cycle)):
                inp = int(rng.integers(500, 2000))
                status = "rate_limited" if i == 3 else "error" if i == 4 else "ok"
                events.append(
                    UsageEvent(
                        ts=START + timedelta(hours=hour, seconds=int(rng.integers(3600))),
                        provider=provider,
                        model=model,
                        input_tokens=inp,
                        output_tokens=int(rng.integers(50, 500)),
                        cache_read_tokens=inp // 4 if provider == "anthropic" else 0,
                        status=status,
                        cost_usd=Decimal(inp) / Decimal(100_000) if priced else None,
                        request_id=f"{model}-{hour}-{i}",
                    )
                )
    return events


def build_world(root: Path) -> World:
    """Write the events to a DuckDB file, plan them (lazily), scrape, wait, scrape again."""
    db = root / "metrics.duckdb"
    store = open_store(db)
    store.write(events_to_table(usage_events()))
    spy = SpyForecaster()
    plan = make_plan(store, settings=SETTINGS, forecaster=spy)
    assert plan.as_of is not None
    snapshot = PlanSnapshot(plan, COMPUTED_AT, plan.as_of.to_pydatetime().replace(tzinfo=UTC))
    registry = CollectorRegistry()
    collector = register_metrics(
        registry,
        totals=queries_for(store),
        plans=FixedPlans(snapshot),
        budgets=BUDGETS,
        limits=LIMITS,
        clock=lambda: NOW,
    )
    # The plan is not forecast yet: the first scrape starts the read and does not wait.
    first = generate_latest(registry).decode()
    assert collector.wait(timeout=120) is not None
    text = generate_latest(registry).decode()
    return World(
        db, store, plan, snapshot, registry, collector, spy, threading.get_ident(), first, text
    )


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of ``name`` in an exposition: sorted label pairs → value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def metric_names(text: str) -> set[str]:
    """Every sample name in an exposition (counters with their ``_total``)."""
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}
