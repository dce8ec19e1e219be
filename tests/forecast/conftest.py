"""Synthetic usage series with known structure for the forecast tests."""

from __future__ import annotations

import pandas as pd
import pytest
from forecast_frames import usage


@pytest.fixture
def series() -> pd.DataFrame:
    """Three weeks of one hourly series."""
    return usage()


@pytest.fixture
def panel() -> pd.DataFrame:
    """Three hourly series of different sizes, three weeks each."""
    return pd.concat(
        [usage(level=lv, seed=i, uid=f"m{i}") for i, lv in enumerate((50.0, 2000.0, 30000.0))],
        ignore_index=True,
    )
