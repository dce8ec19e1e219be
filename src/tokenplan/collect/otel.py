"""OpenTelemetry traces (OTLP, protobuf or JSON) to usage rows, from the GenAI span attributes.

The GenAI semantic conventions are still marked Development and rename attributes between
releases, so every name we read is in `ATTRIBUTES`, one table, newest name first, with the
releases (or instrumentations) that emit it. Token convention: ``gen_ai.usage.input_tokens``
includes cache reads and cache writes (the conventions say so), which is the store's own; a
span whose cache counts exceed its input count is rejected with a message, never guessed at.

A span counts as one LLM call when it carries a token count, or when it failed (``error.type``
or an ERROR status) and names a GenAI model or provider: such a call is stored with its tokens
unknown (NULL), never 0. Every other span is ignored and counted in `TraceUsage.ignored`.

Dimensions, span attribute first, then resource attribute: ``team`` from ``tokenplan.team``
(or OpenLLMetry's association property ``team``), ``feature`` from ``tokenplan.feature`` (or
association property ``feature``, else the resource's ``service.name``), ``user`` from
``tokenplan.user``, ``user.id``, ``enduser.id`` (or association property ``user_id``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tokenplan.collect.call_rows import call_rows, unknown_tokens_row
from tokenplan.errors import InvalidInput
from tokenplan.events import USAGE_SCHEMA, UsageEvent, parse_count

__all__ = [
    "ATTRIBUTES",
    "SOURCE",
    "TraceUsage",
    "decode_json",
    "decode_protobuf",
    "usage_from_request",
]

SOURCE = "otlp"
_ASSOC = "traceloop.association.properties."


@dataclass(frozen=True, slots=True)
class Name:
    """One attribute name for a field, and the releases or instrumentations that emit it."""

    key: str
    covers: str


# The whole mapping: field -> names, first present wins. "semconv" is OpenTelemetry's GenAI
# semantic conventions; OpenLLMetry (Traceloop) and OpenLIT follow them with some lag.
ATTRIBUTES: Mapping[str, tuple[Name, ...]] = {
    "input_tokens": (
        Name("gen_ai.usage.input_tokens", "semconv 1.27+, OpenLIT, OpenLLMetry 0.40+"),
        Name("gen_ai.usage.prompt_tokens", "semconv 1.24-1.26, OpenLLMetry before 0.40"),
        Name("llm.usage.prompt_tokens", "OpenLLMetry 0.1x, OpenInference"),
    ),
    "output_tokens": (
        Name("gen_ai.usage.output_tokens", "semconv 1.27+, OpenLIT, OpenLLMetry 0.40+"),
        Name("gen_ai.usage.completion_tokens", "semconv 1.24-1.26, OpenLLMetry before 0.40"),
        Name("llm.usage.completion_tokens", "OpenLLMetry 0.1x, OpenInference"),
    ),
    "cache_read_tokens": (
        Name("gen_ai.usage.cache_read.input_tokens", "semconv since early 2026 (#3163)"),
        Name("gen_ai.usage.cache_read_input_tokens", "OpenLLMetry"),
        Name("llm.usage.cache_read_input_tokens", "OpenLLMetry JS"),
    ),
    "cache_write_tokens": (
        Name("gen_ai.usage.cache_creation.input_tokens", "semconv since early 2026 (#3163)"),
        Name("gen_ai.usage.cache_creation_input_tokens", "OpenLLMetry"),
    ),
    "model": (
        Name("gen_ai.response.model", "semconv 1.24+ (the model that answered)"),
        Name("gen_ai.request.model", "semconv 1.24+ (the model asked for)"),
        Name("llm.response.model", "OpenLLMetry 0.1x"),
        Name("llm.request.model", "OpenLLMetry 0.1x"),
    ),
    "provider": (
        Name("gen_ai.provider.name", "semconv 1.37+"),
        Name("gen_ai.system", "semconv 1.24-1.36, OpenLIT, OpenLLMetry"),
        Name("llm.vendor", "OpenLLMetry 0.1x"),
    ),
    "error": (Name("error.type", "semconv (stable), set on failed calls"),),
    "http_status": (Name("http.response.status_code", "semconv (stable)"),),
    "team": (Name("tokenplan.team", "set by the app"), Name(f"{_ASSOC}team", "OpenLLMetry")),
    "feature": (
        Name("tokenplan.feature", "set by the app"),
        Name(f"{_ASSOC}feature", "OpenLLMetry"),
        Name("service.name", "resource: the service that made the call"),
    ),
    "user": (
        Name("tokenplan.user", "set by the app"),
        Name("user.id", "semconv"),
        Name("enduser.id", "semconv before 1.26"),
        Name(f"{_ASSOC}user_id", "OpenLLMetry"),
    ),
}
_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
_RATE_LIMITED = frozenset({"429", "ratelimiterror", "rate_limit_exceeded", "rate_limit_error"})
MAX_REJECT_MESSAGES = 5


@dataclass
class TraceUsage:
    """The usage found in one OTLP request: store rows, and what was ignored or rejected."""

    table: pa.Table
    spans: int = 0
    ignored: int = 0
    rejected: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def error_message(self) -> str:
        """The first few rejection reasons, for OTLP's ``partial_success.error_message``."""
        shown = "; ".join(self.problems[:MAX_REJECT_MESSAGES])
        more = self.rejected - min(len(self.problems), MAX_REJECT_MESSAGES)
        return shown + (f"; and {more} more" if more > 0 else "")


def decode_protobuf(body: bytes) -> ExportTraceServiceRequest:
    """Parse a protobuf-encoded ``ExportTraceServiceRequest``; `InvalidInput` if it is not one."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError) as exc:
        raise InvalidInput(
            f"the body is not a protobuf ExportTraceServiceRequest ({exc})."
        ) from None
    return request


def decode_json(body: bytes) -> ExportTraceServiceRequest:
    """Parse OTLP/JSON (hex trace and span ids, camelCase keys); `InvalidInput` if malformed."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidInput(f"the body is not JSON ({exc}).") from None
    if not isinstance(raw, dict):
        raise InvalidInput("the body is not an OTLP/JSON object with resourceSpans.")
    try:
        _hex_ids_to_base64(raw)
        return json_format.ParseDict(raw, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, TypeError, ValueError) as exc:
        raise InvalidInput(
            f"the body is not an OTLP/JSON ExportTraceServiceRequest ({exc})."
        ) from None


_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(raw: dict[str, Any]) -> None:
    """OTLP/JSON writes ids as hex where protobuf's JSON mapping expects base64: convert them."""
    for rs in _dicts(raw.get("resourceSpans", raw.get("resource_spans"))):
        for ss in _dicts(rs.get("scopeSpans", rs.get("scope_spans"))):
            for span in _dicts(ss.get("spans")):
                _convert_ids(span)
                for link in _dicts(span.get("links")):
                    _convert_ids(link)


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _convert_ids(obj: dict[str, Any]) -> None:
    for key in _ID_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            try:
                obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise InvalidInput(f"{key} {value[:40]!r} is not a hex id.") from None


def usage_from_request(request: ExportTraceServiceRequest) -> TraceUsage:
    """One store row per GenAI call span; other spans are counted as ignored."""
    events: list[UsageEvent] = []
    unknown: list[dict[str, Any]] = []
    result = TraceUsage(table=USAGE_SCHEMA.empty_table())
    for rs_index, resource_spans in enumerate(request.resource_spans):
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                result.spans += 1
                try:
                    mapped = _map_span(span, resource)
                except InvalidInput as exc:
                    result.rejected += 1
                    if len(result.problems) < MAX_REJECT_MESSAGES:
                        result.problems.append(f"resource_spans[{rs_index}] {exc}")
                    continue
                if mapped is None:
                    result.ignored += 1
                elif isinstance(mapped, UsageEvent):
                    events.append(mapped)
                else:
                    unknown.append(mapped)
    result.table = call_rows(events, unknown, source=SOURCE)
    return result


def _map_span(span: Span, resource: dict[str, Any]) -> UsageEvent | dict[str, Any] | None:
    """A span as an event (tokens known), a row (failed, tokens unknown), or None (not GenAI)."""
    attrs = _attributes(span.attributes)
    tokens = {name: _first(attrs, name) for name in _TOKEN_FIELDS}
    failed = span.status.code == Status.STATUS_CODE_ERROR or _first(attrs, "error") is not None
    model, provider = _first(attrs, "model"), _first(attrs, "provider")
    has_usage = tokens["input_tokens"] is not None or tokens["output_tokens"] is not None
    if not has_usage and not (failed and (model is not None or provider is not None)):
        return None
    trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
    where = f"span {span_id or '?'} of trace {trace_id or '?'}"
    if not trace_id.strip("0") or not span_id.strip("0"):
        raise InvalidInput(f"{where}: the span has no trace_id or span_id.")
    if span.end_time_unix_nano == 0:
        raise InvalidInput(f"{where}: the span has no end time.")
    values: dict[str, Any] = {
        "ts": datetime.fromtimestamp(span.end_time_unix_nano / 1e9, UTC),
        "provider": str(provider) if provider is not None else "unknown",
        "model": str(model) if model is not None else "unknown",
        "status": _status(attrs, failed),
        "latency_ms": _latency_ms(span),
        "request_id": f"{trace_id}:{span_id}",
        "team": _dimension("team", attrs, resource),
        "feature": _dimension("feature", attrs, resource),
        "user": _dimension("user", attrs, resource),
    }
    counts: dict[str, int | None] = {}
    for name, value in tokens.items():
        key = _key_of(attrs, name)
        counts[name] = None if value is None else parse_count(value, source=where, field=key)
    if not has_usage:
        return unknown_tokens_row(**values, source=SOURCE)
    try:
        return UsageEvent(
            **values,
            input_tokens=counts["input_tokens"] or 0,
            output_tokens=counts["output_tokens"] or 0,
            cache_read_tokens=counts["cache_read_tokens"] or 0,
            cache_write_tokens=counts["cache_write_tokens"] or 0,
        )
    except InvalidInput as exc:
        raise InvalidInput(_at_span(str(exc), where)) from None


def _at_span(message: str, where: str) -> str:
    # UsageEvent's messages start with "input, field 'x'"; name the span instead.
    return where + message[len("input") :] if message.startswith("input") else message


def _status(attrs: dict[str, Any], failed: bool) -> str:
    if not failed:
        return "ok"
    error = _first(attrs, "error")
    http_status = _first(attrs, "http_status")
    if str(http_status) == "429" or str(error).strip().lower() in _RATE_LIMITED:
        return "rate_limited"
    return "error"


def _latency_ms(span: Span) -> float | None:
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start == 0 or end < start:
        return None
    return (end - start) / 1e6


def _first(attrs: Mapping[str, Any], name: str) -> Any:
    for candidate in ATTRIBUTES[name]:
        value = attrs.get(candidate.key)
        if value is not None and value != "":
            return value
    return None


def _key_of(attrs: Mapping[str, Any], name: str) -> str:
    for candidate in ATTRIBUTES[name]:
        if attrs.get(candidate.key) not in (None, ""):
            return candidate.key
    return ATTRIBUTES[name][0].key


def _dimension(name: str, attrs: Mapping[str, Any], resource: Mapping[str, Any]) -> str | None:
    value = _first(attrs, name)
    if value is None:
        value = _first(resource, name)
    return None if value is None else str(value)


def _attributes(pairs: Any) -> dict[str, Any]:
    """Scalar attributes as Python values (arrays and maps are of no use here and skipped)."""
    out: dict[str, Any] = {}
    for kv in pairs:
        value = _scalar(kv)
        if value is not None:
            out[kv.key] = value
    return out


def _scalar(kv: KeyValue) -> Any:
    value: AnyValue = kv.value
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    return None
