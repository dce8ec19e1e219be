"""`tokenplan report`: write the self-contained HTML capacity report (and its numbers as JSON)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from tokenplan.capacity import MAX_HORIZON_HOURS as MAX_HOURS
from tokenplan.cli.app import DbOption, app, console
from tokenplan.cli.prices_cmd import fx_option
from tokenplan.cli.targets import writable_file
from tokenplan.errors import InvalidInput
from tokenplan.pricing import FxRate, PriceBook
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
    limits: Annotated[Path | None, typer.Option(help="Rate limits TOML file.")] = None,
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
    book = _price_book(prices, rate)
    with open_store(resolve_db_path(db), mode="read") as store:
        result = build_report(
            store,
            prices=book,
            fx=rate,
            budgets=_load(budgets, "budgets"),
            limits=_load(limits, "limits"),
            horizon_hours=horizon,
        )
    path = write_html(result, out)
    if json_out is not None:
        write_json(result, json_out)
        console.print(str(json_out), markup=False, highlight=False)
    console.print(str(path), markup=False, highlight=False)


def _currency(code: str | None, fx: str | None) -> Currency | None:
    """The second currency; the rate is explicit because a stale built-in one would mislead."""
    if code is None and fx is None:
        return None
    if code is None or fx is None:
        raise InvalidInput("--currency and --fx go together, e.g. --currency CNY --fx 7.3.")
    rate = fx_option(fx, code)
    return Currency(code=code.strip().upper(), rate=float(rate), note="--fx")


def _price_book(path: Path | None, rate: Currency | None) -> PriceBook:
    """genai-prices list prices, with the overrides file on top when one is given."""
    fx = None if rate is None else FxRate(currency=rate.code, per_usd=Decimal(str(rate.rate)))
    return PriceBook(path, fx=fx)


def _load(path: Path | None, what: str) -> Any:
    if path is None:
        return None
    if what == "limits":
        from tokenplan.plan.limits import load_limits

        return load_limits(path)
    from tokenplan.plan.budgets import load_budgets

    return load_budgets(path)
