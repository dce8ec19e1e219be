"""Budgets and costed advice in the report, hand-checked on the synthetic store.

Every day is the same: $37.41 of spend a day, of which claude-sonnet is 600k x 8.7 tokens at
$6/M = $31.32. The data runs from Mon 3 March to Sun 23 March 2025 (21 days), so March holds
$785.61 so far and the week of 17 March is complete at 7 x $31.32 = $219.24.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from report_fixtures import CLOCK, seasonal_naive, usage_rows

from tokenplan.plan.advice import ModelUsage
from tokenplan.plan.budgets import load_budgets
from tokenplan.pricing import PriceBook
from tokenplan.report import Report, build_report, render_html, report_to_dict
from tokenplan.report import formatting as fmt
from tokenplan.store import DuckDBStore

BUDGETS = """
[fx]
currency = "CNY"
per_usd = 7

[[budget]]
name = "all, monthly"
scope = "all"
amount = 1000
period = "month"
thresholds = [0.8, 1.0]

[[budget]]
name = "sonnet, weekly"
scope = "model"
match = "claude-sonnet"
amount = 200
period = "week"
thresholds = [0.8, 1.0]

[[budget]]
name = "all, monthly, in yuan"
scope = "all"
amount = 7595
currency = "CNY"
period = "month"

[[budget]]
name = "nobody"
scope = "team"
match = "nobody"
amount = 10
period = "day"
"""


def _report(store: DuckDBStore, **kw: object) -> Report:
    return build_report(store, clock=lambda: CLOCK, forecaster=seasonal_naive, **kw)  # type: ignore[arg-type]


@pytest.fixture
def budgeted(store: DuckDBStore, tmp_path: Path) -> Report:
    path = tmp_path / "budgets.toml"
    path.write_text(BUDGETS)
    return _report(store, budgets=load_budgets(path))


def test_budget_numbers_by_hand(budgeted: Report) -> None:
    rows = {b.name: b for b in budgeted.budgets.items}
    month = rows["all, monthly"]
    assert (month.period_start, month.period_end) == (
        "2025-03-01T00:00:00Z",
        "2025-04-01T00:00:00Z",
    )
    assert month.so_far == pytest.approx(21 * 37.41)
    # 8 more identical days: $1,084.89 in all, well past $1,000, crossed on the 29th.
    assert month.projected == pytest.approx(29 * 37.41, rel=5e-3)
    assert month.lo_95 <= month.lo_80 <= month.projected <= month.hi_80 <= month.hi_95
    # No past March to calibrate on, so not quite certain, but all but.
    assert month.p_over_limit > 0.99
    assert month.breach_at is not None
    assert month.breach_at.startswith("2025-03-29")
    assert month.amount_usd == 1000
    # Neither threshold is reached yet ($785.61 < $800), both are all but certain to be.
    assert [(a.severity, a.threshold) for a in month.alerts] == [
        ("warning", pytest.approx(800)),
        ("critical", pytest.approx(1000)),
    ]
    assert all(a.probability is not None and a.probability > 0.99 for a in month.alerts)
    assert "chance of passing 80%" in month.alerts[0].message
    week = rows["sonnet, weekly"]
    assert week.scope == "model claude-sonnet"
    assert week.period_start == "2025-03-17T00:00:00Z"
    assert week.so_far == pytest.approx(7 * 31.32)
    assert week.projected == pytest.approx(7 * 31.32)  # the week is over: nothing left to forecast
    assert week.p_over_limit == 1.0
    assert [a.severity for a in week.alerts] == ["warning", "critical"]  # both reached
    # Once spent, an alert says when it happened, never a future "expected breach".
    assert all("is reached" in a.message for a in week.alerts)
    assert not any("expected" in a.message for a in week.alerts)


def test_budget_in_another_currency_is_shown_in_it(budgeted: Report) -> None:
    rows = {b.name: b for b in budgeted.budgets.items}
    usd, cny = rows["all, monthly"], rows["all, monthly, in yuan"]
    assert cny.currency == "CNY"
    assert cny.amount_usd == pytest.approx(7595 / 7)  # 1,085 USD
    assert cny.so_far == pytest.approx(21 * 37.41 * 7)
    assert cny.projected == pytest.approx(usd.projected * 7)
    assert 0 < cny.p_over_limit < 1  # 1,085 USD is right at the projection


def test_a_budget_without_spend_is_left_out_with_the_reason(budgeted: Report) -> None:
    assert "nobody" not in {b.name for b in budgeted.budgets.items}
    # A match that selects nothing names the values that exist (a typo is the usual cause).
    assert "nobody: match 'nobody' selects no team; existing values: 'search', 'support'" in (
        budgeted.budgets.note
    )
    assert "nobody: nobody" not in budgeted.budgets.note


def test_gauge_card_and_json_hold_the_same_p_overrun(store: DuckDBStore, tmp_path: Path) -> None:
    # A limit right at the projection, so the chance is neither 0 nor 1.
    path = tmp_path / "budgets.toml"
    path.write_text('[[budget]]\nname = "tight"\nscope = "all"\namount = 1085\nperiod = "month"\n')
    report = _report(store, budgets=load_budgets(path))
    [row] = report.budgets.items
    p = row.p_over_limit
    assert 0 < p < 1
    data = report_to_dict(report)
    assert data["budgets"]["items"][0]["p_over_limit"] == p
    card = next(c for c in data["cards"] if c["key"] == "month_end")
    assert card["value"] == pytest.approx(row.projected)
    assert f"P(overrun) {p * 100:.0f}%" in card["detail"]
    page = render_html(report)
    tagged = re.search(
        r'data-path="budgets.items\[0\].p_over_limit"[^>]*data-value="([^"]+)"', page
    )
    assert tagged is not None
    assert json.loads(tagged.group(1)) == p
    gauge = re.search(r'<svg[^>]*id="gauge-1".*?</svg>', page, re.S)
    assert gauge is not None
    assert f"probability of overrun {fmt.percent(p)}" in gauge.group(0)


def test_sonnet_traffic_gets_a_cheaper_model_advice_priced_by_hand() -> None:
    store = DuckDBStore(":memory:")
    store.write(usage_rows((("claude-sonnet-4-5", "search", 600_000, Decimal(6)),)))
    report = _report(store)
    advice = {a.kind: a for a in report.advice.items}
    switch = advice["switch_model"]
    # A day is 5.22M tokens (3.915M in, 1.305M out) in 2,610 requests; the stand-in forecast
    # repeats it, and a month is 30.4375 days: 119,162,812 in and 39,720,938 out. 30% of that
    # (35,748,844 in, 11,916,281 out) costs $3/$15 per M on sonnet and $1/$5 on haiku:
    # saving = 35.748844 x 2 + 11.916281 x 10 = $190.660498.
    assert switch.saving_usd_month == pytest.approx(190.660498)
    share = ModelUsage(
        provider="anthropic",
        model="claude-sonnet-4-5",
        requests=23_833,
        input_tokens=35_748_844,
        output_tokens=11_916_281,
    )
    book = PriceBook()

    def cost(model: str) -> Decimal:
        got = book.cost(
            "anthropic",
            model,
            CLOCK,
            share.input_tokens,
            share.output_tokens,
            requests=share.requests,
        )
        assert got is not None
        return got

    assert switch.saving_usd_month == pytest.approx(
        float(cost("claude-sonnet-4-5") - cost("claude-haiku-4-5"))
    )
    assert "claude-haiku-4-5" in switch.detail
    assert "30%" in switch.assumption
    assert switch.current_usd_month == pytest.approx((119_162_812 * 3 + 39_720_938 * 15) / 1e6)
    assert "cache" in advice  # 20% more cache reads at $0.30/M instead of $3/M also pays
    html = render_html(report)
    assert fmt.money(switch.saving_usd_month) in html


def test_advice_uses_the_given_alternatives_and_local_currency() -> None:
    from tokenplan.report import Currency

    store = DuckDBStore(":memory:")
    store.write(usage_rows((("claude-sonnet-4-5", "search", 600_000, Decimal(6)),)))
    report = _report(
        store,
        alternatives={"claude-sonnet-4-5": "claude-opus-4-1"},  # dearer: no switch advice
        fx=Currency(code="CNY", rate=7.0),
    )
    kinds = {a.kind for a in report.advice.items}
    assert "switch_model" not in kinds
    cache = next(a for a in report.advice.items if a.kind == "cache")
    assert cache.saving_local_month == pytest.approx(cache.saving_usd_month * 7)
