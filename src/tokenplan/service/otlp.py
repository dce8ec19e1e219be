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
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.concurrency import run_in_threadpool

from tokenplan.collect.otel import decode_json, decode_protobuf, usage_from_request
from tokenplan.errors import InvalidInput, TokenplanError
from tokenplan.service.contracts import EventSink

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
) -> APIRouter:
    """A router with ``POST /v1/traces`` that hands GenAI spans to ``sink`` as usage rows."""
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
            body = await read_limited(
                request.stream(),
                encoding=request.headers.get("content-encoding"),
                declared=request.headers.get("content-length"),
                limit=max_body,
            )
            decoded = decode_protobuf(body) if kind == PROTOBUF else decode_json(body)
            usage = usage_from_request(decoded)
            if usage.table.num_rows:
                await run_in_threadpool(_accept, sink, usage.table)
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


def _accept(sink: EventSink, table: Any) -> None:
    try:
        sink.accept(table)
    except InvalidInput as exc:
        raise _Refusal(400, _INVALID_ARGUMENT, f"the batch was refused: {exc}") from None
    except TokenplanError as exc:
        # Nothing of the batch was kept: 503 makes the exporter retry it later.
        _log.warning("OTLP export: the sink could not keep the batch: %s", exc)
        raise _Refusal(503, _UNAVAILABLE, "the store could not keep the batch; retry.") from None


async def read_limited(
    chunks: AsyncIterator[bytes], *, encoding: str | None, declared: str | None, limit: int
) -> bytes:
    """The body, decompressed, read only while it stays within ``limit`` bytes."""
    name = (encoding or "identity").strip().lower()
    wbits = {"identity": None, "gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
    if name not in wbits:
        raise _Refusal(
            415, _INVALID_ARGUMENT, f"Content-Encoding {name!r} is not read; use gzip or none."
        )
    too_large = _Refusal(
        413, _RESOURCE_EXHAUSTED, f"the body is over {limit:,} bytes; export smaller batches."
    )
    if (declared or "").strip().isdigit() and int(declared or 0) > limit:
        raise too_large
    bits = wbits[name]
    inflater = None if bits is None else zlib.decompressobj(wbits=bits)
    received = 0
    out = bytearray()
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise too_large
        if inflater is None:
            out += chunk
            continue
        try:
            # At most one byte past the limit: enough to know, never a bomb's worth.
            out += inflater.decompress(chunk, limit - len(out) + 1)
        except zlib.error as exc:
            raise InvalidInput(f"the body is not valid {name} ({exc}).") from None
        if len(out) > limit:
            raise too_large
    if inflater is not None and not inflater.eof:
        raise InvalidInput(f"the {name} body ends early; send the whole stream.")
    return bytes(out)


def _status_response(http_status: int, refusal: _Refusal, kind: str) -> Response:
    return _message_response(http_status, Status(code=refusal.code, message=refusal.message), kind)


def _message_response(http_status: int, message: Message, kind: str) -> Response:
    if kind == PROTOBUF:
        return Response(message.SerializeToString(), http_status, media_type=PROTOBUF)
    text = json_format.MessageToJson(message, indent=None)
    return Response(text, http_status, media_type=JSON)
