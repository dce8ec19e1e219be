"""A LiteLLM callback that records every completion the LiteLLM SDK or proxy makes.

    from tokenplan.integrations.litellm import TokenplanLogger
    litellm.callbacks = [TokenplanLogger.to_store("tokenplan.duckdb")]

Each success and failure (sync and async hooks) becomes one usage row from
``kwargs["standard_logging_object"]``: ``id`` → request_id, ``model``, ``custom_llm_provider``
→ provider, ``prompt_tokens`` (LiteLLM's count includes cached tokens, like the store's
input_tokens) and ``completion_tokens``, ``response_cost`` → cost_usd, ``endTime`` → ts,
``endTime - startTime`` → latency. Dimensions: team from ``metadata.user_api_key_team_id``,
user from ``end_user`` else ``metadata.user_api_key_user_id``, key_id from
``metadata.user_api_key_alias`` else ``user_api_key_hash`` (never the key), feature from the
first ``request_tags`` entry. Cache parts come from the response's ``usage``
(``prompt_tokens_details.cached_tokens``, ``cache_creation_input_tokens``). LiteLLM cache hits
(``cache_hit``) never reached a provider and are skipped; failures without usage are stored
with tokens unknown. The hooks never raise into LiteLLM and never block: events go through the
SDK instrumentation's bounded batcher to its sinks (the local store, or a collector URL that
spools to a local file while the collector is down and replays it later).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
from litellm.integrations.custom_logger import CustomLogger

from tokenplan.collect.sdk.batcher import EventBatcher
from tokenplan.collect.sdk.provider_calls import ParsedCall
from tokenplan.collect.sdk.sinks import CollectorSink, Sink, StoreSink
from tokenplan.events import UsageEvent, events_to_table

__all__ = [
    "SOURCE",
    "TokenplanLogger",
    "event_from_standard_logging",
    "rows_from_standard_logging",
]

SOURCE = "litellm"
PICO_DOLLAR = Decimal("1e-12")
_log = logging.getLogger(__name__)


class TokenplanLogger(CustomLogger):  # type: ignore[misc]
    """LiteLLM ``CustomLogger`` feeding usage events to a tokenplan sink through a batcher.

    ``sink`` is one of the SDK instrumentation's (`tokenplan.collect.sdk.StoreSink` or
    `CollectorSink`); ``capacity`` events wait at most, the oldest dropped beyond (counted in
    `stats`), so a sink that is down for long never stalls or grows the proxy.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        capacity: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sink = sink
        self.batcher: EventBatcher[ParsedCall] = EventBatcher(
            sink.write,
            capacity=capacity,
            batch_size=batch_size,
            flush_interval=flush_interval,
            name="tokenplan-litellm",
        )
        self.skipped_cache_hits = 0
        self.unreadable = 0

    @classmethod
    def to_store(cls, path: str | os.PathLike[str], *, prices: Any = None) -> TokenplanLogger:
        """A logger writing to the local DuckDB store at ``path`` (priced with ``prices``
        where LiteLLM gave no cost)."""
        return cls(StoreSink(path, prices=prices, source=SOURCE))

    @classmethod
    def to_collector(
        cls, url: str, *, token: str | None = None, spool: str | os.PathLike[str]
    ) -> TokenplanLogger:
        """A logger posting to a tokenplan collector (token: ``token`` or
        ``$TOKENPLAN_TOKEN``), spooling to ``spool`` while the collector is down."""
        return cls(CollectorSink(url, token=token, spool=spool))

    def stats(self) -> Any:
        """The batcher's counts: submitted, delivered, dropped, failed, pending."""
        return self.batcher.stats()

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any):  # type: ignore[no-untyped-def]
        self._record(kwargs, response_obj)

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any):  # type: ignore[no-untyped-def]
        self._record(kwargs, response_obj)

    async def async_log_success_event(  # type: ignore[no-untyped-def]
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ):
        self._record(kwargs, response_obj)

    async def async_log_failure_event(  # type: ignore[no-untyped-def]
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ):
        self._record(kwargs, response_obj)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every recorded call reached the sink."""
        return self.batcher.flush(timeout)

    def close(self) -> None:
        """Deliver what is queued and stop the background sender."""
        self.batcher.close()

    def _record(self, kwargs: Any, response_obj: Any) -> None:
        try:
            payload = kwargs.get("standard_logging_object") if isinstance(kwargs, dict) else None
            if not isinstance(payload, Mapping):
                self.unreadable += 1
                return
            if payload.get("cache_hit") is True:
                self.skipped_cache_hits += 1
                return
            event = event_from_standard_logging(payload, _usage_of(response_obj))
            self.batcher.submit(ParsedCall(event, []))
        except Exception as exc:  # a logging hook must never break the app's call
            self.unreadable += 1
            _log.warning("tokenplan: a LiteLLM call could not be recorded: %s", exc)


def rows_from_standard_logging(
    payload: Mapping[str, Any], usage: Mapping[str, Any] | None = None
) -> pa.Table:
    """One store row from a LiteLLM ``StandardLoggingPayload`` (and the response's usage)."""
    return events_to_table([event_from_standard_logging(payload, usage)], source=SOURCE)


def event_from_standard_logging(
    payload: Mapping[str, Any], usage: Mapping[str, Any] | None = None
) -> UsageEvent:
    """The call a LiteLLM ``StandardLoggingPayload`` describes (with the response's usage)."""
    metadata = payload.get("metadata") or {}
    start, end = _seconds(payload.get("startTime")), _seconds(payload.get("endTime"))
    ts = datetime.fromtimestamp(end if end is not None else start or 0.0, UTC)
    latency = (
        (end - start) * 1000 if start is not None and end is not None and end >= start else None
    )
    tags = payload.get("request_tags") or []
    common: dict[str, Any] = {
        "ts": ts,
        "provider": str(payload.get("custom_llm_provider") or "unknown"),
        "model": str(payload.get("model") or payload.get("model_group") or "unknown"),
        "latency_ms": latency,
        "request_id": _text(payload.get("id")),
        "team": _text(metadata.get("user_api_key_team_id")),
        "user": _text(payload.get("end_user") or metadata.get("user_api_key_user_id")),
        "key_id": _text(metadata.get("user_api_key_alias") or metadata.get("user_api_key_hash")),
        "feature": _text(tags[0]) if isinstance(tags, list) and tags else None,
    }
    cost = payload.get("response_cost")
    # LiteLLM's cost is a float; the store keeps 12 decimal places (a pico-dollar).
    cost_usd = None if cost is None else Decimal(str(cost)).quantize(PICO_DOLLAR)
    prompt = int(payload.get("prompt_tokens") or 0)
    completion = int(payload.get("completion_tokens") or 0)
    failed = payload.get("status") == "failure"
    if failed and prompt == 0 and completion == 0:
        # LiteLLM reports 0/0 for a call that failed before any usage: unknown, not zero.
        return UsageEvent(
            **common,
            status=_failure_status(payload),
            input_tokens=0,
            output_tokens=0,
            cost_usd=cost_usd,
            tokens_known=False,
        )
    cache_read, cache_write = _cache_parts(usage, prompt)
    return UsageEvent(
        **common,
        status=_failure_status(payload) if failed else "ok",
        input_tokens=prompt,
        output_tokens=completion,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cost_usd=cost_usd,
    )


def _failure_status(payload: Mapping[str, Any]) -> str:
    info = payload.get("error_information") or {}
    code = str(info.get("error_code") or "")
    if code == "429" or info.get("error_class") == "RateLimitError":
        return "rate_limited"
    return "error"


def _cache_parts(usage: Mapping[str, Any] | None, prompt: int) -> tuple[int, int]:
    if not usage:
        return 0, 0
    details = usage.get("prompt_tokens_details") or {}
    read = int(_get(details, "cached_tokens") or 0)
    write = int(
        usage.get("cache_creation_input_tokens") or _get(details, "cache_creation_tokens") or 0
    )
    if read < 0 or write < 0 or read + write > prompt:
        return 0, 0  # inconsistent with prompt_tokens: keep the total, drop the split
    return read, write


def _usage_of(response_obj: Any) -> dict[str, Any] | None:
    usage = getattr(response_obj, "usage", None)
    if usage is None and isinstance(response_obj, Mapping):
        usage = response_obj.get("usage")
    if usage is None:
        return None
    if hasattr(usage, "model_dump"):
        dumped: dict[str, Any] = usage.model_dump()
        return dumped
    return dict(usage) if isinstance(usage, Mapping) else None


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _seconds(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
