"""Prices: genai-prices list prices, local overrides, batch discounts, FX; bulk row pricing."""

from __future__ import annotations

from tokenplan.pricing.book import PriceBook
from tokenplan.pricing.catalog import Catalog, genai_version
from tokenplan.pricing.overrides import Override, OverridesFile, load_overrides
from tokenplan.pricing.rates import (
    MTOK,
    USD_QUANTUM,
    FxRate,
    Rates,
    TierRates,
    parse_fx,
    round_usd,
)
from tokenplan.pricing.rows import PricedRows, price_rows

__all__ = [
    "MTOK",
    "USD_QUANTUM",
    "Catalog",
    "FxRate",
    "Override",
    "OverridesFile",
    "PriceBook",
    "PricedRows",
    "Rates",
    "TierRates",
    "genai_version",
    "load_overrides",
    "parse_fx",
    "price_rows",
    "round_usd",
]
