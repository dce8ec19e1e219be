"""Re-pricing: 1-hour cache writes priced apart, stated costs kept, unknown prices stay NULL."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent / "cli"))

from cli_process import run_cli

from tokenplan.collect import import_file
from tokenplan.events import UsageEvent, events_to_table
from tokenplan.pricing import PriceBook, TierRates
from tokenplan.pricing.reprice import reprice
from tokenplan.store import DuckDBStore

REPORT = Path(__file__).resolve().parent / "data" / "provider" / "anthropic_usage.json"
SONNET = "claude-sonnet-4-5-20250929"
OVERRIDE = """
[[prices]]
provider = "anthropic"
model = "claude-sonnet-4-5-20250929"
input = 2
output = 10
cache_read = 0.2
cache_write = 2.5
"""
# Day 2's first sonnet row: 98,000 uncached, 512,000 read, 12,000 5m + 8,000 1h writes, 39,000
# out. 1h writes have no price in the override: Anthropic's 2x input ($4/MTok here).
DAY2_COST = (
    98_000 * 2 + 512_000 * Decimal("0.2") + 12_000 * Decimal("2.5") + 8_000 * 4 + 39_000 * 10
) / 1_000_000


def _store(path: Path) -> None:
    with DuckDBStore(path) as store:
        import_file(store, REPORT, prices=PriceBook())
        store.write(
            events_to_table(
                [
                    UsageEvent(
                        ts=datetime(2025, 8, 1, 5, tzinfo=UTC),
                        provider="anthropic",
                        model=SONNET,
                        input_tokens=1000,
                        output_tokens=10,
                        cost_usd=Decimal("123"),  # stated by the source: never repriced
                        request_id="stated",
                    ),
                    UsageEvent(
                        ts=datetime(2025, 8, 1, 6, tzinfo=UTC),
                        provider="acme",
                        model="acme-secret-1",
                        input_tokens=5000,
                        output_tokens=70,
                        request_id="unknown",
                    ),
                ]
            )
        )


def _cost(store: DuckDBStore, where: str) -> list[tuple[object, ...]]:
    return store.connection.execute(
        f"SELECT cost_usd, cost_computed FROM usage WHERE {where}"
    ).fetchall()


def test_the_report_keeps_1h_cache_writes_apart(tmp_path: Path) -> None:
    _store(tmp_path / "s.duckdb")
    with DuckDBStore(tmp_path / "s.duckdb", mode="read") as store:
        rows = store.connection.execute(
            "SELECT sum(cache_write_tokens), sum(cache_write_1h_tokens) FROM usage "
            "WHERE source LIKE '%anthropic_usage.json'"
        ).fetchall()
    assert rows == [(51_000, 8_000)]


def test_reprice_after_a_price_override(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    _store(db)
    prices = tmp_path / "p.toml"
    prices.write_text(OVERRIDE)
    with DuckDBStore(db) as store:
        summary = reprice(store, PriceBook(prices))
        day2 = _cost(
            store, "ts = '2025-08-02' AND model = '" + SONNET + "' AND cache_write_1h_tokens = 8000"
        )
        stated = _cost(store, "request_id = 'stated'")
        unknown = _cost(store, "request_id = 'unknown'")
        again = reprice(store, PriceBook(prices))
    assert day2 == [(DAY2_COST, True)]
    assert stated == [(Decimal("123"), False)]
    assert unknown == [(None, None)]
    assert summary.stated_rows == 1
    # No batch price for the report's batch haiku rows, and no price at all for acme.
    assert summary.unpriced_models == ("acme-secret-1", "claude-haiku-4-5-20251001")
    assert summary.changed >= 3  # every sonnet row of the report moved to the override
    assert again.changed == 0
    assert again.before_usd == again.after_usd


def test_reprice_and_prices_missing_from_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    _store(db)
    prices = tmp_path / "p.toml"
    # A batch discount prices the report's batch rows (found by their bucket ids) too.
    extra = '\n[[prices]]\nmodel = "acme-secret-1"\ninput = 1\noutput = 2\n'
    prices.write_text("batch_multiplier = 0.5\n" + OVERRIDE + extra)
    missing = run_cli("prices", "--missing", "--db", db, "--format", "json")
    assert missing.returncode == 0, missing.stderr
    items = json.loads(missing.stdout)["missing"]
    assert [(i["model"], i["input_tokens"], i["output_tokens"]) for i in items] == [
        ("claude-haiku-4-5-20251001", 1_400_000, 165_000),  # batch rows: no batch price
        ("acme-secret-1", 5000, 70),
    ]
    as_csv = run_cli("prices", "--missing", "--db", db, "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    listed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [(r["model"], r["input_tokens"]) for r in listed] == [
        (i["model"], str(i["input_tokens"])) for i in items
    ]
    refused = run_cli("prices", "claude-sonnet-4-5", "--format", "csv")
    assert refused.returncode == 2
    assert "--format csv is for --missing" in refused.stderr
    run = run_cli("reprice", "--prices", prices, "--since", "2025-08-01", "--db", db)
    assert run.returncode == 0, run.stderr
    after = run_cli("prices", "--missing", "--db", db, "--format", "json")
    assert json.loads(after.stdout)["missing"] == []
    with DuckDBStore(db, mode="read") as store:
        # 5,000 x $1/MTok + 70 x $2/MTok
        assert _cost(store, "request_id = 'unknown'") == [(Decimal("0.00514"), True)]


@given(
    uncached=st.integers(0, 10**9),
    read=st.integers(0, 10**9),
    short=st.integers(0, 10**9),
    hour=st.integers(0, 10**9),
    out=st.integers(0, 10**9),
    rate=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100), places=2),
)
def test_hour_writes_cost_twice_input_and_short_writes_their_rate(
    uncached: int, read: int, short: int, hour: int, out: int, rate: Decimal
) -> None:
    mtok = Decimal(1_000_000)
    tier = TierRates(
        input=rate / mtok,
        output=5 * rate / mtok,
        cache_read=rate / 10 / mtok,
        cache_write=rate * Decimal("1.25") / mtok,
    )
    inp = uncached + read + short + hour
    total = tier.amount(inp, out, read, short + hour, 1, hour)
    expected = (
        uncached * rate
        + read * rate / 10
        + short * rate * Decimal("1.25")
        + hour * 2 * rate
        + out * 5 * rate
    ) / mtok
    assert total == expected
    # Moving writes from 5 minutes to 1 hour never makes them cheaper (2x > 1.25x).
    assert tier.amount(inp, out, read, short + hour, 1, short + hour) >= total
