"""Drift between what the SDK recorded and what the provider reports, per day and model.

Drift is SDK minus provider: negative means the app's own records miss usage the provider
counted (calls not instrumented, events lost); relative drift is over the provider's number.
The provider's cost is what it billed (its cost report) where pulled, else its usage report
priced by tokenplan, and the row says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd

__all__ = ["Drift", "reconcile"]


@dataclass(frozen=True, slots=True)
class Drift:
    """One day, provider and model: both sides' tokens and cost and how far apart they are."""

    day: date
    provider: str
    model: str
    sdk_requests: int | None
    sdk_tokens: int | None
    provider_tokens: int | None
    token_drift: int | None
    token_drift_pct: float | None
    sdk_cost_usd: Decimal | None
    provider_cost_usd: Decimal | None
    cost_basis: str | None  # "billed" or "priced report"
    cost_drift_usd: Decimal | None
    cost_drift_pct: float | None
    note: str


def reconcile(sides: pd.DataFrame) -> list[Drift]:
    """Drift rows from `tokenplan.store.reconcile.reconcile_sides` output."""
    return [_drift({str(k): v for k, v in row.items()}) for row in sides.to_dict("records")]


def _drift(row: dict[str, Any]) -> Drift:
    notes = []
    sdk_tokens = _sum(row.get("sdk_input"), row.get("sdk_output"))
    rep_tokens = _sum(row.get("report_input"), row.get("report_output"))
    billed, priced = row.get("billed"), row.get("report_cost")
    if sdk_tokens is None:
        notes.append("no SDK events: calls not instrumented, or their events not collected")
    if rep_tokens is None:
        notes.append(
            f"no provider usage report for this day: run `tokenplan pull {row['provider']}`"
            if billed is None
            else "billed, but no provider usage report: pull or import its usage too"
        )
    if billed is not None:
        provider_cost, basis = billed, "billed"
    elif priced is not None:
        provider_cost, basis = priced, "priced report"
        if row.get("report_unpriced"):
            notes.append("part of the provider's usage has no known price")
    else:
        provider_cost, basis = None, None
    if row.get("sdk_unpriced"):
        notes.append(f"{row['sdk_unpriced']} SDK events have no known price")
    sdk_cost = row.get("sdk_cost")
    token_drift = None if None in (sdk_tokens, rep_tokens) else sdk_tokens - rep_tokens  # type: ignore[operator]
    cost_drift = None if None in (sdk_cost, provider_cost) else sdk_cost - provider_cost
    return Drift(
        day=_day(row["day"]),
        provider=str(row["provider"]),
        model=str(row["model"]),
        sdk_requests=None if row.get("sdk_requests") is None else int(row["sdk_requests"]),
        sdk_tokens=sdk_tokens,
        provider_tokens=rep_tokens,
        token_drift=token_drift,
        token_drift_pct=_share(token_drift, rep_tokens),
        sdk_cost_usd=sdk_cost,
        provider_cost_usd=provider_cost,
        cost_basis=basis,
        cost_drift_usd=cost_drift,
        cost_drift_pct=_share(cost_drift, provider_cost),
        note="; ".join(notes),
    )


def _sum(a: Any, b: Any) -> int | None:
    if a is None and b is None:
        return None
    return int(a or 0) + int(b or 0)


def _share(part: Any, whole: Any) -> float | None:
    if part is None or whole is None or whole == 0:
        return None
    return round(float(Decimal(part) / Decimal(whole)) * 100, 4)


def _day(value: Any) -> date:
    return pd.Timestamp(value).date()
