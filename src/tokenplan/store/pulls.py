"""What provider pulls keep besides usage rows: how far each report is complete, the rows of
still-open buckets, and the provider's billed costs (`tokenplan.collect.provider_pull`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass
from datetime import datetime
from decimal import Decimal

import duckdb
import pyarrow as pa

from tokenplan.errors import StoreError
from tokenplan.store.duckdb_store import DuckDBStore, WriteResult
from tokenplan.store.schema import COSTS_TABLE, PARTIALS_TABLE, PULLS_TABLE

__all__ = ["CostRow", "checkpoint", "mark_open_buckets", "save_cost_page", "save_usage_page"]


@dataclass(frozen=True, slots=True)
class CostRow:
    """One line of a provider's cost report (naive UTC bucket start)."""

    id: str
    provider: str
    ts: datetime
    bucket_s: int
    model: str | None
    team: str | None
    item: str | None
    amount: Decimal
    currency: str
    amount_usd: Decimal | None
    source: str


def checkpoint(store: DuckDBStore, provider: str, report: str) -> datetime | None:
    """The end (naive UTC) of the last complete bucket pulled of ``report``, or None."""
    rows = store.connection.execute(
        f"SELECT complete_until FROM {PULLS_TABLE} WHERE provider = ? AND report = ?",
        [provider, report],
    ).fetchall()
    return rows[0][0] if rows else None


def save_usage_page(
    store: DuckDBStore,
    provider: str,
    rows: pa.Table,
    *,
    span: tuple[datetime, datetime],
    partial: Sequence[tuple[str, datetime]],
    complete_until: datetime | None,
) -> WriteResult:
    """One page of usage, atomically: drop the open buckets an earlier pull left in ``span``,
    write ``rows``, remember this page's open buckets, advance the checkpoint."""
    try:
        with store.transaction():
            stale = _take_partials(store, provider, "usage", span)
            result = store.write(rows)
            _remember_partials(store, provider, "usage", partial)
            _advance(store, provider, "usage", complete_until)
    except duckdb.Error as exc:
        raise StoreError(f"saving pulled usage to the store {store.path} failed: {exc}") from exc
    # A stale open bucket replaced by its new numbers is a replacement, not a new row.
    moved = min(stale, result.inserted)
    return WriteResult(result.inserted - moved, result.duplicates, result.replaced + moved)


def mark_open_buckets(
    store: DuckDBStore,
    provider: str,
    report: str,
    span: tuple[datetime, datetime],
    partial: Sequence[tuple[str, datetime]],
) -> None:
    """Say which buckets of an imported export in ``span`` are still open (and no others).

    Unlike a pull (`save_usage_page`), the rows stay: a later export of the same buckets
    replaces them (last export wins per bucket)."""
    store.connection.execute(
        f"DELETE FROM {PARTIALS_TABLE} WHERE provider = ? AND report = ? AND ts >= ? AND ts < ?",
        [provider, report, *span],
    ).fetchall()
    _remember_partials(store, provider, report, partial)


def save_cost_page(
    store: DuckDBStore,
    provider: str,
    rows: Sequence[CostRow],
    *,
    complete_until: datetime | None,
) -> tuple[int, int]:
    """Upsert cost lines (last pull wins per line) and advance the checkpoint atomically.

    Returns (lines new, lines replaced or unchanged).
    """
    ids = [r.id for r in rows]
    try:
        with store.transaction():
            known = {
                r[0]
                for r in store.connection.execute(
                    f"SELECT id FROM {COSTS_TABLE} WHERE id IN (SELECT unnest(?))", [ids]
                ).fetchall()
            }
            if rows:
                store.connection.execute(
                    f"DELETE FROM {COSTS_TABLE} WHERE id IN (SELECT unnest(?))", [ids]
                )
                store.connection.executemany(
                    f"INSERT INTO {COSTS_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [astuple(r) for r in rows],  # fields in the table's column order
                )
            _advance(store, provider, "costs", complete_until)
    except duckdb.Error as exc:
        raise StoreError(f"saving pulled costs to the store {store.path} failed: {exc}") from exc
    return len(set(ids) - known), len(set(ids) & known)


def _take_partials(
    store: DuckDBStore, provider: str, report: str, span: tuple[datetime, datetime]
) -> int:
    con = store.connection
    where = "provider = ? AND report = ? AND ts >= ? AND ts < ?"
    params = [provider, report, *span]
    deleted = con.execute(
        f"""DELETE FROM usage WHERE request_id IN (
                SELECT request_id FROM {PARTIALS_TABLE} WHERE {where})""",
        params,
    ).fetchall()
    con.execute(f"DELETE FROM {PARTIALS_TABLE} WHERE {where}", params).fetchall()
    return int(deleted[0][0]) if deleted else 0


def _remember_partials(
    store: DuckDBStore, provider: str, report: str, partial: Sequence[tuple[str, datetime]]
) -> None:
    if partial:
        store.connection.executemany(
            f"INSERT INTO {PARTIALS_TABLE} VALUES (?, ?, ?, ?)",
            [[provider, report, rid, ts] for rid, ts in partial],
        )


def _advance(store: DuckDBStore, provider: str, report: str, until: datetime | None) -> None:
    if until is None:
        return
    store.connection.execute(
        f"""INSERT INTO {PULLS_TABLE} (provider, report, complete_until) VALUES (?, ?, ?)
            ON CONFLICT (provider, report) DO UPDATE SET
                complete_until = greatest({PULLS_TABLE}.complete_until, excluded.complete_until),
                pulled_at = now()::TIMESTAMP""",
        [provider, report, until],
    ).fetchall()
