"""Costed advice for the report: `tokenplan.plan.advice` on the per-model usage forecast.

The forecast horizon's requests and tokens per model are scaled to a month and priced with the
report's `PriceBook` (genai-prices list prices unless overrides are given); each row says what
to change, the USD saved per month and the assumption behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenplan.capacity import CapacityPlan
from tokenplan.plan.advice import Advice
from tokenplan.report.model import AdviceRow, Currency, Section

__all__ = ["advice_rows", "advice_section"]

_TITLES = {
    "switch_model": "Move part of {model} to a cheaper model",
    "batch": "Send part of {model} through the batch API",
    "cache": "Raise prompt-cache hits on {model}",
}


def advice_section(
    plan: CapacityPlan,
    prices: Any,
    *,
    fx: Currency | None,
    alternatives: Mapping[str, str] | None = None,
) -> Section[AdviceRow]:
    """The plan's priced what-ifs on the forecast month, as report rows."""
    got = plan.advice(prices, alternatives=alternatives)
    if isinstance(got, str):
        return Section(available=False, note=got)
    found, unpriced = got
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
