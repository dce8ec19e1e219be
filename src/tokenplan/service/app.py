"""`make_app`: the FastAPI application (ingest, reads, Prometheus), with one error handler.

Routes (all but ``/healthz`` and the docs need ``Authorization: Bearer <token>``):

    POST /v1/events    JSON array or NDJSON of UsageEvents (gzip accepted); committed first
    GET  /v1/usage     metric at a frequency, split by dimensions (`tokenplan usage`'s rows)
    GET  /v1/forecast  the cached plan's forecast rows (the forecast CSV contract, as JSON)
    GET  /v1/plan      budgets, headroom and spikes of the cached plan (the CLI's JSON)
    GET  /report       the HTML report of the cached plan
    GET  /metrics      Prometheus text from the registry passed in
    GET  /healthz      liveness, and when the cached plan was computed
    POST /v1/traces    OTLP/HTTP traces (protobuf or JSON): GenAI spans become usage events

Every failure is ``{"error": message}`` with the status the `TokenplanError` carries.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
import pyarrow as pa
from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

import tokenplan
from tokenplan.errors import InvalidInput, TokenplanError
from tokenplan.events import METRICS
from tokenplan.frequency import parse_freq
from tokenplan.plan.periods import parse_when
from tokenplan.readings import records
from tokenplan.service.contracts import EventSink, PlanSnapshot
from tokenplan.service.ingest import body_format, parse_events, read_body, refuse_ahead
from tokenplan.service.otlp import make_otlp_router
from tokenplan.service.plans import NotReady, PlanReader, PlanReadings
from tokenplan.service.settings import ServiceSettings
from tokenplan.store import DuckDBStore
from tokenplan.store.usage_notes import usage_notes
from tokenplan.timestamps import iso_utc

if TYPE_CHECKING:
    import pandas as pd

    from tokenplan.collect.importer import Pricer

__all__ = ["MAX_USAGE_ROWS", "make_app"]

log = logging.getLogger(__name__)

# Reads the Authorization header (and documents it in /docs); `Tokens.check` judges it.
BEARER = HTTPBearer(auto_error=False, description="One of the service's API tokens.")
# Batches parsed at once (parsing is Python, bound by the GIL; more threads only contend).
PARSE_THREADS = 2
# Rows one /v1/usage answer holds at most (a year of minutes would be 525,600 a series).
MAX_USAGE_ROWS = 100_000


class Accepted(BaseModel):
    """What a batch did: new events stored, and events whose request_id was already stored."""

    accepted: int
    duplicates: int


class EventDoc(BaseModel):
    """One API call (documentation of the body; `tokenplan.events.UsageEvent` validates it)."""

    ts: str = Field(description="When the call finished: ISO 8601 with a zone, or Unix seconds.")
    provider: str | None = Field(None, description="anthropic, openai, ... (default unknown).")
    model: str
    input_tokens: int = Field(ge=0, description="All prompt tokens, cached ones included.")
    output_tokens: int = Field(ge=0)
    cache_read_tokens: int = Field(0, ge=0)
    cache_write_tokens: int = Field(0, ge=0)
    latency_ms: float | None = Field(None, ge=0)
    status: str = Field("ok", description="ok, error or rate_limited.")
    cost_usd: str | float | None = Field(None, description="Priced from prices when absent.")
    team: str | None = None
    feature: str | None = None
    user: str | None = None
    key_id: str | None = Field(None, description="The key's name or id, never the key.")
    request_id: str | None = Field(None, description="Idempotency: counted once per id.")


_EVENTS_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"type": "array", "items": EventDoc.model_json_schema()}},
        "application/x-ndjson": {"schema": {"type": "string", "description": "One event a line."}},
    },
}


def make_app(
    settings: ServiceSettings,
    *,
    sink: EventSink,
    plans: PlanReader | None,
    registry: CollectorRegistry,
    reader: Callable[[], DuckDBStore] | None = None,
    prices: Pricer | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    """The service over ``sink`` (where events go), ``plans`` (what reads serve) and a registry.

    Without ``plans`` (a collector that only takes events) plan reads answer 503.

    ``reader`` opens a store handle for one `/v1/usage` request (`DuckDBStore.reader`); without
    it that route answers 503. ``prices`` fills the cost of events posted without one, as
    `tokenplan import` does.
    """
    app = FastAPI(
        title="tokenplan",
        version=tokenplan.__version__,
        summary="Capacity planning and cost forecasting for LLM API usage.",
    )

    def authorized(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    ) -> None:
        settings.tokens.check(None if credentials is None else credentials.credentials)

    auth = [Depends(authorized)]
    parsers = anyio.CapacityLimiter(PARSE_THREADS)

    def priced(table: pa.Table) -> pa.Table:
        # One event dated years ahead (a client's clock, a bug) would move every plan there.
        refuse_ahead(table, clock(), settings.max_ahead_seconds)
        return table if prices is None else prices.price_rows(table).table

    # OpenTelemetry apps (OpenLLMetry, OpenLIT, the GenAI conventions) export straight here.
    app.include_router(
        make_otlp_router(sink, authorized, max_body=settings.max_body_bytes, price=priced)
    )

    def latest() -> PlanReadings:
        if plans is None:
            raise NotReady(
                "this service only collects events (serve --redis URL --no-drain); read plans "
                "from the server that drains the stream.",
                3600,
            )
        readings = plans.readings()
        if readings is None:
            raise NotReady(
                "the first plan is still being computed; try again shortly.",
                settings.retry_after_seconds,
            )
        if readings.snapshot.plan.empty and plans.stale():
            raise NotReady(
                "the first events have arrived since the last plan, which found the store "
                "empty; the first plan with them is being computed, try again shortly.",
                settings.retry_after_seconds,
            )
        if readings.snapshot.plan.empty:
            raise NotReady(
                "the store holds no usage yet, so there is no plan; post events to /v1/events.",
                settings.retry_after_seconds,
            )
        return readings

    @app.exception_handler(TokenplanError)
    async def tokenplan_error(request: Request, exc: TokenplanError) -> Response:
        if exc.status == 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        content = {"error": str(exc), **getattr(exc, "details", {})}
        return _json(content, exc.status, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return _json({"error": f"invalid request: {problems}."}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _json({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("%s %s: unexpected %s", request.method, request.url.path, type(exc).__name__)
        return _json({"error": "internal error; the service log has the details."}, 500)

    @app.post(
        "/v1/events",
        dependencies=auth,
        response_model=Accepted,
        openapi_extra={"requestBody": _EVENTS_BODY},
        summary="Post a batch of usage events",
    )
    async def post_events(request: Request) -> Accepted:
        """Store a batch (all or nothing), committed before the answer; retries count once."""
        fmt = body_format(request.headers.get("content-type"))
        body = await read_body(
            request.stream(),
            content_encoding=request.headers.get("content-encoding"),
            content_length=request.headers.get("content-length"),
            limit=settings.max_body_bytes,
        )

        def rows() -> pa.Table:
            return priced(parse_events(body, fmt, settings))

        # Parsing holds the GIL: a few threads at a time keep it busy without thrashing.
        table = await anyio.to_thread.run_sync(rows, limiter=parsers)
        result = await run_in_threadpool(sink.accept, table)
        return Accepted(accepted=result.accepted, duplicates=result.duplicates)

    @app.get("/v1/usage", dependencies=auth, summary="Usage from the store")
    async def get_usage(
        metric: str = "total_tokens",
        freq: str = "1h",
        by: Annotated[list[str] | None, Query()] = None,
        since: str | None = None,
        until: str | None = None,
        tz: str | None = None,
    ) -> Response:
        """``metric`` per ``freq`` bucket split by ``by``: rows as `tokenplan usage` prints."""
        if reader is None:
            raise NotReady("this service has no store to read usage from.", 3600)
        if metric not in METRICS:
            raise InvalidInput(f"metric {metric!r} is not known; use one of {', '.join(METRICS)}.")
        dims = [d.strip() for value in by or () for d in value.split(",") if d.strip()]
        frequency = parse_freq(freq, calendar=True)

        def query() -> tuple[list[dict[str, Any]], list[str]]:
            store = reader()
            try:
                # As `tokenplan usage`: a span such as 7d is counted back from the data's end.
                start = _when(since, "since", lambda: store.summary().end)
                end = _when(until, "until", lambda: store.summary().end)
                frame = store.series(metric, frequency, dims, start, end, exact=True, tz=tz)
                notes = usage_notes(store, frequency, start)
            finally:
                store.close()
            if len(frame) > MAX_USAGE_ROWS:
                raise InvalidInput(
                    f"the answer would have {len(frame):,} rows (at most {MAX_USAGE_ROWS:,}); "
                    "narrow since/until or choose a wider freq."
                )
            frame = frame.rename(columns={"unique_id": "series", "ds": "timestamp", "y": metric})
            return records(frame), notes

        rows, notes = await run_in_threadpool(query)
        return _json(
            {"metric": metric, "freq": frequency.label, "by": dims, "rows": rows, "notes": notes}
        )

    @app.get("/v1/forecast", dependencies=auth, summary="The cached plan's forecast")
    async def get_forecast(metric: str | None = None, by: str | None = None) -> Response:
        """Forecast rows ``series, timestamp, mean, lo_80, hi_80, lo_95, hi_95`` (total first)."""
        readings = latest()
        plan = readings.snapshot.plan
        chosen = metric or plan.metric
        if chosen not in plan.forecasts:
            have = ", ".join(sorted(plan.forecasts)) or "nothing"
            raise InvalidInput(f"the plan forecasts {have}; metric {chosen!r} is not one of them.")
        if by is not None and by not in plan.settings.dimensions:
            raise InvalidInput(
                f"the plan splits by {', '.join(plan.settings.dimensions)}; not by {by!r}."
            )
        rows = records(plan.contract_csv(chosen, by))
        return _json({**_stamp(readings.snapshot), "metric": chosen, "by": by, "rows": rows})

    @app.get("/v1/plan", dependencies=auth, summary="Budgets, headroom and spikes")
    async def get_plan() -> Response:
        """The cached plan's readings: what `tokenplan budget | headroom | spikes` print."""
        readings = latest()
        plan = readings.snapshot.plan
        return _json(
            {
                **_stamp(readings.snapshot),
                "metric": plan.metric,
                "horizon_hours": plan.settings.horizon_hours,
                "budgets": readings.budgets,
                "headroom": readings.headroom,
                "spikes": readings.spikes,
                "notes": list(plan.notes),
            }
        )

    @app.get("/report", dependencies=auth, response_class=HTMLResponse, summary="HTML report")
    async def get_report() -> HTMLResponse:
        """The capacity report of the cached plan."""
        readings = latest()
        return HTMLResponse(readings.report_html, headers={"X-Content-Type-Options": "nosniff"})

    @app.get("/metrics", dependencies=auth, summary="Prometheus metrics")
    async def get_metrics() -> Response:
        """The registry's metrics in Prometheus' text format."""
        text = await run_in_threadpool(generate_latest, registry)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> Response:
        """``ok``, and the age of the cached plan (null before the first)."""
        snapshot = None if plans is None else plans.latest()
        plan: dict[str, Any] | None = None
        if snapshot is not None:
            age = (clock() - snapshot.computed_at).total_seconds()
            plan = {**_stamp(snapshot), "age_seconds": round(age, 3)}
        return _json({"status": "ok", "plan": plan})

    return app


def _when(value: str | None, name: str, data_end: Callable[[], Any]) -> pd.Timestamp | None:
    """A ``since``/``until`` query value: ISO 8601 (without a zone: UTC), or a span such as
    ``7d`` before the data's end (read only for a span: it costs a pass over the store)."""
    try:
        return parse_when(value, option=name)
    except InvalidInput:
        assert value is not None
        return parse_when(value, now=data_end(), option=name)


def _stamp(snapshot: PlanSnapshot) -> dict[str, str | None]:
    return {
        "as_of": None if snapshot.as_of is None else iso_utc(snapshot.as_of),
        "computed_at": iso_utc(snapshot.computed_at),
    }


def _json(content: Any, status: int = 200, *, headers: Mapping[str, str] | None = None) -> Response:
    """JSON with NaN and infinities as null (strict JSON has neither)."""
    text = json.dumps(_finite(content), ensure_ascii=False, separators=(",", ":"))
    return Response(text, status_code=status, media_type="application/json", headers=headers)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return _finite(value.item())
    return value
