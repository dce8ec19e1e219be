"""OTLP ingest cost: spans per second decoded and mapped to usage rows (protobuf and JSON)."""

from __future__ import annotations

import json
import time

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tokenplan.collect.otel import decode_json, decode_protobuf, usage_from_request

SPANS = 5_000


def build() -> ExportTraceServiceRequest:
    """One export of SPANS GenAI chat spans, as the exporters batch them."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    attrs = {
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 80,
        "gen_ai.usage.cache_read.input_tokens": 1000,
    }
    for i in range(SPANS):
        span = spans.add(trace_id=(i + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"))
        span.start_time_unix_nano = 1_767_225_600_000_000_000 + i * 1_000_000
        span.end_time_unix_nano = span.start_time_unix_nano + 300_000_000
        for k, v in attrs.items():
            value = AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=v)
            span.attributes.append(KeyValue(key=k, value=value))
    return request


def main() -> None:
    request = build()
    proto = request.SerializeToString()
    raw = json_format.MessageToDict(request)
    for s in raw["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        import base64

        s["traceId"] = base64.b64decode(s["traceId"]).hex()
        s["spanId"] = base64.b64decode(s["spanId"]).hex()
    body = json.dumps(raw).encode()
    for name, decode, data in (("protobuf", decode_protobuf, proto), ("json", decode_json, body)):
        start = time.perf_counter()
        usage = usage_from_request(decode(data))
        elapsed = time.perf_counter() - start
        assert usage.table.num_rows == SPANS
        print(f"{name:9s} {len(data) / 1e6:6.2f} MB  {SPANS / elapsed:10,.0f} spans/s")


if __name__ == "__main__":
    main()
