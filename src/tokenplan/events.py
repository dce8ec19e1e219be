"""Record types: one API call (`UsageEvent`) and the store's row model (`USAGE_SCHEMA`).

Token convention (same as OpenAI and genai-prices): ``input_tokens`` counts *all* prompt
tokens, cache reads and cache writes included; ``cache_read_tokens`` and
``cache_write_tokens`` say how many of them were cached. ``total_tokens`` is
``input_tokens + output_tokens``.

A store row is "``requests`` calls with these totals at ``ts`` with these dimensions": a raw
event is a row with ``requests = 1`` and ``bucket_s = 0``; an imported pre-aggregated bucket
keeps its width in ``bucket_s``. A NULL metric means "the source does not say" (some
traces have requests but no tokens), which is different from zero. An event with
``tokens_known=False`` (an openai stream the app did not ask usage for) is such a call: its
token fields are 0 in Python and NULL in the store.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

import pyarrow as pa

from tokenplan.errors import InvalidInput, at

STATUSES = ("ok", "error", "rate_limited")
DIMENSIONS = ("model", "provider", "team", "feature", "user", "key_id")
COUNT_METRICS = (
    "requests",
    "failed_requests",
    "rate_limited_requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)
METRICS = (*COUNT_METRICS, "total_tokens", "cost_usd")
COST_TYPE = pa.decimal128(38, 12)
# The store keeps cost as DECIMAL(38, 12): 26 digits before the point, 12 after.
COST_PLACES = Decimal("1e-12")
COST_MAX_DIGITS = 26
# The largest token or request count one row may hold. Far above any real bucket (a trillion
# tokens an hour is more than a large provider serves), and low enough that the 64-bit
# per-row sums (input + output + cache) cannot wrap and that 9,000+ rows at the ceiling sum
# within int64; the store's sums are HUGEINT on top, so no total can overflow.
COUNT_CEILING = 10**15

USAGE_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("us"), nullable=False),  # naive UTC
        pa.field("bucket_s", pa.int32(), nullable=False),
        pa.field("provider", pa.string()),
        pa.field("model", pa.string(), nullable=False),
        pa.field("team", pa.string()),
        pa.field("feature", pa.string()),
        pa.field("user", pa.string()),
        pa.field("key_id", pa.string()),
        pa.field("requests", pa.int64()),
        pa.field("failed_requests", pa.int64()),
        pa.field("rate_limited_requests", pa.int64()),
        pa.field("input_tokens", pa.int64()),
        pa.field("output_tokens", pa.int64()),
        pa.field("cache_read_tokens", pa.int64()),
        pa.field("cache_write_tokens", pa.int64()),
        # Tokens known only as a total (a usage CSV with total_tokens but no split); NULL
        # whenever input_tokens and output_tokens are known, so nothing is counted twice.
        pa.field("unsplit_tokens", pa.int64()),
        pa.field("latency_ms_sum", pa.float64()),
        pa.field("cost_usd", COST_TYPE),
        pa.field("request_id", pa.string()),
        pa.field("source", pa.string()),
        # The part of cache_write_tokens written with a 1-hour TTL (Anthropic prices it at 2x
        # input, 5-minute writes at 1.25x); NULL where the source does not split writes.
        pa.field("cache_write_1h_tokens", pa.int64()),
        # True: tokenplan priced the row from a price book (`tokenplan reprice` may redo it);
        # False: the source stated the cost (never repriced); NULL: not known (older stores).
        pa.field("cost_computed", pa.bool_()),
    ]
)


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageEvent:
    """One LLM API call, validated on construction."""

    ts: datetime
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    latency_ms: float | None = None
    status: str = "ok"
    cost_usd: Decimal | None = None
    team: str | None = None
    feature: str | None = None
    user: str | None = None
    key_id: str | None = None
    request_id: str | None = None
    # False when the source saw the call but not its token counts (stored as NULL, never 0).
    tokens_known: bool = True

    def __post_init__(self) -> None:
        _check_event(self, None, None)

    @classmethod
    def from_mapping(
        cls,
        raw: Mapping[str, Any],
        *,
        source: str | None = None,
        line: int | None = None,
        tz: tzinfo | None = None,
    ) -> UsageEvent:
        """Parse a loosely typed mapping (a CSV row, a JSON object) into a validated event."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for name in known:
            value = raw.get(name)
            if isinstance(value, str) and value.strip() == "":
                value = None
            values[name] = value
        where = (source, line)
        if values["ts"] is None:
            raise InvalidInput(f"{at(*where, 'ts')}: the timestamp is missing.")
        values["ts"] = parse_timestamp(values["ts"], source=source, line=line, field="ts", tz=tz)
        values["tokens_known"] = _parse_flag(values["tokens_known"], where)
        for name in ("model", "provider"):
            if values[name] is None:
                if name == "provider":
                    values[name] = "unknown"
                    continue
                raise InvalidInput(f"{at(*where, name)}: the {name} is missing.")
            values[name] = str(values[name])
        for name in ("input_tokens", "output_tokens"):
            if values[name] is None and not values["tokens_known"]:
                values[name] = 0
                continue
            if values[name] is None:
                raise InvalidInput(f"{at(*where, name)}: {name} is required.")
            values[name] = parse_count(values[name], source=source, line=line, field=name)
        for name in ("cache_read_tokens", "cache_write_tokens"):
            values[name] = (
                0
                if values[name] is None
                else parse_count(values[name], source=source, line=line, field=name)
            )
        if values["latency_ms"] is not None:
            values["latency_ms"] = _parse_latency(values["latency_ms"], where)
        values["status"] = "ok" if values["status"] is None else str(values["status"]).strip()
        if values["cost_usd"] is not None:
            values["cost_usd"] = parse_money(
                values["cost_usd"], source=source, line=line, field="cost_usd"
            )
        for name in ("team", "feature", "user", "key_id", "request_id"):
            if values[name] is not None:
                values[name] = str(values[name])
        event = object.__new__(cls)
        for name, value in values.items():
            object.__setattr__(event, name, value)
        _check_event(event, source, line)
        return event


@dataclass(frozen=True, slots=True, kw_only=True)
class ObservedLimit:
    """A rate limit a provider reported in response headers (``kind``: requests, tokens,
    input_tokens or output_tokens) for one model and key."""

    provider: str
    model: str
    key_id: str | None
    kind: str
    limit: int | None
    remaining: int | None
    reset: str | None
    observed_at: datetime


def _check_event(event: UsageEvent, source: str | None, line: int | None) -> None:
    if not isinstance(event.ts, datetime) or event.ts.tzinfo is None:
        raise InvalidInput(
            f"{at(source, line, 'ts')}: the timestamp {event.ts!r} has no time zone; "
            "give it in UTC (e.g. 2025-01-01T12:00:00Z) or configure a time zone."
        )
    if not event.model:
        raise InvalidInput(f"{at(source, line, 'model')}: the model is missing.")
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
        value = getattr(event, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(
                f"{at(source, line, name)}: {show(value)} is not a whole number of tokens >= 0."
            )
        if value > COUNT_CEILING:
            raise InvalidInput(
                f"{at(source, line, name)}: {show(value)} is above the ceiling of "
                f"{COUNT_CEILING:,} per row."
            )
    if event.cache_read_tokens + event.cache_write_tokens > event.input_tokens:
        raise InvalidInput(
            f"{at(source, line, 'cache_read_tokens')}: cache reads plus writes "
            f"({event.cache_read_tokens + event.cache_write_tokens}) exceed input_tokens "
            f"({event.input_tokens}); input_tokens must include cached tokens."
        )
    if not isinstance(event.tokens_known, bool):
        raise InvalidInput(
            f"{at(source, line, 'tokens_known')}: {event.tokens_known!r} is not true or false."
        )
    if not event.tokens_known and (
        event.input_tokens or event.output_tokens or event.cache_read_tokens
    ):
        raise InvalidInput(
            f"{at(source, line, 'tokens_known')}: tokens_known is false but token counts are "
            "given; leave them empty (or 0) when the counts are unknown."
        )
    if event.status not in STATUSES:
        raise InvalidInput(
            f"{at(source, line, 'status')}: unknown status {event.status!r}; "
            f"use one of {', '.join(STATUSES)}."
        )
    if event.latency_ms is not None and not (
        math.isfinite(event.latency_ms) and event.latency_ms >= 0
    ):
        raise InvalidInput(f"{at(source, line, 'latency_ms')}: {event.latency_ms!r} is not >= 0.")
    if event.cost_usd is not None and (
        not isinstance(event.cost_usd, Decimal) or not event.cost_usd.is_finite()
    ):
        raise InvalidInput(f"{at(source, line, 'cost_usd')}: {event.cost_usd!r} is not a number.")


def parse_timestamp(
    value: Any,
    *,
    source: str | None = None,
    line: int | None = None,
    field: str = "ts",
    tz: tzinfo | None = None,
) -> datetime:
    """Parse an ISO 8601 string, Unix seconds or a datetime into an aware UTC datetime."""
    where = at(source, line, field)
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise InvalidInput(f"{where}: {value!r} is not a timestamp.")
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidInput(
                f"{where}: {value!r} Unix seconds is outside the years 1 to 9999."
            ) from None
    else:
        text = str(value).strip()
        try:
            parsed = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise InvalidInput(
                f"{where}: {text!r} is not an ISO 8601 timestamp (e.g. 2025-01-01T12:00:00Z)."
            ) from None
    if parsed.tzinfo is None:
        if tz is None:
            raise InvalidInput(
                f"{where}: the timestamp {str(value)!r} has no time zone; "
                "add 'Z' or an offset, or configure a time zone."
            )
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def show(value: Any) -> str:
    """A bad value as a message quotes it: numbers as written (``1.5``, not ``Decimal('1.5')``),
    anything else in quotes."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    return repr(value)


def parse_count(
    value: Any, *, source: str | None = None, line: int | None = None, field: str = "tokens"
) -> int:
    """Parse a non-negative whole number; ``"12"`` and ``12.0`` pass, ``-1`` and ``1.5`` fail."""
    where = at(source, line, field)
    if isinstance(value, bool):
        raise InvalidInput(f"{where}: {show(value)} is not a whole number >= 0.")
    if isinstance(value, int):
        number = value
    else:
        try:
            dec = Decimal(str(value).strip())
        except InvalidOperation:
            raise InvalidInput(f"{where}: {show(value)} is not a whole number >= 0.") from None
        if not dec.is_finite() or dec != dec.to_integral_value():
            raise InvalidInput(f"{where}: {show(value)} is not a whole number >= 0.")
        number = int(dec)
    if number < 0:
        raise InvalidInput(f"{where}: {show(value)} is negative; counts must be >= 0.")
    if number > COUNT_CEILING:
        raise InvalidInput(
            f"{where}: {show(value)} is above the ceiling of {COUNT_CEILING:,} per row."
        )
    return number


def parse_money(
    value: Any, *, source: str | None = None, line: int | None = None, field: str = "cost_usd"
) -> Decimal:
    """Parse an amount of money exactly (strings and ints; floats via their shortest repr)."""
    where = at(source, line, field)
    if isinstance(value, Decimal):
        dec = value
    else:
        try:
            dec = Decimal(str(value).strip())
        except InvalidOperation:
            raise InvalidInput(f"{where}: {value!r} is not an amount of money.") from None
    if not dec.is_finite():
        raise InvalidInput(f"{where}: {value!r} is not an amount of money.")
    return dec


def stored_cost(cost: Decimal | int) -> Decimal:
    """``cost`` as the store keeps it (rounded to 1e-12 USD); ValueError beyond 26 digits."""
    cost = Decimal(cost)
    if cost and cost.adjusted() >= COST_MAX_DIGITS:
        raise ValueError(f"{cost} is beyond the {COST_MAX_DIGITS}-digit amounts the store keeps")
    exponent = cost.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -12:
        # A float-computed cost (0.0036000000000000003) carries digits below a picodollar.
        with localcontext() as ctx:
            ctx.prec = 60
            return cost.quantize(COST_PLACES)
    return cost


def _parse_flag(value: Any, where: tuple[str | None, int | None]) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise InvalidInput(f"{at(*where, 'tokens_known')}: {value!r} is not true or false.")


def _parse_latency(value: Any, where: tuple[str | None, int | None]) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{at(*where, 'latency_ms')}: {value!r} is not a number.") from None


def events_to_table(events: Iterable[UsageEvent], *, source: str | None = None) -> pa.Table:
    """Turn validated events into store rows (one row per call)."""
    cols: dict[str, list[Any]] = {name: [] for name in USAGE_SCHEMA.names}
    for e in events:
        cols["ts"].append(e.ts.astimezone(UTC).replace(tzinfo=None))
        cols["bucket_s"].append(0)
        cols["provider"].append(e.provider)
        cols["model"].append(e.model)
        cols["team"].append(e.team)
        cols["feature"].append(e.feature)
        cols["user"].append(e.user)
        cols["key_id"].append(e.key_id)
        cols["requests"].append(1)
        cols["failed_requests"].append(0 if e.status == "ok" else 1)
        cols["rate_limited_requests"].append(1 if e.status == "rate_limited" else 0)
        known = e.tokens_known
        cols["input_tokens"].append(e.input_tokens if known else None)
        cols["output_tokens"].append(e.output_tokens if known else None)
        cols["cache_read_tokens"].append(e.cache_read_tokens if known else None)
        cols["cache_write_tokens"].append(e.cache_write_tokens if known else None)
        cols["unsplit_tokens"].append(None)
        cols["latency_ms_sum"].append(e.latency_ms)
        cols["cost_usd"].append(e.cost_usd)
        cols["request_id"].append(e.request_id)
        cols["source"].append(source)
        cols["cache_write_1h_tokens"].append(None)
        cols["cost_computed"].append(False if e.cost_usd is not None else None)
    return pa.Table.from_pydict(cols, schema=USAGE_SCHEMA)
