"""The usage series CSV of DESIGN.md: one row per bucket (and model, team, feature).

Columns: ``timestamp`` (bucket start, ISO 8601 with a zone), optional ``model``, the metrics
``requests, input_tokens, output_tokens, total_tokens, cost_usd, failed_requests`` and the
dimensions ``team, feature`` (also ``provider, user, key_id``; ``client`` is read as
``key_id`` when there is no ``key_id`` column). Other columns are ignored.

- Timestamps are UTC by definition: one without a zone is read as UTC (and a note says so)
  unless a time zone is given. Raw events, unlike this format, reject zoneless timestamps.
- An empty metric cell is unknown (NULL), never zero; a note counts them where the column is
  known elsewhere (a bucket the source did not record, see `tokenplan.store.series_sql`).
- ``total_tokens`` is checked against ``input_tokens + output_tokens``. When only one part is
  known, the other is derived from the total. A row with a total but neither part has no honest
  split: both parts stay unknown and the total is kept as ``unsplit_tokens`` (it counts in
  ``total_tokens`` but in neither part, and is not priced); a note says so. Splitting it as
  all-input would misprice it.
- The bucket width (``bucket_s``) is the gcd of the timestamp gaps within each series.
- Rows get deterministic ``request_id``s from their start and dimensions, never from the
  inferred width (see `tokenplan.collect.buckets`), so re-importing an overlapping export
  stores each bucket once, and the later export's value wins.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, tzinfo

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from tokenplan.collect import columns as col
from tokenplan.collect.buckets import bucket_ids, infer_width, series_keys
from tokenplan.collect.detect import USAGE_CSV, Source
from tokenplan.collect.positions import csv_line, csv_shape_error
from tokenplan.errors import InvalidInput, at
from tokenplan.events import COST_TYPE

COUNT_COLUMNS = ("requests", "failed_requests", "input_tokens", "output_tokens", "total_tokens")
DIMENSION_COLUMNS = ("provider", "team", "feature", "user", "key_id")
KNOWN = ("timestamp", "model", *COUNT_COLUMNS, "cost_usd", *DIMENSION_COLUMNS, "client")
DEFAULT_WIDTH_S = 3600


def read_header(source: Source) -> list[str]:
    """The CSV header row, stripped."""
    with source.open_text() as text:
        try:
            return [c.strip() for c in next(csv.reader(text), [])]
        except csv.Error as exc:
            raise InvalidInput(
                f"{at(source.name, 1)}: the CSV header is malformed ({exc})."
            ) from exc


def read_strings(source: Source, wanted: list[str]) -> pa.Table:
    """The ``wanted`` columns of a CSV as strings (empty cells null), in one Arrow table."""
    try:
        return pacsv.read_csv(
            source.open(),
            read_options=pacsv.ReadOptions(block_size=1 << 24),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(wanted, pa.string()),
                include_columns=wanted,
                strings_can_be_null=True,
                null_values=[""],
                quoted_strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, EOFError, OSError) as exc:
        raise csv_shape_error(source, exc) from exc


def read(source: Source, *, tz: tzinfo | None, notes: list[str]) -> Iterator[pa.Table]:
    """Parse and validate a usage series CSV into store rows."""
    header = read_header(source)
    if "timestamp" not in header:
        raise InvalidInput(f"{at(source.name, 1)}: a usage CSV needs a 'timestamp' column.")
    wanted = [c for c in KNOWN if c in header]
    ignored = [c for c in header if c not in KNOWN]
    if ignored:
        notes.append(f"ignored columns: {', '.join(ignored)}")
    raw = read_strings(source, wanted)
    try:
        table = _rows(raw, source, tz=tz, notes=notes)
    except col.RowError as err:
        line = csv_line(source, err.index)
        raise InvalidInput(f"{at(source.name, line, err.field)}: {err.problem}") from None
    if table.num_rows:
        yield table


def _rows(raw: pa.Table, source: Source, *, tz: tzinfo | None, notes: list[str]) -> pa.Table:
    n = raw.num_rows
    present = set(raw.column_names)

    def column(name: str) -> pa.Array:
        return raw.column(name).combine_chunks()

    out: dict[str, object] = {"ts": _bucket_starts(column("timestamp"), tz, notes)}
    if "model" in present:
        model = col.strings(column("model"))
        col.check(pc.is_null(model), None, "model", "the model is missing; give every row a model.")
        out["model"] = model
    else:
        out["model"] = "unknown"
        notes.append("no model column: rows are stored under model 'unknown'")
    counts = {
        name: col.counts(column(name), name, required=False)
        for name in COUNT_COLUMNS
        if name in present
    }
    _check_failed(counts)
    _note_gaps(counts, notes)
    inp, outp, unsplit = _split_tokens(counts, n, notes)
    out["input_tokens"], out["output_tokens"], out["unsplit_tokens"] = inp, outp, unsplit
    for name in ("requests", "failed_requests"):
        out[name] = counts.get(name)
    if "cost_usd" in present:
        out["cost_usd"] = col.cast(
            col.strings(column("cost_usd")), COST_TYPE, "cost_usd", "an amount"
        )
    for name in DIMENSION_COLUMNS:
        if name in present:
            out[name] = col.strings(column(name))
    if "key_id" not in present and "client" in present:
        out["key_id"] = col.strings(column("client"))
        notes.append("column 'client' is stored as the key_id dimension")
    out["source"] = source.name
    table = col.usage_table(n, out)
    width = infer_width(table.column("ts"), series_keys(table))
    if width is None:
        width = DEFAULT_WIDTH_S
        notes.append("only one timestamp per series: bucket width assumed to be 1h")
    table = table.set_column(
        table.schema.get_field_index("bucket_s"),
        "bucket_s",
        pa.repeat(pa.scalar(width, pa.int32()), n),
    )
    ids = bucket_ids(USAGE_CSV, table, stated_width=False)
    return table.set_column(table.schema.get_field_index("request_id"), "request_id", ids)


def _bucket_starts(raw: pa.Array, tz: tzinfo | None, notes: list[str]) -> pa.Array:
    """Bucket starts as naive UTC; this format is UTC by definition, so a zoneless one is UTC."""
    try:
        return col.timestamps(raw, "timestamp", tz)
    except col.RowError as err:
        if tz is not None or "no time zone" not in err.problem:
            raise
    notes.append(
        "timestamps without a zone were read as UTC, as the usage series CSV defines them "
        "(pass --tz to read them in another zone)"
    )
    return col.timestamps(raw, "timestamp", UTC)


def _note_gaps(counts: dict[str, pa.Array], notes: list[str]) -> None:
    """Say which count columns are empty in some rows and known in others: buckets the source
    did not record, which the store keeps unknown, and a forecast every day or week that holds
    them (`DuckDBStore.series` with ``complete``)."""
    for name, values in counts.items():
        empty = values.null_count
        if 0 < empty < len(values):
            rows = "1 row leaves" if empty == 1 else f"{empty:,} rows leave"
            notes.append(
                f"{rows} {name} empty: unknown, not 0; a forecast reads a wider bucket (a day,"
                " a week) holding one as unknown too"
            )


def _check_failed(counts: dict[str, pa.Array]) -> None:
    if "failed_requests" in counts and "requests" in counts:
        failed = counts["failed_requests"]
        col.check(
            pc.greater(failed, counts["requests"]),
            failed,
            "failed_requests",
            "is more than requests in the same row.",
        )


def _split_tokens(
    counts: dict[str, pa.Array], n: int, notes: list[str]
) -> tuple[pa.Array | None, pa.Array | None, pa.Array | None]:
    """Input and output tokens, completed from ``total_tokens`` where exactly one is unknown,
    and the totals that have no split at all."""
    inp, outp, total = (counts.get(k) for k in ("input_tokens", "output_tokens", "total_tokens"))
    if total is None:
        return inp, outp, None
    none = pa.nulls(n, pa.int64())
    inp = none if inp is None else inp
    outp = none if outp is None else outp
    both = pc.add_checked(inp, outp)
    col.check(
        pc.not_equal(total, both),
        total,
        "total_tokens",
        "is not input_tokens + output_tokens; fix the row or drop one column.",
    )
    derived_out = pc.subtract(total, inp)
    col.check(pc.less(derived_out, 0), total, "total_tokens", "is less than input_tokens.")
    derived_in = pc.subtract(total, outp)
    col.check(pc.less(derived_in, 0), total, "total_tokens", "is less than output_tokens.")
    new_in = pc.coalesce(inp, derived_in)
    new_out = pc.coalesce(outp, derived_out)
    orphan = pc.and_(pc.is_null(new_in), pc.is_valid(total))
    lost = pc.sum(pc.if_else(orphan, total, 0)).as_py() or 0
    rows = pc.sum(pc.cast(orphan, pa.int64())).as_py() or 0
    if rows:
        notes.append(
            f"{rows} rows give total_tokens without input/output ({lost:,} tokens): "
            "kept as totals only (counted in total_tokens, not priced) rather than guessing a split"
        )
    return new_in, new_out, pc.if_else(orphan, total, pa.scalar(None, pa.int64()))
