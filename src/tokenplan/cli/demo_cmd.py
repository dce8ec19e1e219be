"""`tokenplan demo`: the whole flow on the bundled real trace (ServeGen, Apache-2.0)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from tokenplan.cli.app import app, console
from tokenplan.cli.forecast_cmd import contract_frame
from tokenplan.collect import import_file
from tokenplan.prices import PriceBook
from tokenplan.store import DuckDBStore

DEMO_DATA = "servegen_language"
FORECAST_DAYS = 7
# ServeGen's anonymised models have no list price or published family; the demo assumes that
# part of m-large's traffic could be served by m-small, to show a priced model switch.
DEMO_ALTERNATIVES = {"m-large": "m-small"}


def bundled(name: str) -> Path:
    """Path of a file shipped in ``tokenplan/data/servegen_language``."""
    return Path(str(resources.files("tokenplan") / "data" / DEMO_DATA / name))


@app.command()
def demo(
    db: Annotated[Path, typer.Option("--db", help="Store for the demo.")] = Path("out/demo.duckdb"),
    out: Annotated[Path, typer.Option("--out", help="Folder for the forecast and report.")] = Path(
        "out"
    ),
) -> None:
    """Import the bundled ServeGen trace, summarise it, forecast a week and write the report."""
    out.mkdir(parents=True, exist_ok=True)
    book = PriceBook(bundled("prices.toml"))
    with DuckDBStore(db) as store:
        summary = import_file(store, bundled("hourly.csv"), prices=book)
        console.print(
            f"[bold]Imported[/bold] {summary.rows_read:,} hourly rows of ServeGen "
            f"({', '.join(summary.models)}) into {db}: {summary.inserted:,} new, "
            f"{summary.duplicates:,} already there. Prices: {bundled('prices.toml').name} "
            "(demo assumption, see the file)."
        )
        console.print(daily_table(store))
        console.print(forecast_week(store, out / "forecast.csv"))
        report_path = write_report(store, book, out)
    console.print(f"[bold]Report:[/bold] {report_path.resolve()}", highlight=False)


def daily_table(store: DuckDBStore) -> Table:
    """Usage by model and day: requests, tokens and cost."""
    frames = {
        metric: store.series(metric, "1d", ["model"], exact=True)
        for metric in ("requests", "total_tokens", "cost_usd")
    }
    merged = frames["requests"].rename(columns={"y": "requests"})
    for metric in ("total_tokens", "cost_usd"):
        merged[metric] = frames[metric]["y"].to_numpy()
    table = Table(title="Usage by model and day (UTC)")
    for name in ("day", "model", "requests", "total tokens", "cost (USD)"):
        table.add_column(name, justify="left" if name in ("day", "model") else "right")
    for row in merged.to_dict("records"):
        usd: Any = row["cost_usd"]
        cost = "—" if usd is None or pd.isna(usd) else f"${usd:,.2f}"
        table.add_row(
            f"{row['ds']:%Y-%m-%d}",
            str(row["unique_id"]),
            f"{row['requests']:,}",
            f"{row['total_tokens']:,}",
            cost,
        )
    return table


def forecast_week(store: DuckDBStore, path: Path) -> Table:
    """Forecast total tokens a week ahead by model (coherent with the total); daily sums."""
    from tokenplan.forecast import forecast

    history = store.series("total_tokens", "1h", ["model"])
    result = forecast(history, horizon=24 * FORECAST_DAYS, freq="1h", hierarchy="total")
    path.write_text(contract_frame(result.frame, (80, 95)).to_csv(index=False))
    series = sorted(result.frame["unique_id"].unique())
    table = Table(
        title=f"Forecast: total tokens per UTC day, next {FORECAST_DAYS} days (80% interval)",
        caption="; ".join(f"{uid}: {result.chosen.get(uid, '?')}" for uid in series),
    )
    table.add_column("day")
    for uid in series:
        table.add_column(uid, justify="right")
    days = result.frame["ds"].dt.floor("D").drop_duplicates().sort_values()
    for day in days:
        cells = []
        for uid in series:
            band = result.sum_interval(uid, day, day + pd.Timedelta(days=1), levels=(80,))
            cells.append(
                f"{_short(band['point'])} ({_short(band['lo_80'])}–{_short(band['hi_80'])})"
            )
        table.add_row(f"{day:%Y-%m-%d}", *cells)
    return table


def write_report(store: DuckDBStore, book: PriceBook, out: Path) -> Path:
    """The self-contained HTML report and its JSON twin."""
    from tokenplan.plan.advice import DEFAULT_ALTERNATIVES
    from tokenplan.plan.budgets import load_budgets
    from tokenplan.plan.limits import load_limits
    from tokenplan.report import build_report, write_html, write_json

    report = build_report(
        store,
        prices=book,
        fx=book.fx,
        budgets=load_budgets(bundled("budgets.toml")),
        limits=load_limits(bundled("limits.toml")),
        alternatives={**DEFAULT_ALTERNATIVES, **DEMO_ALTERNATIVES},
    )
    write_json(report, out / "report.json")
    return write_html(report, out / "report.html")


def _short(value: float) -> str:
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"
