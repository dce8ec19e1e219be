"""Raw `UsageEvent` rows (one per API call) as CSV, JSON lines or Parquet.

The columns / keys are the `UsageEvent` fields (``ts, provider, model, input_tokens, ...``);
others are ignored. Files stream in Arrow record batches and every check is vectorized; the
first bad row is reported as ``file, line N, field 'f'`` (``row N`` for Parquet).

Events are deduplicated by ``request_id`` only: give one if the same file may be imported
twice. A missing ``provider`` is stored as ``unknown``, a missing ``status`` as ``ok``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import tzinfo
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from tokenplan.collect import columns as col
from tokenplan.collect.detect import Source
from tokenplan.collect.json_text import refuse_lone_surrogates
from tokenplan.collect.positions import csv_line, csv_shape_error, json_error, too_deep
from tokenplan.collect.usage_csv import read_header
from tokenplan.errors import InvalidInput, at
from tokenplan.events import COST_TYPE, STATUSES

BLOCK_BYTES = 16 << 20
PARQUET_BATCH_ROWS = 1 << 19
FALLBACK_CHUNK = 50_000
COUNTS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
STRINGS = ("provider", "model", "status", "team", "feature", "user", "key_id", "request_id")
FIELDS = ("ts", *STRINGS, *COUNTS, "latency_ms", "cost_usd")
_STATUS_SET = pa.array(STATUSES)
_FAST_TYPES: dict[str, pa.DataType] = {
    "ts": pa.string(),
    **dict.fromkeys(STRINGS, pa.string()),
    **dict.fromkeys(COUNTS, pa.int64()),
    "latency_ms": pa.float64(),
}


def to_rows(batch: pa.RecordBatch | pa.Table, source: str, tz: tzinfo | None) -> pa.Table:
    """Validate a batch of raw event columns and turn it into store rows (`RowError` if bad)."""
    n = batch.num_rows
    names = set(batch.schema.names)

    def get(name: str) -> pa.Array | None:
        if name not in names:
            return None
        arr = batch.column(name)
        return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr

    for name in ("ts", "model", "input_tokens", "output_tokens"):
        if name not in names:
            raise col.RowError(0, name, f"there is no {name} column; {name} is required.")
    out: dict[str, Any] = {"ts": col.timestamps(get("ts"), "ts", tz)}  # type: ignore[arg-type]
    model = col.strings(get("model"))  # type: ignore[arg-type]
    col.check(pc.is_null(model), None, "model", "the model is missing; every event needs one.")
    out["model"] = model
    provider = get("provider")
    out["provider"] = (
        "unknown" if provider is None else pc.fill_null(col.strings(provider), "unknown")
    )
    for name in COUNTS:
        arr = get(name)
        if arr is None:
            out[name] = 0
            continue
        values = col.counts(arr, name, required=name in ("input_tokens", "output_tokens"))
        out[name] = values if values.null_count == 0 else pc.fill_null(values, 0)
    if "cache_read_tokens" in names or "cache_write_tokens" in names:
        cached = pc.add_checked(
            pc.cast(pa.repeat(pa.scalar(out["cache_read_tokens"]), n), pa.int64())
            if isinstance(out["cache_read_tokens"], int)
            else out["cache_read_tokens"],
            out["cache_write_tokens"],
        )
        col.check(
            pc.greater(cached, out["input_tokens"]),
            cached,
            "cache_read_tokens",
            "cached tokens (reads plus writes) exceed input_tokens; "
            "input_tokens must include cached tokens.",
        )
    status = get("status")
    if status is None:
        out["failed_requests"] = out["rate_limited_requests"] = 0
    else:
        status = pc.fill_null(col.strings(status), "ok")
        col.check(
            pc.invert(pc.is_in(status, value_set=_STATUS_SET)),
            status,
            "status",
            f"is not a known status; use one of {', '.join(STATUSES)}.",
        )
        out["failed_requests"] = pc.cast(pc.not_equal(status, "ok"), pa.int64())
        out["rate_limited_requests"] = pc.cast(pc.equal(status, "rate_limited"), pa.int64())
    latency = get("latency_ms")
    if latency is not None:
        latency = col.cast(latency, pa.float64(), "latency_ms", "a number of milliseconds")
        bad = pc.invert(pc.and_(pc.is_finite(latency), pc.greater_equal(latency, 0)))
        col.check(bad, latency, "latency_ms", "is not a number of milliseconds >= 0.")
        out["latency_ms_sum"] = latency
    cost = get("cost_usd")
    if cost is not None:
        if pa.types.is_string(cost.type) or pa.types.is_large_string(cost.type):
            cost = col.strings(cost)
        out["cost_usd"] = col.cast(cost, COST_TYPE, "cost_usd", "an amount of money")
    for name in ("team", "feature", "user", "key_id", "request_id"):
        arr = get(name)
        if arr is not None:
            out[name] = col.strings(arr)
    out["requests"], out["bucket_s"], out["source"] = 1, 0, source
    return col.usage_table(n, out)


# -- CSV ----------------------------------------------------------------------------------


def read_csv(source: Source, *, tz: tzinfo | None, notes: list[str]) -> Iterator[pa.Table]:
    """Stream raw events from a CSV file with a header row."""
    header = read_header(source)
    wanted = [c for c in FIELDS if c in header]
    ignored = [c for c in header if c not in FIELDS]
    if ignored:
        notes.append(f"ignored columns: {', '.join(ignored)}")
    done = 0
    try:
        for batch in _csv_batches(source, {c: _FAST_TYPES.get(c, pa.string()) for c in wanted}):
            yield _checked(batch, source, tz, done, lambda i: csv_line(source, i))
            done += batch.num_rows
    except pa.ArrowInvalid:
        # A value the typed reader refused: re-read as text from where it stopped, where
        # the vectorized checks can name the row (or accept values like "12.0").
        pass
    else:
        return
    seen = 0
    for batch in _csv_batches(source, dict.fromkeys(wanted, pa.string())):
        start = max(0, done - seen)
        seen += batch.num_rows
        if start >= batch.num_rows:
            continue
        offset = seen - batch.num_rows + start
        yield _checked(batch.slice(start), source, tz, offset, lambda i: csv_line(source, i))


def _csv_batches(source: Source, types: dict[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
    try:
        reader = pacsv.open_csv(
            source.open(),
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                include_columns=list(types),
                strings_can_be_null=True,
                null_values=[""],
                quoted_strings_can_be_null=True,
            ),
        )
        yield from reader
    except pa.ArrowInvalid as exc:
        if "conversion error" in str(exc) and any(t != pa.string() for t in types.values()):
            raise
        raise csv_shape_error(source, exc) from exc
    except (EOFError, OSError) as exc:
        raise csv_shape_error(source, exc) from exc


def _checked(
    batch: pa.RecordBatch | pa.Table,
    source: Source,
    tz: tzinfo | None,
    offset: int,
    line_of: Callable[[int], int],
) -> pa.Table:
    try:
        return to_rows(batch, source.name, tz)
    except col.RowError as err:
        where = at(source.name, line_of(offset + err.index), err.field)
        raise InvalidInput(f"{where}: {err.problem}") from None


# -- JSON lines ---------------------------------------------------------------------------

# cost_usd is read as a decimal straight from the JSON text (a float would round it); a value
# with more digits than the store keeps sends the file down the line-by-line path.
_JSON_SCHEMA = pa.schema(
    [
        (name, _FAST_TYPES.get(name, COST_TYPE if name == "cost_usd" else pa.float64()))
        for name in FIELDS
    ]
)


def read_jsonl(source: Source, *, tz: tzinfo | None, notes: list[str]) -> Iterator[pa.Table]:
    """Stream raw events from a JSON-lines file (one object per line)."""
    done = 0
    try:
        reader = pajson.open_json(
            source.open(),
            read_options=pajson.ReadOptions(block_size=BLOCK_BYTES),
            parse_options=pajson.ParseOptions(
                explicit_schema=_JSON_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
        for batch in reader:
            yield _checked(batch, source, tz, done, lambda i: _jsonl_line(source, i))
            done += batch.num_rows
        return
    except (pa.ArrowInvalid, EOFError, OSError):
        pass
    # Something the typed reader refused (a syntax error, "12" as a string, mixed types):
    # parse the rest line by line, which names the exact line, or accepts what is valid.
    yield from _jsonl_fallback(source, tz, skip=done)


def _jsonl_line(source: Source, record: int) -> int:
    from tokenplan.collect.positions import jsonl_line

    return jsonl_line(source, record)


def _jsonl_fallback(source: Source, tz: tzinfo | None, skip: int) -> Iterator[pa.Table]:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    seen = 0
    with source.open_text() as text:
        try:
            for number, raw in enumerate(text, start=1):
                if not raw.strip():
                    continue
                seen += 1
                if seen <= skip:
                    continue
                rows.append(_parse_line(source, number, raw))
                lines.append(number)
                if len(rows) >= FALLBACK_CHUNK:
                    yield _fallback_table(rows, lines, source, tz)
                    rows, lines = [], []
        except (EOFError, OSError) as exc:
            raise InvalidInput(
                f"{source.name}: the file ends early or is corrupt ({exc}); re-export it."
            ) from exc
    if rows:
        yield _fallback_table(rows, lines, source, tz)


def _parse_line(source: Source, number: int, raw: str) -> dict[str, Any]:
    try:
        obj = json.loads(raw, parse_float=Decimal)  # money exactly, not via float
        if not isinstance(obj, dict):
            raise InvalidInput(f"{at(source.name, number)}: expected a JSON object per line.")
        row = {k: _text(obj[k]) for k in FIELDS if k in obj}
        refuse_lone_surrogates(row, source.name, number)
        return row
    except json.JSONDecodeError as exc:
        last = not raw.endswith("\n")
        raise json_error(source, exc, line_offset=number - 1, is_last=last) from None
    except RecursionError:
        raise too_deep(source, number) from None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=str) if isinstance(value, dict | list | bool) else str(value)


def _fallback_table(
    rows: list[dict[str, Any]], lines: list[int], source: Source, tz: tzinfo | None
) -> pa.Table:
    present = [name for name in FIELDS if any(name in r for r in rows)]
    table = pa.table({name: pa.array([r.get(name) for r in rows], pa.string()) for name in present})
    return _checked(table, source, tz, 0, lambda i: lines[i])


# -- Parquet ------------------------------------------------------------------------------


def read_parquet(source: Source, *, tz: tzinfo | None, notes: list[str]) -> Iterator[pa.Table]:
    """Stream raw events from a Parquet file."""
    try:
        data: Any = source.path
        if source.gzipped:
            with source.open() as stream:
                data = pa.BufferReader(stream.read())
        parquet = pq.ParquetFile(data)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"{source.name}: not a readable Parquet file ({exc}).") from exc
    names = parquet.schema_arrow.names
    wanted = [c for c in FIELDS if c in names]
    ignored = [c for c in names if c not in FIELDS]
    if ignored:
        notes.append(f"ignored columns: {', '.join(ignored)}")
    done = 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted):
            try:
                yield to_rows(batch, source.name, tz)
            except col.RowError as err:
                where = at(f"{source.name}, row {done + err.index + 1}", None, err.field)
                raise InvalidInput(f"{where}: {err.problem}") from None
            done += batch.num_rows
            if source.on_bytes is not None and not source.gzipped:
                total = max(1, parquet.metadata.num_rows)
                source.on_bytes(source.size * batch.num_rows // total)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(
            f"{source.name}, row {done + 1}: the Parquet data is unreadable ({exc})."
        ) from exc
