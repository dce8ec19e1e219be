"""`tokenplan report`: write the self-contained HTML capacity report (and its numbers as JSON)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from tokenplan.capacity import MAX_HORIZON_HOURS as MAX_HOURS
from tokenplan.cli.app import DbOption, app, console
from tokenplan.cli.targets import writable_file
from tokenplan.errors import InvalidInput
from tokenplan.pricing import FxRate, PriceBook, parse_fx
from tokenplan.report import Currency, build_report, write_html, write_json
from tokenplan.store import open_store
from tokenplan.store.duckdb_store import resolve_db_path


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("report.html"),
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report's numbers as JSON.")
    ] = None,
    horizon: Annotated[
        int, typer.Option(help="Hours to forecast ahead (at most a year).", min=1, max=MAX_HOURS)
    ] = 168,
    budgets: Annotated[Path | None, typer.Option(help="Budgets TOML file.")] = None,
    limits: Annotated[
        Path | None,
        typer.Option(
            help="Rate limits TOML (default: $TOKENPLAN_LIMITS, else the shipped example)."
        ),
    ] = None,
    prices: Annotated[Path | None, typer.Option(help="Price overrides TOML file.")] = None,
    currency: Annotated[
        str | None, typer.Option(help="Second currency to show beside USD, e.g. CNY.")
    ] = None,
    fx: Annotated[
        str | None, typer.Option(help="Units of --currency per USD, e.g. 7.3 (required with it).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Write the capacity report: history, forecast, budgets, headroom, spikes and advice."""
    writable_file(out, "--out")
    if json_out is not None:
        writable_file(json_out, "--json")
    rate = _currency(currency, fx)
    # Both an exact rate for prices and budgets, and the report's plain one ("--fx" says why).
    shown = (
        None
        if rate is None
        else Currency(code=rate.currency, rate=float(rate.per_usd), note="--fx")
    )
    book = PriceBook(prices, fx=rate)
    with open_store(resolve_db_path(db), mode="read") as store:
        result = build_report(
            store,
            prices=book,
            fx=shown,
            budgets=_budgets(budgets),
            limits=_limits(limits, observed=_observed(store)),
            horizon_hours=horizon,
        )
    path = write_html(result, out)
    if json_out is not None:
        write_json(result, json_out)
        console.print(str(json_out), markup=False, highlight=False)
    console.print(str(path), markup=False, highlight=False)


def _currency(code: str | None, fx: str | None) -> FxRate | None:
    """The second currency; the rate is explicit because a stale built-in one would mislead."""
    rate = parse_fx(code, fx)
    if code is not None and rate is None:
        raise InvalidInput("--currency and --fx go together, e.g. --currency CNY --fx 7.3.")
    return rate


def _limits(path: Path | None, *, observed: Any = ()) -> Any:
    """The limits `tokenplan headroom` reads too: --limits, $TOKENPLAN_LIMITS, else the example.

    Rate limits seen in provider headers (instrumented clients) fill in uncovered models.
    """
    from tokenplan.plan.limits import resolve_limits

    if path is not None and not path.exists():
        raise InvalidInput(f"the limits file {path} does not exist.")
    return resolve_limits(path, env=os.environ, observed=observed)


def _observed(store: Any) -> Any:
    from tokenplan.store.rate_limits import read_rate_limits

    return read_rate_limits(store)


def _budgets(path: Path | None) -> Any:
    if path is None:
        return None
    # A folder or an unreadable file is the loader's to explain (one line naming the file).
    if not path.exists():
        raise InvalidInput(f"the budgets file {path} does not exist.")
    from tokenplan.plan.budgets import load_budgets

    return load_budgets(path)
