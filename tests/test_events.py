"""UsageEvent validation: every bad field is named with its source position."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenplan.errors import InvalidInput
from tokenplan.events import COUNT_CEILING, UsageEvent, parse_count, parse_money, parse_timestamp

GOOD = {"ts": "2025-01-01T00:00:00Z", "model": "gpt-4o", "input_tokens": "10", "output_tokens": 2}


def _parse(**changes: object) -> UsageEvent:
    return UsageEvent.from_mapping({**GOOD, **changes}, source="calls.csv", line=5)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"input_tokens": "-3"}, "input_tokens", "negative"),
        ({"output_tokens": "2.5"}, "output_tokens", "whole number"),
        ({"status": "exploded"}, "status", "unknown status"),
        ({"ts": "2025-01-01T00:00:00"}, "ts", "no time zone"),
        ({"ts": "yesterday"}, "ts", "ISO 8601"),
        ({"model": ""}, "model", "missing"),
        ({"cache_read_tokens": "20"}, "cache_read_tokens", "exceed input_tokens"),
    ],
)
def test_bad_fields_are_named_with_file_and_line(
    changes: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        _parse(**changes)
    message = str(info.value)
    assert message.startswith(f"calls.csv, line 5, field '{field}'")
    assert words in message


def test_naive_timestamp_is_accepted_with_a_configured_zone() -> None:
    event = UsageEvent.from_mapping(
        {**GOOD, "ts": "2025-01-01T08:00:00"}, tz=timezone(timedelta(hours=8))
    )
    assert event.ts == datetime(2025, 1, 1, tzinfo=UTC)


def test_defaults() -> None:
    event = _parse()
    assert (event.status, event.cache_read_tokens, event.provider) == ("ok", 0, "unknown")


@given(st.integers(min_value=0, max_value=COUNT_CEILING))
def test_count_round_trips_through_text(n: int) -> None:
    assert parse_count(str(n)) == n
    assert parse_count(f"{n}.0") == n


@given(st.integers(min_value=COUNT_CEILING + 1, max_value=2**80))
def test_count_above_the_ceiling_is_refused(n: int) -> None:
    with pytest.raises(InvalidInput, match="ceiling"):
        parse_count(str(n), source="f.csv", line=3, field="input_tokens")


@given(st.integers(max_value=-1))
def test_negative_counts_fail(n: int) -> None:
    with pytest.raises(InvalidInput):
        parse_count(str(n))


@given(st.text(max_size=12))
def test_count_parser_only_raises_invalid_input(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        parse_count(text)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=12))
def test_money_is_exact(amount: Decimal) -> None:
    assert parse_money(str(amount)) == amount


@given(st.datetimes(timezones=st.just(UTC)))
def test_timestamp_round_trips(ts: datetime) -> None:
    assert parse_timestamp(ts.isoformat()) == ts
