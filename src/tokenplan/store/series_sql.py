"""SQL for `DuckDBStore.series`: a metric per bucket and split, gridded, as a tidy frame.

Buckets are aligned to fixed origins (weeks start on Monday, months on the 1st); calendar
buckets may follow a time zone's wall clock. Every series gets every bucket of the range:
no rows is 0, rows that do not know the metric are NaN; with ``complete``, so is a bucket that
holds a recorded bucket the source left empty while it records the metric elsewhere (a day
with an hour the log missed, or the total at that hour).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import pandas as pd
import pyarrow as pa

from tokenplan.errors import InvalidInput, StoreError
from tokenplan.frequency import Frequency
from tokenplan.store.schema import METRIC_SQL

TOTAL_ID = "total"
NONE_LABEL = "(none)"
OTHER_LABEL = "(other)"
# A Monday midnight, so that weekly buckets start on Monday and every shorter width aligns.
_ORIGIN = "TIMESTAMP '2000-01-03 00:00:00'"
# Calendar months start on the 1st.
_MONTH_ORIGIN = "TIMESTAMP '2000-01-01 00:00:00'"


def query_series(
    con: duckdb.DuckDBPyConnection,
    path: str,
    metric: str,
    f: Frequency,
    by: Sequence[str],
    since: datetime | None,
    until: datetime | None,
    *,
    exact: bool,
    zone: str | None,
    top: int | None,
    complete: bool = False,
    spread: bool = False,
) -> pd.DataFrame:
    """``unique_id, ds, y`` of ``metric`` per ``f`` bucket, split ``by`` (checked names).

    ``zone`` (from `zone_name`) puts calendar buckets on its wall clock; ``top`` pools all but
    the biggest series into `OTHER_LABEL`; ``complete`` leaves unknown the buckets that hold
    one the source did not record; ``spread`` shares a stored bucket a whole number of ``f``
    wide evenly over them. See `DuckDBStore.series`.
    """
    spread = spread and not exact and not f.months
    uid = (
        " || '|' || ".join(f"coalesce(\"{d}\", '{NONE_LABEL}')" for d in by)
        if by
        else f"'{TOTAL_ID}'"
    )
    where, params = range_filter(since, until)
    bucket = bucket_sql(f, zone, "ts")
    lo = bucket_sql(f, zone, "?::TIMESTAMP") if since else None
    hi = "?::TIMESTAMP - INTERVAL '1 microsecond'" if until else None
    grid_lo = lo or "(SELECT min(ds) FROM b)"
    grid_hi = bucket_sql(f, zone, hi) if hi else "(SELECT max(ds) FROM b)"
    # Buckets are found and gridded on local wall time; each start is then told in UTC.
    ds_out = f"timezone('UTC', timezone('{zone}', grid.ds))" if zone else "grid.ds"
    grid_params = [p for p in (since, until) if p is not None]
    # Counts sum as HUGEINT (128-bit): no total of valid rows can overflow.
    y_type = "DECIMAL(38, 12)" if metric == "cost_usd" else "HUGEINT" if exact else "DOUBLE"
    value = METRIC_SQL[metric]
    # With ``complete`` (what a forecast reads), a recorded bucket (an hour of a usage file)
    # whose metric is empty while its source records that metric elsewhere in the range is an
    # hour the log missed: every wider bucket holding it, and the total at that hour, is
    # unknown, since summed without it they read as a dip. A raw call with unknown tokens, a
    # source that never records the metric (requests-only traces) and an unpriced model's cost
    # are not holes. Without it, a bucket sums what was recorded (what `usage` shows).
    hole = "false"
    if complete and metric != "cost_usd":
        source = "coalesce(provider, '') || chr(31) || coalesce(model, '')"
        knows = _and(where, f"bucket_s > 0 AND {value} IS NOT NULL")
        hole = (
            f"bool_or({value} IS NULL AND bucket_s > 0"
            f" AND {source} IN (SELECT DISTINCT {source} FROM usage {knows}))"
        )
        params = params + params
    rows, total = "usage", f"sum({value})"
    if spread:
        rows, total = f"({spread_rows(f.seconds)}) AS usage", f"sum({value} / spread_k)"
    parts = f"""
        SELECT {uid} AS unique_id, {bucket} AS ds, {total}::{y_type} AS y,
               count({value}) AS known, {hole} AS hole
        FROM {rows} {where}
        GROUP BY ALL
    """
    if top is not None:
        parts = pooled(parts, max(top, 1))
    sql = f"""
        WITH b AS ({parts}),
        ids AS (SELECT DISTINCT unique_id FROM b),
        grid AS (
            SELECT ids.unique_id, g.ds
            FROM ids,
                 generate_series({grid_lo}, {grid_hi}, INTERVAL '{f.interval}') AS g(ds)
        )
        SELECT grid.unique_id, {ds_out} AS ds,
               CASE WHEN b.ds IS NULL THEN 0 WHEN b.known = 0 OR b.hole THEN NULL ELSE b.y END AS y
        FROM grid LEFT JOIN b USING (unique_id, ds)
        ORDER BY grid.unique_id, grid.ds
    """
    try:
        table = con.sql(sql, params=params + to_naive(grid_params)).to_arrow_table()
    except duckdb.Error as exc:
        raise StoreError(f"querying the store {path} failed: {exc}") from exc
    if isinstance(table, pa.RecordBatchReader):
        table = table.read_all()
    frame = table.to_pandas()
    if frame.empty:
        return pd.DataFrame(
            {
                "unique_id": pd.Series(dtype=str),
                "ds": pd.Series(dtype="datetime64[us]"),
                "y": pd.Series(dtype=float),
            }
        )
    if metric == "cost_usd":
        if not exact:
            frame["y"] = frame["y"].map(lambda v: float(v) if v is not None else float("nan"))
    elif exact and frame["y"].notna().all():
        ints = frame["y"].map(int)
        fits = ints.abs().max() < 2**63 if len(ints) else True
        frame["y"] = ints.astype("int64") if fits else ints.astype(object)
    else:
        frame["y"] = frame["y"].astype(float)
    return frame


def to_naive(values: Sequence[datetime]) -> list[datetime]:
    from datetime import UTC

    return [v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo else v for v in values]


def zone_name(tz: str | None) -> str | None:
    """``tz`` checked as an IANA zone name safe to put in SQL; None for UTC."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if tz is None or tz.upper() in ("UTC", "Z", "ETC/UTC"):
        return None
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"time zone {tz!r} is not known; use an IANA name such as UTC or Asia/Shanghai."
        ) from None
    if not all(c.isalnum() or c in "/_+-" for c in tz):
        raise InvalidInput(f"time zone {tz!r} is not an IANA name such as Asia/Shanghai.")
    return tz


def spread_rows(step_s: int) -> str:
    """The usage rows with each bucket a whole number (over one) of ``step_s`` wide cut into
    that many, each carrying ``1 / spread_k`` of it: daily exports read per hour are flat over
    the day, not the whole day at midnight and nothing after."""
    wide = f"bucket_s > {step_s} AND bucket_s % {step_s} = 0"
    return f"""
        SELECT *, 1 AS spread_k FROM usage WHERE NOT ({wide})
        UNION ALL
        SELECT u.* REPLACE (u.ts + s.i * INTERVAL '{step_s} seconds' AS ts),
               u.bucket_s // {step_s} AS spread_k
        FROM usage u, LATERAL generate_series(0, u.bucket_s // {step_s} - 1) AS s(i)
        WHERE u.{wide}
    """


def bucket_sql(f: Frequency, zone: str | None, x: str) -> str:
    """SQL for the start of ``x``'s bucket: UTC, or local wall time in ``zone``."""
    origin = _MONTH_ORIGIN if f.months else _ORIGIN
    local = f"timezone('{zone}', timezone('UTC', {x}))" if zone else x
    return f"time_bucket(INTERVAL '{f.interval}', {local}, {origin})"


def pooled(parts: str, top: int) -> str:
    """``parts`` (unique_id, ds, y, known, hole) with all but the ``top - 1`` biggest ids pooled."""
    return f"""
        WITH p AS ({parts}),
        sizes AS (SELECT unique_id, sum(y) AS size FROM p GROUP BY unique_id),
        kept AS (
            SELECT unique_id FROM sizes
            ORDER BY size DESC NULLS LAST, unique_id
            LIMIT CASE WHEN (SELECT count(*) FROM sizes) > {top} THEN {top - 1} ELSE {top} END
        )
        SELECT CASE WHEN unique_id IN (SELECT unique_id FROM kept) THEN unique_id
                    ELSE '{OTHER_LABEL}' END AS unique_id,
               ds, sum(y) AS y, sum(known) AS known, bool_or(hole) AS hole
        FROM p GROUP BY ALL
    """


def _and(where: str, condition: str) -> str:
    """``where`` (empty or ``WHERE ...``) with ``condition`` added."""
    return f"{where} AND {condition}" if where else f"WHERE {condition}"


def range_filter(since: datetime | None, until: datetime | None) -> tuple[str, list[datetime]]:
    clauses, params = [], []
    if since is not None:
        clauses.append("ts >= ?")
        params.append(since)
    if until is not None:
        clauses.append("ts < ?")
        params.append(until)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), to_naive(params)
