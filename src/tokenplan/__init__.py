"""tokenplan: capacity planning and cost forecasting for LLM API usage.

    >>> import tokenplan as tp
    >>> sorted(set(tp.__all__) - set(dir(tp)))
    []

Heavy parts (pandas, the forecast engine, genai-prices) load on first use, so ``import
tokenplan`` stays fast for the SDK wrapper and the collectors.
"""

from __future__ import annotations

import typing

from tokenplan.errors import (
    ConfigError,
    EngineError,
    ForecastError,
    InvalidInput,
    ModelFileError,
    PriceError,
    ProviderError,
    StoreError,
    TokenplanError,
)
from tokenplan.events import UsageEvent

if typing.TYPE_CHECKING:
    from tokenplan import forecast
    from tokenplan.capacity import CapacityPlan, Planner, PlanSettings, make_plan
    from tokenplan.capacity import open_planner as open
    from tokenplan.collect.sdk import instrument
    from tokenplan.plan.projection import Projection, project
    from tokenplan.pricing import FxRate, PriceBook

__version__ = "0.1.0"

__all__ = [
    "CapacityPlan",
    "ConfigError",
    "EngineError",
    "ForecastError",
    "FxRate",
    "InvalidInput",
    "ModelFileError",
    "PlanSettings",
    "Planner",
    "PriceBook",
    "PriceError",
    "Projection",
    "ProviderError",
    "StoreError",
    "TokenplanError",
    "UsageEvent",
    "__version__",
    "forecast",
    "instrument",
    "make_plan",
    "open",
    "project",
]

# name → (module, attribute); None means the module itself.
_LAZY: dict[str, tuple[str, str | None]] = {
    "CapacityPlan": ("tokenplan.capacity", "CapacityPlan"),
    "PlanSettings": ("tokenplan.capacity", "PlanSettings"),
    "Planner": ("tokenplan.capacity", "Planner"),
    "make_plan": ("tokenplan.capacity", "make_plan"),
    "open": ("tokenplan.capacity", "open_planner"),
    "project": ("tokenplan.plan.projection", "project"),
    "Projection": ("tokenplan.plan.projection", "Projection"),
    "PriceBook": ("tokenplan.pricing", "PriceBook"),
    "FxRate": ("tokenplan.pricing", "FxRate"),
    "forecast": ("tokenplan.forecast", None),
    "instrument": ("tokenplan.collect.sdk", "instrument"),
}


def __getattr__(name: str) -> typing.Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'tokenplan' has no attribute {name!r}")
    import importlib

    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
