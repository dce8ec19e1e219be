"""`reconcile`: a store holding SDK events and a pulled provider report, with a known drift."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "collect"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))

from cli_process import run_cli
from provider_api import (
    A_COSTS,
    A_USAGE,
    KEY,
    ProviderApi,
    anthropic_cost_bucket,
    anthropic_usage_bucket,
    hours,
)

from tokenplan.collect.http_pages import Retry
from tokenplan.collect.provider_pull import ANTHROPIC, open_client, pull
from tokenplan.events import UsageEvent, events_to_table
from tokenplan.plan.reconcile import reconcile
from tokenplan.store import DuckDBStore
from tokenplan.store.reconcile import reconcile_sides

T0 = datetime(2025, 8, 1, tzinfo=UTC)
SONNET, HAIKU, OPUS = "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001", "claude-opus-4-1"


def _event(hour: int, model: str, inp: int, out: int, cost: str, rid: str) -> UsageEvent:
    return UsageEvent(
        ts=T0 + timedelta(hours=hour),
        provider="anthropic",
        model=model,
        input_tokens=inp,
        output_tokens=out,
        cost_usd=Decimal(cost),
        request_id=rid,
    )


def _store(path: Path) -> None:
    with ProviderApi(page_size=50) as api, DuckDBStore(path) as store:
        api.buckets[A_USAGE] = [anthropic_usage_bucket(lo, hi) for lo, hi in hours(T0, 24)]
        api.buckets[A_COSTS] = [anthropic_cost_bucket(T0, T0 + timedelta(days=1), "1234.5")]
        with open_client(ANTHROPIC, KEY, base_url=api.url) as client:
            pull(
                store,
                ANTHROPIC,
                client,
                key=KEY,
                since=T0,
                until=T0 + timedelta(days=1),
                clock=lambda: T0 + timedelta(days=3),
                retry=Retry(attempts=1),
            )
        # The SDK saw 90% of the provider's sonnet tokens, none of haiku, and an opus call
        # the provider's report does not hold.
        store.write(
            events_to_table(
                [
                    _event(1, SONNET, 200_000, 10_000, "1.00", "r1"),
                    _event(9, SONNET, 76_460, 10_000, "1.00", "r2"),
                    _event(5, OPUS, 1_000, 100, "0.05", "r3"),
                ]
            )
        )


def test_reconcile_shows_the_known_drift_per_model_and_day(tmp_path: Path) -> None:
    db = tmp_path / "both.duckdb"
    _store(db)
    with DuckDBStore(db, mode="read") as store:
        rows = {r.model: r for r in reconcile(reconcile_sides(store, T0, T0 + timedelta(days=1)))}
    sonnet = rows[SONNET]
    # Provider: sum over hours h=1..24 of (1000h + 600) input and 50h output = 329,400 tokens.
    assert (sonnet.day, sonnet.sdk_tokens, sonnet.provider_tokens) == (
        date(2025, 8, 1),
        296_460,
        329_400,
    )
    assert sonnet.token_drift == -32_940
    assert sonnet.token_drift_pct == -10.0
    # Billed 1234.5 cents for the day; the SDK priced its calls at $2.00.
    assert (sonnet.provider_cost_usd, sonnet.cost_basis) == (Decimal("12.345"), "billed")
    assert sonnet.cost_drift_usd == Decimal("-10.345")
    assert sonnet.note == ""
    haiku = rows[HAIKU]
    assert (haiku.sdk_tokens, haiku.provider_tokens, haiku.token_drift) == (None, 360, None)
    assert "no SDK events" in haiku.note
    opus = rows[OPUS]
    assert (opus.sdk_tokens, opus.provider_tokens) == (1_100, None)
    assert "no provider usage report" in opus.note
    assert set(rows) == {SONNET, HAIKU, OPUS}


def test_reconcile_cli_json(tmp_path: Path) -> None:
    db = tmp_path / "both.duckdb"
    _store(db)
    run = run_cli(
        "reconcile",
        "--since",
        "2025-08-01",
        "--until",
        "2025-08-02",
        "--db",
        db,
        "--format",
        "json",
    )
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)["rows"]
    sonnet = next(r for r in rows if r["model"] == SONNET)
    assert sonnet["token_drift"] == -32_940
    assert sonnet["cost_drift_usd"] == "-10.345000000000"
    bad = run_cli("reconcile", "--since", "2025-08-02", "--until", "2025-08-01", "--db", db)
    assert bad.returncode == 2
    assert "is not before --until" in bad.stderr


def test_reconcile_cli_csv_has_the_json_fields_and_exact_decimals(tmp_path: Path) -> None:
    db = tmp_path / "both.duckdb"
    _store(db)
    args = ("reconcile", "--since", "2025-08-01", "--until", "2025-08-02", "--db", db)
    as_json = json.loads(run_cli(*args, "--format", "json").stdout)["rows"]
    run = run_cli(*args, "--format", "csv")
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert [r["model"] for r in rows] == [r["model"] for r in as_json]
    sonnet = next(r for r in rows if r["model"] == SONNET)
    assert sonnet["cost_drift_usd"] == "-10.345000000000"
    assert sonnet["token_drift"] == "-32940"
    haiku = next(r for r in rows if r["model"] == HAIKU)
    assert haiku["sdk_tokens"] == ""  # unknown, not 0
    assert "no SDK events" in haiku["note"]


def test_calls_and_a_report_of_the_same_model_and_day_are_said_to_be_counted_twice(
    tmp_path: Path,
) -> None:
    """Reconcile wants both in one store; every other total sums them: the plan says so."""
    from tokenplan.capacity import PlanSettings, make_plan
    from tokenplan.store.queries import DuckDBQueries

    db = tmp_path / "both.duckdb"
    _store(db)
    with DuckDBStore(db, mode="read") as store:
        twice = DuckDBQueries(store).counted_twice(T0 - timedelta(days=1))
        plan = make_plan(store, settings=PlanSettings(horizon_hours=24))
    # Sonnet is in both (haiku only reported, opus only called).
    assert [(t.provider, t.model, t.days) for t in twice] == [("anthropic", SONNET, 1)]
    assert any(n.startswith("Counted twice: 1 day(s) of 1 model(s)") for n in plan.notes)
    usage = run_cli("usage", "--db", db, "--freq", "1d", "--format", "csv")
    assert usage.returncode == 0, usage.stderr
    assert "count them twice" in " ".join(usage.stderr.split())
    assert "twice" not in usage.stdout
    with DuckDBStore(tmp_path / "sdk.duckdb") as only_calls:
        only_calls.write(events_to_table([_event(1, SONNET, 10, 1, "0.01", "r1")]))
        assert DuckDBQueries(only_calls).counted_twice(T0 - timedelta(days=1)) == []
