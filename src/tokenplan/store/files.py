"""What a ``--db`` path holds, checked before DuckDB opens it (DuckDB would read a CSV as data)."""

from __future__ import annotations

import os
from typing import Literal

from tokenplan.errors import InvalidInput, StoreError

StoreMode = Literal["read", "write"]

# ``--db parquet:DIR`` names a Parquet lake (`tokenplan.store.lake`) instead of a store file.
LAKE_PREFIX = "parquet:"

# A DuckDB database file carries this magic at byte 8 of its first block.
_DUCKDB_MAGIC = b"DUCK"
_LOOKS_LIKE = (
    (b"PAR1", "a Parquet file"),
    (b"\x1f\x8b", "a gzip file"),
    (b"SQLite format 3", "an SQLite database"),
    (b"PK", "a zip file"),
)


def check_store_file(path: str, *, read: bool) -> None:
    """Raise unless ``path`` is a DuckDB file, or (``read`` false) a path a store may be made at."""
    if not path.strip():
        raise InvalidInput("--db: the store path is empty; give a file name such as usage.duckdb.")
    if is_lake(path):
        # Never a DuckDB file named "parquet:…": a lake opens through `open_store`, read-only.
        if not read:
            raise InvalidInput(read_only_lake(path))
        raise StoreError(f"{path} is a Parquet lake; open it with open_store(..., mode='read').")
    if os.path.isdir(path):
        raise StoreError(f"--db {path} is a directory; give a store file inside it instead.")
    if not os.path.exists(path):
        if read:
            raise StoreError(
                f"no store at {path}: check --db (or TOKENPLAN_DB), or import a file first."
            )
        return
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise StoreError(f"cannot read the store {path}: {exc.strerror}.") from exc
    if head[8:12] == _DUCKDB_MAGIC:
        return
    raise StoreError(
        f"--db {path} is {_describe(head)}, not a tokenplan store; to load it, run "
        f"`tokenplan import {path}` with --db naming a store file."
    )


def is_lake(path: str) -> bool:
    """Whether a ``--db`` value names a Parquet lake (``parquet:DIR``) rather than a store file."""
    return path.startswith(LAKE_PREFIX)


def refuse_lake(path: str) -> None:
    """Raise `InvalidInput` when ``path`` names a Parquet lake: a lake is never written to."""
    if is_lake(path):
        raise InvalidInput(read_only_lake(path))


def read_only_lake(path: str) -> str:
    """The message for a write to a Parquet lake source."""
    return (
        f"{path} is a read-only source; import into a --db store file and export it with "
        f"`tokenplan export --parquet {path.removeprefix(LAKE_PREFIX)}`."
    )


def _describe(head: bytes) -> str:
    if not head:
        return "an empty file"
    for magic, what in _LOOKS_LIKE:
        if head.startswith(magic):
            return what
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] in (b"{", b"["):
        return "a JSON file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a DuckDB file"
    return "a text (CSV?) file"
