"""`tokenplan reprice`: price stored usage again after a price change."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tokenplan.cli.app import DbOption, app, console
from tokenplan.cli.import_cmd import load_prices
from tokenplan.cli.output import safe
from tokenplan.plan.periods import parse_when
from tokenplan.pricing.reprice import RepriceSummary, reprice
from tokenplan.store import open_store
from tokenplan.store.duckdb_store import resolve_db_path


@app.command("reprice")
def reprice_(
    prices: Annotated[
        Path | None, typer.Option("--prices", help="TOML file of price overrides.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only rows from this time on (ISO 8601 UTC).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Recompute the costs tokenplan computed (never a cost the source stated), per row."""
    book = load_prices(prices)
    start = parse_when(since, option="--since")
    with open_store(resolve_db_path(db), mode="write") as store:
        summary = reprice(store, book, since=start)
    console.print(summary_table(summary))


def summary_table(s: RepriceSummary) -> Table:
    """The reprice summary as a two-column table."""
    table = Table(title="repriced", show_header=False)
    table.add_column("what")
    table.add_column("value")
    rows = [
        ("rows priced again", f"{s.rows:,}"),
        ("cost changed", f"{s.changed:,}"),
        ("cost still unknown", f"{s.unpriced_rows:,}"),
        ("total before", _usd(s.before_usd)),
        ("total after", _usd(s.after_usd)),
        ("left alone (cost stated by the source)", f"{s.stated_rows:,}"),
        ("left alone (cost of unknown origin)", f"{s.unknown_origin_rows:,}"),
        ("unpriced models", ", ".join(s.unpriced_models) or "none"),
    ]
    rows += [("note", note) for note in s.notes]
    for what, value in rows:
        table.add_row(what, safe(value))
    return table


def _usd(value: object) -> str:
    return "—" if value is None else f"${value:,.6f}"
