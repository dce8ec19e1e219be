"""Provider usage reports: paginated JSON (``data[]`` buckets, ``has_more`` / ``next_page``).

A file may hold one page object, a JSON array of pages, or several page objects one after
another (as saved by a loop over ``next_page``). Reports are small (one row per bucket, model
and key), so they are parsed with the json module and then checked column-wise; a bad value
is named by its place: ``file, line N (page P), bucket B, result R, field 'f'``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tokenplan.collect import columns as col
from tokenplan.collect.buckets import bucket_ids
from tokenplan.collect.detect import Source
from tokenplan.collect.json_text import refuse_lone_surrogates
from tokenplan.collect.positions import json_error, too_deep
from tokenplan.errors import InvalidInput, at


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a report and the line it starts on."""

    number: int
    line: int | None  # None for a page fetched over HTTP
    body: dict[str, Any]


def load_pages(source: Source) -> list[Page]:
    """Every page object in the file, in order."""
    try:
        with source.open_text() as stream:
            text = stream.read()
    except (EOFError, OSError) as exc:
        raise InvalidInput(f"{source.name}: the file ends early or is corrupt ({exc}).") from exc
    # Numbers as exact decimals: a float would change a dollar amount in its 17th digit.
    decoder = json.JSONDecoder(parse_float=Decimal)
    pages: list[Page] = []
    pos = _skip_space(text, 0)
    while pos < len(text):
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise json_error(source, exc) from None
        except RecursionError:
            raise too_deep(source, text.count("\n", 0, pos) + 1) from None
        line = text.count("\n", 0, pos) + 1
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("data"), list):
                raise InvalidInput(
                    f"{at(source.name, line)}: expected a usage report page "
                    "(an object with a 'data' list of buckets)."
                )
            pages.append(Page(len(pages) + 1, line, item))
        pos = _skip_space(text, end)
    if not pages:
        raise InvalidInput(f"{source.name}: the file holds no report pages.")
    return pages


def _skip_space(text: str, pos: int) -> int:
    # Brackets and commas too: a JSON array of pages is read page by page, so that each
    # page knows its own line.
    while pos < len(text) and text[pos] in " \t\r\n,[]":
        pos += 1
    return pos


def pagination_note(pages: list[Page]) -> str | None:
    """A warning when the last page says more pages exist."""
    last = pages[-1].body
    if last.get("has_more"):
        return f"the last page has has_more=true: fetch next_page={last.get('next_page')!r} too"
    return None


@dataclass
class Rows:
    """Result rows (flat dicts) collected from a report, with each row's place in the file."""

    records: list[dict[str, Any]] = field(default_factory=list)
    places: list[str] = field(default_factory=list)

    def add(self, place: str, **values: Any) -> None:
        """Append one result row."""
        self.records.append(values)
        self.places.append(place)

    def columns(self) -> dict[str, pa.Array]:
        """The rows as string columns (numbers as their JSON text, missing as null)."""
        names = dict.fromkeys(k for r in self.records for k in r)
        return {
            name: pa.array([_text(r.get(name)) for r in self.records], pa.string())
            for name in names
        }

    def __len__(self) -> int:
        return len(self.records)


def results(pages: list[Page], name: str) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """Each (place, bucket, result) of every page; ``name`` is the file or URL for messages."""
    for page in pages:
        line = "" if page.line is None else f", line {page.line}"
        for b, bucket in enumerate(page.body["data"], start=1):
            where = f"{name}{line} (page {page.number}), bucket {b}"
            if not isinstance(bucket, dict) or not isinstance(bucket.get("results"), list):
                raise InvalidInput(f"{where}: expected an object with a 'results' list.")
            refuse_lone_surrogates({k: v for k, v in bucket.items() if k != "results"}, where, None)
            for r, result in enumerate(bucket["results"], start=1):
                if not isinstance(result, dict):
                    raise InvalidInput(f"{where}, result {r}: expected an object.")
                refuse_lone_surrogates(result, f"{where}, result {r}", None)
                yield f"{where}, result {r}", bucket, result


def build(
    fmt: str,
    rows: Rows,
    name: str,
    convert: Callable[[dict[str, pa.Array]], dict[str, Any]],
    id_extra: tuple[str, ...] = (),
    batch: tuple[str, str] | None = None,
) -> Iterator[pa.Table]:
    """Check the collected columns with ``convert`` and make store rows with bucket ids.

    ``batch`` = (column, value): rows whose column has that value come as a separate table
    flagged with `columns.mark_batch`, so that they are priced at batch rates.
    """
    raw = rows.columns()
    try:
        out = convert(raw)
    except col.RowError as err:
        raise InvalidInput(
            f"{at(rows.places[err.index], None, err.field)}: {err.problem}"
        ) from None
    out["source"] = name
    table = col.usage_table(len(rows), out)
    extra = [raw[name] for name in id_extra if name in raw]
    ids = bucket_ids(fmt, table, extra=extra)
    table = table.set_column(table.schema.get_field_index("request_id"), "request_id", ids)
    if batch is None:
        yield table
        return
    mask = pc.fill_null(pc.equal(raw[batch[0]], batch[1]), False) if batch[0] in raw else None
    if mask is None or not pc.any(mask).as_py():
        yield table
        return
    yield col.mark_batch(table.filter(mask))
    rest = table.filter(pc.invert(mask))
    if rest.num_rows:
        yield rest


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)
