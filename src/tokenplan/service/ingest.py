"""Request bodies of ``POST /v1/events`` turned into validated store rows, or a clear 4xx.

A body is a JSON array of `UsageEvent` objects or NDJSON (one object a line), optionally
gzip-compressed. Every limit is checked while reading, before any work: body bytes (after
decompression too, so a gzip bomb is a 413, not an out-of-memory), events per batch, text
length. Each event goes through `UsageEvent.from_mapping`; the first bad one rejects the
whole batch with its index and field, so a batch is stored whole or not at all.
"""

from __future__ import annotations

import dataclasses
import json
import re
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from tokenplan.errors import InvalidInput
from tokenplan.events import COST_TYPE, UsageEvent, events_to_table, stored_cost
from tokenplan.service.settings import ServiceSettings
from tokenplan.timestamps import iso_utc

__all__ = [
    "SOURCE",
    "InvalidItem",
    "MalformedBody",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "body_format",
    "parse_events",
    "read_body",
]

BodyFormat = Literal["json", "ndjson"]
# The store's `source` of events posted over HTTP.
SOURCE = "http"
JSON_TYPES = frozenset({"", "application/json", "text/json"})
NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
# Request ids of this form are the ids imports give pre-aggregated buckets, which a newer
# import may replace: a posted event must not be able to replace imported data.
RESERVED_ID_PREFIX = "bucket:"
_FIELDS = tuple(f.name for f in dataclasses.fields(UsageEvent))
_TEXT_FIELDS = ("provider", "model", "status", "team", "feature", "user", "key_id", "request_id")
_FIELD_IN_MESSAGE = re.compile(r"field '([a-z_]+)'")
_NONE = type(None)
_TEXT: frozenset[type] = frozenset({str, _NONE})
_COUNT: frozenset[type] = frozenset({int, _NONE})
# Each field, its Arrow type on the columnar path, and the JSON value types that path takes.
_COLUMN_TYPES: tuple[tuple[str, pa.DataType, frozenset[type]], ...] = (
    ("ts", pa.string(), frozenset({str})),
    *((name, pa.string(), _TEXT) for name in _TEXT_FIELDS),
    *(
        (name, pa.int64(), _COUNT)
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    ),
    ("latency_ms", pa.float64(), frozenset({int, float, Decimal, _NONE})),
    ("cost_usd", COST_TYPE, frozenset({int, Decimal, str, _NONE})),
)


class PayloadTooLarge(InvalidInput):
    """The body or the batch is over the service's limit."""

    status = 413


class MalformedBody(InvalidInput):
    """The body is not UTF-8 JSON (or gzip of it)."""

    status = 400


class UnsupportedMediaType(InvalidInput):
    """The body's Content-Type or Content-Encoding is not one the service reads."""

    status = 415


class InvalidItem(InvalidInput):
    """One event of the batch is invalid; ``index`` (0-based) and ``field`` say where."""

    def __init__(self, message: str, index: int, field: str | None) -> None:
        super().__init__(message)
        self.index = index
        self.field = field

    @property
    def details(self) -> dict[str, Any]:
        """What the JSON error response adds to the message."""
        return {"index": self.index, "field": self.field}


def body_format(content_type: str | None) -> BodyFormat:
    """``json`` or ``ndjson`` from the Content-Type (a missing one means JSON)."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind in JSON_TYPES:
        return "json"
    if kind in NDJSON_TYPES:
        return "ndjson"
    raise UnsupportedMediaType(
        f"Content-Type {kind!r} is not read here; send application/json (an array of events) "
        "or application/x-ndjson (one event a line)."
    )


# Content-Encodings a body may come in, with the zlib window bits that decode each.
_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


async def read_body(
    chunks: AsyncIterator[bytes],
    *,
    content_encoding: str | None,
    content_length: str | None,
    limit: int,
) -> bytes:
    """The body, decompressed, read only while it stays within ``limit`` bytes."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding != "identity" and encoding not in _ENCODINGS:
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not read here; send gzip, deflate or no encoding."
        )
    declared = (content_length or "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    name = "gzip" if encoding == "x-gzip" else encoding
    bits = _ENCODINGS.get(encoding)
    inflater = None if bits is None else zlib.decompressobj(wbits=bits)
    received = 0
    out = bytearray()
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        if inflater is None:
            out += chunk
            continue
        if inflater.eof and chunk:
            raise MalformedBody(f"the {name} body has data after its end; send one stream.")
        try:
            # At most one byte past the limit: enough to know it is over, never a bomb's worth.
            out += inflater.decompress(chunk, limit - len(out) + 1)
        except zlib.error as exc:
            raise MalformedBody(f"the body is not valid {name} ({exc}).") from None
        if len(out) > limit:
            raise _too_large(limit, decompressed=True)
        if inflater.unused_data:
            raise MalformedBody(f"the {name} body has data after its end; send one stream.")
    if inflater is not None and not inflater.eof:
        raise MalformedBody(f"the {name} body ends early; send the whole stream.")
    return bytes(out)


def _too_large(limit: int, *, decompressed: bool = False) -> PayloadTooLarge:
    what = "decompresses to" if decompressed else "is"
    return PayloadTooLarge(
        f"the body {what} more than {limit:,} bytes; send smaller batches (several requests)."
    )


def parse_events(body: bytes, fmt: BodyFormat, settings: ServiceSettings) -> pa.Table:
    """The batch as store rows (`tokenplan.events.USAGE_SCHEMA`), or the first problem in it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(
            f"the body is not UTF-8: byte {exc.start} is 0x{body[exc.start]:02x}."
        ) from None
    text = text.removeprefix("\ufeff")
    if fmt == "ndjson":
        lines = [(n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
        _check_batch(len(lines), settings)
        items: list[tuple[Any, int | None]] = [(_load(line, n), n) for n, line in lines]
    else:
        if not text.strip():
            raise MalformedBody("the body is empty; send a JSON array of events.")
        loaded = _load(text, None)
        if not isinstance(loaded, list):
            raise MalformedBody(
                f"the body is a JSON {_kind(loaded)}; send a JSON array of events "
                "(or NDJSON with Content-Type: application/x-ndjson)."
            )
        _check_batch(len(loaded), settings)
        items = [(item, None) for item in loaded]
    fast = _columns(items, settings)
    if fast is not None:
        return fast
    # Item by item through `UsageEvent.from_mapping`: it names the first bad item and field,
    # and reads what the columnar path does not (counts as text, Unix seconds, ...).
    events = [_event(raw, i, line, settings) for i, (raw, line) in enumerate(items)]
    try:
        return events_to_table(events, source=SOURCE)
    except (pa.ArrowException, UnicodeError, OverflowError) as exc:
        # The checks above should make this unreachable; if not, still a 422, never a 500.
        raise InvalidInput(f"the batch cannot be stored: {exc}.") from None


def _columns(items: list[tuple[Any, int | None]], settings: ServiceSettings) -> pa.Table | None:
    """The batch validated column by column, or None to go item by item.

    The fast path for well-typed batches: Arrow checks every column at once with the JSON
    lines importer's rules (`tokenplan.collect.events_file.to_rows`, the same contract as
    `UsageEvent.from_mapping`). Anything it would not take as is, or rejects, goes the item
    by item way, which decides and names the problem.
    """
    from tokenplan.collect.columns import RowError, mark_stated_costs
    from tokenplan.collect.events_file import to_rows

    rows = [raw for raw, _ in items]
    if not rows or not all(type(raw) is dict for raw in rows):
        return None
    arrays: dict[str, pa.Array] = {}
    try:
        for name, kind, allowed in _COLUMN_TYPES:
            values = [raw.get(name) for raw in rows]
            types = set(map(type, values))
            if types == {type(None)}:
                continue
            if not types <= allowed:
                return None
            if kind == pa.string():
                longest = max(map(len, filter(None, values)), default=0)
                if longest > settings.max_text_chars:
                    return None
            elif name == "latency_ms":
                values = [None if v is None else float(v) for v in values]
            elif name == "cost_usd":
                if str in types:
                    # Exact text: the columnar checks cast it (and send overlong ones on).
                    if not types <= _TEXT:
                        return None
                    kind = pa.string()
                else:
                    values = [None if v is None else stored_cost(v) for v in values]
            arrays[name] = pa.array(values, kind)
        # A cost the client sent is stated, as `events_to_table` marks it: never repriced.
        table = mark_stated_costs(to_rows(pa.table(arrays), SOURCE, None))
    except (RowError, pa.ArrowException, UnicodeError, OverflowError, ValueError):
        return None
    ids = table.column("request_id")
    if ids.null_count < len(ids) and pc.any(pc.starts_with(ids, RESERVED_ID_PREFIX)).as_py():
        return None
    return table


def refuse_ahead(table: pa.Table, now: datetime, max_ahead_s: int) -> None:
    """Refuse a batch holding an event dated more than ``max_ahead_s`` after ``now``."""
    if not table.num_rows:
        return
    bound = now.astimezone(UTC).replace(tzinfo=None) + timedelta(seconds=max_ahead_s)
    late = pc.greater(table.column("ts"), pa.scalar(bound, pa.timestamp("us")))
    if not pc.any(late).as_py():
        return
    index = pc.index(late, True).as_py()
    ts = table.column("ts")[index].as_py()
    ahead = ts - bound + timedelta(seconds=max_ahead_s)
    raise InvalidItem(
        f"item {index}, field 'ts': {iso_utc(ts)} is {_span(ahead)} after this collector's "
        f"clock ({iso_utc(now)}); events may be dated at most "
        f"{_span(timedelta(seconds=max_ahead_s))} ahead. Check the sender's clock (or a local "
        "time sent as UTC); nothing was stored.",
        index,
        "ts",
    )


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 7200:
        return f"{seconds / 60:,.0f} minutes"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:,.1f} hours"
    return f"{seconds / 86400:,.0f} days"


def _check_batch(n: int, settings: ServiceSettings) -> None:
    if n > settings.max_batch:
        raise PayloadTooLarge(
            f"the batch has {n:,} events; at most {settings.max_batch:,} per request."
        )


def _load(text: str, line: int | None) -> Any:
    where = "the body" if line is None else f"line {line}"
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        at = f"column {exc.colno}" if line is not None else f"line {exc.lineno}, column {exc.colno}"
        raise MalformedBody(f"{where} is not valid JSON at {at}: {exc.msg}.") from None
    except RecursionError:
        raise MalformedBody(
            f"{where} nests JSON too deeply; an event is one flat JSON object."
        ) from None
    except ValueError as exc:
        # Python refuses to parse integers of more than 4,300 digits (and says so).
        raise MalformedBody(f"{where} holds a number that cannot be read: {exc}.") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "number"


def _event(raw: Any, index: int, line: int | None, settings: ServiceSettings) -> UsageEvent:
    """One validated event; errors say ``item N`` (0-based) and the field."""
    where = f"item {index}" if line is None else f"item {index} (line {line})"
    if not isinstance(raw, dict):
        raise InvalidItem(
            f"{where} is a JSON {_kind(raw)}; each event is an object with ts, model, "
            "input_tokens and output_tokens.",
            index,
            None,
        )
    for name in _FIELDS:
        value = raw.get(name)
        if value is None or isinstance(value, int | Decimal | float):
            continue
        if isinstance(value, str):
            _check_text(value, name, where, index, settings)
        elif isinstance(value, dict | list):
            raise InvalidItem(
                f"{where}, field '{name}': a JSON {_kind(value)} is not a valid {name}.",
                index,
                name,
            )
    ts = raw.get("ts")
    if isinstance(ts, Decimal):
        # Unix seconds with a fraction: JSON numbers are read exactly, timestamps as float.
        raw = {**raw, "ts": float(ts)}
    try:
        event = UsageEvent.from_mapping(raw, source=where)
    except InvalidInput as exc:
        found = _FIELD_IN_MESSAGE.search(str(exc))
        raise InvalidItem(str(exc), index, found.group(1) if found else None) from None
    if event.request_id is not None and event.request_id.startswith(RESERVED_ID_PREFIX):
        raise InvalidItem(
            f"{where}, field 'request_id': ids starting {RESERVED_ID_PREFIX!r} are reserved "
            "for imported buckets; choose another id.",
            index,
            "request_id",
        )
    if event.cost_usd is not None:
        event = _with_store_cost(event, where, index)
    return event


def _check_text(value: str, name: str, where: str, index: int, settings: ServiceSettings) -> None:
    if len(value) > settings.max_text_chars:
        raise InvalidItem(
            f"{where}, field '{name}': {len(value):,} characters; at most "
            f"{settings.max_text_chars:,}.",
            index,
            name,
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidItem(
                f"{where}, field '{name}': holds a lone UTF-16 surrogate (\\ud800-\\udfff), "
                "which is not text.",
                index,
                name,
            ) from None


def _with_store_cost(event: UsageEvent, where: str, index: int) -> UsageEvent:
    """``event`` with its cost as the store keeps it: rounded to 1e-12 USD, or refused."""
    assert event.cost_usd is not None
    try:
        cost = stored_cost(event.cost_usd)
    except ValueError as exc:
        raise InvalidItem(f"{where}, field 'cost_usd': {exc}.", index, "cost_usd") from None
    return event if cost == event.cost_usd else dataclasses.replace(event, cost_usd=cost)
