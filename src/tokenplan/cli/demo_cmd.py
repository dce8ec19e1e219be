"""`tokenplan demo`: the whole flow on the bundled real trace (ServeGen, Apache-2.0)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from tokenplan.capacity import CapacityPlan, PlanSettings, make_plan
from tokenplan.cli.app import app, console
from tokenplan.cli.output import safe
from tokenplan.cli.output import usd as usd_text
from tokenplan.cli.targets import writable_folder
from tokenplan.collect import import_file
from tokenplan.pricing import PriceBook
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
    writable_folder(out, "--out")
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
        # One plan: the table, forecast.csv and the report all read its numbers.
        plan = make_plan(store, settings=PlanSettings(horizon_hours=24 * FORECAST_DAYS))
        console.print(forecast_week(plan, out / "forecast.csv"))
        report_path = write_report(plan, book, out)
    console.print("[bold]Report:[/bold]", safe(report_path.resolve()), highlight=False)


def daily_table(store: DuckDBStore) -> Table:
    """Usage by model and day: requests, tokens and cost; a day the data ends in is partial."""
    frames = {
        metric: store.series(metric, "1d", ["model"], exact=True)
        for metric in ("requests", "total_tokens", "cost_usd")
    }
    merged = frames["requests"].rename(columns={"y": "requests"})
    for metric in ("total_tokens", "cost_usd"):
        merged[metric] = frames[metric]["y"].to_numpy()
    end = store.summary().end
    # The last day is whole only if its last bucket ends at midnight.
    last_hour = None if end is None else pd.Timestamp(end).tz_localize(None).floor("h")
    partial_day = None if last_hour is None or last_hour.hour == 23 else last_hour.normalize()
    table = Table(title="Usage by model and day (UTC)")
    for name in ("day", "model", "requests", "total tokens", "cost (USD)"):
        table.add_column(name, justify="left" if name in ("day", "model") else "right")
    for row in merged.to_dict("records"):
        day = pd.Timestamp(row["ds"])
        label = f"{day:%Y-%m-%d}"
        if partial_day is not None and day == partial_day:
            label += f" (partial, to {last_hour:%H}:59)"
        table.add_row(
            label,
            str(row["unique_id"]),
            f"{row['requests']:,}",
            f"{row['total_tokens']:,}",
            cost_cell(row["cost_usd"], str(row["unique_id"])),
        )
    return table


def cost_cell(usd: Any, model: str) -> str:
    """A cost, or "unknown" with the command that finds the missing price (never $0.00)."""
    if usd is None or pd.isna(usd):
        return f"unknown: tokenplan prices {model}"
    return usd_text(usd)


def forecast_week(plan: CapacityPlan, path: Path) -> Table:
    """The plan's coherent total-tokens forecast by model: ``forecast.csv`` and daily sums."""
    frame = plan.contract_csv(plan.metric, dimension="model")
    path.write_text(frame.to_csv(index=False))
    fc = plan.forecast_frame(plan.metric)
    assert fc is not None  # contract_csv raised otherwise
    series = ["total", *sorted(u for u in fc["unique_id"].unique() if u.startswith("model="))]
    table = Table(
        title=f"Forecast: {plan.metric.replace('_', ' ')} per UTC day, next {FORECAST_DAYS} days"
        " (mean; total with its 80% range)",
        caption="Model columns sum to the total (one coherent forecast).",
    )
    table.add_column("day")
    for uid in series:
        table.add_column(uid.removeprefix("model="), justify="right")
    days = fc.groupby(fc["ds"].dt.floor("D"))["ds"].nunique()
    for day, hours in days.items():
        start = pd.Timestamp(str(day))
        end = start + pd.Timedelta(days=1)
        cells = []
        for uid in series:
            part = fc[(fc["unique_id"] == uid) & (fc["ds"] >= start) & (fc["ds"] < end)]
            cell = _short(float(part["mean"].sum()))
            if uid == "total":
                lo, hi = plan.sum_range(plan.metric, start, end)
                if lo is not None and hi is not None:
                    cell += f" ({_short(lo)}–{_short(hi)})"
            cells.append(cell)
        label = f"{start:%Y-%m-%d}" + ("" if hours == 24 else f" (partial, {hours} h)")
        table.add_row(label, *cells)
    return table


def write_report(plan: CapacityPlan, book: PriceBook, out: Path) -> Path:
    """The self-contained HTML report and its JSON twin, read from the demo's plan."""
    from tokenplan.plan.advice import DEFAULT_ALTERNATIVES
    from tokenplan.plan.budgets import load_budgets
    from tokenplan.plan.limits import load_limits
    from tokenplan.report import build_report, write_html, write_json

    report = build_report(
        plan.queries,
        plan=plan,
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
