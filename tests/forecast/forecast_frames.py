"""Synthetic usage series with known structure, for the forecast tests.

A module of its own, not conftest: a bare ``from conftest import`` takes whichever folder's
conftest was loaded last in the session.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def usage(
    n: int = 504,
    level: float = 1000.0,
    noise: float = 0.2,
    seed: int = 0,
    uid: str = "s",
    start: str = "2024-01-01",
    freq: str = "1h",
    weekend: float = 0.6,
) -> pd.DataFrame:
    """Hourly usage: daily cycle, quieter weekends (``weekend`` x), log-normal noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    ds = pd.date_range(start, periods=n, freq=freq)
    quiet = np.where(ds.dayofweek >= 5, weekend, 1.0)
    y = level * (1 + 0.5 * np.sin(2 * np.pi * t / 24)) * quiet
    y = y * np.exp(rng.normal(0, noise, n))
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": y})
