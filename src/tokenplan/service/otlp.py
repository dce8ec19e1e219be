"""``POST /v1/traces``: OTLP/HTTP trace export (protobuf or JSON, gzip or deflate) into a sink.

Answers as the OTLP/HTTP spec asks: 200 with an ``ExportTraceServiceResponse`` in the request's
encoding (``partial_success.rejected_spans`` counts GenAI spans that were invalid, with the
first reasons); 4xx/5xx with a ``google.rpc.Status`` body. 400 for an undecodable body, 413
when it is over ``max_body`` (before or after decompression), 415 for another Content-Type,
503 when the sink cannot keep the batch (exporters retry 503; they never retry 400).
Spans that are not LLM calls are ignored: they are not errors, so they are not rejected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from fastapi import APIRouter, Depends, Request, Response
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.concurrency import run_in_threadpool

from tokenplan.collect.otel import decode_json, decode_protobuf, usage_from_request
from tokenplan.errors import InvalidInput, TokenplanError
from tokenplan.service.contracts import EventSink
from tokenplan.service.ingest import read_body

__all__ = ["DEFAULT_MAX_BODY", "make_otlp_router"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
DEFAULT_MAX_BODY = 16 << 20
_log = logging.getLogger(__name__)

# google.rpc.Code values used in Status bodies.
_INVALID_ARGUMENT = 3
_RESOURCE_EXHAUSTED = 8
_UNAVAILABLE = 14


class _Refusal(Exception):
    """Ends a request with an HTTP status and a ``google.rpc.Status`` message."""

    def __init__(self, http_status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message


def make_otlp_router(
    sink: EventSink,
    auth_dependency: Callable[..., Any],
    *,
    max_body: int = DEFAULT_MAX_BODY,
    price: Callable[[pa.Table], pa.Table] | None = None,
) -> APIRouter:
    """A router with ``POST /v1/traces`` that hands GenAI spans to ``sink`` as usage rows.

    ``price`` fills the cost of the rows (spans carry none), as `/v1/events` does.
    """
    router = APIRouter()

    @router.post(
        "/v1/traces",
        dependencies=[Depends(auth_dependency)],
        summary="OTLP/HTTP traces (GenAI spans become usage events)",
    )
    async def export_traces(request: Request) -> Response:
        kind = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if kind not in (PROTOBUF, JSON):
            return _status_response(
                415,
                _Refusal(
                    415,
                    _INVALID_ARGUMENT,
                    f"Content-Type {kind!r} is not OTLP; send {PROTOBUF} or {JSON}.",
                ),
                JSON,
            )
        try:
            body = await read_body(
                request.stream(),
                content_encoding=request.headers.get("content-encoding"),
                content_length=request.headers.get("content-length"),
                limit=max_body,
            )
        except InvalidInput as exc:  # 413 too large, 415 encoding, 400 broken stream
            code = _RESOURCE_EXHAUSTED if exc.status == 413 else _INVALID_ARGUMENT
            return _status_response(exc.status, _Refusal(exc.status, code, str(exc)), kind)
        try:
            decoded = decode_protobuf(body) if kind == PROTOBUF else decode_json(body)
            usage = usage_from_request(decoded)
            if usage.table.num_rows:
                await run_in_threadpool(_accept, sink, usage.table, price)
        except _Refusal as refusal:
            return _status_response(refusal.http_status, refusal, kind)
        except InvalidInput as exc:
            return _status_response(400, _Refusal(400, _INVALID_ARGUMENT, str(exc)), kind)
        if usage.ignored:
            _log.debug("OTLP export: %d of %d spans are not LLM calls", usage.ignored, usage.spans)
        answer = ExportTraceServiceResponse()
        if usage.rejected:
            answer.partial_success.rejected_spans = usage.rejected
            answer.partial_success.error_message = usage.error_message
        return _message_response(200, answer, kind)

    return router


def _accept(sink: EventSink, table: pa.Table, price: Callable[[pa.Table], pa.Table] | None) -> None:
    try:
        sink.accept(table if price is None else price(table))
    except InvalidInput as exc:
        raise _Refusal(400, _INVALID_ARGUMENT, f"the batch was refused: {exc}") from None
    except TokenplanError as exc:
        # Nothing of the batch was kept: 503 makes the exporter retry it later.
        _log.warning("OTLP export: the sink could not keep the batch: %s", exc)
        raise _Refusal(503, _UNAVAILABLE, "the store could not keep the batch; retry.") from None


def _status_response(http_status: int, refusal: _Refusal, kind: str) -> Response:
    return _message_response(http_status, Status(code=refusal.code, message=refusal.message), kind)


def _message_response(http_status: int, message: Message, kind: str) -> Response:
    if kind == PROTOBUF:
        return Response(message.SerializeToString(), http_status, media_type=PROTOBUF)
    text = json_format.MessageToJson(message, indent=None)
    return Response(text, http_status, media_type=JSON)
