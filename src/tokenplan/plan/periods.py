"""Budget periods: day, week (from Monday) and month, starting at local midnight in a time zone."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from tokenplan.errors import InvalidInput

__all__ = ["Period", "check_tz", "parse_period", "parse_when", "period_bounds"]


class Period(StrEnum):
    """The length of a budget or projection period."""

    day = "day"
    week = "week"
    month = "month"


def parse_period(value: str | Period) -> Period:
    """``day`` / ``week`` / ``month`` as a `Period`."""
    try:
        return Period(value)
    except ValueError:
        raise InvalidInput(f"period {value!r} is not known; use day, week or month.") from None


def check_tz(tz: str) -> str:
    """Return ``tz`` if it names an IANA time zone, else raise `InvalidInput`."""
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"time zone {tz!r} is not known; use an IANA name such as UTC or Europe/Berlin."
        ) from None
    return str(tz)


def _utc(at: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(at)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _local_midnight(year: int, month: int, day: int, tz: str) -> pd.Timestamp:
    # Where a DST jump skips midnight the day starts at the first real instant after it;
    # where midnight repeats, the first occurrence (ambiguous=True means "the DST one").
    naive = pd.Timestamp(year=year, month=month, day=day)
    return naive.tz_localize(tz, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")


def period_bounds(
    at: Any, period: str | Period, tz: str = "UTC"
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The ``[start, end)`` of the period holding ``at`` (naive means UTC), as UTC timestamps."""
    kind = parse_period(period)
    local = _utc(at).tz_convert(check_tz(tz))
    day = local.normalize().tz_localize(None)
    if kind is Period.day:
        first, after = day, day + pd.Timedelta(days=1)
    elif kind is Period.week:
        first = day - pd.Timedelta(days=day.weekday())
        after = first + pd.Timedelta(days=7)
    else:
        first = day.replace(day=1)
        after = first + pd.offsets.MonthBegin(1)
    start = _local_midnight(first.year, first.month, first.day, tz)
    end = _local_midnight(after.year, after.month, after.day, tz)
    # A DST shift can move the true local midnight of `at`'s day away from the naive one.
    if _utc(at) < start:
        return period_bounds(start - pd.Timedelta(microseconds=1), kind, tz)
    return start, end


_UNITS = {
    "m": pd.Timedelta(minutes=1),
    "min": pd.Timedelta(minutes=1),
    "h": pd.Timedelta(hours=1),
    "d": pd.Timedelta(days=1),
    "w": pd.Timedelta(weeks=1),
}


def parse_when(
    value: str | None, *, now: Any = None, option: str = "--since"
) -> pd.Timestamp | None:
    """An ISO 8601 time (without a zone: UTC) or, where ``now`` is given, ``7d`` / ``12h`` /
    ``30m`` / ``2w`` before ``now``; as UTC.

    The one parser of the commands' time options. ``now`` is the data's last timestamp for the
    commands that read the store (``--since 7d`` is the week before it, so a replayed trace
    behaves like live data); without it only absolute times are read.
    """
    if value is None:
        return None
    text = value.strip().lower()
    number, unit = text.rstrip("abcdefghijklmnopqrstuvwxyz"), text.lstrip("0123456789.")
    if now is not None and number and unit in _UNITS:
        try:
            amount = float(number)
        except ValueError:
            amount = -1.0
        if amount >= 0:
            return _utc(now) - amount * _UNITS[unit]
    try:
        return _utc(datetime.fromisoformat(value.strip().replace("z", "Z")))
    except ValueError:
        spans = " nor a span before the data's end such as 7d, 12h, 30m or 2w"
        raise InvalidInput(
            f"{option} {value!r} is {'neither' if now is not None else 'not'} an ISO 8601 time"
            f" (e.g. 2025-01-01T12:00:00Z){spans if now is not None else ''}."
        ) from None
