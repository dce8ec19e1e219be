"""`tokenplan import FILE`: load a usage file into the store and print what was imported."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.table import Table

from tokenplan.cli.app import AdoptOption, DbOption, app, console
from tokenplan.cli.output import safe, usd, visible
from tokenplan.collect import FORMATS, ImportSummary, import_file
from tokenplan.errors import InvalidInput
from tokenplan.pricing import PriceBook
from tokenplan.store import open_store
from tokenplan.store.duckdb_store import resolve_db_path
from tokenplan.timestamps import iso_utc


def load_prices(overrides: Path | None) -> PriceBook:
    """The price book: genai-prices list prices, with the ``overrides`` TOML file on top."""
    return PriceBook(overrides)


def parse_zone(value: str | None) -> ZoneInfo | None:
    """A ``--tz`` value as a time zone."""
    if value is None:
        return None
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"--tz: unknown time zone {value!r}; use an IANA name such as UTC or Asia/Shanghai."
        ) from None


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="File to import (gzip is read transparently).")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help=f"One of {', '.join(FORMATS)}; default: detected."),
    ] = None,
    tz: Annotated[
        str | None, typer.Option("--tz", help="Time zone of timestamps that carry none.")
    ] = None,
    prices: Annotated[
        Path | None, typer.Option("--prices", help="TOML file of price overrides.")
    ] = None,
    db: DbOption = None,
    adopt: AdoptOption = False,
) -> None:
    """Import a usage CSV, raw events, a trace or a provider usage report, in one transaction."""
    zone = parse_zone(tz)
    book = load_prices(prices)
    with open_store(resolve_db_path(db), mode="write", adopt=adopt) as store:
        summary = import_file(store, file, fmt=fmt, prices=book, tz=zone, progress=True)
    # The rows are committed: nothing below may fail as if they were not (a retry would count
    # raw events without request ids twice).
    try:
        console.print(summary_table(summary))
    except Exception as exc:  # the import itself succeeded
        typer.echo(
            f"imported {summary.inserted:,} new rows from {visible(summary.path)}; "
            f"the summary could not be shown ({type(exc).__name__})."
        )


def summary_table(s: ImportSummary) -> Table:
    """The import summary as a two-column table."""
    table = Table(title=safe(f"imported {Path(s.path).name} as {s.format}"), show_header=False)
    table.add_column("what")
    table.add_column("value")
    span = f"{iso_utc(s.start)} … {iso_utc(s.end)}" if s.start and s.end else "—"
    rows = [
        ("rows read", f"{s.rows_read:,}"),
        ("stored", _stored(s)),
        ("rows rejected", f"{s.rejected}"),
        ("time span", span),
        ("models", ", ".join(s.models) or "—"),
        ("input tokens", f"{s.input_tokens:,}"),
        ("output tokens", f"{s.output_tokens:,}"),
        ("total tokens", f"{s.total_tokens:,}"),
        ("total cost", _cost(s)),
        ("unpriced models", ", ".join(s.unpriced_models) or "none"),
    ]
    rows += [("note", note) for note in s.notes]
    for what, value in rows:
        table.add_row(what, safe(value))
    return table


def _stored(s: ImportSummary) -> str:
    text = f"{s.inserted:,} new, {s.duplicates:,} already present"
    if s.replaced:
        text += f", {s.replaced:,} replaced by this newer export"
    return text


def _cost(s: ImportSummary) -> str:
    if s.cost_usd is None:
        return "unknown"
    partial = " (without the unpriced models)" if s.unpriced_models else ""
    return f"{usd(s.cost_usd)}{partial}"
