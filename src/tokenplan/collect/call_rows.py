"""Store rows for single calls, including failed calls whose token counts are unknown.

A call that failed before the provider reported usage has no token counts: it is stored as a
failed request with NULL tokens (unknown), never as 0 tokens, which a `UsageEvent` (whose
counts are required) cannot express.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from tokenplan.events import STATUSES, USAGE_SCHEMA, UsageEvent, events_to_table

__all__ = ["call_rows", "unknown_tokens_row"]


def unknown_tokens_row(
    *,
    ts: datetime,
    model: str,
    provider: str = "unknown",
    status: str = "error",
    latency_ms: float | None = None,
    cost_usd: Decimal | None = None,
    request_id: str | None = None,
    team: str | None = None,
    feature: str | None = None,
    user: str | None = None,
    key_id: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """One failed call with tokens unknown, as a store row (``ts`` must be aware)."""
    if ts.tzinfo is None or status not in STATUSES or status == "ok" or not model:
        raise ValueError("an unknown-token row needs an aware ts, a model and a failed status")
    return {
        "ts": ts.astimezone(UTC).replace(tzinfo=None),
        "bucket_s": 0,
        "provider": provider,
        "model": model,
        "team": team,
        "feature": feature,
        "user": user,
        "key_id": key_id,
        "requests": 1,
        "failed_requests": 1,
        "rate_limited_requests": 1 if status == "rate_limited" else 0,
        "latency_ms_sum": latency_ms,
        "cost_usd": cost_usd,
        "request_id": request_id,
        "source": source,
    }


def call_rows(
    events: list[UsageEvent], unknown: list[dict[str, Any]], *, source: str | None
) -> pa.Table:
    """Events and unknown-token rows as one table of `USAGE_SCHEMA` rows."""
    tables = [events_to_table(events, source=source)] if events else []
    if unknown:
        tables.append(pa.Table.from_pylist(unknown, schema=USAGE_SCHEMA))
    if not tables:
        return USAGE_SCHEMA.empty_table()
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]
