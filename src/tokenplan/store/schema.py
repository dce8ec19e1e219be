"""The `usage` table, derived from the Arrow row model in `tokenplan.events`."""

from __future__ import annotations

import pyarrow as pa

from tokenplan.events import USAGE_SCHEMA

_SQL_TYPES = {
    pa.timestamp("us"): "TIMESTAMP",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.string(): "VARCHAR",
    pa.bool_(): "BOOLEAN",
}


def _sql_type(field: pa.Field) -> str:
    if pa.types.is_decimal(field.type):
        return f"DECIMAL({field.type.precision}, {field.type.scale})"
    return _SQL_TYPES[field.type]


COLUMNS: tuple[str, ...] = tuple(USAGE_SCHEMA.names)

# Store-internal: a 64-bit hash of request_id. Probing fresh ids against an integer column is
# an order of magnitude cheaper than against strings; equal hashes are confirmed on the string.
RID_HASH = "CASE WHEN request_id IS NULL THEN NULL ELSE hash(request_id) END"
COLUMN_SQL: dict[str, str] = {
    **{f.name: f"{_sql_type(f)}{'' if f.nullable else ' NOT NULL'}" for f in USAGE_SCHEMA},
    "rid_hash": "UBIGINT",
}

CREATE_USAGE = "CREATE TABLE IF NOT EXISTS usage (\n    {}\n)".format(
    ",\n    ".join(f'"{name}" {sql}' for name, sql in COLUMN_SQL.items())
)

# SQL for each metric; NULL where the source does not know it, so that an unknown is never a 0.
METRIC_SQL: dict[str, str] = {
    "requests": "requests",
    "failed_requests": "failed_requests",
    "rate_limited_requests": "rate_limited_requests",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_tokens": "cache_read_tokens",
    "cache_write_tokens": "cache_write_tokens",
    "total_tokens": "coalesce(input_tokens::HUGEINT + output_tokens, unsplit_tokens)",
    "cost_usd": "cost_usd",
}

# The store's own marker: a file with this table (and a known version) is a tokenplan store.
# Bump SCHEMA_VERSION when a change needs more than `_migrate`'s added NULL columns.
# 2: usage CSV bucket ids name the bucket's start, not its inferred width.
SCHEMA_VERSION = 2
META_TABLE = "tokenplan_meta"
CREATE_META = f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key VARCHAR PRIMARY KEY, value VARCHAR)"
# Files imported, by content hash: a raw file imported twice is counted twice (no ids).
CREATE_IMPORTS = """CREATE TABLE IF NOT EXISTS tokenplan_imports (
    sha256 VARCHAR NOT NULL, path VARCHAR, format VARCHAR, rows BIGINT,
    imported_at TIMESTAMP NOT NULL DEFAULT (now()::TIMESTAMP)
)"""
# Batches written exactly once (`DuckDBStore.write_once`): a Redis stream entry id, recorded in
# the transaction that writes its rows, so a drainer that crashes before acknowledging the
# entry finds it here on redelivery and writes nothing twice (rows without request ids too).
BATCHES_TABLE = "tokenplan_batches"
CREATE_BATCHES = f"""CREATE TABLE IF NOT EXISTS {BATCHES_TABLE} (
    key VARCHAR PRIMARY KEY, rows BIGINT NOT NULL,
    written_at TIMESTAMP NOT NULL DEFAULT (now()::TIMESTAMP)
)"""
# Columns whose presence marks a `usage` table written by tokenplan before the metadata table.
LEGACY_MARKERS = frozenset(
    {"ts", "bucket_s", "model", "input_tokens", "output_tokens", "request_id", "source"}
)
# Provider pulls (`tokenplan pull`): how far each report is complete, per provider, so that a
# pull resumes there; and the ids of rows from still-open buckets, which the next pull of their
# time range deletes before it writes the settled numbers (replaced, never added).
PULLS_TABLE = "tokenplan_pulls"
CREATE_PULLS = f"""CREATE TABLE IF NOT EXISTS {PULLS_TABLE} (
    provider VARCHAR NOT NULL, report VARCHAR NOT NULL, complete_until TIMESTAMP,
    pulled_at TIMESTAMP NOT NULL DEFAULT (now()::TIMESTAMP), PRIMARY KEY (provider, report)
)"""
PARTIALS_TABLE = "tokenplan_pull_partials"
CREATE_PARTIALS = f"""CREATE TABLE IF NOT EXISTS {PARTIALS_TABLE} (
    provider VARCHAR NOT NULL, report VARCHAR NOT NULL, request_id VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL
)"""
# What the provider bills (cost reports), apart from `usage`: a bill is not a usage row, and
# adding it there would count the cost twice. ``amount`` is in ``currency`` as reported
# (Anthropic's cents already turned into dollars); ``amount_usd`` is NULL for other currencies.
COSTS_TABLE = "provider_costs"
CREATE_COSTS = f"""CREATE TABLE IF NOT EXISTS {COSTS_TABLE} (
    id VARCHAR PRIMARY KEY, provider VARCHAR NOT NULL, ts TIMESTAMP NOT NULL,
    bucket_s INTEGER NOT NULL, model VARCHAR, team VARCHAR, item VARCHAR,
    amount DECIMAL(38, 12) NOT NULL, currency VARCHAR NOT NULL, amount_usd DECIMAL(38, 12),
    source VARCHAR
)"""
