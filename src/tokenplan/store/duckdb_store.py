"""`DuckDBStore`: usage rows in one DuckDB file, written through Arrow, read as tidy series."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from tokenplan.errors import InvalidInput, StoreError, StoreLocked
from tokenplan.events import COUNT_METRICS, DIMENSIONS, USAGE_SCHEMA
from tokenplan.frequency import Frequency, parse_freq
from tokenplan.store.files import StoreMode, check_store_file, is_lake, read_only_lake
from tokenplan.store.schema import (
    BATCHES_TABLE,
    COLUMN_SQL,
    COLUMNS,
    CREATE_BATCHES,
    CREATE_COSTS,
    CREATE_IMPORTS,
    CREATE_META,
    CREATE_PARTIALS,
    CREATE_PULLS,
    CREATE_USAGE,
    LEGACY_MARKERS,
    META_TABLE,
    METRIC_SQL,
    PARTIALS_TABLE,
    RID_HASH,
    SCHEMA_VERSION,
)
from tokenplan.store.series_sql import (
    query_series,
    to_naive,
    zone_name,
)

DEFAULT_DB = "tokenplan.duckdb"
# Time outliers: see `DuckDBStore.time_bulk` (tokenplan.collect.checks applies the same rule).
OUTLIER_SPANS = 10
OUTLIER_MIN_DAYS = 30
# What a newer export of a bucket may say differently (see `_replace_changed_buckets`).
SNAPSHOT_COLUMNS = (*COUNT_METRICS, "unsplit_tokens", "latency_ms_sum", "cost_usd")
INCOMING = "_tokenplan_incoming"
_COLS = ", ".join(f'"{c}"' for c in COLUMNS)
_INSERT = f"INSERT INTO usage ({_COLS}, rid_hash) SELECT {_COLS}, {RID_HASH}"
# A schema-1 usage CSV bucket id: start, then the inferred width (dropped since schema 2).
_CSV_ID_WITH_WIDTH = "^(bucket:usage_csv:[^Z]*Z):[0-9]+:"


# Passes at creating a new store's tables when other connections create them at once.
_CREATE_ATTEMPTS = 8
# DuckDB creates a new file before it writes the file's header, so another connection of this
# process checking the path in between would read an empty file and refuse it.
_OPENING = threading.Lock()
# How long opening waits while another process holds the file. Most holds are short: an
# instrumented app's batch (milliseconds) or an import; `tokenplan serve` holds it for good.
LOCK_WAIT_S = 3.0


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one write did."""

    inserted: int
    duplicates: int
    replaced: int = 0


@dataclass(frozen=True, slots=True)
class StoreSummary:
    """Totals over the rows of the store (or of one source)."""

    rows: int
    requests: int
    start: datetime | None
    end: datetime | None
    models: tuple[str, ...]
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None
    unpriced_models: tuple[str, ...] = field(default=())
    unsplit_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens, and tokens known only as a total."""
        return self.input_tokens + self.output_tokens + self.unsplit_tokens


def resolve_db_path(path: str | os.PathLike[str] | None = None) -> str:
    """The store path: the argument, else ``TOKENPLAN_DB``, else ``tokenplan.duckdb``."""
    if path is not None:
        return os.fspath(path)
    return os.environ.get("TOKENPLAN_DB") or DEFAULT_DB


def open_store(
    path: str | os.PathLike[str] | None = None,
    *,
    mode: StoreMode = "write",
    adopt: bool = False,
    wait: float | None = None,
) -> DuckDBStore:
    """Open the store at ``path`` or the configured default (see `DuckDBStore` for ``mode``;
    ``wait``: seconds to wait while another process holds the file, default `LOCK_WAIT_S`).

    ``parquet:DIR`` opens the Parquet lake at ``DIR`` read-only (`LakeStore`); writing is refused.
    """
    resolved = resolve_db_path(path)
    if is_lake(resolved):
        if mode == "write":
            raise InvalidInput(read_only_lake(resolved))
        from tokenplan.store.lake_store import LakeStore  # it builds on this module

        return LakeStore(resolved)
    return DuckDBStore(resolved, mode=mode, adopt=adopt, wait=wait)


def _open_failed(path: str, exc: duckdb.Error) -> StoreError:
    held = re.search(r"Conflicting lock is held in .*\(PID (\d+)\)", str(exc))
    if held is None:
        if "Could not set lock" in str(exc):
            return StoreLocked(f"the store {path} is in use by another process: {exc}")
        return StoreError(f"cannot open the store {path}: {exc}")
    # The usual cause: `tokenplan serve` (or `drain`) owns the file while a CLI command runs.
    return StoreLocked(
        f"the store {path} is in use by another process (PID {held.group(1)}), and DuckDB lets "
        "one process open a store file at a time. If it is `tokenplan serve`, read through the "
        "service (/v1/usage, /v1/plan, /report) and post events to it; otherwise stop that "
        "process and retry.",
        pid=int(held.group(1)),
    )


class DuckDBStore:
    """Usage rows in a DuckDB file (``:memory:`` for a throwaway store).

    ``mode="write"`` creates the file if missing; ``mode="read"`` opens an existing store
    read-only (so a read-only file can be read) and never creates one. Either way a file that
    is not a tokenplan store (CSV, Parquet, JSON, another program's DuckDB file) is refused;
    ``adopt=True`` adds the store's tables to a foreign DuckDB file. Opening waits up to
    ``wait`` seconds (`LOCK_WAIT_S`) while another process holds the file, then raises
    `StoreLocked`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_DB,
        *,
        mode: StoreMode = "write",
        adopt: bool = False,
        wait: float | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self._in_transaction = False
        read = mode == "read"
        self._con = self._connect(read=read, wait=LOCK_WAIT_S if wait is None else wait)
        try:
            self._run("SET TimeZone = 'UTC'")
            self._prepare_once_created(read=read, adopt=adopt)
        except BaseException:
            self._con.close()
            raise

    def _connect(self, *, read: bool, wait: float) -> duckdb.DuckDBPyConnection:
        """Connect, waiting up to ``wait`` seconds while another process holds the file."""
        deadline, pause = time.monotonic() + wait, 0.02
        while True:
            with _OPENING:
                if self.path != ":memory:":
                    check_store_file(self.path, read=read)
                    if not read:
                        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                try:
                    return duckdb.connect(self.path, read_only=read and self.path != ":memory:")
                except duckdb.Error as exc:
                    failed = _open_failed(self.path, exc)
                    if not isinstance(failed, StoreLocked) or time.monotonic() >= deadline:
                        raise failed from exc
            # Outside `_OPENING`: this process's other stores open meanwhile.
            time.sleep(max(min(pause, deadline - time.monotonic()), 0.0))
            pause = min(pause * 2, 0.1)  # under `StoreInTurns.gap`: a waiting reader gets in

    def _prepare(self, *, read: bool, adopt: bool) -> None:
        tables = {r[0] for r in self._run("SELECT table_name FROM duckdb_tables()")}
        version = self._schema_version() if META_TABLE in tables else None
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path} has schema version {version}, newer than this "
                f"tokenplan understands ({SCHEMA_VERSION}); upgrade tokenplan."
            )
        if version is None and tables:
            have = self._usage_columns()
            legacy = have >= LEGACY_MARKERS
            if not legacy and not adopt:
                raise StoreError(
                    f"{self.path} is a DuckDB file but not a tokenplan store (it has tables "
                    f"{', '.join(sorted(tables)[:5])}); choose another --db, or pass --adopt-db "
                    "to add tokenplan's tables to it."
                )
            if have and not legacy:
                raise StoreError(
                    f"{self.path} has a 'usage' table that tokenplan did not write; it cannot "
                    "be adopted. Choose another --db."
                )
        if read:
            if version is None and not tables and self.path != ":memory:":
                raise StoreError(
                    f"{self.path} is an empty DuckDB file, not a tokenplan store; import into it "
                    "first."
                )
            missing = set(COLUMN_SQL) - self._usage_columns()
            if missing and self.path != ":memory:":
                raise StoreError(
                    f"the store {self.path} was written by an older tokenplan; run any import "
                    "into it once to upgrade it (columns missing: "
                    f"{', '.join(sorted(missing))})."
                )
            if self.path != ":memory:":
                return
        with self.transaction():
            self._run(CREATE_USAGE)
            self._migrate(version)
            self._run(CREATE_META)
            self._run(CREATE_IMPORTS)
            self._run(CREATE_BATCHES)
            self._run(CREATE_PULLS)
            self._run(CREATE_PARTIALS)
            self._run(CREATE_COSTS)
            self._run(
                f"INSERT OR REPLACE INTO {META_TABLE} VALUES ('schema_version', ?)",
                [str(SCHEMA_VERSION)],
            )

    def _prepare_once_created(self, *, read: bool, adopt: bool) -> None:
        """`_prepare`, again when another connection created the tables at the same moment.

        Two connections of one process (an SDK sink's batcher and a reader, say) opening a new
        file together both run ``CREATE TABLE IF NOT EXISTS``; DuckDB rolls the later one back
        with a write-write conflict. By then the tables exist, and a second pass finds them.
        """
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                self._prepare(read=read, adopt=adopt)
                return
            except duckdb.TransactionException as exc:
                if "conflict" not in str(exc) or attempt == _CREATE_ATTEMPTS - 1:
                    raise
                time.sleep(0.02 * (attempt + 1))  # until the creator has committed

    def file_imported(self, sha256: str) -> datetime | None:
        """When a file with this content hash was first imported, or None."""
        rows = self._run(
            "SELECT min(imported_at) FROM tokenplan_imports WHERE sha256 = ?", [sha256]
        )
        return rows[0][0] if rows else None

    def record_file(self, sha256: str, path: str, fmt: str, rows: int) -> None:
        """Remember an imported file (inside the import's transaction)."""
        self._run(
            "INSERT INTO tokenplan_imports (sha256, path, format, rows) VALUES (?, ?, ?, ?)",
            [sha256, path, fmt, rows],
        )

    def _schema_version(self) -> int | None:
        rows = self._run(f"SELECT value FROM {META_TABLE} WHERE key = 'schema_version'")
        try:
            return int(rows[0][0]) if rows else None
        except ValueError:
            raise StoreError(
                f"the store {self.path} has an unreadable schema version {rows[0][0]!r}."
            ) from None

    def _usage_columns(self) -> set[str]:
        return {
            row[0]
            for row in self._run(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = 'usage'"
            )
        }

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._con.close()

    def reader(self) -> DuckDBStore:
        """Another handle on this store's database, for another thread (its own DuckDB cursor).

        A DuckDB connection is not thread-safe; each cursor is, and reads through one see
        committed data without blocking the writer (MVCC). Close it when done.
        """
        other = object.__new__(DuckDBStore)
        other.path = self.path
        other._in_transaction = False
        other._con = self._con.cursor()
        other._run("SET TimeZone = 'UTC'")
        return other

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The underlying DuckDB connection, for read-only ad hoc queries."""
        return self._con

    # -- writing -------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all."""
        if self._in_transaction:
            yield
            return
        self._run("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._run("ROLLBACK")
            raise
        else:
            self._run("COMMIT")
        finally:
            self._in_transaction = False

    def write(self, rows: pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch]) -> WriteResult:
        """Insert rows of `USAGE_SCHEMA` in one transaction, skipping known ``request_id``s."""
        batches: Iterable[pa.RecordBatch | pa.Table]
        batches = [rows] if isinstance(rows, pa.Table | pa.RecordBatch) else rows
        inserted = duplicates = replaced = 0
        with self.transaction():
            for batch in batches:
                result = self._write_one(batch)
                inserted += result.inserted
                duplicates += result.duplicates
                replaced += result.replaced
        return WriteResult(inserted, duplicates, replaced)

    def write_once(self, rows: pa.Table, key: str) -> WriteResult:
        """Write ``rows`` unless a batch with ``key`` was written before; one transaction.

        The key is stored with the rows, so a writer that crashes after the commit and retries
        the batch (a redelivered stream entry) counts nothing twice, even rows without ids.
        """
        return self.write_batches_once([(key, rows)])

    def write_batches_once(self, batches: Sequence[tuple[str, pa.Table]]) -> WriteResult:
        """`write_once` for many keyed batches in one transaction and one insert.

        Batches whose key was written before (or repeats an earlier key here) are skipped and
        their rows counted as duplicates.
        """
        keys = [key for key, _ in batches]
        for key, rows in batches:
            if rows.schema.names != list(COLUMNS):
                raise StoreError(
                    f"batch {key!r} has columns {rows.schema.names}, expected {list(COLUMNS)} "
                    "(USAGE_SCHEMA)."
                )
        try:
            with self.transaction():
                done = {
                    row[0]
                    for row in self._run(
                        f"SELECT key FROM {BATCHES_TABLE} WHERE key IN (SELECT unnest(?))", [keys]
                    )
                }
                fresh: list[tuple[str, pa.Table]] = []
                skipped = 0
                for key, rows in batches:
                    if key in done:
                        skipped += rows.num_rows
                        continue
                    done.add(key)
                    fresh.append((key, rows.cast(USAGE_SCHEMA)))
                if not fresh:
                    return WriteResult(0, skipped)
                result = self.write(pa.concat_tables([rows for _, rows in fresh]))
                self._run(
                    f"INSERT INTO {BATCHES_TABLE} (key, rows) SELECT unnest(?), unnest(?)",
                    [[key for key, _ in fresh], [rows.num_rows for _, rows in fresh]],
                )
        except duckdb.Error as exc:
            raise StoreError(
                f"writing {len(batches)} keyed batches to the store {self.path} failed: {exc}"
            ) from exc
        return WriteResult(result.inserted, result.duplicates + skipped, result.replaced)

    def batch_written(self, key: str) -> bool:
        """Whether a batch with ``key`` was written by `write_once`."""
        tables = {r[0] for r in self._run("SELECT table_name FROM duckdb_tables()")}
        if BATCHES_TABLE not in tables:
            return False
        return bool(self._run(f"SELECT 1 FROM {BATCHES_TABLE} WHERE key = ?", [key]))

    def write_each(self, batches: Sequence[pa.Table]) -> list[WriteResult]:
        """Write several batches in one transaction (a group commit); one result per batch.

        Batches are deduplicated in order, so a ``request_id`` repeated across them counts
        once; if any batch fails, none is kept. Batches of fresh ids go in as one insert.
        """
        tables = [_usage_rows(batch) for batch in batches]
        with self.transaction():
            if len(tables) > 1:
                combined = pa.concat_tables(tables)
                if self._fresh(combined):
                    self._insert_all(combined)
                    return [WriteResult(t.num_rows, 0) for t in tables]
            return [self._write_one(t) for t in tables]

    def _write_one(self, batch: pa.Table | pa.RecordBatch) -> WriteResult:
        table = _usage_rows(batch)
        if table.num_rows == 0:
            return WriteResult(0, 0)
        try:
            if self._fresh(table):
                self._insert_all(table)
                return WriteResult(table.num_rows, 0)
            replaced = self._replace_changed_buckets(table)
            before = self._count()
            # Idempotency: a request_id already stored, or repeated in this batch, counts once.
            self._run_with(
                f"""
                {_INSERT} FROM {INCOMING} AS n
                WHERE n.request_id IS NULL
                   OR NOT EXISTS (SELECT 1 FROM usage u
                                  WHERE u.rid_hash = hash(n.request_id)
                                    AND u.request_id = n.request_id)
                QUALIFY n.request_id IS NULL
                     OR row_number() OVER (PARTITION BY n.request_id ORDER BY n.ts) = 1
                """,
                table,
            )
            inserted = self._count() - before
            return WriteResult(inserted - replaced, table.num_rows - inserted, replaced)
        except duckdb.Error as exc:
            raise StoreError(f"writing to the store {self.path} failed: {exc}") from exc

    def _fresh(self, table: pa.Table) -> bool:
        """True when no row's ``request_id`` can be stored already or repeat in ``table``."""
        ids = table.column("request_id")
        try:
            return ids.null_count == table.num_rows or not self._may_hold_duplicates(table)
        except duckdb.Error as exc:
            raise StoreError(f"reading the store {self.path} failed: {exc}") from exc

    def _insert_all(self, table: pa.Table) -> None:
        try:
            self._run_with(f"{_INSERT} FROM {INCOMING}", table)
        except duckdb.Error as exc:
            raise StoreError(f"writing to the store {self.path} failed: {exc}") from exc

    def _replace_changed_buckets(self, table: pa.Table) -> int:
        # Provider exports and usage series are snapshots: a later export of a bucket (same
        # bucket id: format, start, width, dimensions) that differs in any metric replaces the
        # stored one: last export wins per bucket and dimension. Identical buckets stay, and
        # are counted as already present. Raw events (their own request ids) are never replaced.
        differs = " OR ".join(f'u."{c}" IS DISTINCT FROM n."{c}"' for c in SNAPSHOT_COLUMNS)
        rows = self._run_with(
            f"""
            DELETE FROM usage u USING {INCOMING} n
            WHERE n.request_id LIKE 'bucket:%'
              AND u.rid_hash = hash(n.request_id) AND u.request_id = n.request_id
              AND ({differs})
            """,
            table,
        )
        return int(rows[0][0]) if rows else 0

    def _may_hold_duplicates(self, table: pa.Table) -> bool:
        # The exact dedupe above sorts and anti-joins; most batches carry only fresh ids, so a
        # distinct count of id hashes in the batch and a probe of stored hashes rule that out.
        # A hash collision only sends the batch down the exact path.
        found = self._run_with(
            f"""
            WITH h AS (SELECT hash(request_id) AS k FROM {INCOMING} WHERE request_id IS NOT NULL)
            SELECT (SELECT count(DISTINCT k) <> count(*) FROM h)
                OR EXISTS (SELECT 1 FROM usage WHERE rid_hash IN (SELECT k FROM h))
            """,
            table,
        )
        return bool(found[0][0])

    def _migrate(self, version: int | None) -> None:
        # Files written by an older tokenplan lack the columns added since; add them (NULL).
        have = self._usage_columns()
        for column, sql in COLUMN_SQL.items():
            if column not in have:
                self._run(f'ALTER TABLE usage ADD COLUMN "{column}" {sql.replace(" NOT NULL", "")}')
        if "rid_hash" not in have:
            self._run(f"UPDATE usage SET rid_hash = {RID_HASH}")
        if version is None or version < 2:
            self._drop_inferred_widths()

    def _drop_inferred_widths(self) -> None:
        # Schema 1 put the usage CSV's inferred width in its bucket ids, so one hour imported
        # from two files whose widths were inferred differently was stored twice. Ids now name
        # the start only (tokenplan.collect.buckets); such twins keep the later import only.
        self._run(
            f"""
            UPDATE usage SET
                request_id = regexp_replace(request_id, '{_CSV_ID_WITH_WIDTH}', '\\1:'),
                rid_hash = hash(regexp_replace(request_id, '{_CSV_ID_WITH_WIDTH}', '\\1:'))
            WHERE regexp_matches(request_id, '{_CSV_ID_WITH_WIDTH}')
            """
        )
        self._run(
            """
            DELETE FROM usage WHERE request_id LIKE 'bucket:usage_csv:%' AND rowid NOT IN (
                SELECT max(rowid) FROM usage WHERE request_id LIKE 'bucket:usage_csv:%'
                GROUP BY request_id)
            """
        )

    def _run_with(self, sql: str, incoming: pa.Table) -> list[tuple[Any, ...]]:
        # DuckDB reads `incoming` through this frame's local variable (a replacement scan).
        # Unlike register(), that keeps no reference after the statement: registered tables
        # live until the transaction ends, which held every batch of a 10M-row import in memory.
        _tokenplan_incoming = incoming  # read by DuckDB by name
        return self._con.execute(sql).fetchall()

    def _run(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        # DuckDB 2 keeps a statement open until its result is fetched, so always fetch.
        return self._con.execute(sql, list(params)).fetchall()

    def _count(self) -> int:
        return int(self._run("SELECT count(*) FROM usage")[0][0])

    # -- reading -------------------------------------------------------------------------

    def series(
        self,
        metric: str,
        freq: str | Frequency,
        by: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        exact: bool = False,
        trim_outliers: bool = False,
        tz: str | None = None,
        top: int | None = None,
        complete: bool = False,
        spread: bool = False,
    ) -> pd.DataFrame:
        """Metric at a frequency, split by dimensions, as a tidy ``unique_id, ds, y`` frame.

        Buckets with no rows are 0; buckets whose rows do not know the metric are NaN. With
        ``complete`` (the series a forecast reads), so is a bucket holding a recorded bucket
        that its source left empty while recording the metric elsewhere (a day with an hour
        the log missed: summed from the other hours it would read as a dip); without it, a
        bucket sums what was recorded.
        ``since`` is inclusive and ``until`` exclusive; both default to the data's span.
        With ``exact``, counts are ints and cost is `Decimal` (no float rounding).
        With ``trim_outliers``, rows outside `time_bulk` (stray epoch-zero or far-future
        stamps) are left out, so that they neither stretch the grid nor move a forecast.
        Calendar buckets (days, weeks from Monday, months) start at midnight in ``tz``
        (default UTC); ``ds`` is always the bucket start in naive UTC.

        With ``top`` and more than ``top`` series, the ``top - 1`` biggest over the range are
        kept and the rest summed as ``(other)``, before the grid is filled: thousands of
        models cost no more than ``top`` series.

        A stored bucket wider than ``freq`` is counted at its start, so per hour a daily
        export is the whole day at midnight and 0 after (what `tokenplan usage` shows, and
        says). With ``spread`` (the capacity plan's reads; not with ``exact``), a bucket a
        whole number of ``freq`` wide is shared evenly over them instead.
        """
        if metric not in METRIC_SQL:
            raise InvalidInput(
                f"unknown metric {metric!r}; use one of {', '.join(sorted(METRIC_SQL))}."
            )
        unknown = [d for d in by if d not in DIMENSIONS]
        if unknown:
            raise InvalidInput(
                f"cannot split by {', '.join(unknown)}; use any of {', '.join(DIMENSIONS)}."
            )
        f = freq if isinstance(freq, Frequency) else parse_freq(freq, calendar=True)
        zone = zone_name(tz) if f.calendar else None
        if trim_outliers:
            bulk = self.time_bulk()
            if bulk is not None:
                lo_ts, hi_ts = bulk
                since = lo_ts if since is None else max(to_naive([since])[0], lo_ts)
                hi_end = hi_ts + timedelta(microseconds=1)
                width = self._width_at(hi_ts) if spread else 0
                if width:  # the last bucket's later steps come after its start
                    hi_end = hi_ts + timedelta(seconds=width)
                until = hi_end if until is None else min(to_naive([until])[0], hi_end)
        return query_series(
            self._con,
            self.path,
            metric,
            f,
            by,
            since,
            until,
            exact=exact,
            zone=zone,
            top=top,
            complete=complete,
            spread=spread,
        )

    def _width_at(self, ts: datetime) -> int:
        """The widest bucket stored starting at ``ts`` (0 for raw events)."""
        rows = self._run("SELECT coalesce(max(bucket_s), 0) FROM usage WHERE ts = ?", [ts])
        return int(rows[0][0])

    def time_bulk(self) -> tuple[datetime, datetime] | None:
        """The stored time range without outliers (naive UTC, inclusive), or None if empty.

        Rule (the import reports the same): the bulk is the first to third quartile of the
        rows' timestamps; rows more than ten bulk widths (and at least 30 days) outside it are
        outliers.
        """
        row = self._run(
            f"""
            WITH q AS (SELECT quantile_disc(ts, 0.25) AS q1, quantile_disc(ts, 0.75) AS q3
                       FROM usage),
                 g AS (SELECT q1, q3, greatest((q3 - q1) * {OUTLIER_SPANS},
                                               INTERVAL '{OUTLIER_MIN_DAYS} days') AS gap FROM q)
            SELECT min(ts), max(ts) FROM usage, g
            WHERE ts >= g.q1 - g.gap AND ts <= g.q3 + g.gap
            """
        )[0]
        return None if row[0] is None else (row[0], row[1])

    def bucket_seconds(self) -> int | None:
        """The stored data's own spacing: the narrowest imported bucket, or None for raw events."""
        rows = self._run("SELECT min(bucket_s) FILTER (WHERE bucket_s > 0) FROM usage")
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def open_since(self) -> datetime | None:
        """Start of the earliest usage bucket stored while still open (by a provider pull, or
        from an export taken before the bucket ended; naive UTC, its numbers are still growing)
        after the last row stored whole, or None: the data reaches only that far.

        An open bucket with whole rows after it is left alone: a mark no later pull or export
        came back to must not hide a newer open bucket."""
        rows = self._run(
            f"""
            WITH marks AS (SELECT ts, request_id FROM {PARTIALS_TABLE} WHERE report = 'usage'),
            whole AS (
                SELECT max(ts) AS last FROM usage
                WHERE ts >= (SELECT min(ts) FROM marks)
                  AND (request_id IS NULL OR request_id NOT IN (SELECT request_id FROM marks))
            )
            SELECT min(ts) FROM marks
            WHERE ts > coalesce((SELECT last FROM whole), '-infinity'::TIMESTAMP)
            """
        )
        return rows[0][0] if rows and rows[0][0] is not None else None

    def summary(self, source: str | None = None) -> StoreSummary:
        """Rows, span, models, token and cost totals (of one ``source`` if given)."""
        where, params = ("WHERE source = ?", [source]) if source else ("", [])
        row = self._run(
            f"""
            SELECT count(*), coalesce(sum(requests), 0)::HUGEINT, min(ts), max(ts),
                   coalesce(sum(input_tokens), 0)::HUGEINT,
                   coalesce(sum(output_tokens), 0)::HUGEINT,
                   sum(cost_usd), coalesce(sum(unsplit_tokens), 0)::HUGEINT
            FROM usage {where}
            """,
            params,
        )[0]
        models = self._run(f"SELECT DISTINCT model FROM usage {where} ORDER BY model", params)
        unpriced = self._run(
            f"""SELECT DISTINCT model FROM usage {where} {"AND" if where else "WHERE"}
                cost_usd IS NULL AND (input_tokens > 0 OR output_tokens > 0) ORDER BY model""",
            params,
        )
        return StoreSummary(
            rows=int(row[0]),
            requests=int(row[1]),
            start=row[2],
            end=row[3],
            models=tuple(m[0] for m in models),
            input_tokens=int(row[4]),
            output_tokens=int(row[5]),
            cost_usd=row[6],
            unpriced_models=tuple(m[0] for m in unpriced),
            unsplit_tokens=int(row[7]),
        )


def _usage_rows(batch: pa.Table | pa.RecordBatch) -> pa.Table:
    """``batch`` as a table of `USAGE_SCHEMA`, or a `StoreError` naming the columns."""
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    if table.schema.names != list(COLUMNS):
        raise StoreError(
            f"rows have columns {table.schema.names}, expected {list(COLUMNS)} (USAGE_SCHEMA)."
        )
    return table.cast(USAGE_SCHEMA)
