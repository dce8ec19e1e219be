"""`tokenplan project | budget | headroom | spikes`: readings of one capacity plan.

Each command builds the plan its flags describe (`tokenplan.capacity.make_plan`) and prints one
of its readings, so a figure shown here is the one `tokenplan report` shows for the same store
and settings. All four print ``--format table`` or ``json``; budget, headroom and spikes exit 1
when an alert is critical, so a cron job or CI step can act on it.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tokenplan.capacity import MAX_HORIZON_HOURS as MAX_HOURS
from tokenplan.capacity import CapacityPlan, PlanSettings, make_plan
from tokenplan.cli.app import DbOption, app, console
from tokenplan.cli.output import plain, safe
from tokenplan.cli.series_input import open_source, own_frequency
from tokenplan.errors import InvalidInput
from tokenplan.events import DIMENSIONS, METRICS
from tokenplan.plan.history import partly_covered
from tokenplan.plan.periods import Period, check_tz, parse_when
from tokenplan.plan.spikes import SURGE
from tokenplan.pricing import parse_fx
from tokenplan.readings import budget_json, budgets_json, headroom_json, spikes_json
from tokenplan.store import DuckDBStore, open_store
from tokenplan.store.duckdb_store import resolve_db_path
from tokenplan.store.queries import queries_for
from tokenplan.timestamps import iso_utc

if TYPE_CHECKING:
    from tokenplan.plan.budgets import BudgetStatus
    from tokenplan.plan.headroom import HeadroomCheck
    from tokenplan.plan.spikes import Anomaly


class Format(StrEnum):
    """How a planning command prints its reading."""

    table = "table"
    json = "json"


FormatOption = Annotated[Format, typer.Option("--format", help="table or json.")]


def _plan(
    store: DuckDBStore, as_of: str | None, option: str = "--as-of", **settings: Any
) -> CapacityPlan:
    """The plan of ``store`` judged as of ``as_of`` (ISO, or a span before the data's end)."""
    queries = queries_for(store)
    end = queries.summary().end
    cut = None if end is None else parse_when(as_of, now=end, option=option)
    if option == "--until" and cut is not None:
        # --until is exclusive: the last bucket judged is the one before it.
        cut -= timedelta(microseconds=1)
    plan = make_plan(queries, settings=PlanSettings(as_of=cut, **settings))
    if plan.empty:
        raise InvalidInput(f"{store.path} holds no usage yet; import some with `tokenplan import`.")
    return plan


def _filling_note(plan: CapacityPlan) -> None:
    """Say why "so far" stops before the data's last calls: their bucket is still filling."""
    if plan.as_of is not None and plan.filled < 1:
        console.print(partly_covered(plan.as_of), style="dim", highlight=False)


def _echo_json(payload: dict[str, Any]) -> None:
    typer.echo(json.dumps(payload, indent=2))


@app.command()
def project(
    input_path: Annotated[
        Path | None,
        typer.Option(
            "--input", help="Usage series CSV or any importable file; default: the store."
        ),
    ] = None,
    metric: Annotated[str, typer.Option(help=", ".join(METRICS))] = "cost_usd",
    period: Annotated[
        Period, typer.Option(help="day, week (from Monday) or month.")
    ] = Period.month,
    limit: Annotated[
        float | None, typer.Option(help="The limit X for p_over_limit and breach_at.")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="Judge on data up to this time (ISO, or 1d = a day before the last)."
        ),
    ] = None,
    tz: Annotated[
        str, typer.Option("--tz", help="Time zone whose midnight starts periods.")
    ] = "UTC",
    freq: Annotated[
        str | None, typer.Option(help="Bucket width (default: the data's own).")
    ] = None,
    fmt: FormatOption = Format.table,
    db: DbOption = None,
) -> None:
    """Project the current period's total with 80%/95% ranges and P(total > limit).

    The budgets' computation: `--metric cost_usd --limit X` gives what a budget of X on all
    spend shows in `tokenplan budget` and the report. A projection is not an alert, so the exit
    code is 0 whatever the chance of passing the limit (its contract; use `budget` to alert).
    """
    if metric not in METRICS:
        raise InvalidInput(f"--metric {metric!r} is not known; use one of {', '.join(METRICS)}.")
    if limit is not None and not limit >= 0:
        raise InvalidInput(f"--limit {limit} must be a number >= 0.")
    check_tz(tz)
    with open_source(input_path, db) as store:
        frequency = own_frequency(store, freq)
        plan = _plan(store, as_of, freq=frequency.label)
        result = plan.projection(metric, period=period.value, limit=limit, tz=tz)
    payload = {k: plain(v) for k, v in result.to_dict().items()}
    if fmt is Format.json:
        typer.echo(json.dumps(payload))
        return
    table = Table(title=f"{metric} this {period.value} ({tz})", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for key, value in payload.items():
        table.add_row(safe(key), safe(_cell(value)))
    console.print(table)
    console.print(safe(result.method), style="dim")
    _filling_note(plan)


def _add_row(table: Table, *cells: Any) -> None:
    """A table row whose cells are data: a model named ``[/x]`` prints as ``[/x]``."""
    table.add_row(*(safe(c) for c in cells))


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.1%}" if 0 <= value <= 1 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@app.command()
def budget(
    config: Annotated[Path, typer.Option("--config", help="Budgets TOML file.")] = Path(
        "budgets.toml"
    ),
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Judge on data up to this time (ISO, or 1d = a day ago)."),
    ] = None,
    currency: Annotated[
        str | None, typer.Option(help="Currency of --fx, e.g. CNY (else the file's \\[fx] table).")
    ] = None,
    fx: Annotated[str | None, typer.Option(help="Units of --currency per USD, e.g. 7.3.")] = None,
    horizon: Annotated[
        int, typer.Option(help="Hours the plan forecasts (as the report's --horizon).", min=1)
    ] = 168,
    fmt: FormatOption = Format.table,
    db: DbOption = None,
) -> None:
    """Spend against each budget: so far, projected, overrun chance and alerts.

    Exits 1 when any alert is critical (a budget breached or likely to be), so a cron job or CI
    step can act on it; 0 otherwise.
    """
    from tokenplan.plan.budgets import load_budgets

    budgets = load_budgets(config)
    rate = parse_fx(currency, fx)
    with open_store(resolve_db_path(db), mode="read") as store:
        plan = _plan(store, as_of, horizon_hours=horizon)
        statuses = plan.budget_statuses(budgets, fx=rate)
    critical = any(a.severity == "critical" for s in statuses for a in s.alerts)
    if fmt is Format.json:
        _echo_json(budgets_json(plan, statuses))
    else:
        _budget_table(statuses, config)
        _filling_note(plan)
    if critical:
        raise typer.Exit(1)


def _budget_table(statuses: list[BudgetStatus], config: Path) -> None:
    table = Table(title=safe(f"budgets ({config})"))
    for col in (
        "budget",
        "period",
        "limit",
        "spent",
        "projected",
        "80% range",
        "P(over)",
        "breach",
    ):
        table.add_column(col, justify="left" if col in ("budget", "period", "breach") else "right")
    for s in statuses:
        row = budget_json(s)
        cur = row["currency"]

        def money(key: str, row: dict[str, Any] = row, cur: str = cur) -> str:
            value = row[key]
            return "—" if value is None else f"{value:,.2f} {cur}"

        breach = row["breach_at"] or "—"
        if row["breached"] and row["breach_at"]:
            breach = f"breached on {row['breach_at'][:10]}"
        elif row["breach_at"]:
            breach = f"expected {row['breach_at']}"
        _add_row(
            table,
            row["name"],
            row["period"],
            f"{float(s.budget.amount):,.2f} {cur}"
            + ("" if cur == "USD" or s.limit_usd is None else f" (${s.limit_usd:,.2f})"),
            money("so_far"),
            money("projected"),
            "—" if row["lo_80"] is None else f"{row['lo_80']:,.2f}–{row['hi_80']:,.2f} {cur}",
            "—" if row["p_over_limit"] is None else f"{row['p_over_limit']:.0%}",
            breach,
        )
    console.print(table)
    for s in statuses:
        for alert in s.alerts:
            style = "red" if alert.severity == "critical" else "yellow"
            console.print(safe(alert.message), style=style)


@app.command()
def headroom(
    limits: Annotated[
        Path | None,
        typer.Option(
            "--limits",
            help="Limits TOML (default: $TOKENPLAN_LIMITS, else the shipped dated example).",
        ),
    ] = None,
    horizon: Annotated[
        int, typer.Option(help="Hours to look ahead (at most a year).", min=1, max=MAX_HOURS)
    ] = 168,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Judge on data up to this time (ISO, or 1d = a day ago)."),
    ] = None,
    fmt: FormatOption = Format.table,
    db: DbOption = None,
) -> None:
    """Forecast busiest-minute use against each rate limit; the tier or PTUs that hold p99.

    Exits 1 when a limit of the current tier is likely hit (P >= 50% in the window).
    """
    from tokenplan.plan.limits import resolve_limits
    from tokenplan.store.rate_limits import read_rate_limits

    with open_store(resolve_db_path(db), mode="read") as store:
        # Limits seen in provider headers fill in models the limits file does not cover.
        config = resolve_limits(limits, env=os.environ, observed=read_rate_limits(store))
        plan = _plan(store, as_of, horizon_hours=horizon)
        check = plan.headroom(config)
    if isinstance(check, str):
        raise InvalidInput(f"cannot check rate-limit headroom: {check}; import usage first.")
    if fmt is Format.json:
        _echo_json(headroom_json(check, plan))
    else:
        _headroom_table(check, horizon)
        _filling_note(plan)
    if any(r.severity == "critical" for r in check.rows):
        raise typer.Exit(1)


def _headroom_table(check: HeadroomCheck, horizon: int) -> None:
    table = Table(title=safe(f"rate-limit headroom, next {horizon} h ({check.source})"))
    for col in (
        "limit",
        "kind",
        "value/min",
        "p99 busiest minute",
        "headroom",
        f"P(hit) in {horizon} h",
        "first P>5%",
        "tier holding p99",
    ):
        table.add_column(col, justify="right" if col not in ("limit", "kind") else "left")
    for r in check.rows:
        _add_row(
            table,
            f"{r.provider} {r.family} {r.tier}",
            r.kind.upper(),
            f"{r.limit:,}",
            f"{r.p99_peak:,.0f}",
            f"{r.headroom_share:.0%}",
            f"{r.p_hit_max:.0%}",
            "—" if r.first_risk_at is None else iso_utc(r.first_risk_at),
            r.holding_tier or "none listed",
        )
    console.print(table)
    for ptu in check.ptu:
        console.print(
            safe(f"Azure PTU {ptu.model} ({ptu.deployment}): {ptu.units} PTU — {ptu.note}")
        )
    for row in check.rows:
        if row.severity == "critical":
            console.print(
                safe(
                    f"{row.provider} {row.family} {row.tier}: {row.kind.upper()} is likely hit "
                    f"(P = {row.p_hit_max:.0%} in the next {horizon} h)."
                ),
                style="red",
            )
    for note in check.notes:
        console.print(safe(note), style="dim")


@app.command()
def spikes(
    metric: Annotated[
        str | None,
        typer.Option(help="requests, total_tokens, cost_usd, ... (default: the plan's tokens)."),
    ] = None,
    by: Annotated[str, typer.Option(help="Dimension to attribute a spike to.")] = "model",
    freq: Annotated[str, typer.Option(help="Bucket width.")] = "1h",
    recent: Annotated[int, typer.Option(help="How many newest buckets to check.", min=1)] = 24,
    k: Annotated[
        int,
        typer.Option(
            "--k",
            help=f"Buckets in a row above the band that make a spike (one at {SURGE:g}x usual).",
            min=1,
        ),
    ] = 2,
    since: Annotated[
        str | None, typer.Option(help="Read data from this time (ISO, or 7d = a week ago).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Read data up to this time (ISO, or 1d = a day ago).")
    ] = None,
    tz: Annotated[
        str, typer.Option("--tz", help="Time zone for the 'usual for 03:00' label.")
    ] = "UTC",
    fmt: FormatOption = Format.table,
    db: DbOption = None,
) -> None:
    """Spikes and drops in the newest buckets, sized against the same hour and attributed.

    Exits 1 when a spike or drop is still going on at the newest bucket.
    """
    if by not in DIMENSIONS:
        raise InvalidInput(f"--by {by!r} is not a dimension; use one of {', '.join(DIMENSIONS)}.")
    if metric is not None and metric not in METRICS:
        raise InvalidInput(f"--metric {metric!r} is not known; use one of {', '.join(METRICS)}.")
    check_tz(tz)
    with open_store(resolve_db_path(db), mode="read") as store:
        plan = _plan(store, until, option="--until", freq=freq)
        start = _since(since, plan)
        found = plan.anomalies(recent, metric=metric, by=by, k=k, tz=tz, since=start)
    shown = metric or plan.metric
    if fmt is Format.json:
        _echo_json(spikes_json(plan, found, metric=shown, freq=freq))
    else:
        _spikes_table(found, recent, freq, shown)
    if any(a.severity == "critical" for a in found):
        raise typer.Exit(1)


def _since(since: str | None, plan: CapacityPlan) -> datetime | None:
    if since is None or plan.summary.end is None:
        return None
    start = parse_when(since, now=plan.summary.end)
    return None if start is None else start.to_pydatetime()


def _spikes_table(found: list[Anomaly], recent: int, freq: str, metric: str) -> None:
    table = Table(title=safe(f"spikes and drops in the last {recent} x {freq} of {metric}"))
    for col in ("kind", "start", "buckets", "actual", "usual", "size", "cause"):
        table.add_column(
            col, justify="right" if col in ("buckets", "actual", "usual", "size") else "left"
        )
    for a in found:
        _add_row(
            table,
            a.kind + (" (ongoing)" if a.ongoing else ""),
            iso_utc(a.start),
            str(a.buckets),
            f"{a.actual:,.0f}",
            f"{a.expected:,.0f}",
            f"{a.peak_ratio:,.1f}x",
            f"{a.dimension} {a.culprit} ({a.culprit_share:.0%})" if a.culprit else "—",
        )
    console.print(table)
    for a in found:
        console.print(safe(a.message), style="red" if a.severity == "critical" else None)
    if not found:
        console.print("nothing unusual.")
