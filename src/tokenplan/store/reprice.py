"""The rows `tokenplan reprice` may price again, and writing their new costs back."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from tokenplan.errors import StoreError
from tokenplan.store.duckdb_store import DuckDBStore
from tokenplan.store.schema import COLUMNS

__all__ = ["OLD_COST", "ROW_ID", "priceable_rows", "save_costs", "stated_cost_rows"]

ROW_ID = "_row"
OLD_COST = "_old_cost"
# Batch usage in a provider report is named in the bucket id: Anthropic's service tier is
# the id's second-to-last part, OpenAI's batch flag its last (before a ``#k`` repeat mark).
_BATCH_SQL = """CASE
    WHEN request_id LIKE 'bucket:anthropic_usage:%'
        THEN string_split(regexp_replace(request_id, '#[0-9]+$', ''), ':')[-2] = 'batch'
    WHEN request_id LIKE 'bucket:openai_usage:%'
        THEN string_split(regexp_replace(request_id, '#[0-9]+$', ''), ':')[-1] = 'true'
    ELSE false END"""


def priceable_rows(store: DuckDBStore, since: datetime | None, *, batch: bool) -> pa.Table:
    """Rows tokenplan priced (or could not price) since ``since``, their cost cleared.

    Never a row whose cost the source stated, nor one of unknown origin that has a cost.
    Adds ``_row`` naming each row for `save_costs`, and ``_old_cost``, its cost until now.
    """
    cols = ", ".join(f'"{c}"' for c in COLUMNS if c != "cost_usd")
    where = "(cost_computed OR cost_usd IS NULL)" + (" AND ts >= ?" if since else "")
    sql = f"""SELECT {cols}, NULL::DECIMAL(38, 12) AS cost_usd, cost_usd AS {OLD_COST},
                     rowid AS {ROW_ID}
              FROM usage WHERE {where} AND ({_BATCH_SQL}) = ?"""
    params: list[object] = [_naive(since)] if since else []
    try:
        table = store.connection.sql(sql, params=[*params, batch]).to_arrow_table()
    except duckdb.Error as exc:
        raise StoreError(f"reading rows to reprice from {store.path} failed: {exc}") from exc
    if isinstance(table, pa.RecordBatchReader):
        table = table.read_all()
    rows: pa.Table = table
    return rows.select([*COLUMNS, OLD_COST, ROW_ID])


def stated_cost_rows(store: DuckDBStore, since: datetime | None) -> tuple[int, int]:
    """(rows whose cost the source stated, rows with a cost of unknown origin) since ``since``."""
    where = " AND ts >= ?" if since else ""
    row = store.connection.execute(
        f"""SELECT count(*) FILTER (WHERE cost_computed = false),
                   count(*) FILTER (WHERE cost_computed IS NULL AND cost_usd IS NOT NULL)
            FROM usage WHERE true {where}""",
        [_naive(since)] if since else [],
    ).fetchall()[0]
    return int(row[0]), int(row[1])


def save_costs(store: DuckDBStore, priced: pa.Table) -> None:
    """Write ``cost_usd`` of ``priced`` (rows of `priceable_rows`) back, in one transaction."""
    _tokenplan_reprice = priced.select([ROW_ID, "cost_usd"])  # read by DuckDB by name
    try:
        with store.transaction():
            store.connection.execute(
                f"""UPDATE usage SET cost_usd = n.cost_usd,
                        cost_computed = CASE WHEN n.cost_usd IS NULL THEN NULL ELSE true END
                    FROM _tokenplan_reprice AS n WHERE usage.rowid = n.{ROW_ID}"""
            ).fetchall()
    except duckdb.Error as exc:
        raise StoreError(f"writing new costs to the store {store.path} failed: {exc}") from exc


def _naive(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)
