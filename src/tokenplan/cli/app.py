"""The typer application and the options every command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    name="tokenplan",
    help="Capacity planning and cost forecasting for LLM API usage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

console = Console()
err_console = Console(stderr=True)

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="DuckDB store file (default: $TOKENPLAN_DB or tokenplan.duckdb).",
        show_default=False,
    ),
]


@app.callback()
def _root() -> None:
    """Capacity planning and cost forecasting for LLM API usage."""
