"""Public price API (PriceBook, Rates, FxRate, PricedRows), implemented in tokenplan.pricing."""

from __future__ import annotations

from tokenplan.pricing import (
    MTOK,
    USD_QUANTUM,
    Catalog,
    FxRate,
    Override,
    OverridesFile,
    PriceBook,
    PricedRows,
    Rates,
    TierRates,
    genai_version,
    load_overrides,
    price_rows,
    round_usd,
)

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
    "price_rows",
    "round_usd",
]
