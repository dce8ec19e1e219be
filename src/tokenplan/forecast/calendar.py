"""Forecasts per calendar month, summed from a daily forecast's joint sample paths.

Months have no fixed width, so no model is fit on them: the days are forecast, and each
month's range comes from the joint paths (`ForecastResult.sum_interval`), which keep the
days' errors tied, so a month's range is not the too-narrow sum of independent days.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

import pandas as pd

from tokenplan.errors import InvalidInput
from tokenplan.forecast.result import ForecastResult, level_name

__all__ = ["MAX_MONTHS", "forecast_months", "next_months"]

# Beyond two years a daily model says nothing a person should plan on.
MAX_MONTHS = 24


def next_months(last_day: pd.Timestamp, months: int) -> list[pd.Timestamp]:
    """Starts of the ``months`` whole months after the one holding ``last_day``, and the end.

    The month the data ends in is left out even when it ends on its last day: it is (or was)
    partly observed, which is what a period projection (`tokenplan project`) is for.
    """
    if not 1 <= months <= MAX_MONTHS:
        raise InvalidInput(
            f"--horizon {months} months is out of range; forecast 1 to {MAX_MONTHS} months."
        )
    first = pd.Timestamp(last_day).normalize() + pd.offsets.MonthBegin(1)
    return [first + pd.DateOffset(months=i) for i in range(months + 1)]


def forecast_months(
    daily: pd.DataFrame,
    *,
    months: int,
    levels: Sequence[int] = (80, 95),
    hierarchy: str | None = None,
    forecaster: Callable[..., ForecastResult] | None = None,
) -> tuple[pd.DataFrame, ForecastResult]:
    """Monthly totals of a daily ``unique_id, ds, y`` frame (``ds`` = each day's midnight).

    Returns ``unique_id, ds, mean, lo_<L>, hi_<L>`` with ``ds`` the month's first day (same
    clock as the input), and the daily result the months were summed from.
    """
    from tokenplan.forecast.engine import forecast

    last_day = pd.Timestamp(daily["ds"].max())
    bounds = next_months(last_day, months)
    horizon = (bounds[-1] - last_day).days - 1
    run = forecaster or forecast
    result = run(daily, horizon=horizon, freq="1d", levels=tuple(levels), hierarchy=hierarchy)
    rows = []
    for uid in result.frame["unique_id"].unique():
        for start, end in pairwise(bounds):
            got = result.sum_interval(str(uid), start, end, levels=tuple(float(x) for x in levels))
            row: dict[str, object] = {"unique_id": uid, "ds": start, "mean": got["point"]}
            for level in levels:
                row[f"lo_{level}"] = got[f"lo_{level_name(level)}"]
                row[f"hi_{level}"] = got[f"hi_{level_name(level)}"]
            rows.append(row)
    return pd.DataFrame(rows), result
