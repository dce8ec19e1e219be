"""Costed advice: savings computed by hand with a fake price book, and only when supported."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd

from tokenplan.plan.advice import ModelUsage, advise, monthly_usage

AT = datetime(2025, 6, 1, tzinfo=UTC)
M = Decimal(1_000_000)
# USD per million tokens: input, output, cache read.
RATES = {
    "big": (Decimal(10), Decimal(30), Decimal(1)),
    "small": (Decimal(1), Decimal(3), Decimal("0.1")),
}


class FakeBook:
    """Linear prices; batch is half price for "big" only; "mystery" is unknown."""

    def cost(
        self,
        provider,
        model,
        at,
        input_tokens,
        output_tokens,
        cache_read_tokens=0,
        cache_write_tokens=0,
        *,
        requests=1,
        batch=False,
    ):  # type: ignore[no-untyped-def]
        if model not in RATES or (batch and model != "big"):
            return None
        inp, out, cached = RATES[model]
        usd = (
            (input_tokens - cache_read_tokens) * inp
            + output_tokens * out
            + cache_read_tokens * cached
        ) / M
        return usd / 2 if batch else usd


def test_savings_by_hand() -> None:
    usage = [
        ModelUsage(
            provider="p",
            model="big",
            requests=1000,
            input_tokens=100_000_000,
            output_tokens=10_000_000,
        )
    ]
    found = {a.kind: a for a in advise(usage, FakeBook(), at=AT, alternatives={"big": "small"})}
    # Current: 100M x $10 + 10M x $30 = $1,300/month.
    assert all(a.current_usd_month == Decimal(1300) for a in found.values())
    # 30% to "small": $390 → $39, saving $351.
    assert found["switch_model"].saving_usd_month == Decimal(351)
    assert "30%" in found["switch_model"].assumption
    assert "$351.00/month" in found["switch_model"].message
    # 20% through batch at half price: $260 → $130, saving $130.
    assert found["batch"].saving_usd_month == Decimal(130)
    # 20% of 100M uncached input read from cache instead: 20M x ($10 - $1) = $180.
    assert found["cache"].saving_usd_month == Decimal(180)
    assert [a.kind for a in advise(usage, FakeBook(), at=AT, alternatives={"big": "small"})] == [
        "switch_model",
        "cache",
        "batch",
    ]


def test_nothing_without_prices_or_without_savings() -> None:
    unknown = [
        ModelUsage(
            provider="p", model="mystery", requests=10, input_tokens=10**9, output_tokens=10**8
        )
    ]
    assert advise(unknown, FakeBook(), at=AT, alternatives={"mystery": "small"}) == []
    # "small" has no cheaper alternative and no batch price; its cache saving is below $1.
    tiny = [
        ModelUsage(
            provider="p", model="small", requests=10, input_tokens=1_000_000, output_tokens=0
        )
    ]
    assert advise(tiny, FakeBook(), at=AT, alternatives={}) == []


def test_monthly_usage_scales_the_forecast_horizon() -> None:
    ds = pd.date_range("2025-06-01", periods=7 * 24, freq="h")
    frame = pd.DataFrame({"unique_id": "big", "ds": ds, "mean": 1000.0})
    usage = monthly_usage({"input_tokens": frame, "requests": frame.assign(mean=1.0)}, {"big": "p"})
    # 1,000/h over a week → 24,000/day x 30.4375 days; 730.5 requests round half to even.
    assert usage == [
        ModelUsage(provider="p", model="big", requests=730, input_tokens=730_500, output_tokens=0)
    ]
