"""Provider cost reports: what the provider bills, one `CostRow` per result line.

- Anthropic ``/v1/organizations/cost_report``: buckets ``starting_at`` .. ``ending_at`` (ISO);
  each result has ``amount`` in **cents** as a decimal string, ``currency``, and (grouped by
  ``workspace_id`` and ``description``) ``model``, ``cost_type``, ``token_type``,
  ``service_tier``, ``context_window``.
- OpenAI ``/v1/organization/costs``: buckets ``start_time`` .. ``end_time`` (Unix seconds);
  each result has ``amount.value`` in **dollars** and ``amount.currency``, and (grouped by
  ``project_id`` and ``line_item``) a line item such as ``gpt-4o-2024-08-06, input`` whose
  model is the part before the comma.

A line's id names its bucket and every field that sets it apart, so pulling the same range
again replaces lines instead of adding them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tokenplan.errors import InvalidInput
from tokenplan.events import parse_timestamp
from tokenplan.store.pulls import CostRow

_CENTS = Decimal(100)
_ANTHROPIC_KEYS = (
    "workspace_id",
    "description",
    "model",
    "cost_type",
    "token_type",
    "service_tier",
    "context_window",
)


def anthropic_costs(pages: list[dict[str, Any]], name: str) -> list[CostRow]:
    """Cost lines of Anthropic cost report pages."""
    out = []
    for where, start, width, result in _results(pages, name, _iso_bounds):
        amount = _decimal(result.get("amount"), f"{where}, field 'amount'") / _CENTS
        currency = _currency(result.get("currency", "USD"), where)
        key = ":".join(_text(result.get(k)) for k in _ANTHROPIC_KEYS)
        out.append(
            (
                start,
                width,
                key,
                result.get("model"),
                result.get("workspace_id"),
                result.get("description"),
                amount,
                currency,
            )
        )
    return _rows("anthropic", out, name)


def openai_costs(pages: list[dict[str, Any]], name: str) -> list[CostRow]:
    """Cost lines of OpenAI costs pages."""
    out = []
    for where, start, width, result in _results(pages, name, _unix_bounds):
        money = result.get("amount")
        if not isinstance(money, dict):
            raise InvalidInput(f"{where}, field 'amount': expected an object with 'value'.")
        amount = _decimal(money.get("value"), f"{where}, field 'amount.value'")
        currency = _currency(money.get("currency", "usd"), where)
        item = result.get("line_item")
        model = item.split(",", 1)[0].strip() if isinstance(item, str) and item else None
        project = result.get("project_id")
        key = f"{_text(project)}:{_text(item)}"
        out.append((start, width, key, model, project, item, amount, currency))
    return _rows("openai", out, name)


Bounds = Callable[[dict[str, Any], str], tuple[datetime, datetime]]


def _results(
    pages: list[dict[str, Any]], name: str, bounds: Bounds
) -> Iterator[tuple[str, datetime, int, dict[str, Any]]]:
    for p, page in enumerate(pages, start=1):
        for b, bucket in enumerate(page.get("data") or [], start=1):
            where = f"{name} (page {p}), bucket {b}"
            if not isinstance(bucket, dict) or not isinstance(bucket.get("results"), list):
                raise InvalidInput(f"{where}: expected an object with a 'results' list.")
            start, end = bounds(bucket, where)
            width = int((end - start).total_seconds())
            if width <= 0:
                raise InvalidInput(f"{where}: the bucket ends before it starts.")
            for r, result in enumerate(bucket["results"], start=1):
                if not isinstance(result, dict):
                    raise InvalidInput(f"{where}, result {r}: expected an object.")
                yield f"{where}, result {r}", start, width, result


def _iso_bounds(bucket: dict[str, Any], where: str) -> tuple[datetime, datetime]:
    return (
        parse_timestamp(bucket.get("starting_at"), source=where, field="starting_at"),
        parse_timestamp(bucket.get("ending_at"), source=where, field="ending_at"),
    )


def _unix_bounds(bucket: dict[str, Any], where: str) -> tuple[datetime, datetime]:
    out = []
    for field in ("start_time", "end_time"):
        value = bucket.get(field)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{where}, field '{field}': {value!r} is not Unix seconds.")
        out.append(datetime.fromtimestamp(value, UTC))
    return out[0], out[1]


def _rows(
    provider: str,
    lines: list[tuple[datetime, int, str, Any, Any, Any, Decimal, str]],
    name: str,
) -> list[CostRow]:
    seen: Counter[str] = Counter()
    rows = []
    for start, width, key, model, team, item, amount, currency in lines:
        naive = start.astimezone(UTC).replace(tzinfo=None)
        base = f"cost:{provider}:{naive:%Y-%m-%dT%H:%M:%S}Z:{width}:{key}"
        seen[base] += 1
        rows.append(
            CostRow(
                id=base if seen[base] == 1 else f"{base}#{seen[base] - 1}",
                provider=provider,
                ts=naive,
                bucket_s=width,
                model=None if model is None else str(model),
                team=None if team is None else str(team),
                item=None if item is None else str(item),
                amount=amount,
                currency=currency,
                amount_usd=amount if currency == "USD" else None,
                source=name,
            )
        )
    return rows


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise InvalidInput(f"{where}: {value!r} is not an amount of money.")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidInput(f"{where}: {value!r} is not an amount of money.") from None
    if not amount.is_finite():
        raise InvalidInput(f"{where}: {value!r} is not an amount of money.")
    return amount


def _currency(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip().isalpha():
        raise InvalidInput(f"{where}, field 'currency': {value!r} is not a currency code.")
    return value.strip().upper()


def _text(value: Any) -> str:
    return "" if value is None else str(value)
