"""Where usage lives: an embedded DuckDB file by default."""

from tokenplan.store.duckdb_store import (
    DEFAULT_DB,
    DuckDBStore,
    StoreSummary,
    WriteResult,
    open_store,
)

__all__ = ["DEFAULT_DB", "DuckDBStore", "StoreSummary", "WriteResult", "open_store"]
