"""Every error tokenplan raises, as one tree.

    TokenplanError            base; ``status`` is the HTTP status the service maps it to
    ├── InvalidInput          bad data or arguments from the user (names file, line, field)
    ├── ConfigError           a config file (prices, budgets, limits) is wrong
    ├── StoreError            the store could not read or write
    ├── PriceError            a price could not be found or computed
    ├── ForecastError         a forecast could not be produced
    ├── ProviderError         a provider's API refused or kept failing (pulls)
    ├── ModelFileError        a saved forecaster is tampered, foreign or unreadable
    └── EngineError           a distributed engine (Dask, Ray, Spark) could not start or failed

The CLI catches ``TokenplanError`` once, prints the message and exits 2.
"""

from __future__ import annotations


class TokenplanError(Exception):
    """Base of every error tokenplan raises."""

    status = 500


class InvalidInput(TokenplanError, ValueError):
    """Input data or arguments are wrong; the message says where and how to fix it."""

    status = 422


class ConfigError(TokenplanError, ValueError):
    """A configuration file or setting is invalid."""

    status = 422


class StoreError(TokenplanError):
    """The store failed to read or write."""

    status = 500


class StoreLocked(StoreError):
    """Another process holds the store file (DuckDB lets one process open it at a time)."""

    status = 503

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class PriceError(TokenplanError):
    """A price could not be determined."""

    status = 422


class ForecastError(TokenplanError):
    """A forecast could not be produced."""

    status = 500


class ProviderError(TokenplanError):
    """A provider's usage API refused the request or kept failing after the retries."""

    status = 502


class ModelFileError(TokenplanError):
    """A saved forecaster file is tampered with, foreign or unreadable."""

    status = 422


class EngineError(TokenplanError):
    """A distributed engine could not be started, reached, or failed while running shards."""

    status = 503


def at(source: str | None, line: int | None = None, field: str | None = None) -> str:
    """Format a source position as ``file, line N, field 'x'`` for error messages."""
    parts = [str(source) if source else "input"]
    if line is not None:
        parts.append(f"line {line}")
    if field:
        parts.append(f"field '{field}'")
    return ", ".join(parts)
