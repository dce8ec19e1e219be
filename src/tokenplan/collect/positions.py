"""Turning a record index into the line a person sees in the file (only on the error path).

The fast readers count records, not lines; these helpers rescan the file once, when an error
must be reported, so that quoted newlines in CSV and blank lines in JSONL are counted right.
"""

from __future__ import annotations

import csv
import json

from tokenplan.collect.detect import Source
from tokenplan.errors import InvalidInput, at


def csv_line(source: Source, record: int) -> int:
    """The 1-based line where data record ``record`` (0-based, header excluded) starts."""
    with source.open_text() as text:
        reader = csv.reader(text)
        line = 1
        try:
            next(reader)
            line = reader.line_num + 1
            for i, _ in enumerate(reader):
                if i == record:
                    return line
                line = reader.line_num + 1
        except (csv.Error, EOFError, OSError):
            pass
    return record + 2


def csv_shape_error(source: Source, cause: Exception) -> InvalidInput:
    """Explain a CSV the Arrow reader refused: the first row with the wrong number of fields."""
    try:
        with source.open_text() as text:
            reader = csv.reader(text)
            header = next(reader, [])
            start = reader.line_num + 1
            for row in reader:
                if row and len(row) != len(header):
                    return InvalidInput(
                        f"{at(source.name, start)}: {len(row)} fields where the header has "
                        f"{len(header)}; fix or remove this row."
                    )
                start = reader.line_num + 1
    except csv.Error as exc:
        return InvalidInput(f"{at(source.name, start)}: the CSV is malformed ({exc}).")
    except (EOFError, OSError) as exc:
        return InvalidInput(
            f"{source.name}: the file ends early or is corrupt ({exc}); re-export it."
        )
    return InvalidInput(f"{source.name}: the CSV could not be read ({cause}).")


def jsonl_line(source: Source, record: int) -> int:
    """The 1-based line of JSON-lines record ``record`` (blank lines skipped)."""
    seen = -1
    with source.open_text() as text:
        for number, raw in enumerate(text, start=1):
            if raw.strip():
                seen += 1
                if seen == record:
                    return number
    return record + 1


def jsonl_syntax_error(source: Source, cause: Exception) -> InvalidInput:
    """Find the first line of a JSON-lines file that is not one complete JSON object."""
    try:
        with source.open_text() as text:
            lines = list(enumerate(text, start=1))
    except (EOFError, OSError) as exc:
        return InvalidInput(f"{source.name}: the file ends early or is corrupt ({exc}).")
    last = max((n for n, raw in lines if raw.strip()), default=0)
    for number, raw in lines:
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            return json_error(source, exc, line_offset=number - 1, is_last=number == last)
        except RecursionError:
            return too_deep(source, number)
        if not isinstance(value, dict):
            return InvalidInput(
                f"{at(source.name, number)}: expected one JSON object per line, "
                f"found {type(value).__name__}."
            )
    return InvalidInput(f"{source.name}: the JSON lines could not be read ({cause}).")


def too_deep(source: Source, line: int | None) -> InvalidInput:
    """A one-line message for JSON nested past Python's recursion limit (no record is)."""
    return InvalidInput(
        f"{at(source.name, line)}: the JSON is nested too deeply (about a thousand levels) "
        "to be a usage record; check the file."
    )


def json_error(
    source: Source, exc: json.JSONDecodeError, *, line_offset: int = 0, is_last: bool = True
) -> InvalidInput:
    """A one-line message for a JSON syntax error, saying when the file simply ends early."""
    line = exc.lineno + line_offset
    # An unterminated string runs to the end of the text (raw newlines are not allowed in one).
    ends_early = is_last and (
        exc.pos >= len(exc.doc.rstrip()) or exc.msg.startswith("Unterminated string")
    )
    if ends_early:
        return InvalidInput(
            f"{at(source.name, line)}: the JSON ends early (truncated file?): {exc.msg} "
            f"at column {exc.colno}; re-export or re-download it."
        )
    return InvalidInput(f"{at(source.name, line)}: invalid JSON at column {exc.colno}: {exc.msg}.")
