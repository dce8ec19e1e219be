"""`tokenplan reconcile`: SDK records against the provider's reports, per day and model."""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table

from tokenplan.cli.app import DbOption, app, console
from tokenplan.cli.output import OutputFormat, safe
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
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = (
        OutputFormat.table
    ),
    db: DbOption = None,
) -> None:
    """Compare what the SDK recorded with what the provider reports: drift per day and model."""
    start, end = parse_when(since, option="--since"), parse_when(until, option="--until")
    if start is None or end is None or start >= end:
        raise InvalidInput(f"--since {since} is not before --until {until}.")
    if fmt is OutputFormat.csv:
        raise InvalidInput("--format: reconcile prints table or json.")
    with open_store(resolve_db_path(db), mode="read") as store:
        rows = reconcile(reconcile_sides(store, start, end))
    if fmt is OutputFormat.json:
        console.print_json(json.dumps({"rows": [_json(r) for r in rows]}))
        return
    console.print(_table(rows))


def _json(row: Drift) -> dict[str, Any]:
    out = asdict(row)
    out["day"] = row.day.isoformat()
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in out.items()}


def _table(rows: list[Drift]) -> Table:
    table = Table(title="SDK vs provider (drift = SDK - provider)")
    for name in (
        "day",
        "provider",
        "model",
        "SDK tokens",
        "provider tokens",
        "token drift",
        "SDK cost",
        "provider cost",
        "cost drift",
        "note",
    ):
        table.add_column(name, justify="right" if "token" in name or "cost" in name else "left")
    for r in rows:
        table.add_row(
            r.day.isoformat(),
            safe(r.provider),
            safe(r.model),
            _int(r.sdk_tokens),
            _int(r.provider_tokens),
            _int(r.token_drift) + _pct(r.token_drift_pct),
            _usd(r.sdk_cost_usd),
            _usd(r.provider_cost_usd) + (f" ({r.cost_basis})" if r.cost_basis else ""),
            _usd(r.cost_drift_usd) + _pct(r.cost_drift_pct),
            safe(r.note),
        )
    if not rows:
        table.caption = "nothing recorded on either side in this range"
    return table


def _int(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _usd(value: Decimal | None) -> str:
    return "—" if value is None else f"${value:,.4f}"


def _pct(value: float | None) -> str:
    return "" if value is None else f" ({value:+.2f}%)"
