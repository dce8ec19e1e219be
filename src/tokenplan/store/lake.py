"""The store's `usage` rows as a Hive-partitioned Parquet lake that DuckDB, Spark, Dask, Ray read.

Layout (a contract: other engines read it; change it only by adding columns)::

    DIR/date=YYYY-MM-DD/provider=NAME/part-0.parquet

- ``DIR`` is a local folder or an object-store URL (``s3://``, ``gs://``, ``az://``, ...).
- ``date`` is the UTC day of ``ts``. ``provider`` is the row's provider, URL-encoded in the path
  (``my%2Frelay``); a NULL provider is ``provider=__HIVE_DEFAULT_PARTITION__`` (the Hive, Spark
  and pyarrow convention, read back as NULL). Neither column is stored inside the files.
- Each partition holds one file (more only if DuckDB splits a very large one), written sorted
  by ``ts``. Only ``date=*/provider=*`` folders are the lake (`lake_files`); an export stages
  its files in a hidden folder beside ``DIR`` (inside it, named ``_tokenplan_export-*``, only
  when ``DIR`` is a mount point), which Spark and pyarrow skip but Dask would read.
- Columns, in this order, with their Arrow types (the store's `USAGE_SCHEMA`, so a round trip
  store → lake → store is exact):

  ============================  ==========================  ==================================
  column                        Arrow type                  notes
  ============================  ==========================  ==================================
  ts                            timestamp[us, tz=UTC]       call or bucket start (naive UTC in
                                                            the store)
  bucket_s                      int32                       bucket width; 0 for a raw event
  model                         string                      never null
  team, feature, user, key_id   string                      dimensions, nullable
  requests, failed_requests,    int64                       NULL: the source does not say
  rate_limited_requests
  input_tokens, output_tokens,  int64                       input includes cache reads/writes
  cache_read_tokens,
  cache_write_tokens,
  unsplit_tokens
  latency_ms_sum                float64
  cost_usd                      decimal128(38, 12)          exact, as stored
  request_id, source            string
  cache_write_1h_tokens         int64
  cost_computed                 bool
  ============================  ==========================  ==================================

  Partition columns as readers add them: ``date`` (a string ``YYYY-MM-DD``; Spark infers a
  date) and ``provider`` (string). ``total_tokens`` is
  ``coalesce(input_tokens + output_tokens, unsplit_tokens)``.

Reading it elsewhere: ``spark.read.parquet(DIR)``; ``pyarrow.dataset.dataset(DIR,
partitioning=hive_partitioning())``; ``dask.dataframe.read_parquet(DIR, dataset={"partitioning":
hive_partitioning()})``; ``ray.data.read_parquet(DIR)``. Dask reads each file on its own and
cannot infer the type of ``provider`` in a partition that is all NULL, so give it
`hive_partitioning` (both columns as strings). Ray's own Hive parser keeps a NULL provider as
the string `NULL_PARTITION`; map it back to null.

Re-exporting: an export replaces exactly the day partitions of its range (whole UTC days), so
exporting the same range twice leaves the same rows. On a local folder the range is written to
a staging folder on the same file system and each day is swapped in by two renames; appending
with DuckDB's ``OVERWRITE_OR_IGNORE`` alone would leave files of providers that left a day, and
a crash half way would leave a day mixed. Object stores cannot rename or delete through DuckDB:
there the files are written in place with deterministic names (``part-0.parquet``), which a
re-export overwrites; a provider partition that no longer has rows for a day is left behind.
Two exports to one lake at the same time are not supported.

Beside the days, one CSV file per side table (`SIDE_TABLES`) holds what a plan or
``reconcile`` reads besides the rows: the marks of buckets stored while still open (a provider
pull's current hour, an export's current day), the rate limits answers reported, and the
provider's billed costs. So a lake read as a store gives the store's figures. They are CSV so
that no Parquet reader takes them for data: Dask reads every ``*.parquet`` under the folder,
whatever its name starts with.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from tokenplan.errors import InvalidInput, StoreError
from tokenplan.store.duckdb_store import DuckDBStore
from tokenplan.store.files import LAKE_PREFIX
from tokenplan.store.rate_limits import RATE_LIMITS_TABLE
from tokenplan.store.schema import COLUMNS, COSTS_TABLE, PARTIALS_TABLE

__all__ = [
    "FILES_GLOB",
    "NULL_PARTITION",
    "OPEN_MARKS_FILE",
    "PARTITION_COLUMNS",
    "SIDE_TABLES",
    "LakeExport",
    "export_lake",
    "hive_partitioning",
    "is_remote",
    "lake_files",
    "lake_root",
]

PARTITION_COLUMNS = ("date", "provider")
# How Hive, Spark, pyarrow and DuckDB name a NULL partition value in a path.
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
PARTITION_SCHEMA = pa.schema([pa.field("date", pa.string()), pa.field("provider", pa.string())])
# Relative to DIR: only day and provider folders, never a staging folder or a stray file.
FILES_GLOB = "date=*/provider=*/*.parquet"
FILE_PATTERN = "part-{i}"
STAGING_PREFIX = "_tokenplan_export-"
# The store's tables beside `usage` that a plan or `reconcile` reads, one CSV file each beside
# the days, so a lake read as a store gives the store's figures: the marks of buckets stored
# while still open (`DuckDBStore.open_since`), the rate limits answers reported (headroom) and
# the provider's billed costs (`reconcile`). CSV, not Parquet: Dask reads every `*.parquet`.
OPEN_MARKS_FILE = "_tokenplan_open_buckets.csv"
SIDE_TABLES = {
    PARTIALS_TABLE: OPEN_MARKS_FILE,
    RATE_LIMITS_TABLE: "_tokenplan_rate_limits.csv",
    COSTS_TABLE: "_tokenplan_provider_costs.csv",
}
# Object stores DuckDB reaches through its httpfs and azure extensions.
REMOTE_SCHEMES = ("s3", "s3a", "gs", "gcs", "r2", "az", "azure", "abfss")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_DAY_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
# The files keep `ts` as an instant (isAdjustedToUTC), the unambiguous form for every engine.
_FILE_COLUMNS = ", ".join(
    "timezone('UTC', ts) AS ts" if c == "ts" else f'"{c}"' for c in COLUMNS if c != "provider"
)


@dataclass(frozen=True, slots=True)
class LakeExport:
    """What one export wrote: rows, the day range it replaced (end exclusive), day partitions
    written and files (None on an object store, where they are not listed)."""

    root: str
    rows: int
    first_day: date | None
    end_day: date | None
    days: int
    files: int | None


def lake_root(value: str) -> str:
    """The lake folder or URL named by ``value`` (``DIR`` or ``parquet:DIR``), checked."""
    root = value.removeprefix(LAKE_PREFIX).strip()
    if not root:
        raise InvalidInput(
            f"{value!r} names no lake folder; give one, as in parquet:usage-lake or "
            "parquet:s3://bucket/usage."
        )
    if any(c in root for c in "*?[]"):
        raise InvalidInput(
            f"the lake folder {root} contains a wildcard (* ? [ ]); choose a plain folder name."
        )
    found = _SCHEME.match(root)
    if found is None:
        return _local(root)
    scheme = found.group(1).lower()
    if scheme == "file":
        return _local(root[len(found.group(0)) :])
    if scheme not in REMOTE_SCHEMES:
        raise InvalidInput(
            f"{root}: a lake cannot live at a {scheme}:// URL; use a local folder or one of "
            f"{', '.join(s + '://' for s in REMOTE_SCHEMES)}."
        )
    return root.rstrip("/")


def is_remote(root: str) -> bool:
    """Whether ``root`` (from `lake_root`) is an object-store URL rather than a local folder."""
    return _SCHEME.match(root) is not None


def lake_files(root: str, connection: duckdb.DuckDBPyConnection | None = None) -> list[str]:
    """Every data file of the lake at ``root`` (``DIR/date=*/provider=*/*.parquet``), sorted.

    For engines reading the lake on their own (Dask, Ray, Spark): pass these paths, or ``root``
    with Hive partitioning; both leave staging folders out.
    """
    root = lake_root(root)
    con = connection or duckdb.connect()
    try:
        rows = con.execute("SELECT file FROM glob(?) ORDER BY file", [lake_glob(root)]).fetchall()
    except duckdb.Error as exc:
        raise StoreError(f"cannot list the lake {root}: {reason(exc)}{_remote_hint(root)}") from exc
    finally:
        if connection is None:
            con.close()
    return [str(row[0]) for row in rows]


def hive_partitioning() -> pads.Partitioning:
    """The lake's partitioning for pyarrow (and Dask, Ray): ``date`` and ``provider`` strings."""
    return pads.partitioning(PARTITION_SCHEMA, flavor="hive")


def lake_glob(root: str) -> str:
    """The glob of the lake's data files under ``root``."""
    return f"{root}/{FILES_GLOB}"


def export_lake(
    store: DuckDBStore,
    target: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> LakeExport:
    """Write ``store``'s usage rows to the lake at ``target``, replacing the days they cover.

    ``since`` and ``until`` widen to whole UTC days (``until`` exclusive); an open side stops at
    the store's first or last row, so days outside the store's span are left alone.
    """
    root = lake_root(target)
    start, end = _day_range(store, since, until)
    if start is None or end is None:
        return LakeExport(root, 0, None, None, 0, 0)
    if start >= end:
        raise InvalidInput(f"--since {since} is not before --until {until}; nothing to export.")
    # The rate limits table exists once an answer reported limits.
    held = {
        r[0] for r in store.connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    }
    sides = {t: n for t, n in SIDE_TABLES.items() if t in held}
    if is_remote(root):
        rows = _copy(store, root, start, end, overwrite=True)
        for table, name in sides.items():
            _copy_table(store, table, f"{root.rstrip('/')}/{name}")
        return LakeExport(root, rows, start, end, _days_between(start, end, store), None)
    done = _export_local(store, root, start, end)
    try:
        for table, name in SIDE_TABLES.items():
            if table not in sides:
                with contextlib.suppress(FileNotFoundError):  # another store's, exported before
                    os.remove(os.path.join(root, name))
                continue
            staged = os.path.join(root, f"{STAGING_PREFIX}{name}")
            _copy_table(store, table, staged)
            os.replace(staged, os.path.join(root, name))  # whole or not at all
    except OSError as exc:
        raise StoreError(f"writing the lake {root} failed: {exc}") from exc
    return done


def _copy_table(store: DuckDBStore, table: str, dest: str) -> None:
    """All of one side table, to one CSV file (the store is the truth)."""
    try:
        store.connection.execute(
            f"COPY (SELECT * FROM {table} ORDER BY ALL) TO {_quote(dest)} (FORMAT csv, HEADER true)"
        ).fetchall()
    except duckdb.Error as exc:
        raise StoreError(
            f"exporting to the lake {dest} failed: {reason(exc)}{_remote_hint(dest)}"
        ) from exc


def _export_local(store: DuckDBStore, root: str, start: date, end: date) -> LakeExport:
    if os.path.exists(root) and not os.path.isdir(root):
        raise InvalidInput(f"--parquet {root} is a file; give a folder for the lake.")
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"--parquet {root}: cannot create the folder ({exc.strerror}).") from exc
    staging = _staging_folder(root)
    try:
        rows = _copy(store, staging, start, end, overwrite=False)
        new = _day_dirs(staging) if os.path.isdir(staging) else set()
        files = sum(len(fs) for _, _, fs in os.walk(staging))
        old = {d for d in _day_dirs(root) if start <= d < end}
        replaced = os.path.join(staging, "_replaced")
        os.makedirs(replaced)
        for day in sorted(old | new):
            name = f"date={day.isoformat()}"
            if day in old:
                os.replace(os.path.join(root, name), os.path.join(replaced, name))
            if day in new:
                os.replace(os.path.join(staging, name), os.path.join(root, name))
    except OSError as exc:
        raise StoreError(f"writing the lake {root} failed: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return LakeExport(root, rows, start, end, len(new), files)


def _copy(store: DuckDBStore, dest: str, start: date, end: date, *, overwrite: bool) -> int:
    """COPY the rows of days ``[start, end)`` to ``dest`` as Hive partitions; rows written."""
    options = [
        "FORMAT parquet",
        f"PARTITION_BY ({', '.join(PARTITION_COLUMNS)})",
        f"FILENAME_PATTERN '{FILE_PATTERN}'",
        "COMPRESSION zstd",
    ]
    if overwrite:
        options.append("OVERWRITE_OR_IGNORE true")
    sql = f"""
        COPY (
            SELECT {_FILE_COLUMNS}, provider, CAST(usage.ts AS DATE) AS date
            FROM usage WHERE usage.ts >= ? AND usage.ts < ?
            ORDER BY usage.ts
        ) TO {_quote(dest)} ({", ".join(options)})
    """
    bounds = [datetime.combine(start, time()), datetime.combine(end, time())]
    try:
        rows = store.connection.execute(sql, bounds).fetchall()
    except duckdb.Error as exc:
        raise StoreError(
            f"exporting to the lake {dest} failed: {reason(exc)}{_remote_hint(dest)}"
        ) from exc
    return int(rows[0][0]) if rows else 0


def _day_range(
    store: DuckDBStore, since: datetime | None, until: datetime | None
) -> tuple[date | None, date | None]:
    """Whole UTC days covering ``[since, until)``; open sides end at the store's rows."""
    start = _naive(since).date() if since else None
    end = None
    if until is not None:
        moment = _naive(until)
        end = moment.date() if moment.time() == time() else moment.date() + timedelta(days=1)
    if start is None or end is None:
        lo = datetime.combine(start, time()) if start else None
        hi = datetime.combine(end, time()) if end else None
        first, last = store.connection.execute(
            "SELECT min(ts)::DATE, max(ts)::DATE FROM usage "
            "WHERE (? IS NULL OR ts >= ?) AND (? IS NULL OR ts < ?)",
            [lo, lo, hi, hi],
        ).fetchall()[0]
        if first is None:
            return None, None
        start = start or first
        end = end or last + timedelta(days=1)
    return start, end


def _days_between(start: date, end: date, store: DuckDBStore) -> int:
    rows = store.connection.execute(
        "SELECT count(DISTINCT ts::DATE) FROM usage WHERE ts >= ? AND ts < ?",
        [datetime.combine(start, time()), datetime.combine(end, time())],
    ).fetchall()
    return int(rows[0][0])


def _staging_folder(root: str) -> str:
    """A new folder's path on ``root``'s file system (renames need one), outside it if possible.

    Dask lists a folder's files recursively, staging folders included; beside the lake none
    of its readers sees a half-done export.
    """
    token = uuid.uuid4().hex
    whole = os.path.abspath(root)
    parent = os.path.dirname(whole)
    same_disk = os.stat(parent).st_dev == os.stat(whole).st_dev
    if same_disk and parent != whole and os.access(parent, os.W_OK | os.X_OK):
        return os.path.join(parent, f".{os.path.basename(whole)}{STAGING_PREFIX}{token}")
    return os.path.join(root, f"{STAGING_PREFIX}{token}")


def _day_dirs(folder: str) -> set[date]:
    days = set()
    for name in os.listdir(folder):
        found = _DAY_DIR.match(name)
        if found and os.path.isdir(os.path.join(folder, name)):
            days.add(date.fromisoformat(found.group(1)))
    return days


def reason(exc: duckdb.Error) -> str:
    """DuckDB's message without its echo of our SQL (``LINE 1: ...``), which names nothing."""
    return str(exc).split("\n\nLINE ", 1)[0].strip().rstrip(".")


def _local(path: str) -> str:
    expanded = os.path.expanduser(path)
    return expanded.rstrip("/") or "/"


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _remote_hint(root: str) -> str:
    if not is_remote(root):
        return ""
    return (
        ". Object-store URLs need DuckDB's httpfs (or azure) extension, which DuckDB installs "
        "on first use over the network, and credentials as a DuckDB persistent secret "
        "(CREATE PERSISTENT SECRET)"
    )
