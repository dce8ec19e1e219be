"""`tokenplan serve`: run the HTTP service over one store (ingest, reads, plans, /metrics)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from tokenplan.capacity import MAX_HORIZON_HOURS as MAX_HOURS
from tokenplan.cli.app import DbOption, app, err_console
from tokenplan.store.duckdb_store import resolve_db_path

# Seconds after new data before the plan is made again (at most): plans are not free.
NEW_DATA_GAP = 30.0


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8787,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file", help="API tokens, one a line (also $TOKENPLAN_TOKENS, comma-separated)."
        ),
    ] = None,
    budgets: Annotated[Path | None, typer.Option(help="Budgets TOML file.")] = None,
    limits: Annotated[
        Path | None,
        typer.Option(
            help="Rate limits TOML (default: $TOKENPLAN_LIMITS, else the shipped example)."
        ),
    ] = None,
    prices: Annotated[
        Path | None, typer.Option(help="Price overrides TOML (prices events sent without cost).")
    ] = None,
    alerts: Annotated[
        Path | None,
        typer.Option(help="Alerts TOML: webhooks told after each plan refresh (as `alert`)."),
    ] = None,
    refresh: Annotated[
        float, typer.Option(help="Seconds between plan refreshes (sooner after new data).", min=1)
    ] = 300.0,
    horizon: Annotated[
        int, typer.Option(help="Hours the plan forecasts ahead.", min=1, max=MAX_HOURS)
    ] = 168,
    max_body_bytes: Annotated[
        int, typer.Option(help="Largest request body, after decompression.", min=1)
    ] = 8 << 20,
    max_batch: Annotated[int, typer.Option(help="Most events in one request.", min=1)] = 10_000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    db: DbOption = None,
) -> None:
    """Run the HTTP service: POST /v1/events; GET /v1/usage, /v1/forecast, /v1/plan, /report.

    Events are committed to the store before they are acknowledged; plans are recomputed in
    the background. Every route but /healthz needs `Authorization: Bearer <token>`, and the
    service refuses to start without a token.
    """
    import uvicorn
    from prometheus_client import CollectorRegistry

    from tokenplan.capacity import PlanSettings
    from tokenplan.plan.budgets import load_budgets
    from tokenplan.plan.limits import resolve_limits
    from tokenplan.pricing import PriceBook
    from tokenplan.service.app import make_app
    from tokenplan.service.metrics import register_metrics
    from tokenplan.service.plans import PlanConfig, PlanRefresher
    from tokenplan.service.settings import ServiceSettings, load_tokens
    from tokenplan.service.sinks import DuckDBSink
    from tokenplan.store import open_store
    from tokenplan.store.queries import DuckDBQueries

    # Everything that can be wrong is checked before the store is opened or a port bound.
    settings = ServiceSettings(
        tokens=load_tokens(token_file, os.environ),
        max_body_bytes=max_body_bytes,
        max_batch=max_batch,
    )
    book = PriceBook(prices)
    config = PlanConfig(
        settings=PlanSettings(horizon_hours=horizon),
        budgets=None if budgets is None else load_budgets(budgets),
        limits=resolve_limits(limits, env=os.environ),
        prices=book,
    )
    store = open_store(resolve_db_path(db), mode="write")
    idle = True
    try:
        plans = PlanRefresher(
            store.reader, config, interval=refresh, min_gap=min(NEW_DATA_GAP, refresh)
        )
        sink = DuckDBSink(store, on_commit=[plans.data_changed])
        registry = CollectorRegistry()
        # /metrics reads the store's totals at scrape time and the plan's figures once per plan.
        collector = register_metrics(
            registry,
            totals=DuckDBQueries(store),
            plans=plans,
            budgets=config.budgets,
            limits=config.limits,
        )
        plans.add_listener(collector.prepare)
        if alerts is not None:
            plans.add_listener(_alert_loop(alerts, config))
        service = make_app(
            settings, sink=sink, plans=plans, registry=registry, reader=store.reader, prices=book
        )
        err_console.print(
            f"tokenplan serve: store {store.path}, {len(settings.tokens)} API token(s), "
            f"plans every {refresh:g} s",
            markup=False,
            highlight=False,
        )
        # httpx logs whole request URLs at INFO; a webhook URL holds the robot's token.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        plans.start()
        server = uvicorn.Server(
            uvicorn.Config(
                service,
                host=host,
                port=port,
                log_level=log_level.lower(),
                server_header=False,
                timeout_graceful_shutdown=10,
            )
        )
        try:
            server.run()
        finally:
            # Requests still waiting on the writer are committed before the store closes.
            idle = plans.close()
            sink.close()
            collector.close()
    finally:
        # A plan still being read from a cursor must not see its database closed under it;
        # every commit is in DuckDB's WAL already, so leaving it to process exit loses nothing.
        if idle:
            store.close()
    if not server.started:
        raise typer.Exit(1)


def _alert_loop(path: Path, config: Any) -> Callable[[Any], object]:
    """The alert loop `tokenplan alert` runs, told after each plan refresh."""
    import time
    from datetime import UTC, datetime

    import httpx

    from tokenplan.service.alerts_config import load_alerts, make_alert_loop

    return make_alert_loop(
        load_alerts(path, env=os.environ),
        client=httpx.Client(timeout=10.0),
        clock=lambda: datetime.now(UTC),
        sleep=time.sleep,
        budgets=config.budgets,
        limits=config.limits,
    )
