"""`tokenplan forecast` and `tokenplan backtest`: the forecast contract of DESIGN.md."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tokenplan.cli.app import DbOption, app, console, err_console
from tokenplan.cli.output import safe, to_csv, to_table
from tokenplan.cli.series_input import load_series
from tokenplan.cli.targets import writable_file
from tokenplan.errors import InvalidInput
from tokenplan.events import DIMENSIONS, METRICS
from tokenplan.frequency import Frequency, parse_freq
from tokenplan.plan.history import partly_covered
from tokenplan.plan.periods import check_tz
from tokenplan.store.series_sql import TOTAL_ID
from tokenplan.timestamps import from_wall_time, to_wall_time

InputOption = Annotated[
    Path | None,
    typer.Option("--input", help="Usage series CSV or any importable file; default: the store."),
]
MetricOption = Annotated[str, typer.Option(help=", ".join(METRICS))]
# Far beyond any useful forecast (two years of hours, two weeks of minutes); the engine's
# sample paths for a horizon of 10^8 would need tens of GiB per series.
MAX_HORIZON = 20_000
HorizonOption = Annotated[
    int,
    typer.Option(
        help=f"Buckets to forecast ahead (at most {MAX_HORIZON:,}).", min=1, max=MAX_HORIZON
    ),
]
FreqOption = Annotated[
    str | None, typer.Option(help="Bucket width (default: the input's own spacing).")
]
TzOption = Annotated[
    str | None,
    typer.Option("--tz", help="Time zone whose midnight starts 1d, 1w and 1mo buckets (UTC)."),
]
ByOption = Annotated[
    str | None,
    typer.Option(help="Split by model, team, feature, key_id, provider or user."),
]
LevelOption = Annotated[
    list[int] | None, typer.Option("--level", help="Interval level in % (repeatable).")
]
EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        help=(
            "Where the per-series work runs: local, or dask, ray or spark in shards of about "
            "500 series (extras: pip install 'tokenplan\\[dask]' etc.)."
        ),
    ),
]
EngineAddressOption = Annotated[
    str | None,
    typer.Option(
        "--engine-address",
        help=(
            "Dask scheduler (tcp://host:8786), Ray cluster (ray://host:10001 or auto) or Spark "
            "master (spark://host:7077, local[4]); default: start one on this machine."
        ),
    ),
]


def _check(metric: str, by: str | None) -> list[str]:
    if metric not in METRICS:
        raise InvalidInput(
            f"--metric {metric!r} cannot be forecast; use one of {', '.join(METRICS)}."
        )
    if by is not None and by not in DIMENSIONS:
        raise InvalidInput(f"--by {by!r} is not a dimension; use one of {', '.join(DIMENSIONS)}.")
    return [by] if by else []


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        # Off a terminal the spinner cannot be erased and would leave a blank stderr line.
        disable=not err_console.is_terminal,
    )


# ``--out -``: the CSV goes to standard output, as Unix tools read a dash.
STDOUT = "-"


@app.command()
def forecast(
    input_path: InputOption = None,
    metric: MetricOption = "total_tokens",
    horizon: Annotated[
        int | None,
        typer.Option(
            help=(
                "Buckets to forecast ahead (default 168; 3 with --freq 1mo; "
                f"at most {MAX_HORIZON:,})."
            ),
            min=1,
            max=MAX_HORIZON,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="CSV to write (- for standard output); default: print a table."),
    ] = None,
    freq: Annotated[
        str | None,
        typer.Option(help="Bucket width, or 1mo for calendar months (default: the input's own)."),
    ] = None,
    by: ByOption = None,
    level: LevelOption = None,
    tz: TzOption = None,
    engine: EngineOption = "local",
    engine_address: EngineAddressOption = None,
    db: DbOption = None,
) -> None:
    """Forecast a usage metric with calibrated intervals (models chosen by backtest).

    ``--freq 1mo`` forecasts the days and sums whole calendar months from the days' joint
    paths; timestamps are always the UTC start of each bucket.
    """
    from tokenplan.forecast.result import contract_frame

    dims = _check(metric, by)
    on = _engine(engine, engine_address)
    if out is not None and str(out) != STDOUT:
        writable_file(out, "--out")
    levels = tuple(level or (80, 95))
    zone = check_tz(tz) if tz else None
    months = parse_freq(freq, calendar=True).months if freq else 0
    if months > 1:
        raise InvalidInput(f"--freq {freq}: use 1mo; several months per bucket are not supported.")
    with _session(on) as live:
        frame, frequency = load_series(
            input_path=input_path,
            db=db,
            metric=metric,
            freq="1d" if months else freq,
            by=dims,
            tz=zone,
            engine=live.get("engine"),
        )
        # A last bucket the data covers only in part is forecast, not read: say so.
        partial = [t for t in frame.attrs.get("partial", ()) if t > frame["ds"].max()]
        # The engine wants evenly spaced buckets: calendar ones are handed over in wall time.
        wall = zone is not None and frequency.calendar
        if wall:
            frame = frame.assign(ds=to_wall_time(frame["ds"], str(zone)))
        with _progress() as progress:
            progress.add_task(f"forecasting {frame['unique_id'].nunique()} series", total=None)
            hierarchy = TOTAL_ID if dims else None
            fc, notes = _run(frame, frequency, months, horizon, levels, hierarchy, live)
    if wall:
        fc = fc.assign(ds=from_wall_time(fc["ds"], str(zone)))
    table = contract_frame(fc, levels)
    label = "1mo" if months else frequency.label
    if out is None:
        zone_note = f" ({zone})" if wall else ""
        console.print(to_table(table, title=f"{metric} forecast, {label} buckets{zone_note}"))
        for uid, note in sorted(notes.items()):
            console.print(safe(f"{uid}: {note}"), style="dim")
        for start in partial:
            console.print(partly_covered(start), style="dim", highlight=False)
        return
    if str(out) == STDOUT:
        # The CSV alone on standard output, so it can be piped; what was done goes to stderr.
        sys.stdout.write(to_csv(table))
        sys.stdout.flush()
        err_console.print(f"wrote {len(table):,} rows to standard output", highlight=False)
        for start in partial:
            err_console.print(partly_covered(start), style="dim", highlight=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_csv(table))
    console.print(f"wrote {len(table):,} rows to {out}", highlight=False)
    for start in partial:
        # Why the file's first timestamp is not one step after the data's last.
        console.print(partly_covered(start), style="dim", highlight=False)


def _run(
    frame: pd.DataFrame,
    frequency: Frequency,
    months: int,
    horizon: int | None,
    levels: tuple[int, ...],
    hierarchy: str | None,
    on: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The forecast frame and the engine's notes: per bucket, or per month summed from days."""
    from tokenplan.forecast import forecast as run_forecast
    from tokenplan.forecast.calendar import forecast_months

    # This command shows no backtest table: its coverage columns are not counted.
    on = {**on, "backtest_coverage": False}
    if months:
        fc, result = forecast_months(
            frame,
            months=horizon or 3,
            levels=levels,
            hierarchy=hierarchy,
            forecaster=partial(run_forecast, **on),
        )
        return fc, {uid: f"{note} (daily, summed per month)" for uid, note in result.notes.items()}
    result = run_forecast(
        frame,
        horizon=horizon or 168,
        freq=frequency.label,
        levels=levels,
        hierarchy=hierarchy,
        **on,
    )
    return result.frame, result.notes


@app.command()
def backtest(
    input_path: InputOption = None,
    metric: MetricOption = "total_tokens",
    horizon: HorizonOption = 168,
    freq: FreqOption = None,
    by: ByOption = None,
    level: LevelOption = None,
    engine: EngineOption = "local",
    engine_address: EngineAddressOption = None,
    db: DbOption = None,
) -> None:
    """Score every forecasting candidate on rolling origins: MASE, sMAPE and coverage."""
    from tokenplan.forecast import forecast as run_forecast

    dims = _check(metric, by)
    on = _engine(engine, engine_address)
    levels = tuple(level or (80, 95))
    with _session(on) as live:
        frame, frequency = load_series(
            input_path=input_path,
            db=db,
            metric=metric,
            freq=freq,
            by=dims,
            engine=live.get("engine"),
        )
        with _progress() as progress:
            progress.add_task("backtesting candidates on rolling origins", total=None)
            result = run_forecast(
                frame, horizon=horizon, freq=frequency.label, levels=levels, **live
            )
    console.print(score_table(result.backtest, metric))
    # Why each series got its method: the rule's reasoning, with the runner-up's score.
    for uid, note in sorted(result.notes.items()):
        console.print(f"{uid}: {note}", highlight=False)


def _engine(engine: str, address: str | None) -> dict[str, Any]:
    """The forecast's engine keywords (none for local), checked before any data is read."""
    name = engine.strip().lower()
    if name == "local":
        if address is not None:
            raise InvalidInput(
                "--engine-address needs --engine dask, ray or spark; the local engine has none."
            )
        return {}
    from tokenplan.scale.engines import parse_engine

    parse_engine(name)  # an unknown name or a missing extra fails here, not after the read
    return {"engine": name, "engine_address": address}


@contextmanager
def _session(on: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The engine, opened once for the lake rollup and the forecast (nothing for local)."""
    if not on:
        yield {}
        return
    from tokenplan.scale.engines import open_engine, parse_engine

    with open_engine(parse_engine(on["engine"]), on["engine_address"]) as target:
        yield {"engine": target}


def score_table(scores: pd.DataFrame, metric: str) -> Table:
    """Backtest scores per series and candidate, the chosen one marked."""
    table = Table(title=f"backtest of {metric} forecasts (lower MASE is better)")
    cov = [c for c in scores.columns if c.startswith("coverage_")]
    table.add_column("series", overflow="fold")
    table.add_column("method", no_wrap=True)
    for name in (
        "MASE",
        "sMAPE %",
        *(c.replace("coverage_", "cover ") + "%" for c in cov),
        "chosen",
    ):
        table.add_column(name, justify="right")
    uncounted = bool(cov) and bool((scores[cov].isna().any(axis=1) & scores["mase"].notna()).any())
    if uncounted:
        table.caption = (
            "cover —: coverage needs two backtest windows or more (each window is scored with"
            " the bands the others give)"
        )
    # Saved results from before the column have NaN scores and no reason.
    explained = "why" in scores and bool(scores["why"].fillna("").astype(bool).any())
    if explained:
        table.add_column("why no score", overflow="fold")
    ordered = scores.sort_values(["unique_id", "mase"], na_position="last")
    for values in ordered.to_dict("records"):
        table.add_row(
            str(values["unique_id"]),
            str(values["method"]),
            _score(values["mase"]),
            _score(values["smape"]),
            *(_pct(values[c]) for c in cov),
            "✔" if values["chosen"] else "",
            *([str(values["why"])] if explained else []),
            style="bold green" if values["chosen"] else None,
        )
    return table


def _score(value: float | None) -> str:
    """A score, or ``n/a`` (never ``inf`` or ``nan``): the table's last column says why."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{float(value):.3f}"


def _pct(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{100 * float(value):.0f}%"
