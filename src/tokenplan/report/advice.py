"""Costed advice for the report: `tokenplan.plan.advice` on the per-model usage forecast.

The forecast horizon's requests and tokens per model are scaled to a month and priced with the
report's `PriceBook` (genai-prices list prices unless overrides are given); each row says what
to change, the USD saved per month and the assumption behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from tokenplan.plan.advice import Advice, advise, monthly_usage
from tokenplan.report.model import AdviceRow, Currency, Section

__all__ = ["advice_rows", "advice_section"]

_TITLES = {
    "switch_model": "Move part of {model} to a cheaper model",
    "batch": "Send part of {model} through the batch API",
    "cache": "Raise prompt-cache hits on {model}",
}


def advice_section(
    forecasts: Mapping[str, pd.DataFrame] | str,
    prices: Any,
    *,
    providers: Mapping[str, str | None],
    at: datetime,
    fx: Currency | None,
    alternatives: Mapping[str, str] | None = None,
) -> Section[AdviceRow]:
    """Priced what-ifs on the forecast month; ``forecasts`` is metric → frame, or why not."""
    if isinstance(forecasts, str):
        return Section(available=False, note=forecasts)
    usage = [u for u in monthly_usage(forecasts, providers) if u.input_tokens or u.output_tokens]
    if not usage:
        return Section(available=False, note="the usage has no token counts per model to price")
    found = advise(usage, prices, at=at, alternatives=alternatives)
    unpriced = sorted(
        u.model
        for u in usage
        if prices.cost(u.provider, u.model, at, u.input_tokens, u.output_tokens) is None
    )
    overrides = getattr(getattr(prices, "overrides", None), "path", None)
    source = "genai-prices list prices"
    if overrides is not None:
        source += f" and overrides from {overrides.name}"
    note = f"Priced with {source} on the forecast, scaled to a 30.4-day month" + (
        f"; no price is known for {', '.join(unpriced)}, so no advice for it" if unpriced else ""
    )
    return Section(available=True, note=note + ".", items=advice_rows(found, fx))


def advice_rows(found: list[Advice], fx: Currency | None) -> list[AdviceRow]:
    """Report rows from the planner's advice, largest saving first."""
    return [
        AdviceRow(
            title=_TITLES.get(a.kind, "{model}").format(model=a.model),
            saving_usd_month=float(a.saving_usd_month),
            assumption=a.assumption,
            detail=a.message,
            saving_local_month=None if fx is None else float(a.saving_usd_month) * fx.rate,
            kind=a.kind,
            model=a.model,
            current_usd_month=float(a.current_usd_month),
        )
        for a in found
    ]
