"""The Prometheus collector: counters are the store's totals, gauges are the plan's numbers."""

from __future__ import annotations

import csv
import io
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from typer.testing import CliRunner

from metrics_world import BUDGETS, LIMITS, NOW, FixedPlans, World, samples, usage_events
from tokenplan.cli import app
from tokenplan.events import USAGE_SCHEMA, UsageEvent, events_to_table
from tokenplan.plan.budgets import Budget, BudgetsConfig
from tokenplan.service.contracts import PlanSnapshot
from tokenplan.service.metrics import MetricsCollector, register_metrics
from tokenplan.service.readings import PlanReadings, PlanReadingsCache, read_plan
from tokenplan.store import open_store
from tokenplan.store.queries import queries_for

PLAN_SERIES = (
    "tokenplan_forecast_",
    "tokenplan_budget_",
    "tokenplan_ratelimit_",
    "tokenplan_plan_age",
    "tokenplan_plan_as_of",
    "tokenplan_plan_computed",
)


def _scrape(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def _usage(db: Path, metric: str) -> dict[tuple[str, str], Decimal]:
    """``tokenplan usage`` totals of ``metric`` per (model, provider), from its CSV."""
    result = CliRunner().invoke(
        app,
        [
            "usage",
            "--metric",
            metric,
            "--freq",
            "1mo",
            "--by",
            "model",
            "--by",
            "provider",
            "--format",
            "csv",
            "--db",
            str(db),
        ],
    )
    assert result.exit_code == 0, result.output
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in csv.DictReader(io.StringIO(result.stdout)):
        model, provider = row["series"].split("|")
        totals[model, provider] += Decimal(row[metric] or 0)
    return dict(totals)


def test_counters_are_what_tokenplan_usage_sums_to(tmp_path: Path) -> None:
    db = tmp_path / "usage.duckdb"
    with open_store(db) as store:
        store.write(events_to_table(usage_events(days=2, seed=1)))
    usage = {
        m: _usage(db, m)
        for m in (
            "requests",
            "failed_requests",
            "rate_limited_requests",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "cost_usd",
        )
    }
    with open_store(db) as store:
        registry = CollectorRegistry()
        register_metrics(registry, totals=queries_for(store), plans=FixedPlans(None))
        text = _scrape(registry)
    tokens = samples(text, "tokenplan_tokens_total")
    requests = samples(text, "tokenplan_requests_total")
    cost = samples(text, "tokenplan_cost_usd_total")
    for (model, provider), calls in usage["requests"].items():
        pair = (("model", model), ("provider", provider))
        failed = usage["failed_requests"][model, provider]
        limited = usage["rate_limited_requests"][model, provider]
        assert requests[(*pair, ("status", "ok"))] == calls - failed
        assert requests[(*pair, ("status", "error"))] == failed - limited
        assert requests[(*pair, ("status", "rate_limited"))] == limited
        for kind in ("input", "output", "cache_read", "cache_write"):
            key = (("kind", kind), ("model", model), ("provider", provider))
            assert tokens[key] == usage[f"{kind}_tokens"][model, provider]
        priced = usage["cost_usd"][model, provider]
        if model == "local-llama":
            # Unpriced: its cost is unknown, and unknown is not 0.
            assert pair not in cost
        else:
            assert cost[pair] == pytest.approx(float(priced), rel=1e-12)
    assert {dict(k)["model"] for k in tokens} == {m for m, _ in usage["requests"]}


def test_counters_only_go_up_as_events_arrive_and_retries_count_once(tmp_path: Path) -> None:
    store = open_store(tmp_path / "live.duckdb")
    registry = CollectorRegistry()
    register_metrics(registry, totals=queries_for(store), plans=FixedPlans(None))
    events = usage_events(days=2, seed=2)
    half = len(events) // 2
    store.write(events_to_table(events[:half]))
    before = samples(_scrape(registry), "tokenplan_tokens_total")
    store.write(events_to_table(events[half:]))
    store.write(events_to_table(events[:half]))  # a client retrying the first half
    after = samples(_scrape(registry), "tokenplan_tokens_total")
    assert set(before) <= set(after)
    assert all(after[k] >= v for k, v in before.items())
    for key, value in after.items():
        labels = dict(key)
        written = sum(
            getattr(e, f"{labels['kind']}_tokens")
            for e in events
            if e.model == labels["model"] and e.provider == labels["provider"]
        )
        assert value == written
    store.close()


def test_without_a_plan_only_the_counters_and_plan_ready_0(metrics_world: World) -> None:
    registry = CollectorRegistry()
    register_metrics(
        registry,
        totals=queries_for(metrics_world.store),
        plans=FixedPlans(None),
        budgets=BUDGETS,
        limits=LIMITS,
    )
    text = _scrape(registry)
    assert samples(text, "tokenplan_plan_ready") == {(): 0.0}
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    assert not [n for n in names if n.startswith(PLAN_SERIES)]
    assert samples(text, "tokenplan_tokens_total") == metrics_world.samples(
        "tokenplan_tokens_total"
    )


def test_the_first_scrape_does_not_wait_for_the_plan_and_never_forecasts(
    metrics_world: World,
) -> None:
    # The world's plan was served unread: that scrape had only the counters ...
    first = metrics_world.first_text
    assert samples(first, "tokenplan_plan_ready") == {(): 0.0}
    assert not samples(first, "tokenplan_forecast_tokens")
    assert samples(first, "tokenplan_tokens_total") == metrics_world.samples(
        "tokenplan_tokens_total"
    )
    # ... the forecasts were made, on another thread, and the next scrape shows them.
    assert metrics_world.forecaster.threads
    assert metrics_world.scrape_thread not in metrics_world.forecaster.threads
    assert metrics_world.samples("tokenplan_plan_ready") == {(): 1.0}
    calls = len(metrics_world.forecaster.threads)
    for _ in range(3):
        _scrape(metrics_world.registry)
    assert len(metrics_world.forecaster.threads) == calls


def test_forecast_gauges_are_the_plans_numbers(metrics_world: World) -> None:
    plan = metrics_world.plan
    for metric, name in (
        ("total_tokens", "tokenplan_forecast_tokens"),
        ("cost_usd", "tokenplan_forecast_cost_usd"),
    ):
        got = {tuple(v for _, v in sorted(k)): x for k, x in metrics_world.samples(name).items()}
        # The next hour: the first row `tokenplan forecast` writes for the total.
        first = plan.contract_csv(metric).iloc[0]
        for bound in ("mean", "lo_80", "hi_80", "lo_95", "hi_95"):
            assert got[bound, "1h"] == pytest.approx(float(first[bound]), rel=1e-12)
        # The next day: summed means, ranges from the joint paths (the report's weekly way).
        start = pd.Timestamp(first["timestamp"]).tz_localize(None)
        end = start + pd.Timedelta(hours=24)
        assert got["mean", "24h"] == pytest.approx(plan.total(metric, start, end), rel=1e-12)
        for level in (80, 95):
            lo, hi = plan.sum_range(metric, start, end, level)
            assert got[f"lo_{level}", "24h"] == pytest.approx(lo, rel=1e-12)
            assert got[f"hi_{level}", "24h"] == pytest.approx(hi, rel=1e-12)
            assert got[f"lo_{level}", "24h"] <= got["mean", "24h"] <= got[f"hi_{level}", "24h"]


def test_budget_gauges_are_the_budget_statuses(metrics_world: World) -> None:
    statuses = metrics_world.plan.budget_statuses(BUDGETS)
    projected = metrics_world.samples("tokenplan_budget_projected_usd")
    spent = metrics_world.samples("tokenplan_budget_spent_usd")
    limit = metrics_world.samples("tokenplan_budget_limit_usd")
    overrun = metrics_world.samples("tokenplan_budget_overrun_probability")
    assert len(projected) == len(statuses) == 4
    for status in statuses:
        key = (("budget", status.budget.name), ("period", status.budget.period.value))
        assert status.projection is not None
        assert projected[key] == pytest.approx(status.projection.projected, rel=1e-9)
        assert spent[key] == pytest.approx(status.projection.so_far, rel=1e-12)
        if status.limit_usd is None:
            # A EUR budget with no EUR rate: no limit in USD, so no overrun chance either.
            assert key not in limit
            assert key not in overrun
        else:
            assert limit[key] == status.limit_usd
            assert overrun[key] == pytest.approx(status.p_overrun, abs=1e-9)
    by_name = {dict(k)["budget"]: v for k, v in limit.items()}
    assert by_name["claude, daily"] == pytest.approx(36 / 7.2)  # CNY at the file's rate
    odds = {dict(k)["budget"]: v for k, v in overrun.items()}
    assert odds["all models, weekly"] > 0.99
    assert odds["gpt-4o, monthly"] < 0.01


def test_headroom_gauges_are_the_plans_headroom(metrics_world: World) -> None:
    check = metrics_world.plan.headroom(LIMITS)
    assert not isinstance(check, str)
    ratio = metrics_world.samples("tokenplan_ratelimit_headroom_ratio")
    hit = metrics_world.samples("tokenplan_ratelimit_hit_probability")
    assert len(ratio) == len(check.rows) == 2
    for row in check.rows:
        key = tuple(
            sorted(
                {
                    "provider": row.provider,
                    "family": row.family,
                    "tier": row.tier,
                    "kind": row.kind,
                }.items()
            )
        )
        assert ratio[key] == pytest.approx(row.headroom_share, rel=1e-9)
        assert hit[key] == pytest.approx(row.p_hit_max, abs=1e-12)
    # Models no limit covers get no headroom series, but are named.
    assert metrics_world.samples("tokenplan_ratelimit_unconfigured") == {
        (("model", "gpt-4o"),): 1.0,
        (("model", "local-llama"),): 1.0,
    }


def test_plan_timestamps_and_age(metrics_world: World) -> None:
    snap = metrics_world.snapshot
    assert metrics_world.samples("tokenplan_plan_computed_timestamp_seconds") == {
        (): snap.computed_at.timestamp()
    }
    assert snap.as_of is not None
    assert metrics_world.samples("tokenplan_plan_as_of_timestamp_seconds") == {
        (): snap.as_of.timestamp()
    }
    age = (NOW - snap.computed_at).total_seconds()
    assert metrics_world.samples("tokenplan_plan_age_seconds") == {(): age}
    assert metrics_world.samples("tokenplan_plan_problems") == {(): 0.0}


def test_budgets_of_one_name_stay_distinct_series(metrics_world: World) -> None:
    twice = BudgetsConfig(
        (
            Budget(name="team", amount=Decimal("10"), period="week"),
            Budget(name="team", amount=Decimal("20"), period="week"),
        )
    )
    readings = read_plan(metrics_world.snapshot, budgets=twice)
    assert [(b.name, b.limit_usd) for b in readings.budgets] == [("team", 10.0), ("team #2", 20.0)]


# -- the readings cache: what a scrape serves while a plan is read --------------------------


def _snapshot(minute: int) -> PlanSnapshot:
    at = datetime(2025, 3, 7, 0, minute, tzinfo=UTC)
    return PlanSnapshot(plan=cast(Any, None), computed_at=at, as_of=at - timedelta(minutes=5))


class GatedReader:
    """A plan reader that waits for the test's go-ahead, counting calls and their threads."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.threads: list[int] = []

    def __call__(self, snapshot: PlanSnapshot, **_: Any) -> PlanReadings:
        self.threads.append(threading.get_ident())
        assert self.go.wait(30)
        return PlanReadings(snapshot, problems=("budgets: test",))


def _collector(source: FixedPlans, reader: Any) -> tuple[CollectorRegistry, MetricsCollector]:
    registry = CollectorRegistry()
    collector = MetricsCollector(
        totals=queries_for(open_store(":memory:")),
        plans=source,
        readings=PlanReadingsCache(reader=reader),
        clock=lambda: NOW,
    )
    registry.register(collector)
    return registry, collector


def test_a_new_plan_is_read_once_off_the_scrape_while_the_last_is_served() -> None:
    reader = GatedReader()
    source = FixedPlans(_snapshot(0))
    registry, collector = _collector(source, reader)
    try:
        assert samples(_scrape(registry), "tokenplan_plan_ready") == {(): 0.0}
        reader.go.set()
        collector.wait(30)
        text = _scrape(registry)
        assert samples(text, "tokenplan_plan_ready") == {(): 1.0}
        assert samples(text, "tokenplan_plan_problems") == {(): 1.0}
        old = samples(text, "tokenplan_plan_computed_timestamp_seconds")
        # A newer plan: until it is read, scrapes serve the last one's figures.
        reader.go.clear()
        source.snapshot = _snapshot(30)
        for _ in range(3):
            assert samples(_scrape(registry), "tokenplan_plan_computed_timestamp_seconds") == old
        reader.go.set()
        collector.wait(30)
        new = samples(_scrape(registry), "tokenplan_plan_computed_timestamp_seconds")
        assert new == {(): _snapshot(30).computed_at.timestamp()}
        # Each plan was read once, never on the scraping thread.
        assert len(reader.threads) == 2
        assert threading.get_ident() not in reader.threads
    finally:
        reader.go.set()
        collector.close()


def test_prepare_reads_on_the_callers_thread_and_scrapes_reuse_it() -> None:
    reader = GatedReader()
    reader.go.set()
    snap = _snapshot(0)
    registry, collector = _collector(FixedPlans(snap), reader)
    collector.prepare(snap)
    for _ in range(3):
        assert samples(_scrape(registry), "tokenplan_plan_ready") == {(): 1.0}
    assert reader.threads == [threading.get_ident()]
    collector.close()


def test_a_plan_that_cannot_be_read_is_reported_not_raised() -> None:
    def broken(snapshot: PlanSnapshot, **_: Any) -> PlanReadings:
        raise RuntimeError("boom")

    registry, collector = _collector(FixedPlans(_snapshot(0)), broken)
    _scrape(registry)
    collector.wait(30)
    text = _scrape(registry)
    assert samples(text, "tokenplan_plan_problems") == {(): 1.0}
    assert not samples(text, "tokenplan_forecast_tokens")
    collector.close()


# -- what the store does not know, and how many series a scrape may hold -------------------


def _bucket_rows(rows: list[dict[str, Any]]) -> pa.Table:
    cols: dict[str, list[Any]] = {name: [] for name in USAGE_SCHEMA.names}
    for row in rows:
        for name in cols:
            cols[name].append(row.get(name, 3600 if name == "bucket_s" else None))
    return pa.Table.from_pydict(cols, schema=USAGE_SCHEMA)


def test_counts_the_source_does_not_know_are_left_out() -> None:
    store = open_store(":memory:")
    ts = datetime(2025, 3, 3)
    store.write(
        _bucket_rows(
            [
                # A trace with requests only: no tokens, no outcome, no cost.
                {"ts": ts, "model": "trace-model", "provider": "azure", "requests": 40},
                # A usage CSV with total tokens only, and failures it counted.
                {
                    "ts": ts,
                    "model": "csv-model",
                    "requests": 10,
                    "failed_requests": 2,
                    "unsplit_tokens": 5000,
                    "cost_usd": Decimal("0.5"),
                },
            ]
        )
    )
    registry = CollectorRegistry()
    register_metrics(registry, totals=queries_for(store), plans=FixedPlans(None))
    text = _scrape(registry)
    assert samples(text, "tokenplan_requests_total") == {
        (("model", "trace-model"), ("provider", "azure"), ("status", "unknown")): 40.0,
        (("model", "csv-model"), ("provider", "(none)"), ("status", "ok")): 8.0,
        (("model", "csv-model"), ("provider", "(none)"), ("status", "error")): 2.0,
    }
    assert samples(text, "tokenplan_tokens_total") == {
        (("kind", "unsplit"), ("model", "csv-model"), ("provider", "(none)")): 5000.0
    }
    assert samples(text, "tokenplan_cost_usd_total") == {
        (("model", "csv-model"), ("provider", "(none)")): 0.5
    }


def test_many_models_are_pooled_as_other_and_the_totals_kept() -> None:
    store = open_store(":memory:")
    ts = datetime(2025, 3, 3, tzinfo=UTC)
    events = [
        UsageEvent(ts=ts, provider="p", model=f"m{i}", input_tokens=1000 * (i + 1), output_tokens=i)
        for i in range(6)
    ]
    store.write(events_to_table(events))
    registry = CollectorRegistry()
    register_metrics(registry, totals=queries_for(store), plans=FixedPlans(None), max_models=3)
    tokens = samples(_scrape(registry), "tokenplan_tokens_total")
    inputs = {dict(k)["model"]: v for k, v in tokens.items() if dict(k)["kind"] == "input"}
    # The two biggest by tokens, then everything else as one series.
    assert inputs == {"m5": 6000.0, "m4": 5000.0, "(other)": 1000.0 + 2000 + 3000 + 4000}


class LevelForecast:
    """A stand-in engine: every series stays at its last value, with fixed ranges."""

    def __call__(self, frame: pd.DataFrame, *, horizon: int, **_: Any) -> Any:
        parts = []
        for uid, part in frame.groupby("unique_id"):
            last = float(part.sort_values("ds")["y"].iloc[-1])
            ds = pd.date_range(part["ds"].max() + pd.Timedelta(hours=1), periods=horizon, freq="h")
            parts.append(
                pd.DataFrame(
                    {
                        "unique_id": uid,
                        "ds": ds,
                        "mean": last,
                        "lo_80": last * 0.9,
                        "hi_80": last * 1.1,
                        "lo_95": last * 0.8,
                        "hi_95": last * 1.2,
                    }
                )
            )
        return type("Result", (), {"frame": pd.concat(parts), "notes": []})()


def test_usage_without_token_counts_forecasts_requests_within_the_plans_horizon() -> None:
    from tokenplan.capacity import PlanSettings, make_plan

    store = open_store(":memory:")
    start = datetime(2025, 3, 3)
    store.write(
        _bucket_rows(
            [
                {"ts": start + timedelta(hours=h), "model": "m", "requests": 10 + h}
                for h in range(48)
            ]
        )
    )
    plan = make_plan(
        store, settings=PlanSettings(horizon_hours=12, train_days=14), forecaster=LevelForecast()
    )
    snapshot = PlanSnapshot(plan, datetime(2025, 3, 5, 0, 5, tzinfo=UTC), None)
    registry = CollectorRegistry()
    collector = register_metrics(registry, totals=queries_for(store), plans=FixedPlans(snapshot))
    collector.prepare(snapshot)
    text = _scrape(registry)
    # The requests forecast, next hour only: twelve hours cannot hold the next day.
    assert samples(text, "tokenplan_forecast_requests") == {
        (("bound", "hi_80"), ("horizon", "1h")): pytest.approx(57 * 1.1),
        (("bound", "hi_95"), ("horizon", "1h")): pytest.approx(57 * 1.2),
        (("bound", "lo_80"), ("horizon", "1h")): pytest.approx(57 * 0.9),
        (("bound", "lo_95"), ("horizon", "1h")): pytest.approx(57 * 0.8),
        (("bound", "mean"), ("horizon", "1h")): 57.0,
    }
    assert not samples(text, "tokenplan_forecast_tokens")
    # Without a snapshot as-of time, the plan's own (the end of its last hour) is shown.
    assert samples(text, "tokenplan_plan_as_of_timestamp_seconds") == {
        (): datetime(2025, 3, 5, tzinfo=UTC).timestamp()
    }
    store.close()


def test_a_plan_of_an_empty_store_is_not_ready_but_its_age_shows() -> None:
    from tokenplan.capacity import make_plan

    store = open_store(":memory:")
    snapshot = PlanSnapshot(make_plan(store), datetime(2025, 3, 7, tzinfo=UTC), None)
    registry = CollectorRegistry()
    collector = register_metrics(
        registry,
        totals=queries_for(store),
        plans=FixedPlans(snapshot),
        budgets=BUDGETS,
        limits=LIMITS,
        clock=lambda: datetime(2025, 3, 7, 0, 1, tzinfo=UTC),
    )
    collector.prepare(snapshot)
    text = _scrape(registry)
    assert samples(text, "tokenplan_plan_ready") == {(): 0.0}
    assert samples(text, "tokenplan_plan_age_seconds") == {(): 60.0}
    assert samples(text, "tokenplan_plan_problems") == {(): 0.0}
    assert not samples(text, "tokenplan_forecast_tokens")
    assert not samples(text, "tokenplan_budget_limit_usd")
    assert not samples(text, "tokenplan_tokens_total")
    store.close()
