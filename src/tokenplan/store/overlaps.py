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
    """Stored ``fmt`` buckets that overlap ``rows`` (already written) with another start.

    Each bucket is compared with the nearest earlier one of the same series on the other side
    (an ASOF join, so a re-import of a year of hours stays one sorted pass, not a cross join).
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
            SELECT ts, bucket_s, {_KEY} AS k FROM usage
            WHERE request_id LIKE 'bucket:' || $fmt || ':%'
              AND ts >= (SELECT lo FROM span) AND ts < (SELECT hi FROM span)
        ),
        inside_stored AS (
            SELECT n.ts, n.bucket_s AS width, u.bucket_s AS stored, n.model
            FROM n ASOF JOIN u ON n.k = u.k AND n.ts > u.ts
            WHERE u.ts + to_seconds(u.bucket_s) > n.ts
        ),
        stored_inside AS (
            SELECT n.ts, n.bucket_s AS width, u.bucket_s AS stored, n.model
            FROM u ASOF JOIN n ON u.k = n.k AND u.ts > n.ts
            WHERE n.ts + to_seconds(n.bucket_s) > u.ts
        ),
        pairs AS (SELECT * FROM inside_stored UNION ALL SELECT * FROM stored_inside)
        SELECT count(*), arg_min(ts, ts), arg_min(width, ts), arg_min(stored, ts),
               arg_min(model, ts)
        FROM pairs
        """,
        {"fmt": fmt},
    ).fetchall()
    count, start, width, stored, model = found[0]
    if not count:
        return None
    return Overlap(int(count), start, int(width), int(stored), str(model))


_DIMS = ("provider", "model", "team", "feature", "user", "key_id")
