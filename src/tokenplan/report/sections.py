"""The plan sections of the report (budgets, headroom, spikes, advice) and the headline cards.

Each section calls the `tokenplan.plan` function that computes it; where that function or its
configuration is missing, the section says so instead of showing numbers.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from tokenplan.capacity import CapacityPlan
from tokenplan.plan.known import records
from tokenplan.plan.projection import Projection
from tokenplan.report.budgets import month_end_card
from tokenplan.report.model import (
    Card,
    Currency,
    HeadroomRow,
    Report,
    Section,
    SpikeRow,
)
from tokenplan.store.queries import UsageQueries
from tokenplan.timestamps import iso_utc

LEVELS = (80, 95)


def unavailable(note: str, items: list[Any] | None = None) -> Section[Any]:
    """A section that cannot be computed, and why."""
    return Section(available=False, note=note, items=items or [])


# Kept under its old name for the report modules that import it.
iso = iso_utc


def headroom_section(plan: CapacityPlan, limits: Any) -> Section[HeadroomRow]:
    """The plan's busiest-minute use per model against each configured rate limit.

    The note names where the limits came from, how the busiest minute was found, and every
    model no limit covers.
    """
    if not limits:
        return unavailable("no rate limits configured: pass --limits limits.toml")
    check = plan.headroom(limits)
    if isinstance(check, str):
        return unavailable(check)
    return Section(
        available=True,
        note="; ".join(check.notes),
        items=[
            HeadroomRow(
                name=f"{r.provider} {r.family} ({r.tier})",
                limit_kind=r.kind.upper(),
                limit=float(r.limit),
                peak_p50=r.expected_peak,
                peak_p99=r.p99_peak,
                headroom=r.headroom_share,
                first_risk_at=None if r.first_risk_at is None else iso(r.first_risk_at),
                p_hit_max=r.p_hit_max,
                suggestion=(
                    f"tier {r.holding_tier} holds the p99 peak"
                    if r.holding_tier
                    else "no listed tier holds the p99 peak"
                ),
            )
            for r in check.rows
        ],
    )


def spikes_section(plan: CapacityPlan) -> Section[SpikeRow]:
    """The plan's spikes and drops in the newest day, attributed to a model."""
    found = plan.anomalies()
    metric = plan.metric
    return Section(
        available=True,
        items=[
            SpikeRow(
                kind=a.kind,
                start=iso(a.start),
                end=iso(a.end),
                metric=metric,
                observed=float(a.actual),
                baseline=float(a.expected),
                ratio=None if a.peak_ratio is None else float(a.peak_ratio),
                cause=(
                    f"{a.dimension} {a.culprit}"
                    + (f" ({a.culprit_share:.0%} of the change)" if a.culprit_share else "")
                    if a.culprit
                    else "no single cause"
                ),
                detail=a.message,
            )
            for a in found
        ],
    )


def cards(
    report: Report,
    store: UsageQueries,
    as_of: pd.Timestamp,
    fx: Currency | None,
    month_end: Projection | None = None,
    newest: pd.Timestamp | None = None,
) -> list[Card]:
    """Headline figures: spend to date, period end vs budget, peak vs limit, next week.

    Spend to date is the month-end projection's ``so_far`` when there is one, so the two cards
    read the same month (the one holding ``newest``, the bucket still filling at 00:10 on the
    1st) and the same total the budgets show.
    """

    def local(value: float | None) -> float | None:
        return None if fx is None or value is None else value * fx.rate

    spent: float | None
    if month_end is not None:
        month_start, spent = month_end.period_start.tz_localize(None), month_end.so_far
    else:
        newest = as_of - pd.Timedelta(hours=1) if newest is None else newest
        month_start = newest.normalize().replace(day=1)
        spend = store.series(
            "cost_usd", "1d", (), month_start.to_pydatetime(), as_of.to_pydatetime()
        )
        # Unknown where no day with rows knows its cost (`records`); otherwise the known part.
        spent = float(spend["y"].sum()) if records(spend["y"]) else None
    out = [
        Card(
            key="spend_to_date",
            title="Spend this month to date",
            value=spent,
            value_local=local(spent),
            unit="usd",
            detail=f"since {month_start:%d %b %Y}, data to {as_of:%d %b %H:%M} UTC"
            if spent is not None
            else "not available: the store has no costs for this usage",
            status="ok" if spent is not None else "na",
        )
    ]
    out.append(month_end_card(report.budgets, month_end, fx))
    out.append(_limit_card(report))
    if report.capacity.items and report.capacity.items[0].weekly:
        week = report.capacity.items[0].weekly[0]
        cost = f"≈ ${week.cost_usd:,.2f}" if week.cost_usd is not None else "cost unknown"
        out.append(
            Card(
                key="next_week",
                title=f"Forecast next {week.days:g} days",
                value=week.tokens,
                unit="tokens",
                detail=f"{cost} · peak hour {pd.Timestamp(week.peak_hour):%a %d %b %H:00} UTC",
            )
        )
    return out


def _limit_card(report: Report) -> Card:
    rows = [r for r in report.headroom.items if r.limit > 0]
    worst = max(rows, key=lambda r: r.peak_p99 / r.limit, default=None)
    if worst is None:
        return Card(
            key="peak_vs_limit",
            title="Peak TPM vs limit",
            value=None,
            unit="tpm",
            detail="not available: " + (report.headroom.note or "no limit matches"),
            status="na",
        )
    share = worst.peak_p99 / worst.limit
    return Card(
        key="peak_vs_limit",
        title=f"Peak {worst.limit_kind} vs limit",
        value=worst.peak_p99,
        unit="tpm",
        detail=f"{worst.name}: limit {worst.limit:,.0f} · p99 peak at {share * 100:.0f}% of it",
        status="bad" if share >= 1 else "warn" if share >= 0.8 else "ok",
    )
