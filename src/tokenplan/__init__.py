"""tokenplan: capacity planning and cost forecasting for LLM API usage."""

from tokenplan.errors import (
    ConfigError,
    ForecastError,
    InvalidInput,
    ModelFileError,
    PriceError,
    StoreError,
    TokenplanError,
)
from tokenplan.events import UsageEvent

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ForecastError",
    "InvalidInput",
    "ModelFileError",
    "PriceError",
    "StoreError",
    "TokenplanError",
    "UsageEvent",
    "__version__",
]
