"""Rendering tidy frames as a rich table, CSV or JSON for the CLI."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pandas as pd
from rich.table import Table
from rich.text import Text

from tokenplan.readings import plain, records
from tokenplan.untrusted import visible

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


__all__ = [
    "OutputFormat",
    "plain",
    "records",
    "safe",
    "spreadsheet_cell",
    "to_csv",
    "to_json",
    "to_table",
    "usd",
    "visible",
]


class OutputFormat(StrEnum):
    """How a command prints its result."""

    table = "table"
    csv = "csv"
    json = "json"


def safe(value: Any) -> Text:
    """Untrusted text for a rich table or line: never read as markup, controls made visible.

    Every command that puts a name, path or other input text into rich output passes it
    through here (or `to_table`): ``[/x]`` must print as ``[/x]``, not crash or style.
    """
    return Text(visible(str(value)))


def spreadsheet_cell(value: Any) -> Any:
    """A CSV cell that Excel or Sheets will not run: text starting ``= + - @`` gets a ``'``.

    Numbers (ints, floats, exact decimals rendered as text) pass unchanged.
    """
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        Decimal(value)
    except ArithmeticError:
        return "'" + value
    return value


def to_csv(frame: pd.DataFrame, *, spreadsheet: bool = False) -> str:
    """CSV text with exact numbers and ISO timestamps; missing values are empty.

    With ``spreadsheet``, text cells that a spreadsheet would run as a formula are neutralised
    (`spreadsheet_cell`); exports that other tools parse as data keep the text as it is.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    cell = spreadsheet_cell if spreadsheet else (lambda v: v)
    writer.writerow([cell(str(c)) for c in frame.columns])
    for row in records(frame):
        writer.writerow(["" if v is None else cell(v) for v in row.values()])
    return buffer.getvalue()


def to_json(frame: pd.DataFrame) -> str:
    """JSON array of row objects."""
    return json.dumps(records(frame), indent=2)


def to_table(frame: pd.DataFrame, title: str | None = None) -> Table:
    """A rich table with right-aligned numbers and thousands separators."""
    table = Table(title=safe(title) if title is not None else None)
    numeric = {c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])}
    for col in frame.columns:
        table.add_column(safe(col), justify="right" if col in numeric else "left")
    for row in records(frame):
        table.add_row(*(_cell(v) for v in row.values()))
    return table


def _cell(value: Any) -> Text:
    if value is None:
        return Text("—")
    if isinstance(value, int):
        return Text(f"{value:,}")
    if isinstance(value, float):
        return Text(f"{value:,.2f}")
    return safe(value)


def usd(value: Decimal | float | None) -> str:
    """Dollars to the cent, and a cost under a dollar to its first digits (``$0.0047``): a
    small bill must not read as ``$0.00``. Below a millionth of a dollar, ``<$0.000001``."""
    if value is None:
        return "—"
    amount = Decimal(str(value))
    if not amount.is_finite():
        return "—"
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount == 0 or amount >= 1:
        return f"{sign}${amount:,.2f}"
    if amount < Decimal("0.000001"):
        return f"{sign}<$0.000001"
    digits = f"{amount:.6f}".rstrip("0")
    return f"{sign}${digits.ljust(4, '0')}"
