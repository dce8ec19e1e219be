"""`tokenplan reconcile`: SDK records against the provider's reports, per day and model."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from decimal import Decimal
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from tokenplan.cli.app import DbOption, app, console
from tokenplan.cli.output import OutputFormat, safe, to_csv
from tokenplan.errors import InvalidInput
from tokenplan.plan.periods import parse_when
from tokenplan.plan.reconcile import Drift, reconcile
from tokenplan.store import open_store
from tokenplan.store.duckdb_store import resolve_db_path
from tokenplan.store.reconcile import reconcile_sides


@app.command("reconcile")
def reconcile_(
    since: Annotated[str, typer.Option(help="Start (inclusive), ISO 8601 UTC.")],
    until: Annotated[str, typer.Option(help="End (exclusive), ISO 8601 UTC.")],
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table, csv or json.")] = (
        OutputFormat.table
    ),
    db: DbOption = None,
) -> None:
    """Compare what the SDK recorded with what the provider reports: drift per day and model."""
    start, end = parse_when(since, option="--since"), parse_when(until, option="--until")
    if start is None or end is None or start >= end:
        raise InvalidInput(f"--since {since} is not before --until {until}.")
    with open_store(resolve_db_path(db), mode="read") as store:
        rows = reconcile(reconcile_sides(store, start, end))
    if fmt is OutputFormat.json:
        console.print_json(json.dumps({"rows": [_json(r) for r in rows]}))
        return
    if fmt is OutputFormat.csv:
        # The JSON's fields and exact decimal strings, one row per day, provider and model.
        frame = pd.DataFrame([_json(r) for r in rows], columns=[f.name for f in fields(Drift)])
        typer.echo(to_csv(frame, spreadsheet=True), nl=False)
        return
    console.print(_table(rows))


def _json(row: Drift) -> dict[str, Any]:
    out = asdict(row)
    out["day"] = row.day.isoformat()
    # Fixed-point: str(Decimal) writes a zero drift as "0E-12".
    return {k: (format(v, "f") if isinstance(v, Decimal) else v) for k, v in out.items()}


def _table(rows: list[Drift]) -> Table:
    bases = {r.cost_basis for r in rows if r.cost_basis}
    one_basis = len(bases) == 1
    notes = any(r.note for r in rows)
    table = Table(title="SDK vs provider (drift = SDK - provider)")
    names = ["day", "provider", "model", "SDK tokens", "provider tokens", "token drift"]
    names += ["SDK cost", "provider cost", "cost drift"] + (["note"] if notes else [])
    for name in names:
        # Folded, never cut to "110,…": a narrow terminal must not hide the figures.
        table.add_column(
            name,
            justify="right" if "token" in name or "cost" in name else "left",
            overflow="fold",
        )
    for r in rows:
        basis = f" ({r.cost_basis})" if r.cost_basis and not one_basis else ""
        table.add_row(
            r.day.isoformat(),
            safe(r.provider),
            safe(r.model),
            _int(r.sdk_tokens),
            _int(r.provider_tokens),
            _int(r.token_drift) + _pct(r.token_drift_pct),
            _usd(r.sdk_cost_usd),
            _usd(r.provider_cost_usd) + basis,
            _usd(r.cost_drift_usd) + _pct(r.cost_drift_pct),
            *([safe(r.note)] if notes else []),
        )
    if not rows:
        table.caption = "nothing recorded on either side in this range"
    elif one_basis:
        table.caption = f"provider cost: {safe(bases.pop())}"
    return table


def _int(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _usd(value: Decimal | None) -> str:
    return "—" if value is None else f"${value:,.4f}"


def _pct(value: float | None) -> str:
    return "" if value is None else f" ({value:+.2f}%)"
