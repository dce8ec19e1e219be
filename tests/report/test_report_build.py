"""The report's numbers, hand-checked on a synthetic store whose every day is the same.

Per peak hour: sonnet 600k tokens at $6/M, haiku 300k at $2/M, gpt-4o-mini 200k at $0.5/M,
so 1.1M tokens and $4.30. The daily profile sums to 8.7 peak-hours (14:00 at 1.0, 13:00 and
15:00 at 0.8, ten more hours 08-20 at 0.5, eleven night hours at 0.1): 9.57M tokens and
$37.41 a day; the seasonal-naive stand-in repeats that for the forecast week.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from report_fixtures import CLOCK, seasonal_naive, usage_rows

from tokenplan import capacity as build_module
from tokenplan.events import USAGE_SCHEMA
from tokenplan.plan.budgets import Budget, BudgetsConfig
from tokenplan.plan.limits import load_limits
from tokenplan.report import Currency, Report, build_report, report_to_dict
from tokenplan.store import DuckDBStore


def _report(store: DuckDBStore, **kw: object) -> Report:
    return build_report(store, clock=lambda: CLOCK, forecaster=seasonal_naive, **kw)  # type: ignore[arg-type]


def test_weekly_totals_and_peak_hour(store: DuckDBStore) -> None:
    report = _report(store, fx=Currency(code="CNY", rate=7.3))
    cap = report.capacity.items[0]
    [week] = cap.weekly
    assert (week.start, week.end, week.days) == ("2025-03-24T00:00:00Z", "2025-03-31T00:00:00Z", 7)
    assert week.tokens == pytest.approx(7 * 9_570_000)
    assert week.cost_usd == pytest.approx(7 * 37.41)
    assert week.avg_daily_cost_usd == pytest.approx(37.41)
    assert week.cost_local == pytest.approx(7 * 37.41 * 7.3)
    assert week.avg_daily_cost_local == pytest.approx(37.41 * 7.3)
    assert week.peak_hour == "2025-03-24T14:00:00Z"  # the first of seven equal peaks
    assert week.peak_tokens == pytest.approx(1_100_000)
    assert [d.hours for d in cap.daily] == [24] * 7
    assert all(d.tokens == pytest.approx(9_570_000) for d in cap.daily)
    assert len(cap.hourly) == 168
    assert cap.hourly[14].tokens == pytest.approx(1_100_000)
    assert cap.hourly[14].cost_usd == pytest.approx(4.30)


def test_cards_and_breakdown(store: DuckDBStore) -> None:
    report = _report(store)
    cards = {c.key: c for c in report.cards}
    # March 3 to 24 is 21 whole days of $37.41.
    assert cards["spend_to_date"].value == pytest.approx(21 * 37.41)
    assert cards["next_week"].value == pytest.approx(7 * 9_570_000)
    # No budget: the month-end projection still shows. Data starts on 3 March, so March holds
    # 29 identical days of $37.41; the projection of such a flat profile is all but exact.
    assert cards["month_end"].value == pytest.approx(29 * 37.41, rel=5e-3)
    assert cards["month_end"].status == "na"
    assert "no budget set" in cards["month_end"].detail
    rows = {(b.dimension, b.name): b for b in report.breakdown.items}
    sonnet = rows[("model", "claude-sonnet")]
    # 14 days of history window: 600k * 8.7 per day.
    assert sonnet.tokens == pytest.approx(14 * 600_000 * 8.7)
    assert sonnet.share == pytest.approx(6 / 11)
    assert sonnet.cost_usd == pytest.approx(14 * 3.6 * 8.7)
    assert sonnet.forecast_tokens == pytest.approx(7 * 600_000 * 8.7)
    assert rows[("team", "search")].share == pytest.approx(9 / 11)
    days = report.daily_by_model.items
    assert sum(d.forecast for d in days) == 7
    assert days[0].values["claude-haiku"] == pytest.approx(300_000 * 8.7)


def test_missing_sections_say_why_and_hold_no_numbers(store: DuckDBStore) -> None:
    report = _report(store)
    for section in (report.budgets, report.headroom):
        assert not section.available
        assert section.note
        assert section.items == []
    # Advice is priced with genai-prices even without --prices: only gpt-4o-mini is listed
    # there, and no what-if on it saves $1 a month, so the section says so and holds nothing.
    assert report.advice.available
    assert "claude-haiku, claude-sonnet" in report.advice.note
    assert report.advice.items == []


def test_clean_data_raises_no_spike(store: DuckDBStore) -> None:
    spikes = _report(store).spikes
    assert spikes.available
    assert spikes.items == []


def test_injected_spike_is_found_and_attributed(store: DuckDBStore) -> None:
    rows = usage_rows((("claude-haiku", "search", 5_000_000, Decimal(2)),)).to_pandas()
    # Six hours of twenty-fold haiku traffic in the newest day (Sun 23 Mar 12:00-17:00).
    last = rows[rows["ts"] >= pd.Timestamp("2025-03-23 12:00")].head(6)
    store.write(pa.Table.from_pandas(last, schema=USAGE_SCHEMA, preserve_index=False))
    [spike] = _report(store).spikes.items
    assert spike.kind == "spike"
    assert spike.start == "2025-03-23T12:00:00Z"
    assert "claude-haiku" in spike.cause
    assert spike.ratio is not None
    assert spike.ratio > 2


def test_headroom_against_a_hand_written_limit(store: DuckDBStore, tmp_path: Path) -> None:
    limits_file = tmp_path / "limits.toml"
    limits_file.write_text(
        '[current_tier]\nanthropic = "t1"\n\n[[rate_limit]]\nprovider = "anthropic"\n'
        'family = "sonnet"\nmodels = ["claude-sonnet"]\ntier = "t1"\nrank = 1\n'
        "rpm = 100\nitpm = 40_000\n"
    )
    report = _report(store, limits=load_limits(limits_file))
    rows = {r.limit_kind: r for r in report.headroom.items}
    # Peak hour: 450k input tokens and 300 requests; hourly data gives the default 4x
    # busiest-minute ratio: 450_000 / 60 * 4 = 30_000 ITPM and 300 / 60 * 4 = 20 RPM.
    assert rows["ITPM"].peak_p50 == pytest.approx(30_000)
    assert rows["RPM"].peak_p50 == pytest.approx(20)
    assert rows["ITPM"].peak_p99 > 30_000
    assert rows["ITPM"].headroom == pytest.approx(1 - rows["ITPM"].peak_p99 / 40_000)
    card = next(c for c in report.cards if c.key == "peak_vs_limit")
    assert card.value == rows["ITPM"].peak_p99


def test_without_a_forecaster_history_stays_and_forecast_sections_say_why(
    store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_engine(notes: list[str]) -> None:
        notes.append("not available: the forecast engine is missing (test).")

    monkeypatch.setattr(build_module, "_engine", no_engine)
    report = build_report(store, clock=lambda: CLOCK)
    assert not report.fans.available
    assert "forecast engine" in report.fans.note
    assert report.fans.items[0].history
    assert not report.fans.items[0].forecast
    assert not report.capacity.available


def test_empty_store() -> None:
    report = build_report(DuckDBStore(":memory:"), clock=lambda: CLOCK, forecaster=seasonal_naive)
    assert report.data_start is None
    assert not report.capacity.available
    assert report_to_dict(report)["notes"]


def test_spend_to_date_reads_the_month_the_projection_reads() -> None:
    """At 00:05 on the 1st the hour still filling is April's: both cards say April, and the
    spend so far is the projection's (the budgets' figure), not March's total."""
    rows = usage_rows().to_pandas()
    rows["ts"] = rows["ts"] + pd.Timedelta(days=8)  # 11 Mar to the end of 31 Mar
    five_minutes = rows[rows["ts"] == rows["ts"].min()].copy()
    five_minutes["ts"], five_minutes["bucket_s"] = pd.Timestamp("2025-04-01"), 300
    s = DuckDBStore(":memory:")
    s.write(
        pa.Table.from_pandas(
            pd.concat([rows, five_minutes]), schema=USAGE_SCHEMA, preserve_index=False
        )
    )
    report = build_report(
        s, clock=lambda: pd.Timestamp("2025-04-01 00:06", tz="UTC"), forecaster=seasonal_naive
    )
    cards = {c.key: c for c in report.cards}
    assert "Apr 2025" in cards["month_end"].detail
    assert cards["spend_to_date"].detail.startswith("since 01 Apr 2025")
    assert cards["spend_to_date"].value == 0.0


def test_spend_to_date_is_the_budgets_so_far_to_the_last_digit(store: DuckDBStore) -> None:
    budgets = BudgetsConfig(budgets=(Budget(name="all", amount=Decimal(1000)),))
    report = _report(store, budgets=budgets)
    cards = {c.key: c for c in report.cards}
    [row] = report.budgets.items
    assert cards["spend_to_date"].value == row.so_far
    assert cards["month_end"].value == row.projected
