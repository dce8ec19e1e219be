"""A small synthetic store with known numbers, and a deterministic stand-in forecaster.

The stand-in keeps the report tests fast and their numbers hand-checkable; the real engine is
tested in tests/forecast.
"""

from __future__ import annotations

import pytest
from report_fixtures import usage_rows

from tokenplan.store import DuckDBStore


@pytest.fixture
def store() -> DuckDBStore:
    """Three weeks of hourly usage for three models in two teams."""
    s = DuckDBStore(":memory:")
    s.write(usage_rows())
    return s
