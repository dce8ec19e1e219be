"""LiteLLM proxy spend-log exports (CSV, a JSON array, or JSON lines) as one row per call.

Columns: ``request_id, startTime, endTime, model, spend, prompt_tokens, completion_tokens,
user, team_id, request_tags, api_key`` (hashed), ``cache_hit, status``, and
``custom_llm_provider`` when present. ``prompt_tokens`` includes cached tokens (LiteLLM
normalises every provider so), which is the store's input_tokens; the export has no cache
split. Naive timestamps are UTC (LiteLLM stores UTC) unless a time zone is given. Cache hits
(served by LiteLLM, no provider call) are skipped; failures with 0/0 tokens are stored with
tokens unknown. ``feature`` is the first request tag, ``key_id`` the hashed key.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, tzinfo
from decimal import Decimal
from typing import Any

import pyarrow as pa

from tokenplan.collect.call_rows import call_rows, unknown_tokens_row
from tokenplan.collect.detect import Source
from tokenplan.collect.json_text import refuse_lone_surrogates
from tokenplan.errors import InvalidInput, at
from tokenplan.events import UsageEvent, parse_count, parse_money, parse_timestamp, stored_cost

SOURCE = "litellm"
CHUNK = 50_000
REQUIRED = ("startTime", "model", "prompt_tokens", "completion_tokens")


def read(source: Source, *, tz: tzinfo | None = None, notes: list[str]) -> Iterator[pa.Table]:
    """Store rows from a spend-log export; `InvalidInput` names file, line and field."""
    events: list[UsageEvent] = []
    unknown: list[dict[str, Any]] = []
    skipped = 0
    for line, record in _records(source):
        parsed = parse_record(record, source=source.name, line=line, tz=tz)
        if parsed is None:
            skipped += 1
        elif isinstance(parsed, UsageEvent):
            events.append(parsed)
        else:
            unknown.append(parsed)
        if len(events) + len(unknown) >= CHUNK:
            yield call_rows(events, unknown, source=SOURCE)
            events, unknown = [], []
    if events or unknown:
        yield call_rows(events, unknown, source=SOURCE)
    if skipped:
        notes.append(f"{skipped:,} LiteLLM cache hits skipped (no provider call)")


def _records(source: Source) -> Iterator[tuple[int, Mapping[str, Any]]]:
    head = source.head(4096).decode("utf-8", errors="replace").lstrip("\ufeff").lstrip()
    if head.startswith("["):
        with source.open_text() as text:
            try:
                items = json.load(text)
            except json.JSONDecodeError as exc:
                raise InvalidInput(
                    f"{at(source.name, exc.lineno)}: not JSON ({exc.msg})."
                ) from None
        for index, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                raise InvalidInput(f"{source.name}, item {index}: not a JSON object.")
            refuse_lone_surrogates(item, f"{source.name}, item {index}", None)
            yield index, item
    elif head.startswith("{"):
        with source.open_text() as text:
            for number, raw in enumerate(text, start=1):
                if not raw.strip():
                    continue
                try:
                    item = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise InvalidInput(
                        f"{at(source.name, number)}: not JSON ({exc.msg})."
                    ) from None
                if not isinstance(item, dict):
                    raise InvalidInput(f"{at(source.name, number)}: not a JSON object.")
                refuse_lone_surrogates(item, source.name, number)
                yield number, item
    else:
        with source.open_text() as text:
            reader = csv.DictReader(text)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise InvalidInput(
                    f"{at(source.name, 1)}: the header lacks {', '.join(missing)}; "
                    "is this a LiteLLM spend-log export?"
                )
            for row in reader:
                yield reader.line_num, row


def parse_record(
    record: Mapping[str, Any], *, source: str | None, line: int | None, tz: tzinfo | None = None
) -> UsageEvent | dict[str, Any] | None:
    """One spend-log record as an event, an unknown-token failed row, or None (a cache hit)."""
    if _true(record.get("cache_hit")):
        return None
    for name in REQUIRED:
        if record.get(name) in (None, ""):
            raise InvalidInput(f"{at(source, line, name)}: {name} is missing.")
    zone = tz or UTC
    start = parse_timestamp(
        record["startTime"], source=source, line=line, field="startTime", tz=zone
    )
    end_raw = record.get("endTime")
    end = (
        start
        if end_raw in (None, "")
        else parse_timestamp(end_raw, source=source, line=line, field="endTime", tz=zone)
    )
    prompt = parse_count(record["prompt_tokens"], source=source, line=line, field="prompt_tokens")
    completion = parse_count(
        record["completion_tokens"], source=source, line=line, field="completion_tokens"
    )
    spend = record.get("spend")
    tags = _tags(record.get("request_tags"), source, line)
    common: dict[str, Any] = {
        "ts": end,
        "provider": str(record.get("custom_llm_provider") or "unknown"),
        "model": str(record["model"]),
        "latency_ms": max((end - start).total_seconds() * 1000, 0.0),
        "cost_usd": None if spend in (None, "") else _spend(spend, source, line),
        "request_id": _text(record.get("request_id")),
        "team": _text(record.get("team_id")),
        "user": _text(record.get("user") or record.get("end_user")),
        "key_id": _text(record.get("api_key")),
        "feature": tags[0] if tags else None,
    }
    status = str(record.get("status") or "success").strip().lower()
    failed = status in ("failure", "failed", "error")
    if failed and prompt == 0 and completion == 0:
        return unknown_tokens_row(**common, status="error", source=SOURCE)
    try:
        return UsageEvent(
            **common,
            status="error" if failed else "ok",
            input_tokens=prompt,
            output_tokens=completion,
        )
    except InvalidInput as exc:
        raise InvalidInput(f"{at(source, line)}: {exc}") from None


def _spend(value: Any, source: str | None, line: int | None) -> Decimal:
    """The record's spend as the store keeps it (`stored_cost`), or `InvalidInput` at its place."""
    money = parse_money(value, source=source, line=line, field="spend")
    try:
        return stored_cost(money)
    except ValueError as exc:
        raise InvalidInput(f"{at(source, line, 'spend')}: {exc}.") from None


def _tags(value: Any, source: str | None, line: int | None) -> list[str]:
    if value in (None, "", "[]"):
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            raise InvalidInput(
                f"{at(source, line, 'request_tags')}: {text[:60]!r} is not a JSON list."
            ) from None
        # A CSV cell's JSON may escape half a surrogate pair as a JSON file's may.
        refuse_lone_surrogates({"request_tags": parsed}, source, line)
        if isinstance(parsed, list):
            return [str(v) for v in parsed]
    return [t.strip() for t in text.split(",") if t.strip()]


def _true(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
