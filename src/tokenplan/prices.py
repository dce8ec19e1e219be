"""Public price API (PriceBook, Rates, FxRate, PricedRows), implemented in tokenplan.pricing."""

from __future__ import annotations

from tokenplan.pricing import *  # noqa: F403 (this module is the public name of the package)
from tokenplan.pricing import __all__ as __all__
