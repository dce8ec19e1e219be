"""Events for the Redis live path tests, and the check that live counters equal the store.

Counters expire (minutes after 7 days, daily totals after 400) by the event time, so test
events are stamped in the last hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pyarrow as pa

from tokenplan.events import UsageEvent, events_to_table
from tokenplan.service.live_counters import LiveCounters
from tokenplan.store import DuckDBStore

MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "gpt-4o-mini")
TEAMS = ("search", "support", None)
FEATURES = ("chat", None)
METRICS = ("requests", "failed_requests", "input_tokens", "output_tokens", "total_tokens")


def minute_now() -> datetime:
    """The current minute, UTC."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def events(
    n: int,
    *,
    start: datetime,
    prefix: str | None = "r",
    spacing: timedelta = timedelta(seconds=1),
    first: int = 0,
    teams: Sequence[str | None] = TEAMS,
) -> list[UsageEvent]:
    """``n`` varied calls from ``start`` on; ids ``<prefix><i>`` (none when prefix is None)."""
    out = []
    for i in range(first, first + n):
        out.append(
            UsageEvent(
                ts=start + i * spacing,
                provider="anthropic",
                model=MODELS[i % len(MODELS)],
                input_tokens=1000 + 37 * i,
                output_tokens=50 + i % 400,
                cache_read_tokens=(i % 5) * 100,
                status="error" if i % 17 == 0 else "ok",
                # Twelve decimals and sometimes unknown: the counters must keep both exactly.
                cost_usd=None if i % 11 == 0 else Decimal("0.000001234567") * (i + 1),
                team=teams[i % len(teams)],
                feature=FEATURES[i % len(FEATURES)],
                request_id=None if prefix is None else f"{prefix}{i}",
            )
        )
    return out


def table(rows: Sequence[UsageEvent]) -> pa.Table:
    """Store rows for events."""
    return events_to_table(rows, source="test")


def assert_live_matches_store(
    live: LiveCounters,
    store: DuckDBStore,
    since: datetime,
    until: datetime,
    *,
    bys: Sequence[str | None] = (None, "model", "team", "feature"),
    metrics: Sequence[str] = (*METRICS, "cost_usd"),
) -> None:
    """Per-minute and daily live frames equal the store's own series, exactly."""
    # Daily totals cover whole days: compare them over the whole days around the range.
    day_lo = since.replace(hour=0, minute=0, second=0, microsecond=0)
    day_hi = until.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    for by in bys:
        dims = [by] if by else []
        for metric in metrics:
            got = live.series(metric, by, since=since, until=until, exact=True)
            want = store.series(metric, "1min", dims, since, until, exact=True)
            pd.testing.assert_frame_equal(got, want, obj=f"{metric} by {by} per minute")
            got = live.daily(metric, by, since=day_lo, until=day_hi, exact=True)
            want = store.series(metric, "1d", dims, day_lo, day_hi, exact=True)
            pd.testing.assert_frame_equal(got, want, obj=f"{metric} by {by} per day")
