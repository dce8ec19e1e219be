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
with tokens unknown. The hooks never raise into LiteLLM and never block: rows go through a
`Batcher` to the sink.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
from litellm.integrations.custom_logger import CustomLogger

from tokenplan.collect.call_rows import call_rows, unknown_tokens_row
from tokenplan.events import UsageEvent
from tokenplan.integrations.sinks import Batcher, CollectorSink, StoreSink
from tokenplan.service.contracts import EventSink

__all__ = ["SOURCE", "TokenplanLogger", "rows_from_standard_logging"]

SOURCE = "litellm"
PICO_DOLLAR = Decimal("1e-12")
_log = logging.getLogger(__name__)


class TokenplanLogger(CustomLogger):  # type: ignore[misc]
    """LiteLLM ``CustomLogger`` feeding usage rows to a tokenplan sink through a batcher."""

    def __init__(self, sink: EventSink, *, batcher: Batcher | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batcher = batcher or Batcher(sink)
        self.skipped_cache_hits = 0
        self.unreadable = 0

    @classmethod
    def to_store(cls, path: str | Path) -> TokenplanLogger:
        """A logger writing to the local DuckDB store at ``path``."""
        return cls(StoreSink(path))

    @classmethod
    def to_collector(cls, url: str, token: str, *, client: Any) -> TokenplanLogger:
        """A logger posting to a tokenplan collector (``client`` is an ``httpx.Client``)."""
        return cls(CollectorSink(url, token, client=client))

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
        """Flush and stop the background sender."""
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
            self.batcher.put(rows_from_standard_logging(payload, _usage_of(response_obj)))
        except Exception as exc:  # a logging hook must never break the app's call
            self.unreadable += 1
            _log.warning("tokenplan: a LiteLLM call could not be recorded: %s", exc)


def rows_from_standard_logging(
    payload: Mapping[str, Any], usage: Mapping[str, Any] | None = None
) -> pa.Table:
    """One store row from a LiteLLM ``StandardLoggingPayload`` (and the response's usage)."""
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
        row = unknown_tokens_row(**common, status=_failure_status(payload), source=SOURCE)
        return call_rows([], [row], source=SOURCE)
    cache_read, cache_write = _cache_parts(usage, prompt)
    event = UsageEvent(
        **common,
        status=_failure_status(payload) if failed else "ok",
        input_tokens=prompt,
        output_tokens=completion,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cost_usd=cost_usd,
    )
    return call_rows([event], [], source=SOURCE)


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
