"""`tokenplan serve`: run the HTTP service over one store (ingest, reads, plans, /metrics)."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from tokenplan.capacity import MAX_HORIZON_HOURS as MAX_HOURS
from tokenplan.cli.app import DbOption, app, err_console
from tokenplan.errors import InvalidInput
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
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis",
            help="Take events into this Redis (stream + live counters) instead of the store: "
            "for several collectors feeding one store.",
            show_default=False,
        ),
    ] = None,
    drain: Annotated[
        bool,
        typer.Option(
            help="With --redis: also drain the stream into --db in this process (the store's "
            "one writer). --no-drain: a collector only, with no store (reads answer 503).",
        ),
    ] = True,
    db: DbOption = None,
) -> None:
    """Run the HTTP service: POST /v1/events, /v1/traces; GET /v1/usage, /v1/forecast, /v1/plan,
    /report, /metrics.

    Events are committed to the store (or, with --redis, to the Redis stream) before they are
    acknowledged; plans are recomputed in the background. Every route but /healthz needs
    `Authorization: Bearer <token>`, and the service refuses to start without a token.
    """
    from prometheus_client import CollectorRegistry

    from tokenplan.capacity import PlanSettings
    from tokenplan.plan.budgets import load_budgets
    from tokenplan.plan.limits import resolve_limits
    from tokenplan.pricing import PriceBook
    from tokenplan.service.app import make_app
    from tokenplan.service.contracts import EventSink
    from tokenplan.service.metrics import register_metrics
    from tokenplan.service.plans import PlanConfig, PlanRefresher
    from tokenplan.service.redis_connection import redact
    from tokenplan.service.settings import ServiceSettings, load_tokens
    from tokenplan.service.sinks import DuckDBSink
    from tokenplan.store import open_store
    from tokenplan.store.queries import DuckDBQueries

    # Everything that can be wrong is checked before the store is opened or a port bound.
    if not drain and redis_url is None:
        raise InvalidInput(
            "--no-drain makes a collector that only writes to Redis; give --redis URL too "
            "(without --redis, events go straight to the store)."
        )
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
    if redis_url is not None and not drain:
        if not _run_server(_collector_only(settings, redis_url, book), host, port, log_level):
            raise typer.Exit(1)
        return
    store = open_store(resolve_db_path(db), mode="write")
    idle = True
    try:
        plans = PlanRefresher(
            store.reader, config, interval=refresh, min_gap=min(NEW_DATA_GAP, refresh)
        )
        closing: list[Callable[[], object]] = []
        sink: EventSink
        if redis_url is None:
            sink = DuckDBSink(store, on_commit=[plans.data_changed])
            where = f"store {store.path}"
        else:
            sink, drainer = _redis_path(redis_url, store, plans.data_changed)
            closing.append(drainer.close)
            where = f"Redis {redact(redis_url)} drained into store {store.path}"
        closing.append(sink.close)
        registry = CollectorRegistry()
        # /metrics reads the store's totals at scrape time and the plan's figures once per plan.
        collector = register_metrics(
            registry,
            totals=DuckDBQueries(store),
            plans=plans,
            budgets=config.budgets,
            limits=config.limits,
        )
        closing.append(collector.close)
        plans.add_listener(collector.prepare)
        if alerts is not None:
            plans.add_listener(_alert_loop(alerts, config))
        service = make_app(
            settings, sink=sink, plans=plans, registry=registry, reader=store.reader, prices=book
        )
        err_console.print(
            f"tokenplan serve: {where}, {len(settings.tokens)} API token(s), "
            f"plans every {refresh:g} s",
            markup=False,
            highlight=False,
        )
        plans.start()
        if redis_url is not None:
            drainer.start()
        try:
            started = _run_server(service, host, port, log_level)
        finally:
            # Requests still waiting on the writer are committed before the store closes.
            idle = plans.close()
            for close in closing:
                idle = close() is not False and idle
    finally:
        # A plan still being read from a cursor must not see its database closed under it;
        # every commit is in DuckDB's WAL already, so leaving it to process exit loses nothing.
        if idle:
            store.close()
    if not started:
        raise typer.Exit(1)


def _run_server(service: Any, host: str, port: int, log_level: str) -> bool:
    """Serve until stopped; whether the server started at all."""
    import uvicorn

    # httpx logs whole request URLs at INFO; a webhook URL holds the robot's token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
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
    # uvicorn re-raises the SIGTERM/SIGINT that stopped it once it is done, into the handlers
    # it found: with the default ones the process would die before the store is closed and
    # the drainer's batch in hand acknowledged. Handlers that only note it let that cleanup run.
    previous = {sig: signal.signal(sig, _noted) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return bool(server.started)


def _noted(signum: int, frame: object) -> None:
    """A stop signal uvicorn already acted on; the caller closes and returns normally."""


def _redis_path(url: str, store: Any, changed: Callable[[], None]) -> tuple[Any, Any]:
    """The Redis sink collectors write to, and the drainer moving its stream into ``store``."""
    import socket

    from tokenplan.service.drain import BackgroundDrainer, Drainer
    from tokenplan.service.live import open_redis_sink
    from tokenplan.service.redis_connection import connect, redact

    sink = open_redis_sink(url)
    drainer = Drainer(
        connect(url),
        store,
        consumer=f"{socket.gethostname()}-serve",
        on_commit=lambda ids: changed(),
        where=redact(url),
    )
    return sink, BackgroundDrainer(drainer)


def _collector_only(settings: Any, url: str, prices: Any) -> Any:
    """A service that only takes events into Redis (``--redis URL --no-drain``): no store."""
    from prometheus_client import (
        CollectorRegistry,
        GCCollector,
        PlatformCollector,
        ProcessCollector,
    )

    from tokenplan.service.app import make_app
    from tokenplan.service.live import open_redis_sink
    from tokenplan.service.redis_connection import redact

    sink = open_redis_sink(url)
    registry = CollectorRegistry()
    # No store to total: /metrics tells how this collector process itself is doing.
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    err_console.print(
        f"tokenplan serve: collector into Redis {redact(url)} (not draining), "
        f"{len(settings.tokens)} API token(s)",
        markup=False,
        highlight=False,
    )
    return make_app(settings, sink=sink, plans=None, registry=registry, prices=prices)


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
