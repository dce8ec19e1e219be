"""Vectorized column parsing and checks that still name the first bad row.

Every check works on whole Arrow arrays; only when one fails do we look for the first offending
element (by bisecting a cast, or `pc.index` on a mask) and raise `RowError` with its index.
The format readers turn that index into a file position (``line N``) for the user.
"""

from __future__ import annotations

from datetime import UTC, timedelta, timezone, tzinfo
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tokenplan.errors import InvalidInput
from tokenplan.events import COUNT_CEILING, show

TS_NS = pa.timestamp("ns")
TS_UTC_NS = pa.timestamp("ns", tz="UTC")
TS_US = pa.timestamp("us")
BATCH_KEY = b"tokenplan.batch"


class RowError(Exception):
    """A bad value at ``index`` (0-based within the data handed in) of column ``field``."""

    def __init__(self, index: int, field: str, problem: str) -> None:
        super().__init__(f"row {index}, field {field!r}: {problem}")
        self.index = index
        self.field = field
        self.problem = problem


def first_true(mask: pa.Array | pa.ChunkedArray) -> int | None:
    """Index of the first true element of a boolean mask (nulls count as false)."""
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    if mask.null_count:
        mask = pc.fill_null(mask, False)
    if not pc.any(mask).as_py():
        return None
    return int(pc.index(mask, True).as_py())


def check(mask: pa.Array | pa.ChunkedArray, values: Any, field: str, problem: str) -> None:
    """Raise `RowError` at the first row where ``mask`` is true: ``<value> <problem>``."""
    index = first_true(mask)
    if index is not None:
        if values is None:
            raise RowError(index, field, problem)
        raise RowError(index, field, f"{show(values[index].as_py())} {problem}")


def _first_failing(arr: pa.Array, convert: Any) -> int:
    """Bisect for the first element that ``convert`` rejects (``convert`` raises on a bad slice)."""
    lo, hi = 0, len(arr)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            convert(arr.slice(lo, mid - lo))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            hi = mid
        else:
            lo = mid
    return lo


def cast(arr: pa.Array, target: pa.DataType, field: str, what: str) -> pa.Array:
    """Cast ``arr`` to ``target``; on failure name the first value that is not ``what``."""
    try:
        return pc.cast(arr, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        index = _first_failing(arr, lambda a: pc.cast(a, target))
        raise RowError(index, field, f"{show(arr[index].as_py())} is not {what}.") from None


def counts(arr: pa.Array, field: str, *, required: bool) -> pa.Array:
    """A column of non-negative whole numbers as int64 (nulls stay null unless ``required``)."""
    if pa.types.is_floating(arr.type):
        bad = pc.not_equal(arr, pc.floor(arr))
        check(bad, arr, field, "is not a whole number; counts must be whole numbers >= 0.")
    try:
        values = pc.cast(arr, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        values = _whole_numbers(arr, field)
    if required:
        check(pc.is_null(values), None, field, f"{field} is missing; it is required.")
    check(pc.less(values, 0), values, field, "is negative; counts must be >= 0.")
    return bounded(values, arr, field)


def bounded(values: pa.Array, shown: pa.Array, field: str) -> pa.Array:
    """``values`` unless one exceeds `COUNT_CEILING` (named by row, with its ``shown`` text)."""
    check(
        pc.greater(values, COUNT_CEILING),
        shown,
        field,
        f"is above the ceiling of {COUNT_CEILING:,} per row; such a count is a fault upstream.",
    )
    return values


def _whole_numbers(arr: pa.Array, field: str) -> pa.Array:
    """Strings such as ``"12.0"`` or ``"1e3"`` that are whole numbers, as int64."""
    as_decimal = cast(arr, pa.decimal128(38, 9), field, "a whole number >= 0")
    check(
        pc.not_equal(as_decimal, pc.floor(as_decimal)),
        arr,
        field,
        "is not a whole number; counts must be whole numbers >= 0.",
    )
    too_big = pc.greater(pc.abs(as_decimal), pa.scalar(COUNT_CEILING, pa.decimal128(38, 9)))
    check(too_big, arr, field, f"is above the ceiling of {COUNT_CEILING:,} per row.")
    return cast(as_decimal, pa.int64(), field, "a whole number >= 0")


def tz_name(tz: tzinfo) -> str:
    """The Arrow time zone name of a `tzinfo` (IANA key or ``+HH:MM``)."""
    key = getattr(tz, "key", None)
    if isinstance(key, str):
        return key
    if tz is UTC:
        return "UTC"
    if isinstance(tz, timezone):
        offset = tz.utcoffset(None)
        minutes = int(offset / timedelta(minutes=1))
        sign = "-" if minutes < 0 else "+"
        return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    raise InvalidInput(f"time zone {tz!r} is not supported; use an IANA name such as Europe/Paris.")


def timestamps(arr: pa.Array, field: str, tz: tzinfo | None) -> pa.Array:
    """ISO 8601 strings or Arrow timestamps as naive UTC ``timestamp[us]``.

    Strings need a zone (``Z`` or an offset) unless ``tz`` says how to read naive ones.
    Sub-microsecond digits are truncated.
    """
    check(pc.is_null(arr), None, field, "the timestamp is missing; every row needs one.")
    if pa.types.is_timestamp(arr.type):
        if arr.type.tz is None:
            if tz is None:
                raise RowError(0, field, _naive_problem(arr[0].as_py()))
            return _localize(arr, tz)
        return pc.cast(pc.cast(arr, pa.timestamp("us", tz="UTC")), TS_US)
    if pa.types.is_dictionary(arr.type):
        arr = pc.cast(arr, pa.string())
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        raise RowError(0, field, f"{show(arr[0].as_py())} is not an ISO 8601 timestamp.")
    try:
        return pc.cast(pc.cast(arr, TS_UTC_NS), TS_US, safe=False)
    except pa.ArrowInvalid:
        pass
    try:
        return _parse_mixed(arr, tz)
    except pa.ArrowInvalid:
        index = _first_failing(arr, lambda a: _parse_mixed(a, tz))
    value = arr[index].as_py()
    try:
        pc.cast(pa.array([value]), TS_NS)
    except pa.ArrowInvalid:
        raise RowError(
            index, field, f"{show(value)} is not an ISO 8601 timestamp (e.g. 2025-01-01T12:00:00Z)."
        ) from None
    raise RowError(index, field, _naive_problem(value))


_ZONE = r"[T ]\d\d:\d\d.*([Zz]|[+-]\d\d(:?\d\d)?)\s*$"


def _parse_mixed(arr: pa.Array, tz: tzinfo | None) -> pa.Array:
    # Strings with a zone parse as such; without one they need ``tz``. Raises ArrowInvalid.
    if tz is None:
        return pc.cast(pc.cast(arr, TS_UTC_NS), TS_US, safe=False)
    has_zone = pc.fill_null(pc.match_substring_regex(arr, _ZONE), False)
    zoned = pc.cast(pc.if_else(has_zone, arr, "1970-01-01T00:00:00Z"), TS_UTC_NS)
    naive = _localize(pc.cast(pc.if_else(has_zone, "1970-01-01T00:00:00", arr), TS_NS), tz)
    return pc.if_else(has_zone, pc.cast(zoned, TS_US, safe=False), naive)


def _naive_problem(value: Any) -> str:
    return (
        f"the timestamp {str(value)!r} has no time zone; add 'Z' or an offset "
        "(e.g. 2025-01-01T12:00:00Z), or pass --tz."
    )


def _localize(arr: pa.Array, tz: tzinfo) -> pa.Array:
    local = pc.assume_timezone(
        pc.cast(arr, TS_NS, safe=False), tz_name(tz), ambiguous="earliest", nonexistent="earliest"
    )
    return pc.cast(pc.cast(local, pa.timestamp("ns", tz="UTC")), TS_US, safe=False)


def strings(arr: pa.Array) -> pa.Array:
    """Any column as strings, with empty or blank strings as null."""
    if arr.type != pa.string():
        arr = pc.cast(arr, pa.string())
    blank = pc.equal(pc.utf8_trim_whitespace(arr), "")
    if pc.any(blank).as_py():
        arr = pc.if_else(blank, pa.scalar(None, pa.string()), arr)
    return arr


def usage_table(num_rows: int, columns: dict[str, Any]) -> pa.Table:
    """A `USAGE_SCHEMA` table from the given columns (arrays or scalars); the rest are null."""
    from tokenplan.events import USAGE_SCHEMA

    arrays = []
    for f in USAGE_SCHEMA:
        value = columns.get(f.name)
        if value is None:
            arrays.append(pa.nulls(num_rows, f.type))
        elif isinstance(value, pa.Array | pa.ChunkedArray):
            arrays.append(pc.cast(value, f.type))
        else:
            arrays.append(pc.cast(pa.repeat(pa.scalar(value), num_rows), f.type))
    return pa.Table.from_arrays(arrays, schema=USAGE_SCHEMA)


def mark_batch(table: pa.Table) -> pa.Table:
    """Flag a table of rows billed at batch rates (the importer prices it with ``batch=True``)."""
    return table.replace_schema_metadata({BATCH_KEY: b"1"})


def is_batch(table: pa.Table) -> bool:
    """Whether `mark_batch` flagged ``table``."""
    return bool(table.schema.metadata and table.schema.metadata.get(BATCH_KEY) == b"1")


def iso_strings(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Naive-UTC timestamps as ``2025-01-01T00:00:00.000000Z`` (fast, unlike strftime)."""
    text = pc.replace_substring(pc.cast(pc.cast(ts, TS_US), pa.string()), " ", "T")
    return pc.binary_join_element_wise(text, "Z", "")


def mark_stated_costs(table: pa.Table) -> pa.Table:
    """Flag the costs the source itself stated (``cost_computed`` false): never repriced."""
    stated = pc.and_(
        pc.is_valid(table.column("cost_usd")), pc.is_null(table.column("cost_computed"))
    )
    if not pc.any(stated).as_py():
        return table
    marked = pc.if_else(stated, False, table.column("cost_computed"))
    return table.set_column(table.schema.get_field_index("cost_computed"), "cost_computed", marked)
