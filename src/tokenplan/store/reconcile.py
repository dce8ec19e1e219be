"""Both sides of a reconciliation, per day, provider and model: what the SDK recorded (raw
events) and what the provider reports (pulled or imported usage reports, billed costs)."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pandas as pd

from tokenplan.errors import StoreError
from tokenplan.store.duckdb_store import DuckDBStore
from tokenplan.store.schema import COSTS_TABLE
from tokenplan.store.series_sql import NONE_LABEL

__all__ = ["REPORTED_PROVIDERS", "reconcile_sides"]

# Providers whose usage reports tokenplan reads (`tokenplan pull`, `tokenplan import`).
REPORTED_PROVIDERS = ("anthropic", "openai")
_REPORT_IDS = (
    "(request_id LIKE 'bucket:anthropic_usage:%' OR request_id LIKE 'bucket:openai_usage:%')"
)


def reconcile_sides(store: DuckDBStore, since: datetime, until: datetime) -> pd.DataFrame:
    """One row per (day, provider, model) seen on either side in ``[since, until)``.

    Columns: ``day, provider, model``; ``sdk_requests, sdk_input, sdk_output, sdk_cost,
    sdk_unpriced`` (raw events, one row per call); ``report_input, report_output,
    report_cost, report_rows`` (provider usage report buckets, cost priced by tokenplan);
    ``billed`` (the provider's cost report in USD). NULL where a side has nothing.
    """
    tables = {
        r[0] for r in store.connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    }
    bill = (
        f"""SELECT date_trunc('day', ts) AS day, provider,
                   coalesce(model, '{NONE_LABEL}') AS model, sum(amount_usd) AS billed
            FROM {COSTS_TABLE} WHERE ts >= $since AND ts < $until GROUP BY ALL"""
        if COSTS_TABLE in tables
        else "SELECT NULL::TIMESTAMP AS day, NULL AS provider, NULL AS model, "
        "NULL::DECIMAL(38, 12) AS billed WHERE false"
    )
    sql = f"""
        WITH sdk AS (
            SELECT date_trunc('day', ts) AS day, provider, model,
                   sum(requests)::BIGINT AS sdk_requests,
                   sum(input_tokens)::HUGEINT AS sdk_input,
                   sum(output_tokens)::HUGEINT AS sdk_output,
                   sum(cost_usd) AS sdk_cost,
                   (count(*) - count(cost_usd))::BIGINT AS sdk_unpriced
            FROM usage
            WHERE bucket_s = 0 AND provider IN {REPORTED_PROVIDERS}
              AND ts >= $since AND ts < $until
            GROUP BY ALL
        ),
        rep AS (
            SELECT date_trunc('day', ts) AS day, provider, model,
                   sum(input_tokens)::HUGEINT AS report_input,
                   sum(output_tokens)::HUGEINT AS report_output,
                   sum(cost_usd) AS report_cost,
                   count(*)::BIGINT AS report_rows,
                   (count(*) - count(cost_usd))::BIGINT AS report_unpriced
            FROM usage
            WHERE {_REPORT_IDS} AND ts >= $since AND ts < $until
            GROUP BY ALL
        ),
        bill AS ({bill})
        SELECT * FROM sdk
        FULL JOIN rep USING (day, provider, model)
        FULL JOIN bill USING (day, provider, model)
        ORDER BY day, provider, model
    """
    params = {"since": _naive(since), "until": _naive(until)}
    try:
        cursor = store.connection.execute(sql, params)
        rows = cursor.fetchall()
        names = [d[0] for d in cursor.description or ()]
    except duckdb.Error as exc:
        raise StoreError(f"reading both sides from the store {store.path} failed: {exc}") from exc
    # Python values, not floats: counts stay ints and money stays Decimal.
    return pd.DataFrame(rows, columns=names, dtype=object)


def _naive(moment: datetime) -> datetime:
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)
