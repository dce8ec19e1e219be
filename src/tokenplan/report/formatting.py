"""How the report writes numbers, money, percentages and times, in one place."""

from __future__ import annotations

import math
from datetime import datetime

import pandas as pd

_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def tokens(value: float | None) -> str:
    """Whole tokens with thousands separators (``1,234,567``)."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{round(value):,}"


def money(value: float | None, code: str = "USD") -> str:
    """Money with 2 decimals: ``$1,234.50``; other currencies as ``1,234.50 CNY``.

    From 100,000 on, cents are noise next to the forecast's range and are left out.
    """
    if value is None or not math.isfinite(value):
        return "—"
    sign = "-" if value < 0 else ""
    digits = 0 if abs(value) >= 100_000 else 2
    symbol = _SYMBOLS.get(code.upper())
    if symbol:
        return f"{sign}{symbol}{abs(value):,.{digits}f}"
    return f"{sign}{abs(value):,.{digits}f} {code.upper()}"


def per_minute(value: float | None) -> str:
    """A per-minute rate, whole (``1,234,568``); below 10 with one decimal."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.1f}" if abs(value) < 10 and not float(value).is_integer() else f"{value:,.0f}"


def percent(value: float | None, digits: int = 1) -> str:
    """A fraction as a percentage (``0.237`` → ``23.7%``)."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value * 100:.{digits}f}%"


def ratio(value: float | None) -> str:
    """A multiple such as ``47.0×``."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.1f}×"


def count(value: float | None) -> str:
    """A plain count with thousands separators, one decimal when it is not whole."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def compact(value: float) -> str:
    """Short axis labels: ``950``, ``12k``, ``3.4M``, ``1.2B``."""
    magnitude = abs(value)
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if magnitude >= size:
            scaled = value / size
            return f"{scaled:.1f}{suffix}".replace(".0" + suffix, suffix)
    if magnitude and magnitude < 10 and not float(value).is_integer():
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.0f}"


def when(value: str | datetime | None) -> str:
    """A timestamp for people: ``Mon 03 Mar 2025 14:00 UTC``."""
    if value is None:
        return "—"
    return _ts(value).strftime("%a %d %b %Y %H:%M UTC")


def day(value: str | datetime | None) -> str:
    """A date for people: ``Mon 03 Mar 2025``."""
    if value is None:
        return "—"
    return _ts(value).strftime("%a %d %b %Y")


def _ts(value: str | datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp
