"""`tokenplan project | budget | headroom | spikes`: the planning commands."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from tokenplan.capacity import MAX_HORIZON_HOURS as MAX_HOURS
from tokenplan.cli.app import DbOption, app, console
from tokenplan.cli.output import OutputFormat, iso, plain, safe
from tokenplan.cli.series_input import load_series
from tokenplan.errors import InvalidInput
from tokenplan.events import DIMENSIONS
from tokenplan.plan.periods import Period, check_tz, parse_when
from tokenplan.store import open_store
from tokenplan.store.duckdb_store import resolve_db_path

PROJECT_METRICS = ("requests", "input_tokens", "output_tokens", "total_tokens", "cost_usd")


@app.command()
def project(
    input_path: Annotated[
        Path | None,
        typer.Option(
            "--input", help="Usage series CSV or any importable file; default: the store."
        ),
    ] = None,
    metric: Annotated[str, typer.Option(help=", ".join(PROJECT_METRICS))] = "cost_usd",
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
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="json or table.")
    ] = OutputFormat.table,
    db: DbOption = None,
) -> None:
    """Project the current period's total with 80%/95% ranges and P(total > limit)."""
    from tokenplan.plan.projection import project as run_project

    if metric not in PROJECT_METRICS:
        raise InvalidInput(
            f"--metric {metric!r} is not known; use one of {', '.join(PROJECT_METRICS)}."
        )
    if limit is not None and not limit >= 0:
        raise InvalidInput(f"--limit {limit} must be a number >= 0.")
    check_tz(tz)
    frame, frequency = load_series(input_path=input_path, db=db, metric=metric, freq=freq)
    last = pd.Timestamp(frame["ds"].max()) if len(frame) else pd.Timestamp.now(UTC)
    # "--as-of 1d" is a day before the data's last bucket, so a replayed trace acts like live data.
    cut = parse_when(as_of, now=last, option="--as-of")
    result = run_project(
        frame[["ds", "y"]], period=period, limit=limit, as_of=cut, tz=tz, freq=frequency.label
    )
    payload = {k: plain(v) for k, v in result.to_dict().items()}
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(payload))
        return
    table = Table(title=f"{metric} this {period.value} ({tz})", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for key, value in payload.items():
        table.add_row(safe(key), safe(_cell(value)))
    console.print(table)
    console.print(safe(result.method), style="dim")


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
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="json or table.")
    ] = OutputFormat.table,
    db: DbOption = None,
) -> None:
    """Spend against each budget: so far, projected, overrun chance and alerts.

    Exits 1 when any alert is critical (a budget breached or likely to be), so a cron job or CI
    step can act on it; 0 otherwise.
    """
    from tokenplan.plan.budgets import evaluate_budgets, load_budgets, scopes_needed

    budgets = load_budgets(config)
    with open_store(resolve_db_path(db), mode="read") as store:
        end = store.summary().end
        cut = parse_when(
            as_of, now=end if end is not None else pd.Timestamp.now(UTC), option="--as-of"
        )
        spend = {
            scope: store.series("cost_usd", "1h", () if scope == "all" else (scope,))
            for scope in scopes_needed(budgets)
        }
    statuses = evaluate_budgets(budgets, spend, as_of=cut)
    critical = any(a.severity == "critical" for s in statuses for a in s.alerts)
    if fmt is OutputFormat.json:
        typer.echo(json.dumps({"budgets": [_budget_json(s) for s in statuses]}))
    else:
        _budget_table(statuses, config)
    if critical:
        raise typer.Exit(1)


def _budget_json(s: Any) -> dict[str, Any]:
    p, b = s.projection, s.budget
    rate = float(b.amount) / s.limit_usd if s.limit_usd else None

    def local(usd: float | None) -> float | None:
        return None if usd is None or rate is None else usd * rate

    return {
        "name": b.name,
        "period": b.period.value,
        "currency": b.currency,
        "amount": plain(b.amount),
        "amount_usd": s.limit_usd,
        "so_far": local(p.so_far if p else None),
        "so_far_usd": p.so_far if p else None,
        "projected": local(p.projected if p else None),
        "projected_usd": p.projected if p else None,
        "lo_80": local(p.lo_80 if p else None),
        "hi_80": local(p.hi_80 if p else None),
        "p_over_limit": s.p_overrun,
        "breached": bool(p and s.limit_usd is not None and p.so_far > s.limit_usd),
        "breach_at": None if p is None or p.breach_at is None else iso(p.breach_at),
        "alerts": [
            {"kind": a.kind, "severity": a.severity, "message": a.message} for a in s.alerts
        ],
    }


def _budget_table(statuses: list[Any], config: Path) -> None:
    table = Table(title=f"budgets ({config})")
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
        row = _budget_json(s)
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
        Path | None, typer.Option("--limits", help="Limits TOML (default: the shipped example).")
    ] = None,
    horizon: Annotated[
        int, typer.Option(help="Hours to look ahead (at most a year).", min=1, max=MAX_HOURS)
    ] = 168,
    db: DbOption = None,
) -> None:
    """Forecast busiest-minute use against each rate limit; the tier or PTUs that hold p99."""
    import os

    from tokenplan.forecast import forecast as run_forecast
    from tokenplan.plan.headroom import learn_peak_ratio, plan_headroom, size_ptu
    from tokenplan.plan.limits import resolve_limits

    config = resolve_limits(limits, env=os.environ)
    with open_store(resolve_db_path(db), mode="read") as store:
        forecasts, ratios = {}, {}
        width = store.bucket_seconds()
        for metric in ("requests", "input_tokens", "output_tokens"):
            frame = store.series(metric, "1h", ("model",))
            if frame.empty or frame["y"].isna().all():
                continue
            result = run_forecast(
                frame.fillna({"y": 0.0}), horizon=horizon, freq="1h", levels=(80, 95)
            )
            forecasts[metric] = result.frame
            # Minute peaks are learnable only from minute-or-finer rows; a week of them is plenty.
            minutely = None
            if width is None or width <= 60:
                since = store.summary().end
                since = since - timedelta(days=7) if since is not None else None
                minutely = store.series(metric, "1min", (), since)
            ratios[metric] = learn_peak_ratio(minutely)
        cached = store.series("cache_read_tokens", "1d", ())["y"].sum()
        inputs = store.series("input_tokens", "1d", ())["y"].sum()
    if not forecasts:
        raise InvalidInput("the store holds no requests or token counts; import usage first.")
    share = float(cached / inputs) if inputs and inputs == inputs else 0.0
    rows = plan_headroom(forecasts, config, ratios, cache_read_share=share)
    table = Table(title=f"rate-limit headroom, next {horizon} h ({config.source})")
    for col in (
        "limit",
        "kind",
        "value/min",
        "p99 peak",
        "headroom",
        "first P>5%",
        "tier holding p99",
    ):
        table.add_column(col, justify="right" if col not in ("limit", "kind") else "left")
    for r in rows:
        _add_row(
            table,
            f"{r.provider} {r.family} {r.tier}",
            r.kind.upper(),
            f"{r.limit:,}",
            f"{r.p99_peak:,.0f}",
            f"{r.headroom_share:.0%}",
            "—" if r.first_risk_at is None else iso(r.first_risk_at),
            r.holding_tier or "none listed",
        )
    console.print(table)
    for ptu in size_ptu(forecasts, config, ratios, cache_read_share=share):
        console.print(
            safe(f"Azure PTU {ptu.model} ({ptu.deployment}): {ptu.units} PTU — {ptu.note}")
        )
    notes = {r.note for r in rows}
    for note in sorted(notes):
        console.print(safe(note), style="dim")
    seen = sorted({str(m) for f in forecasts.values() for m in f["unique_id"].unique()})
    for model in config.unlimited(seen):
        console.print(
            safe(f"{model}: no rate limit configured in {config.source}; add one to check it.")
        )
    if not rows:
        console.print("no configured limit matches the models in the store.")


@app.command()
def spikes(
    metric: Annotated[str, typer.Option(help="requests, total_tokens, cost_usd, ...")] = "requests",
    by: Annotated[str, typer.Option(help="Dimension to attribute a spike to.")] = "model",
    freq: Annotated[str, typer.Option(help="Bucket width.")] = "1h",
    recent: Annotated[int, typer.Option(help="How many newest buckets to check.", min=1)] = 24,
    k: Annotated[
        int, typer.Option("--k", help="Buckets in a row above the band that make a spike.", min=1)
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
    db: DbOption = None,
) -> None:
    """Spikes and drops in the newest buckets, sized against the same hour and attributed."""
    from tokenplan.plan.spikes import find_anomalies

    if by not in DIMENSIONS:
        raise InvalidInput(f"--by {by!r} is not a dimension; use one of {', '.join(DIMENSIONS)}.")
    check_tz(tz)
    with open_store(resolve_db_path(db), mode="read") as store:
        end = store.summary().end
        now = end if end is not None else pd.Timestamp.now(UTC)
        start, stop = parse_when(since, now=now), parse_when(until, now=now, option="--until")
        frame = store.series(
            metric,
            freq,
            (by,),
            None if start is None else start.to_pydatetime(),
            None if stop is None else stop.to_pydatetime(),
        )
    found = find_anomalies(frame, recent=recent, k=k, dimension=by, tz=tz, metric=metric)
    table = Table(title=f"spikes and drops in the last {recent} x {freq} of {metric}")
    for col in ("kind", "start", "buckets", "actual", "usual", "size", "cause"):
        table.add_column(
            col, justify="right" if col in ("buckets", "actual", "usual", "size") else "left"
        )
    for a in found:
        _add_row(
            table,
            a.kind,
            iso(a.start),
            str(a.buckets),
            f"{a.actual:,.0f}",
            f"{a.expected:,.0f}",
            f"{a.peak_ratio:,.1f}x",
            f"{a.dimension} {a.culprit} ({a.culprit_share:.0%})" if a.culprit else "—",
        )
    console.print(table)
    for a in found:
        console.print(safe(a.message))
    if not found:
        console.print("nothing unusual.")
