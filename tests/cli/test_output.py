"""CLI cell formatting: exact money, ISO timestamps, missing values."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from tokenplan.cli.output import iso, plain, to_csv


@given(st.decimals(allow_nan=False, allow_infinity=False, places=12, min_value=0, max_value=10**20))
def test_money_round_trips_exactly_and_plainly(amount: Decimal) -> None:
    text = plain(amount)
    assert Decimal(text) == amount
    assert "E" not in text.upper()


def test_trailing_zeros_and_missing_values() -> None:
    assert plain(Decimal("19333.994715200000")) == "19333.9947152"
    assert plain(Decimal("100.000000000000")) == "100"
    assert plain(float("nan")) is None
    frame = pd.DataFrame({"series": ["total"], "timestamp": [iso(pd.Timestamp("2025-01-01"))],
                          "y": [float("nan")]})  # fmt: skip
    assert to_csv(frame) == "series,timestamp,y\ntotal,2025-01-01T00:00:00Z,\n"
