"""`Alert`: a budget breach, a spike or a drop, as a value (never an exception)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["Alert"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """Something a person should look at, with the numbers that triggered it."""

    kind: str  # budget_reached, budget_projected, budget_config, spike, drop
    severity: str  # info, warning, critical
    subject: str
    message: str
    at: pd.Timestamp | None = None
    value: float | None = None
    threshold: float | None = None
    probability: float | None = None
    # Stable identity (kind, subject, threshold, period) that notifiers dedupe on; None if unset.
    key: str | None = None
