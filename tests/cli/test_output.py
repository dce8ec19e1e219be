"""CLI cell formatting: exact money, ISO timestamps, missing values."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from tokenplan.cli.output import plain, to_csv, usd
from tokenplan.timestamps import iso_utc as iso


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


def test_untrusted_text_is_shown_escaped_and_never_as_markup() -> None:
    from rich.console import Console

    from tokenplan.cli.output import safe, visible

    assert visible("a\x1b]0;t\x07b\u202ec\u200bd\x9b") == "a\\x1b]0;t\\x07b\\u202ec\\u200bd\\x9b"
    console = Console(record=True, width=80, color_system=None)
    console.print(safe("[/x] [red]y[link=https://e.example]z"))
    assert "[/x] [red]y[link=https://e.example]z" in console.export_text()


def test_spreadsheet_cells_neutralise_formulas_but_keep_numbers() -> None:
    from tokenplan.cli.output import spreadsheet_cell, to_csv

    assert [spreadsheet_cell(v) for v in ("=1+1", "+x", "-x", "@SUM(A1)", "\tx", "ok")] == [
        "'=1+1",
        "'+x",
        "'-x",
        "'@SUM(A1)",
        "'\tx",
        "ok",
    ]
    assert spreadsheet_cell("-3.25") == "-3.25"
    assert spreadsheet_cell(-3) == -3
    frame = pd.DataFrame({"series": ["=cmd", "total"], "y": [-1, 2]})
    assert to_csv(frame, spreadsheet=True) == "series,y\n'=cmd,-1\ntotal,2\n"
    assert to_csv(frame) == "series,y\n=cmd,-1\ntotal,2\n"


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=12, min_value=-(10**12), max_value=10**12
    )
)
def test_a_cost_is_shown_to_the_cent_and_a_small_one_never_as_zero(amount: Decimal) -> None:
    text = usd(amount)
    if abs(amount) < Decimal("0.000001") and amount != 0:
        assert text.endswith("<$0.000001")
        return
    shown = Decimal(text.replace("$", "").replace(",", ""))
    if abs(amount) >= 1 or amount == 0:
        assert shown == amount.quantize(Decimal("0.01"))  # to the cent
    else:
        assert shown != 0  # a bill of $0.0047 is not $0.00
        assert abs(shown - amount) <= Decimal("0.0000005")  # to the millionth


def test_usd_examples() -> None:
    assert usd(Decimal("0.0047")) == "$0.0047"
    assert usd(Decimal("0.5")) == "$0.50"
    assert usd(1234.567) == "$1,234.57"
    assert usd(None) == "—"
