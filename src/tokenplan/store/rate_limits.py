"""The latest rate limits the providers reported in response headers, per model, key and kind."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from tokenplan.events import ObservedLimit
from tokenplan.store.duckdb_store import DuckDBStore

RATE_LIMITS_TABLE = "tokenplan_rate_limits"
CREATE_RATE_LIMITS = f"""CREATE TABLE IF NOT EXISTS {RATE_LIMITS_TABLE} (
    provider VARCHAR NOT NULL, model VARCHAR NOT NULL, key_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL, "limit" BIGINT, remaining BIGINT, reset VARCHAR,
    observed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (provider, model, key_id, kind)
)"""
# key_id is part of the key, so "no key" is stored as '' rather than NULL.
_NO_KEY = ""


def record_rate_limits(store: DuckDBStore, limits: Sequence[ObservedLimit]) -> int:
    """Keep each (provider, model, key, kind)'s newest observation; returns rows offered."""
    if not limits:
        return 0
    con = store.connection
    con.execute(CREATE_RATE_LIMITS)
    rows = [
        (
            lim.provider,
            lim.model,
            lim.key_id or _NO_KEY,
            lim.kind,
            lim.limit,
            lim.remaining,
            lim.reset,
            lim.observed_at.astimezone(UTC).replace(tzinfo=None),
        )
        for lim in limits
    ]
    con.executemany(
        f"""INSERT INTO {RATE_LIMITS_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (provider, model, key_id, kind) DO UPDATE SET
            "limit" = excluded."limit", remaining = excluded.remaining,
            reset = excluded.reset, observed_at = excluded.observed_at
        WHERE excluded.observed_at >= {RATE_LIMITS_TABLE}.observed_at""",
        rows,
    )
    return len(rows)


def read_rate_limits(store: DuckDBStore) -> list[ObservedLimit]:
    """Every latest observation, oldest model first; [] when none was ever recorded."""
    con = store.connection
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [RATE_LIMITS_TABLE]
    ).fetchone()
    if not exists or not exists[0]:
        return []
    rows = con.execute(
        f"""SELECT provider, model, key_id, kind, "limit", remaining, reset, observed_at
        FROM {RATE_LIMITS_TABLE} ORDER BY provider, model, key_id, kind"""
    ).fetchall()
    return [
        ObservedLimit(
            provider=r[0],
            model=r[1],
            key_id=r[2] or None,
            kind=r[3],
            limit=r[4],
            remaining=r[5],
            reset=r[6],
            observed_at=r[7].replace(tzinfo=UTC),
        )
        for r in rows
    ]
