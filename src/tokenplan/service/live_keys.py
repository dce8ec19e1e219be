"""The Redis key layout of the live path, and how dimension values are escaped into keys.

Every key starts with ``tokenplan:``. A series is ``total`` or ``DIM=VALUE`` with VALUE
percent-encoded (UTF-8, nothing left unescaped but letters, digits and ``-._~``), so a ``:``,
``=``, ``*`` or any unicode in a team name can neither split a key nor match a pattern, and
distinct values never share a key. A missing value is ``!none`` (``!`` is always escaped).

    tokenplan:events                      stream: one entry per accepted batch (Arrow IPC)
    tokenplan:rid:<request_id>            a request id seen in the last 7 days
    tokenplan:min:<series>:<YYYY-MM-DD>   hash "HHMM:<field>" -> count, kept 7 days
    tokenplan:day:<series>:<YYYY-MM>      hash "DD:<field>" -> count, kept 400 days
    tokenplan:series:<dim>:<YYYY-MM-DD>   set of the escaped values seen that day
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final
from urllib.parse import quote, unquote

PREFIX: Final = "tokenplan:"
STREAM: Final = "tokenplan:events"
DEAD_LETTERS: Final = "tokenplan:events:dead"
# A random id naming this stream's history (see `tokenplan.service.drain`).
STREAM_ORIGIN: Final = "tokenplan:events:origin"
SEEN: Final = "tokenplan:rid:"

LIVE_DIMENSIONS: Final = ("model", "team", "feature")
TOTAL: Final = "total"
MISSING: Final = "!none"

SEEN_FOR: Final = timedelta(days=7)
MINUTES_FOR: Final = timedelta(days=7)
DAYS_FOR: Final = timedelta(days=400)

# What each counter hash holds per minute (or day). Cost is in pico-dollars (1e-12 USD, the
# store's own scale), so counters add exactly and equal the store's decimal sums.
COUNTER_FIELDS: Final = (
    "rows",
    "requests",
    "failed_requests",
    "rate_limited_requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "unsplit_tokens",
    "cost_pusd",
    "unpriced_rows",
)
COST_SCALE: Final = 12

_EPOCH = date(1970, 1, 1)


def escape(value: str | None) -> str:
    """A dimension value as it appears in keys: percent-encoded, or ``!none`` when missing."""
    return MISSING if value is None else quote(value, safe="")


def unescape(token: str) -> str | None:
    """The dimension value an `escape` token stands for."""
    return None if token == MISSING else unquote(token, errors="strict")


def series_name(dim: str | None, token: str = "") -> str:
    """``total`` for the whole, else ``DIM=TOKEN``."""
    return TOTAL if dim is None else f"{dim}={token}"


def day_of(minute: int) -> date:
    """The UTC day of a minute counted from the Unix epoch."""
    return _EPOCH + timedelta(days=minute // 1440)


def minute_key(series: str, day: date) -> str:
    """The hash of one series' per-minute counters on one UTC day."""
    return f"{PREFIX}min:{series}:{day.isoformat()}"


def minute_field(minute: int, field: str) -> str:
    """``HHMM:field`` for a minute counted from the Unix epoch."""
    hour, rest = divmod(minute % 1440, 60)
    return f"{hour:02d}{rest:02d}:{field}"


def day_key(series: str, day: date) -> str:
    """The hash of one series' daily totals in the month of ``day``."""
    return f"{PREFIX}day:{series}:{day.year:04d}-{day.month:02d}"


def day_field(day: date, field: str) -> str:
    """``DD:field``."""
    return f"{day.day:02d}:{field}"


def index_key(dim: str, day: date) -> str:
    """The set of escaped values of ``dim`` seen on ``day``."""
    return f"{PREFIX}series:{dim}:{day.isoformat()}"


def seen_key(request_id: str) -> str:
    """The marker of a request id seen recently."""
    return SEEN + request_id


def _epoch_s(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def minute_expiry(day: date) -> int:
    """When a day's minute hash goes: 7 days after the day ends (Unix seconds)."""
    return _epoch_s(day) + 86400 + int(MINUTES_FOR.total_seconds())


def day_expiry(day: date) -> int:
    """When a month's daily totals go: 400 days after the month ends (Unix seconds)."""
    # 31 days past the 1st is the end of the longest month (and stays clear of year 10000).
    return _epoch_s(day.replace(day=1)) + 31 * 86400 + int(DAYS_FOR.total_seconds())


def index_expiry(day: date) -> int:
    """When a day's set of seen values goes: with that day's totals."""
    return _epoch_s(day) + 86400 + int(DAYS_FOR.total_seconds())
