"""Calendar buckets: months, and days and weeks that start at midnight in a time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from tokenplan.errors import InvalidInput
from tokenplan.events import UsageEvent, events_to_table
from tokenplan.frequency import Frequency, parse_freq
from tokenplan.store import DuckDBStore


@pytest.fixture(scope="module")
def hourly() -> DuckDBStore:
    """One request every hour from 2025-03-01 00:00Z to 2025-04-30 23:00Z."""
    start = datetime(2025, 3, 1, tzinfo=UTC)
    store = DuckDBStore(":memory:")
    events = [
        UsageEvent(
            ts=start + timedelta(hours=h),
            provider="anthropic",
            model="m1",
            input_tokens=1,
            output_tokens=0,
        )
        for h in range(61 * 24)
    ]
    store.write(events_to_table(events))
    return store


def _by_ds(frame: pd.DataFrame) -> dict[str, float]:
    return {f"{ds:%Y-%m-%d %H:%M}": float(y) for ds, y in zip(frame["ds"], frame["y"], strict=True)}


def test_parse_month_only_where_calendar_buckets_are_read() -> None:
    assert parse_freq("1mo", calendar=True) == Frequency(0, months=1)
    assert parse_freq("1mo", calendar=True).label == "1mo"
    assert parse_freq("1d").calendar
    assert not parse_freq("6h").calendar
    with pytest.raises(InvalidInput, match="calendar months have no fixed width"):
        parse_freq("1mo")


def test_months_in_utc(hourly: DuckDBStore) -> None:
    got = _by_ds(hourly.series("requests", "1mo"))
    assert got == {"2025-03-01 00:00": 31 * 24, "2025-04-01 00:00": 30 * 24}


def test_months_in_new_york_start_at_its_midnight_and_lose_the_dst_hour(
    hourly: DuckDBStore,
) -> None:
    got = _by_ds(hourly.series("requests", "1mo", tz="America/New_York"))
    # 2025-03-01 00:00Z is still 28 Feb in New York (19:00 EST): five hours of February.
    assert got["2025-02-01 05:00"] == 5
    # March runs from 05:00Z (EST) to 04:00Z on 1 April (EDT): 31 days less the DST hour.
    assert got["2025-03-01 05:00"] == 31 * 24 - 1
    # The data ends 2025-04-30 23:00Z, 19:00 EDT: April lacks its last four hours.
    assert got["2025-04-01 04:00"] == 30 * 24 - 4
    assert sum(got.values()) == 61 * 24


def test_days_follow_the_zone(hourly: DuckDBStore) -> None:
    shanghai = hourly.series("requests", "1d", tz="Asia/Shanghai")
    # A Shanghai day starts at 16:00Z the day before; whole days hold 24 hours.
    assert (shanghai["ds"].dt.hour == 16).all()
    assert set(shanghai["y"].iloc[1:-1]) == {24.0}
    new_york = _by_ds(hourly.series("requests", "1d", tz="America/New_York"))
    assert new_york["2025-03-09 05:00"] == 23  # the spring-forward day
    assert new_york["2025-03-10 04:00"] == 24
    # UTC, as before, when no zone is given.
    assert (hourly.series("requests", "1d")["ds"].dt.hour == 0).all()


def test_weeks_start_on_monday_midnight_in_the_zone(hourly: DuckDBStore) -> None:
    weeks = hourly.series("requests", "1w", tz="Asia/Tokyo")
    starts = weeks["ds"] + pd.Timedelta(hours=9)  # Tokyo wall time
    assert (starts.dt.weekday == 0).all()
    assert (starts.dt.hour == 0).all()


def test_an_unknown_zone_is_refused(hourly: DuckDBStore) -> None:
    with pytest.raises(InvalidInput, match="Mars/Olympus"):
        hourly.series("requests", "1d", tz="Mars/Olympus")
    # A zone only moves calendar buckets; hours stay on the UTC grid.
    assert _by_ds(hourly.series("requests", "1h", tz="Asia/Kolkata").head(1)) == {
        "2025-03-01 00:00": 1
    }
