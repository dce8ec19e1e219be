"""A small store for the Parquet lake tests: bundled real data, and raw events using every column.

Rows: the Azure 2023 minutely trace (118 buckets, no provider), the Anthropic and OpenAI usage
report samples (daily buckets, 2025-08-01..03), and raw events with exact 12-place costs,
statuses, dimensions, a provider name that needs escaping in a path, unknown tokens, and calls
one microsecond either side of midnight UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tokenplan.collect import import_file
from tokenplan.events import UsageEvent, events_to_table
from tokenplan.store import DuckDBStore

DATA = Path(__file__).resolve().parent / "data"
FILES = (
    DATA / "shared" / "azure_llm_2023" / "minutely.csv",
    DATA / "provider" / "anthropic_usage.json",
    DATA / "provider" / "openai_usage.json",
)
ODD_PROVIDER = "my/relay=x y"
MIDNIGHT = datetime(2025, 8, 2, tzinfo=UTC)


def raw_events() -> list[UsageEvent]:
    """Raw calls over two days that exercise every column of the store."""
    events = []
    for i in range(24):
        events.append(
            UsageEvent(
                ts=datetime(2025, 8, 1, tzinfo=UTC) + timedelta(hours=2 * i, minutes=7),
                provider=("anthropic", "openai", ODD_PROVIDER)[i % 3],
                model=("claude-sonnet-4-5", "gpt-4o", "relay-model")[i % 3],
                input_tokens=1000 + 37 * i,
                output_tokens=200 + 11 * i,
                cache_read_tokens=(i % 4) * 100,
                cache_write_tokens=(i % 5) * 10,
                latency_ms=123.25 + i,
                status=("ok", "ok", "error", "rate_limited")[i % 4],
                cost_usd=Decimal("0.000000000001") * (i + 1) + Decimal("12.345678901234"),
                team=("search", None)[i % 2],
                feature="chat" if i % 3 else None,
                user=f"u{i % 5}",
                key_id=f"key-{i % 2}",
                request_id=f"req-{i}",
            )
        )
    for moment in (MIDNIGHT - timedelta(microseconds=1), MIDNIGHT):
        events.append(
            UsageEvent(
                ts=moment,
                provider="anthropic",
                model="claude-haiku-4-5",
                input_tokens=7,
                output_tokens=3,
                cost_usd=Decimal("99999999.999999999999"),
                request_id=f"edge-{moment.isoformat()}",
            )
        )
    events.append(
        UsageEvent(
            ts=datetime(2025, 8, 2, 5, tzinfo=UTC),
            provider="openai",
            model="gpt-4o",
            input_tokens=0,
            output_tokens=0,
            tokens_known=False,
        )
    )
    return events


def build_store(path: Path) -> Path:
    """Write the lake tests' store at ``path`` and return it."""
    with DuckDBStore(path) as store:
        for file in FILES:
            import_file(store, file)
        store.write(events_to_table(raw_events(), source="lake-test"))
    return path
