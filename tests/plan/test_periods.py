"""Period boundaries: hand-checked, with time zones and DST."""

from __future__ import annotations

import pandas as pd
import pytest

from tokenplan.errors import InvalidInput
from tokenplan.plan.periods import period_bounds


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.mark.parametrize(
    ("at", "period", "tz", "start", "end"),
    [
        ("2024-05-15T13:00Z", "day", "UTC", "2024-05-15T00:00Z", "2024-05-16T00:00Z"),
        # Wednesday → the week from Monday 13 May.
        ("2024-05-15T13:00Z", "week", "UTC", "2024-05-13T00:00Z", "2024-05-20T00:00Z"),
        # A Sunday is the end of the week that started on Monday.
        ("2024-05-12T23:59Z", "week", "UTC", "2024-05-06T00:00Z", "2024-05-13T00:00Z"),
        ("2024-02-29T23:30Z", "month", "UTC", "2024-02-01T00:00Z", "2024-03-01T00:00Z"),
        # 23:30 UTC on 29 Feb is 1 March in Tokyo (UTC+9).
        ("2024-02-29T23:30Z", "month", "Asia/Tokyo", "2024-02-29T15:00Z", "2024-03-31T15:00Z"),
        # Half-hour offset zone: the day starts at 18:30 UTC.
        ("2024-05-12T03:00Z", "day", "Asia/Kolkata", "2024-05-11T18:30Z", "2024-05-12T18:30Z"),
        # US spring forward (10 Mar 2024): a 23-hour day.
        ("2024-03-10T12:00Z", "day", "America/New_York", "2024-03-10T05:00Z", "2024-03-11T04:00Z"),
        # EU fall back (27 Oct 2024): a 25-hour day.
        ("2024-10-27T12:00Z", "day", "Europe/Berlin", "2024-10-26T22:00Z", "2024-10-27T23:00Z"),
        # A week across the EU spring change is 167 hours long.
        ("2024-03-31T12:00Z", "week", "Europe/Berlin", "2024-03-24T23:00Z", "2024-03-31T22:00Z"),
    ],
)
def test_bounds(at: str, period: str, tz: str, start: str, end: str) -> None:
    assert period_bounds(utc(at), period, tz) == (utc(start), utc(end))


def test_naive_means_utc_and_bad_values_raise() -> None:
    assert period_bounds(pd.Timestamp("2024-05-15 13:00"), "day")[0] == utc("2024-05-15T00:00Z")
    with pytest.raises(InvalidInput, match="period"):
        period_bounds(utc("2024-05-15T00:00Z"), "year")
    with pytest.raises(InvalidInput, match="time zone"):
        period_bounds(utc("2024-05-15T00:00Z"), "day", "Mars/Olympus")


def test_parse_when_reads_spans_before_now_and_iso_times() -> None:
    import pytest

    from tokenplan.errors import InvalidInput
    from tokenplan.plan.periods import parse_when

    now = pd.Timestamp("2025-03-10 12:00", tz="UTC")
    assert parse_when("7d", now=now) == pd.Timestamp("2025-03-03 12:00", tz="UTC")
    assert parse_when("1.5h", now=now) == pd.Timestamp("2025-03-10 10:30", tz="UTC")
    assert parse_when("2w", now=now) == pd.Timestamp("2025-02-24 12:00", tz="UTC")
    assert parse_when("2025-03-01T00:00:00Z", now=now) == pd.Timestamp("2025-03-01", tz="UTC")
    assert parse_when(None, now=now) is None
    # Without a "now" (options that are not read against the data) only absolute times.
    assert parse_when("2025-03-01T06:00", option="--until") == pd.Timestamp(
        "2025-03-01 06:00", tz="UTC"
    )
    with pytest.raises(InvalidInput, match="--until '7d' is not an ISO 8601 time"):
        parse_when("7d", option="--until")
    with pytest.raises(InvalidInput, match="--until '7x'"):
        parse_when("7x", now=now, option="--until")
