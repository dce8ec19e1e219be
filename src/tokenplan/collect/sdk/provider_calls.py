"""Turn one captured HTTP exchange with a provider into a `UsageEvent` (off the call path).

The wire formats read here are the providers' versioned APIs, so they change less than the
SDKs that wrap them:

- openai Chat Completions: ``usage.prompt_tokens`` (cached included), ``completion_tokens``,
  ``prompt_tokens_details.cached_tokens``; streams carry usage in a last chunk only when the
  app asked for ``stream_options={"include_usage": True}``.
- openai Responses: ``usage.input_tokens`` (cached included), ``output_tokens``,
  ``input_tokens_details.cached_tokens``; streams end with ``response.completed``.
- anthropic Messages: ``usage.input_tokens`` EXCLUDES ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens``; streams give input usage in ``message_start`` and
  cumulative counts in ``message_delta``.
"""

from __future__ import annotations

import json
import logging
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tokenplan.collect.sdk.rate_limit_headers import read_rate_limits
from tokenplan.events import ObservedLimit, UsageEvent

log = logging.getLogger("tokenplan.instrument")

# The POST paths recorded, by how their path ends (Azure and relays put prefixes in front).
RECORDED_PATHS = ("/chat/completions", "/responses", "/completions", "/messages")


@dataclass(slots=True)
class CapturedCall:
    """What the call path keeps of one HTTP exchange; parsed later by `to_event`."""

    provider: str
    path: str
    request_body: bytes | None
    status: int
    headers: Any  # the HTTP library's case-insensitive headers (read with .get)
    started: float
    labels: dict[str, str | None]
    chunks: list[bytes] = field(default_factory=list)
    finished: float = 0.0
    finished_at: float = 0.0  # wall clock, seconds since the epoch
    broken: bool = False  # the body stopped with an exception


@dataclass(frozen=True, slots=True)
class ParsedCall:
    """A captured call as an event plus the rate limits its headers reported."""

    event: UsageEvent
    limits: list[ObservedLimit]
    note: str | None = None


def recorded(method: str, path: str) -> bool:
    """Whether a request is a model call whose usage is recorded."""
    return method == "POST" and path.endswith(RECORDED_PATHS)


def _decode(call: CapturedCall) -> bytes:
    raw = b"".join(call.chunks)
    encoding = (call.headers.get("content-encoding") or "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(raw, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        try:
            return zlib.decompress(raw)
        except zlib.error:
            return zlib.decompress(raw, -zlib.MAX_WBITS)
    if encoding == "br":
        import brotli  # type: ignore[import-not-found]

        return bytes(brotli.decompress(raw))
    if encoding == "zstd":
        import zstandard  # type: ignore[import-not-found]

        return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(raw))
    raise ValueError(f"unknown content-encoding {encoding!r}")


def _sse_data(text: str) -> list[dict[str, Any]]:
    """The JSON objects of a server-sent event stream's ``data:`` fields, in order."""
    out: list[dict[str, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(
            line[5:].removeprefix(" ") for line in block.split("\n") if line.startswith("data:")
        )
        if not data or data == "[DONE]":
            continue
        try:
            value = json.loads(data)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


@dataclass(slots=True)
class _Usage:
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    known: bool = False
    model: str | None = None
    response_id: str | None = None
    failed: bool = False


def _openai_usage(u: dict[str, Any], out: _Usage) -> None:
    if "prompt_tokens" in u:  # Chat Completions (and legacy Completions)
        out.input = _int(u.get("prompt_tokens"))
        out.output = _int(u.get("completion_tokens"))
        details = u.get("prompt_tokens_details") or {}
    else:  # Responses
        out.input = _int(u.get("input_tokens"))
        out.output = _int(u.get("output_tokens"))
        details = u.get("input_tokens_details") or {}
    out.cache_read = min(_int(details.get("cached_tokens")), out.input)
    out.known = True


def _anthropic_usage(u: dict[str, Any], out: _Usage) -> None:
    # Later events repeat counts cumulatively (or null): take each count that is present.
    # ``out.input`` holds the uncached part here; `to_event` adds the cached parts.
    if u.get("input_tokens") is not None:
        out.input = _int(u["input_tokens"])
    if u.get("cache_read_input_tokens") is not None:
        out.cache_read = _int(u["cache_read_input_tokens"])
    written = u.get("cache_creation_input_tokens")
    if written is None and isinstance(u.get("cache_creation"), dict):
        ttl = u["cache_creation"]
        written = _int(ttl.get("ephemeral_5m_input_tokens")) + _int(
            ttl.get("ephemeral_1h_input_tokens")
        )
    if written is not None:
        out.cache_write = _int(written)
    if u.get("output_tokens") is not None:
        out.output = _int(u["output_tokens"])
    out.known = True


def _read_json_body(provider: str, body: dict[str, Any], out: _Usage) -> None:
    out.model = body.get("model") if isinstance(body.get("model"), str) else None
    out.response_id = body.get("id") if isinstance(body.get("id"), str) else None
    usage = body.get("usage")
    if isinstance(usage, dict):
        (_anthropic_usage if provider == "anthropic" else _openai_usage)(usage, out)


def _read_stream(provider: str, events: list[dict[str, Any]], out: _Usage) -> None:
    for ev in events:
        kind = ev.get("type")
        if kind == "error" or (isinstance(kind, str) and kind.endswith(".failed")):
            out.failed = True
        if provider == "anthropic":
            if kind == "message_start" and isinstance(ev.get("message"), dict):
                _read_json_body(provider, ev["message"], out)
            elif kind == "message_delta" and isinstance(ev.get("usage"), dict):
                _anthropic_usage(ev["usage"], out)
        elif isinstance(ev.get("response"), dict):  # Responses API events
            _read_json_body(provider, ev["response"], out)
        else:  # Chat Completions chunks; usage arrives in the last one, if asked for
            out.model = ev.get("model") if isinstance(ev.get("model"), str) else out.model
            out.response_id = ev.get("id") if isinstance(ev.get("id"), str) else out.response_id
            if isinstance(ev.get("usage"), dict):
                _openai_usage(ev["usage"], out)


def _request(body: bytes | None) -> dict[str, Any]:
    if not body:
        return {}
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _request_model(body: bytes | None) -> str | None:
    model = _request(body).get("model")
    return model if isinstance(model, str) else None


def _usage_unasked(call: CapturedCall) -> bool:
    """An OpenAI Chat Completions stream that did not ask for its usage chunk."""
    if call.provider == "anthropic" or "chat/completions" not in call.path:
        return False
    options = _request(call.request_body).get("stream_options")
    return not (isinstance(options, dict) and options.get("include_usage") is True)


def to_event(
    call: CapturedCall, *, new_id: Callable[[], str] = lambda: uuid.uuid4().hex
) -> ParsedCall:
    """The event of one captured call (status, tokens, model, request id) and its limits."""
    usage = _Usage()
    note = None
    ok = 200 <= call.status < 300
    if ok or call.chunks:
        try:
            body = _decode(call)
            ctype = (call.headers.get("content-type") or "").lower()
            if ctype.startswith("text/event-stream"):
                _read_stream(call.provider, _sse_data(body.decode("utf-8", "replace")), usage)
            elif ok:
                parsed = json.loads(body)
                if isinstance(parsed, dict):
                    _read_json_body(call.provider, parsed, usage)
        except (ValueError, ImportError, zlib.error) as exc:
            note = f"response body unreadable ({exc.__class__.__name__}); tokens unknown"
    if call.status == 429:
        status = "rate_limited"
    elif not ok or call.broken or usage.failed:
        status = "error"
    else:
        status = "ok"
    model = usage.model or _request_model(call.request_body) or "unknown"
    # A refused call (4xx/5xx, 429) consumed no tokens: 0 is known, not a guess.
    known = usage.known or not ok
    if call.provider == "anthropic":
        usage.input += usage.cache_read + usage.cache_write
    if not known and note is None:
        note = (
            "openai stream without stream_options={'include_usage': True}: tokens unknown"
            if _usage_unasked(call)
            else "stream closed before its usage arrived (the app stopped reading it, or the "
            "connection broke): tokens unknown, though the provider bills what it generated"
        )
    rid = call.headers.get("x-request-id") or call.headers.get("request-id") or usage.response_id
    finished = datetime.fromtimestamp(call.finished_at, UTC)
    event = UsageEvent(
        ts=finished,
        provider=call.provider,
        model=model,
        input_tokens=usage.input if known else 0,
        output_tokens=usage.output if known else 0,
        cache_read_tokens=usage.cache_read if known else 0,
        cache_write_tokens=usage.cache_write if known else 0,
        latency_ms=max(call.finished - call.started, 0.0) * 1000.0,
        status=status,
        team=call.labels.get("team"),
        feature=call.labels.get("feature"),
        user=call.labels.get("user"),
        key_id=call.labels.get("key_id"),
        request_id=rid or new_id(),
        tokens_known=known,
    )
    limits = read_rate_limits(
        call.headers.get,
        provider=call.provider,
        model=model,
        key_id=call.labels.get("key_id"),
        observed_at=finished,
    )
    if note:
        log.info("tokenplan: %s %s: %s", call.provider, model, note)
    return ParsedCall(event, limits, note)
