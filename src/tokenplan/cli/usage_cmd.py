"""`tokenplan usage`: metric M at frequency F, split by dimensions, from the store."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import typer

from tokenplan.cli.app import DbOption, app, console, err_console
from tokenplan.cli.output import OutputFormat, to_csv, to_json, to_table
from tokenplan.events import METRICS
from tokenplan.frequency import parse_freq
from tokenplan.plan.history import reaches
from tokenplan.plan.periods import parse_when
from tokenplan.store import open_store
from tokenplan.store.duckdb_store import resolve_db_path
from tokenplan.store.usage_notes import usage_notes
from tokenplan.timestamps import iso_utc


@app.command()
def usage(
    metric: Annotated[
        str,
        typer.Option(help=f"One of {', '.join(METRICS)}."),
    ] = "total_tokens",
    freq: Annotated[
        str, typer.Option(help="Bucket width: 1min, 10min, 1h, 1d, 1w or 1mo (calendar months).")
    ] = "1h",
    by: Annotated[
        list[str] | None,
        typer.Option(help="Split by model, provider, team, feature, user or key_id (repeatable)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Start (inclusive): ISO 8601 UTC, or 7d, 12h... before the data's end."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="End (exclusive): ISO 8601 UTC, or a span before the data's end."),
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option("--tz", help="Time zone whose midnight starts 1d, 1w and 1mo buckets (UTC)."),
    ] = None,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="table, csv or json.")
    ] = OutputFormat.table,
    db: DbOption = None,
) -> None:
    """Show usage from the store: one row per series and bucket (timestamps: UTC bucket starts)."""
    frequency = parse_freq(freq, calendar=True)
    with open_store(resolve_db_path(db), mode="read") as store:
        end = store.summary().end
        # What the table's note on a partial last row needs (a pass each: not for CSV or JSON).
        table = fmt is OutputFormat.table
        width, opened = (store.bucket_seconds(), store.open_since()) if table else (None, None)
        start = parse_when(since, now=end, option="--since")
        frame = store.series(
            metric,
            frequency,
            by or (),
            start,
            parse_when(until, now=end, option="--until"),
            exact=True,
            tz=tz,
        )
        notes = usage_notes(store, frequency, start)
    frame = frame.rename(columns={"unique_id": "series", "ds": "timestamp", "y": metric})
    if fmt is not OutputFormat.table:
        for note in notes:  # beside the CSV or JSON on stdout, never in it
            err_console.print(note, style="dim", highlight=False, markup=False)
    if fmt is OutputFormat.csv:
        typer.echo(to_csv(frame, spreadsheet=True), nl=False)
    elif fmt is OutputFormat.json:
        typer.echo(to_json(frame))
    else:
        zone = f" ({tz})" if tz and frequency.calendar else ""
        console.print(to_table(frame, title=f"{metric} per {frequency.label}{zone}"))
        for note in notes:
            console.print(note, style="dim", highlight=False, markup=False)
        if until is None and not frequency.months and not frame.empty and end is not None:
            # A last row far below the others reads as an outage; say when it is only partial.
            newest = pd.Timestamp(frame["timestamp"].max())
            reach = reaches(end, width, opened)
            if reach <= newest:  # how much of it is in is not known
                console.print(
                    f"the last bucket, from {iso_utc(newest)}, was stored from a provider's "
                    "report before it ended (a pull or an export): its numbers are partial",
                    style="dim",
                    highlight=False,
                )
            elif reach < newest + pd.Timedelta(seconds=frequency.seconds):
                console.print(
                    f"the last bucket, from {iso_utc(newest)}, holds the data up to "
                    f"{iso_utc(reach)} only: it is still filling, or the data stops inside it",
                    style="dim",
                    highlight=False,
                )
