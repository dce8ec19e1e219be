"""Buckets wider than the plan's hour: spread evenly, not the whole day at midnight.

A provider's usage export is often daily. Read per hour as stored, a day is all at 00:00 and
0 for 23 hours: the plan's forecaster took such a series for intermittent spikes at midnight,
and headroom took the whole day as one hour. The plan reads them spread (``spread``);
`tokenplan usage` still shows them as stored, and says so.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest

from tokenplan.capacity import PlanSettings, make_plan
from tokenplan.events import USAGE_SCHEMA
from tokenplan.plan.headroom import inferred_peak_ratio
from tokenplan.store import DuckDBStore

DAY0 = datetime(2025, 5, 1)


def _rows(*rows: tuple[datetime, int, int, str]) -> pa.Table:
    """(start, width in seconds, input tokens, request id) rows of one model."""
    cols: dict[str, list[object]] = {name: [] for name in USAGE_SCHEMA.names}
    for ts, width, tokens, rid in rows:
        row = {
            "ts": ts,
            "bucket_s": width,
            "provider": "openai",
            "model": "gpt-4o-mini",
            "requests": 24,
            "input_tokens": tokens,
            "output_tokens": 0,
            "cost_usd": Decimal(tokens) / Decimal(1_000_000),
            "request_id": rid,
            "source": "test",
        }
        for name in cols:
            cols[name].append(row.get(name))
    return pa.Table.from_pydict(cols, schema=USAGE_SCHEMA)


@pytest.fixture
def store() -> DuckDBStore:
    s = DuckDBStore(":memory:")
    s.write(
        _rows(
            (DAY0, 86_400, 2_400, "day-1"),  # a daily export row
            (DAY0 + timedelta(days=1, hours=5), 3_600, 700, "hour"),  # an hourly one
            (DAY0 + timedelta(days=1, hours=6), 5_400, 90, "odd"),  # 1.5 h: not a whole number
        )
    )
    return s


def test_a_day_spreads_evenly_over_its_hours_and_keeps_its_total(store: DuckDBStore) -> None:
    frame = store.series("input_tokens", "1h", spread=True)
    first = frame[frame["ds"] < pd.Timestamp(DAY0 + timedelta(days=1))]
    assert len(first) == 24
    assert (first["y"] == 100.0).all()
    assert frame["y"].sum() == pytest.approx(2_400 + 700 + 90)
    # Hourly and odd-width rows stay where they are.
    by_hour = frame.set_index("ds")["y"]
    assert by_hour[pd.Timestamp(DAY0 + timedelta(days=1, hours=5))] == 700
    assert by_hour[pd.Timestamp(DAY0 + timedelta(days=1, hours=6))] == 90
    # Cost spreads exactly as well.
    cost = store.series("cost_usd", "1h", spread=True)
    assert cost["y"].sum() == pytest.approx(0.00319)


def test_without_spread_or_with_exact_a_bucket_stays_at_its_start(store: DuckDBStore) -> None:
    for frame in (
        store.series("input_tokens", "1h"),
        store.series("input_tokens", "1h", spread=True, exact=True),
    ):
        assert frame.set_index("ds")["y"][pd.Timestamp(DAY0)] == 2_400
        assert frame.set_index("ds")["y"][pd.Timestamp(DAY0 + timedelta(hours=1))] == 0
    # At the bucket's own width nothing moves.
    days = store.series("input_tokens", "1d", spread=True)
    assert days.set_index("ds")["y"][pd.Timestamp(DAY0)] == 2_400


def test_the_plan_reads_daily_exports_flat_over_the_day_and_says_so() -> None:
    s = DuckDBStore(":memory:")
    days = [(DAY0 + timedelta(days=d), 86_400, 24_000 + 240 * (d % 7), f"d{d}") for d in range(28)]
    s.write(_rows(*days))
    plan = make_plan(s, settings=PlanSettings(horizon_hours=48))
    history = plan.history[plan.metric].query("unique_id == 'total'").set_index("ds")["y"]
    last_day = history[history.index >= pd.Timestamp(DAY0 + timedelta(days=27))]
    assert len(last_day) == 24  # read to the day's end, not its first hour
    assert last_day.nunique() == 1  # flat, not 25,440 at midnight and 0 after
    assert plan.as_of == pd.Timestamp(DAY0 + timedelta(days=28))
    assert any("buckets 1d wide" in n for n in plan.notes)
    # The forecast is not a spike at midnight either.
    forecast = plan.forecast_frame(plan.metric)
    day_ahead = forecast[forecast["unique_id"] == "total"]["mean"].to_numpy()[:24]
    assert day_ahead.min() > 0.5 * day_ahead.max()


def test_a_busiest_minute_in_a_spread_day_is_inferred_as_bursty_at_every_scale() -> None:
    hourly, daily = inferred_peak_ratio(3600), inferred_peak_ratio(86_400)
    assert hourly.samples == (4.0,)
    # 4 ** (ln 1440 / ln 60): a day's busiest minute over its mean minute.
    assert daily.samples[0] == pytest.approx(11.7, abs=0.05)
    assert "spread evenly" in daily.source
