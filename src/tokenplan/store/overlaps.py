"""Buckets of one export that overlap stored buckets of the same export format at another width.

Last export wins per bucket, and a bucket is named by its start: an export at a new width (daily
after hourly, or 30-minute rows among hourly ones) names different buckets over the same time,
so both would be counted. Nothing decides which is right; the import says so instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from tokenplan.store.duckdb_store import INCOMING, DuckDBStore

# Every dimension a bucket is split by, as one key (NULL and '' alike, as in bucket ids).
_KEY = (
    "concat_ws(':', "
    + ", ".join(
        f"coalesce(\"{d}\", '')" for d in ("provider", "model", "team", "feature", "user", "key_id")
    )
    + ")"
)


@dataclass(frozen=True, slots=True)
class Overlap:
    """How many bucket pairs overlap, and the first one (its start, both widths, its model)."""

    count: int
    start: datetime
    width_s: int
    stored_width_s: int
    model: str


def overlapping_buckets(store: DuckDBStore, rows: pa.Table, fmt: str) -> Overlap | None:
    """Buckets of ``rows`` (already written) and stored ``fmt`` buckets that overlap.

    Each bucket is compared with how far the other side's earlier buckets of the same series
    reach (a running max over one sort), so a re-import of a year of hours stays one pass.
    """
    if rows.num_rows == 0:
        return None
    _tokenplan_incoming = rows.select(["ts", "bucket_s", "request_id", *_DIMS])  # read by DuckDB
    found = store.connection.execute(
        f"""
        WITH n AS (
            SELECT ts, bucket_s, model, {_KEY} AS k FROM {INCOMING}
            WHERE request_id LIKE 'bucket:' || $fmt || ':%'
        ),
        span AS (
            SELECT min(ts) - to_seconds((SELECT coalesce(max(bucket_s), 0) FROM usage)) AS lo,
                   max(ts + to_seconds(bucket_s)) AS hi
            FROM n
        ),
        u AS (
            SELECT ts, bucket_s, model, {_KEY} AS k FROM usage, span
            WHERE request_id LIKE 'bucket:' || $fmt || ':%' AND ts >= lo AND ts < hi
        ),
        both_sides AS (
            SELECT *, true AS incoming FROM n UNION ALL SELECT *, false AS incoming FROM u
        ),
        reach AS (
            -- Per series, how far the buckets that start strictly earlier on each side reach.
            SELECT ts, bucket_s, model, incoming,
                   max(CASE WHEN incoming THEN ts + to_seconds(bucket_s) END) OVER w AS n_end,
                   max(CASE WHEN NOT incoming THEN ts + to_seconds(bucket_s) END) OVER w AS u_end,
                   arg_max(CASE WHEN incoming THEN bucket_s END,
                           CASE WHEN incoming THEN ts + to_seconds(bucket_s) END) OVER w AS n_width,
                   arg_max(CASE WHEN NOT incoming THEN bucket_s END,
                           CASE WHEN NOT incoming THEN ts + to_seconds(bucket_s) END) OVER w
                       AS u_width
            FROM both_sides
            WINDOW w AS (PARTITION BY k ORDER BY ts
                         RANGE BETWEEN UNBOUNDED PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING)
        ),
        pairs AS (
            -- An incoming bucket that starts inside a stored one, or the other way round.
            SELECT ts, bucket_s AS width, u_width AS stored, model FROM reach
            WHERE incoming AND u_end > ts
            UNION ALL
            SELECT ts, n_width AS width, bucket_s AS stored, model FROM reach
            WHERE NOT incoming AND n_end > ts
        )
        SELECT count(*), min(ts), arg_min(width, ts), arg_min(stored, ts), arg_min(model, ts)
        FROM pairs
        """,
        {"fmt": fmt},
    ).fetchall()
    count, start, width, stored, model = found[0]
    if not count:
        return None
    return Overlap(int(count), start, int(width), int(stored), str(model))


_DIMS = ("provider", "model", "team", "feature", "user", "key_id")
