"""The typer application and the options every command shares."""

from __future__ import annotations

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

# Soft wrap: a path, an id or an error line is never broken across lines (a wrapped path
# cannot be copied, and a script reading stdout sees a different file name); tables still
# fit the terminal's width.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

# A string, not a Path: Path would fold the "//" of parquet:s3://bucket/lake.
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        "--source",
        help=(
            "DuckDB store file, or parquet:DIR to read a Parquet lake written by "
            "`tokenplan export` (read-only) (default: $TOKENPLAN_DB or tokenplan.duckdb)."
        ),
        show_default=False,
    ),
]


AdoptOption = Annotated[
    bool,
    typer.Option(
        "--adopt-db",
        help="Add tokenplan's tables to an existing DuckDB file that is not yet a store.",
    ),
]


@app.callback()
def _root(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help="Show the traceback of an unexpected error (also TOKENPLAN_DEBUG=1)."
        ),
    ] = False,
) -> None:
    """Capacity planning and cost forecasting for LLM API usage."""
    # `tokenplan.cli.main` reads --debug before the command runs; this declares it for --help.
