"""`tokenplan export --parquet DIR`: the store's usage as a Hive-partitioned Parquet lake."""

from __future__ import annotations

from typing import Annotated

import typer

from tokenplan.cli.app import DbOption, app, console
from tokenplan.cli.output import visible
from tokenplan.plan.periods import parse_when
from tokenplan.store import open_store
from tokenplan.store.duckdb_store import resolve_db_path
from tokenplan.store.lake import LakeExport, export_lake


@app.command("export")
def export(
    parquet: Annotated[
        str,
        typer.Option(
            "--parquet",
            help="Folder or object-store URL (s3://, gs://, az://) of the lake "
            "(DIR/date=YYYY-MM-DD/provider=NAME/*.parquet).",
            show_default=False,
        ),
    ],
    since: Annotated[
        str | None, typer.Option(help="First day to export (ISO 8601 UTC; whole days).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="End (exclusive; a time inside a day exports that day).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Write stored usage as Parquet partitioned by UTC day and provider, for Spark, Dask, Ray.

    The days exported replace the lake's same days, so exporting again never duplicates rows.
    Read it back with --source parquet:DIR on any reading command.
    """
    start, end = parse_when(since, option="--since"), parse_when(until, option="--until")
    with open_store(resolve_db_path(db), mode="read") as store:
        result = export_lake(store, parquet, since=start, until=end)
    console.print(describe(result), markup=False, highlight=False)


def describe(result: LakeExport) -> str:
    """One plain line (no markup) saying what an export wrote and which days it replaced."""
    if result.first_day is None or result.end_day is None:
        return f"Nothing exported to {visible(result.root)}: the store has no rows in that range."
    last = result.end_day.toordinal() - 1
    days = f"{result.first_day.isoformat()} to {type(result.first_day).fromordinal(last)}"
    files = "" if result.files is None else f" in {_count(result.files, 'file')}"
    return (
        f"Exported {result.rows:,} rows ({_count(result.days, 'day')}{files}) to "
        f"{visible(result.root)}; days {days} (UTC) replaced."
    )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
