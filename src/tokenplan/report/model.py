"""The report's data as plain dataclasses: what `--json` writes and the HTML shows, exactly.

Timestamps are ISO 8601 UTC strings (``2025-03-01T00:00:00Z``), money is USD floats with an
optional second currency at an explicit rate, tokens are floats (forecast means are not whole).
A section whose computation is missing carries ``available=False`` and a ``note`` saying why,
never made-up numbers.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")
Status = Literal["ok", "warn", "bad", "na"]


@dataclass(slots=True, kw_only=True)
class Currency:
    """A second currency: ``amount_local = amount_usd * rate``."""

    code: str
    rate: float
    note: str = ""


@dataclass(slots=True, kw_only=True)
class Card:
    """One headline number with its context."""

    key: str
    title: str
    value: float | None
    unit: Literal["usd", "tokens", "percent", "tpm", "count"]
    value_local: float | None = None
    detail: str = ""
    status: Status = "ok"


@dataclass(slots=True, kw_only=True)
class Point:
    """One observed bucket."""

    ds: str
    y: float | None


@dataclass(slots=True, kw_only=True)
class FanPoint:
    """One forecast bucket with its 80% and 95% ranges."""

    ds: str
    mean: float
    lo_80: float
    hi_80: float
    lo_95: float
    hi_95: float


@dataclass(slots=True, kw_only=True)
class Fan:
    """History and forecast of one series (``total``, ``model=x``, ``team=y``)."""

    series: str
    label: str
    metric: str
    history: list[Point]
    forecast: list[FanPoint]


@dataclass(slots=True, kw_only=True)
class BreakdownRow:
    """One model or team: what it used in the history window and is forecast to use."""

    dimension: str
    name: str
    tokens: float
    cost_usd: float | None
    share: float
    forecast_tokens: float | None
    forecast_cost_usd: float | None


@dataclass(slots=True, kw_only=True)
class StackedDay:
    """Tokens per model on one UTC day; ``forecast`` days hold forecast means."""

    date: str
    forecast: bool
    values: dict[str, float]


@dataclass(slots=True, kw_only=True)
class HourRow:
    """One forecast hour of the capacity summary."""

    ds: str
    tokens: float
    tokens_lo_80: float
    tokens_hi_80: float
    cost_usd: float | None
    cost_local: float | None = None


@dataclass(slots=True, kw_only=True)
class DayRow:
    """One forecast day (UTC); ``hours`` < 24 marks a partial day at the horizon's edges."""

    date: str
    hours: int
    tokens: float
    cost_usd: float | None
    cost_local: float | None = None
    partial: bool = False


@dataclass(slots=True, kw_only=True)
class WeekRow:
    """Seven forecast days from ``start``: totals, average daily cost and the busiest hour."""

    start: str
    end: str
    days: float
    tokens: float
    cost_usd: float | None
    avg_daily_cost_usd: float | None
    peak_hour: str
    peak_tokens: float
    cost_local: float | None = None
    avg_daily_cost_local: float | None = None
    tokens_lo_80: float | None = None
    tokens_hi_80: float | None = None
    cost_lo_80: float | None = None
    cost_hi_80: float | None = None


@dataclass(slots=True, kw_only=True)
class Capacity:
    """The seed design's capacity summary: hourly and daily forecast and weekly totals."""

    hourly: list[HourRow]
    daily: list[DayRow]
    weekly: list[WeekRow]


@dataclass(slots=True, kw_only=True)
class AlertRow:
    """A threshold crossed (``probability`` 1) or likely to be crossed by the period's end."""

    severity: str  # info, warning, critical
    message: str
    threshold: float | None = None
    probability: float | None = None


@dataclass(slots=True, kw_only=True)
class BudgetRow:
    """One budget: spend to date, projected period total with ranges, overrun odds.

    Money is in the budget's ``currency``; ``amount_usd`` is the limit in USD. ``alerts`` are
    the thresholds crossed or likely to be crossed.
    """

    name: str
    scope: str
    period: str
    period_start: str
    period_end: str
    currency: str
    amount: float
    so_far: float
    projected: float
    lo_80: float
    hi_80: float
    lo_95: float
    hi_95: float
    p_over_limit: float
    breach_at: str | None
    thresholds: list[float] = field(default_factory=list)
    amount_usd: float | None = None
    alerts: list[AlertRow] = field(default_factory=list)
    method: str = ""


@dataclass(slots=True, kw_only=True)
class HeadroomRow:
    """One rate limit against the forecast peak per-minute use."""

    name: str
    limit_kind: str
    limit: float
    peak_p50: float | None
    peak_p99: float
    headroom: float
    first_risk_at: str | None
    suggestion: str = ""
    p_hit_max: float | None = None


@dataclass(slots=True, kw_only=True)
class SpikeRow:
    """A spike or drop against the forecast band, with who caused it."""

    kind: str
    start: str
    end: str
    metric: str
    observed: float
    baseline: float
    ratio: float | None
    cause: str
    detail: str = ""


@dataclass(slots=True, kw_only=True)
class AdviceRow:
    """A costed what-if: what to change, the money saved per month and why we think so."""

    title: str
    saving_usd_month: float
    assumption: str
    detail: str = ""
    saving_local_month: float | None = None
    kind: str = ""
    model: str = ""
    current_usd_month: float | None = None


@dataclass(slots=True, kw_only=True)
class Section(Generic[T]):
    """A report section; ``available=False`` with a ``note`` when it cannot be computed."""

    available: bool
    note: str = ""
    items: list[T] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Report:
    """Everything the report shows."""

    title: str
    generated_at: str
    data_start: str | None
    data_end: str | None
    as_of: str | None
    horizon_hours: int
    metric: str
    currency: Currency | None
    notes: list[str]
    forecast_notes: list[str]
    cards: list[Card]
    fans: Section[Fan]
    cost_fan: Section[Fan]
    breakdown: Section[BreakdownRow]
    daily_by_model: Section[StackedDay]
    capacity: Section[Capacity]
    budgets: Section[BudgetRow]
    headroom: Section[HeadroomRow]
    spikes: Section[SpikeRow]
    advice: Section[AdviceRow]


def report_to_dict(report: Report) -> dict[str, Any]:
    """The report as plain JSON-ready data (NaN and infinities become null)."""
    return _clean(asdict(report))


def write_json(report: Report, path: str | Path) -> Path:
    """Write the report's numbers as JSON and return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report_to_dict(report), indent=2) + "\n", encoding="utf-8")
    return target


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
