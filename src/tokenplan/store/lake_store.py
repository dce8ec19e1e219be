"""`LakeStore`: a Parquet lake (`tokenplan.store.lake`) read as a store, read-only.

An in-memory DuckDB database whose `usage` is a view over the lake's files, typed as the store's
table, so every read of `DuckDBStore` and of the `store` query modules works unchanged. The
store's other tables (imports, pulls, provider costs, rate limits, ...) exist empty, so reads of
them answer "nothing", apart from those the export writes beside the days (`SIDE_TABLES`: open
buckets, reported rate limits, billed costs). Every write is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import NoReturn

import duckdb
import pyarrow as pa

from tokenplan.errors import InvalidInput, StoreError
from tokenplan.store.duckdb_store import DuckDBStore, WriteResult
from tokenplan.store.files import LAKE_PREFIX, read_only_lake
from tokenplan.store.lake import (
    FILES_GLOB,
    PARTITION_COLUMNS,
    SIDE_TABLES,
    is_remote,
    lake_files,
    lake_root,
    reason,
)
from tokenplan.store.rate_limits import CREATE_RATE_LIMITS
from tokenplan.store.schema import (
    COLUMN_SQL,
    COLUMNS,
    CREATE_BATCHES,
    CREATE_COSTS,
    CREATE_IMPORTS,
    CREATE_META,
    CREATE_PARTIALS,
    CREATE_PULLS,
    RID_HASH,
)

__all__ = ["LakeStore"]

# Columns every lake file must hold (the partition columns live in the paths).
FILE_COLUMNS = tuple(c for c in COLUMNS if c not in PARTITION_COLUMNS)
_EMPTY_TABLES = (
    CREATE_META,
    CREATE_IMPORTS,
    CREATE_BATCHES,
    CREATE_PULLS,
    CREATE_PARTIALS,
    CREATE_COSTS,
    CREATE_RATE_LIMITS,
)


def _view_column(name: str) -> str:
    if name == "ts":
        # Files hold an instant; the store's `ts` is naive UTC wall time. The session's time
        # zone is UTC, so a plain cast gives it, and unlike timezone('UTC', ts) DuckDB still
        # prunes row groups and files by the `ts` filters of a query (5x on a month of data).
        return "CAST(ts AS TIMESTAMP) AS ts"
    if name == "rid_hash":
        return f"{RID_HASH} AS rid_hash"
    return f'CAST("{name}" AS {COLUMN_SQL[name].removesuffix(" NOT NULL")}) AS "{name}"'


_VIEW_COLUMNS = ",\n    ".join(_view_column(name) for name in COLUMN_SQL)


class LakeStore(DuckDBStore):
    """A read-only store over the Parquet lake at ``source`` (``parquet:DIR`` or ``DIR``).

    The files are listed once, when the store opens. An export into the lake while a command
    reads it swaps whole days underneath: a later query may find a day's file gone (an error)
    or read that day's new rows. Export between reads.
    """

    def __init__(self, source: str) -> None:
        self.root = lake_root(source)
        self.path = f"{LAKE_PREFIX}{self.root}"
        self._in_transaction = False
        self._con = duckdb.connect(":memory:")
        try:
            self._run("SET TimeZone = 'UTC'")
            self._mount()
        except BaseException:
            self._con.close()
            raise

    def _mount(self) -> None:
        files = lake_files(self.root, self._con)
        if not files:
            where = "no such folder" if self._missing() else f"no files match {FILES_GLOB} in it"
            raise StoreError(
                f"no Parquet lake at {self.root} ({where}); write one with "
                f"`tokenplan export --parquet {self.root}`, or check the path."
            )
        self._check_columns(files)
        listed = ", ".join(_quote(f) for f in files)
        try:
            self._run(
                f"""CREATE VIEW usage AS SELECT
                    {_VIEW_COLUMNS}
                FROM read_parquet([{listed}], hive_partitioning = true, union_by_name = true,
                                  hive_types = {{'date': DATE, 'provider': VARCHAR}})"""
            )
            for create in _EMPTY_TABLES:
                self._run(create)
        except duckdb.Error as exc:
            raise StoreError(f"cannot read the Parquet lake {self.root}: {reason(exc)}.") from exc
        self._load_side_tables()

    def _load_side_tables(self) -> None:
        """The store's side tables the export wrote beside the days (none before it did)."""
        for table, name in SIDE_TABLES.items():
            path = f"{self.root.rstrip('/')}/{name}"
            if not is_remote(self.root) and not os.path.exists(path):
                continue
            types = self._run(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
                "ORDER BY column_index",
                [table],
            )
            columns = ", ".join(f"'{c}': '{t}'" for c, t in types)
            try:
                # Quoted "" stays an empty string ('' is the rate limits' "no key"), not NULL.
                self._run(
                    f"""INSERT INTO {table} SELECT * FROM read_csv({_quote(path)}, header = true,
                        allow_quoted_nulls = false, columns = {{{columns}}})"""
                )
            except duckdb.Error as exc:
                if is_remote(self.root) and "No files found" in str(exc):
                    continue  # a lake exported before the side tables were
                raise StoreError(f"cannot read {path} in the lake: {reason(exc)}.") from exc

    def _check_columns(self, files: list[str]) -> None:
        try:
            found = self._run(
                "SELECT file_name, list(name) FROM parquet_schema(?) GROUP BY file_name", [files]
            )
        except duckdb.Error as exc:
            raise StoreError(f"cannot read the Parquet lake {self.root}: {reason(exc)}.") from exc
        for file, names in sorted(found):
            missing = [c for c in FILE_COLUMNS if c not in names]
            if missing:
                raise StoreError(
                    f"{file} in the lake {self.root} has no column {', '.join(missing)}, so "
                    "`tokenplan export` did not write it; remove it or export the store again."
                )

    def _missing(self) -> bool:
        return not is_remote(self.root) and not os.path.isdir(self.root)

    def reader(self) -> LakeStore:
        """Another handle on the lake's in-memory database, for another thread."""
        other = object.__new__(LakeStore)
        other.root = self.root
        other.path = self.path
        other._in_transaction = False
        other._con = self._con.cursor()
        other._run("SET TimeZone = 'UTC'")
        return other

    # -- every write is refused ----------------------------------------------------------

    def _refuse(self) -> NoReturn:
        raise InvalidInput(read_only_lake(self.path))

    def write(self, rows: pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch]) -> WriteResult:
        """Refused: a lake is a read-only source."""
        self._refuse()

    def write_once(self, rows: pa.Table, key: str) -> WriteResult:
        """Refused: a lake is a read-only source."""
        self._refuse()

    def write_batches_once(self, batches: Sequence[tuple[str, pa.Table]]) -> WriteResult:
        """Refused: a lake is a read-only source."""
        self._refuse()

    def write_each(self, batches: Sequence[pa.Table]) -> list[WriteResult]:
        """Refused: a lake is a read-only source."""
        self._refuse()

    def record_file(self, sha256: str, path: str, fmt: str, rows: int) -> None:
        """Refused: a lake is a read-only source."""
        self._refuse()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
