"""The one ISO 8601 formatter for output, and wall-clock conversions for calendar buckets."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["ISO_FORMAT", "from_wall_time", "iso_utc", "to_wall_time"]

# UTC with a literal Z: what the CSV contracts and report.json use.
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def iso_utc(value: Any) -> str:
    """A timestamp as ISO 8601 UTC with ``Z`` (naive input is taken as UTC)."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.strftime(ISO_FORMAT)


def iso_utc_many(values: Any) -> pd.Series:
    """Many timestamps as ISO 8601 UTC with ``Z`` at once (what `iso_utc` does to one)."""
    stamps = pd.Series(pd.to_datetime(values))
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.dt.strftime(ISO_FORMAT).set_axis(getattr(values, "index", stamps.index))


def to_wall_time(ds: pd.Series, tz: str) -> pd.Series:
    """Naive UTC times as naive wall-clock times in ``tz`` (a Shanghai day starts at 00:00)."""
    return pd.to_datetime(ds).dt.tz_localize("UTC").dt.tz_convert(tz).dt.tz_localize(None)


def from_wall_time(ds: pd.Series, tz: str) -> pd.Series:
    """Naive wall-clock times in ``tz`` as naive UTC (the inverse of `to_wall_time`).

    A wall time a DST jump skips moves forward to the first real instant; one that repeats is
    read as its first occurrence, as period boundaries are (`tokenplan.plan.periods`).
    """
    local = pd.to_datetime(ds).dt.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    return local.dt.tz_convert("UTC").dt.tz_localize(None)
