"""``POST /v1/traces`` over real loopback uvicorn, fed by the real OpenTelemetry SDK exporters."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from fastapi import FastAPI, Header, HTTPException
from google.rpc.status_pb2 import Status as RpcStatus
from opentelemetry.exporter.otlp.json.http.trace_exporter import (
    OTLPSpanExporter as JsonSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as ProtoSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from loopback_uvicorn import serve
from tokenplan.errors import StoreError
from tokenplan.service.contracts import AcceptResult
from tokenplan.service.otlp import make_otlp_router
from tokenplan.store import open_store

TOKEN = "otlp-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def require_token(authorization: str | None = Header(default=None)) -> None:
    """The test's stand-in for the service's bearer-token dependency."""
    if authorization != f"Bearer {TOKEN}":
        raise HTTPException(401, "a valid bearer token is required")


@dataclass
class StoreSink:
    """An EventSink writing to a real DuckDB store (the service's own sink does the same)."""

    path: Path
    fail: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self, table: pa.Table) -> AcceptResult:
        if self.fail:
            raise StoreError("the disk is full")
        with self.lock, open_store(self.path) as store:
            result = store.write(table)
        return AcceptResult(result.inserted, result.duplicates)

    def close(self) -> None:
        pass

    def rows(self) -> list[dict[str, Any]]:
        with self.lock, open_store(self.path) as store:
            table = store.connection.sql("SELECT * FROM usage ORDER BY request_id").to_arrow_table()
        return table.to_pylist()


@pytest.fixture
def sink(tmp_path: Path) -> StoreSink:
    return StoreSink(tmp_path / "tokenplan.duckdb")


@pytest.fixture
def base_url(sink: StoreSink) -> Iterator[str]:
    app = FastAPI()
    app.include_router(make_otlp_router(sink, require_token, max_body=64 * 1024))
    with serve(app) as url:
        yield url


def _record_calls(exporter: SpanExporter) -> list[ReadableSpan]:
    """Make four spans as an instrumented app would and export them through ``exporter``."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "checkout", "tokenplan.team": "payments"})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test.genai")
    with tracer.start_as_current_span("chat claude-sonnet-4-5") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-sonnet-4-5",
                "gen_ai.response.model": "claude-sonnet-4-5-20250929",
                "gen_ai.usage.input_tokens": 2000,
                "gen_ai.usage.output_tokens": 150,
                "gen_ai.usage.cache_read.input_tokens": 1500,
                "gen_ai.usage.cache_creation.input_tokens": 300,
            }
        )
        with tracer.start_as_current_span("chat gpt-4o") as inner:  # an older instrumentation
            inner.set_attributes(
                {
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.prompt_tokens": 70,
                    "gen_ai.usage.completion_tokens": 9,
                }
            )
    with tracer.start_as_current_span("GET /health"):
        pass
    with tracer.start_as_current_span("chat gpt-4o") as failed:
        failed.set_attributes(
            {
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "error.type": "RateLimitError",
            }
        )
        failed.set_status(Status(StatusCode.ERROR))
    spans = list(memory.get_finished_spans())
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    return spans


EXPORTERS: dict[str, Callable[[str], SpanExporter]] = {
    "protobuf": lambda url: ProtoSpanExporter(endpoint=url, headers=AUTH, timeout=5),
    "protobuf-gzip": lambda url: ProtoSpanExporter(
        endpoint=url, headers=AUTH, timeout=5, compression=Compression.Gzip
    ),
    "json": lambda url: JsonSpanExporter(endpoint=url, headers=AUTH, timeout=5),
}


@pytest.mark.parametrize("encoding", list(EXPORTERS))
def test_real_exporter_spans_become_usage_rows(
    encoding: str, base_url: str, sink: StoreSink
) -> None:
    exporter = EXPORTERS[encoding](f"{base_url}/v1/traces")
    spans = _record_calls(exporter)
    rows = {r["model"]: r for r in sink.rows()}
    assert set(rows) == {"claude-sonnet-4-5-20250929", "gpt-4o"}
    assert len(sink.rows()) == 3
    claude = rows["claude-sonnet-4-5-20250929"]
    assert (claude["provider"], claude["team"], claude["feature"]) == (
        "anthropic",
        "payments",
        "checkout",
    )
    assert (claude["input_tokens"], claude["output_tokens"]) == (2000, 150)
    assert (claude["cache_read_tokens"], claude["cache_write_tokens"]) == (1500, 300)
    by_id = {r["request_id"]: r for r in sink.rows()}
    for span in spans:
        ctx = span.get_span_context()
        rid = f"{ctx.trace_id:032x}:{ctx.span_id:016x}"
        if span.name == "GET /health":
            assert rid not in by_id
            continue
        row = by_id[rid]
        assert row["ts"] == _naive_utc(span.end_time)
        assert row["latency_ms_sum"] == pytest.approx((span.end_time - span.start_time) / 1e6)
    failed = [r for r in sink.rows() if r["failed_requests"]]
    assert len(failed) == 1
    assert failed[0]["input_tokens"] is None
    assert failed[0]["rate_limited_requests"] == 1
    exporter.shutdown()


def test_re_export_counts_each_span_once(base_url: str, sink: StoreSink) -> None:
    exporter = EXPORTERS["protobuf"](f"{base_url}/v1/traces")
    spans = _record_calls(exporter)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert len(sink.rows()) == 3
    exporter.shutdown()


def test_exporter_without_the_token_is_refused(base_url: str, sink: StoreSink) -> None:
    exporter = ProtoSpanExporter(endpoint=f"{base_url}/v1/traces", timeout=5)
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("chat") as span:
        span.set_attributes({"gen_ai.usage.input_tokens": 1, "gen_ai.usage.output_tokens": 1})
    assert exporter.export(list(memory.get_finished_spans())) == SpanExportResult.FAILURE
    assert httpx.post(f"{base_url}/v1/traces", content=b"").status_code == 401
    assert sink.rows() == []
    exporter.shutdown()


def _request_with(*attrs: dict[str, Any]) -> bytes:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for i, a in enumerate(attrs, start=1):
        span = spans.add(trace_id=b"\x01" * 16, span_id=i.to_bytes(8, "big"))
        span.start_time_unix_nano, span.end_time_unix_nano = 1, 1_767_225_600_000_000_000
        for k, v in a.items():
            span.attributes.append(KeyValue(key=k, value=AnyValue(int_value=v)))
    return request.SerializeToString()


GOOD = {"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2}
BAD = {**GOOD, "gen_ai.usage.cache_read.input_tokens": 50}


@pytest.mark.parametrize("kind", ["application/x-protobuf", "application/json"])
def test_partial_success_counts_rejected_spans_and_keeps_the_rest(
    kind: str, base_url: str, sink: StoreSink
) -> None:
    body = _request_with(GOOD, BAD)
    if kind == "application/json":
        from google.protobuf import json_format

        raw = json_format.MessageToDict(ExportTraceServiceRequest.FromString(body))
        span = raw["resourceSpans"][0]["scopeSpans"][0]["spans"]
        for s in span:  # OTLP/JSON ids are hex, not protobuf-JSON base64
            import base64

            s["traceId"] = base64.b64decode(s["traceId"]).hex()
            s["spanId"] = base64.b64decode(s["spanId"]).hex()
        import json

        body = json.dumps(raw).encode()
    reply = httpx.post(
        f"{base_url}/v1/traces", content=body, headers={**AUTH, "Content-Type": kind}
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith(kind)
    if kind == "application/json":
        partial = reply.json()["partialSuccess"]
        assert int(partial["rejectedSpans"]) == 1
        message = partial["errorMessage"]
    else:
        answer = ExportTraceServiceResponse.FromString(reply.content)
        assert answer.partial_success.rejected_spans == 1
        message = answer.partial_success.error_message
    assert "0000000000000002" in message
    assert "cache" in message
    assert [r["input_tokens"] for r in sink.rows()] == [10]


def _post(base_url: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/traces",
        content=body,
        headers={**AUTH, "Content-Type": "application/x-protobuf", **headers},
    )


def test_undecodable_body_is_400_with_a_status_message(base_url: str) -> None:
    reply = _post(base_url, b"\x0a\xff\xff\xff\xff\x0f")
    assert reply.status_code == 400
    assert "protobuf" in RpcStatus.FromString(reply.content).message
    reply = _post(base_url, b"{nope", **{"Content-Type": "application/json"})
    assert reply.status_code == 400
    assert "not JSON" in reply.json()["message"]
    reply = _post(base_url, b"not gzip", **{"Content-Encoding": "gzip"})
    assert reply.status_code == 400


def test_too_large_body_and_gzip_bomb_are_413(base_url: str, sink: StoreSink) -> None:
    assert _post(base_url, b"\x00" * (65 * 1024)).status_code == 413
    bomb = gzip.compress(b"\x00" * (10 << 20))
    assert len(bomb) < 64 * 1024
    reply = _post(base_url, bomb, **{"Content-Encoding": "gzip"})
    assert reply.status_code == 413
    assert "smaller batches" in RpcStatus.FromString(reply.content).message
    assert sink.rows() == []


def test_other_content_types_are_415(base_url: str) -> None:
    reply = _post(base_url, b"x", **{"Content-Type": "text/plain"})
    assert reply.status_code == 415


def test_store_failure_is_503_so_the_exporter_retries(base_url: str, sink: StoreSink) -> None:
    sink.fail = True
    reply = _post(base_url, _request_with(GOOD))
    assert reply.status_code == 503
    assert "disk" not in reply.text  # the store's own error stays in the log
    sink.fail = False
    assert _post(base_url, _request_with(GOOD)).status_code == 200
    assert len(sink.rows()) == 1


def _naive_utc(ns: int | None) -> Any:
    from datetime import UTC, datetime

    assert ns is not None
    return datetime.fromtimestamp(ns / 1e9, UTC).replace(tzinfo=None)
