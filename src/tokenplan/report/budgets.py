"""The budget gauges and the month-end headline card, from `tokenplan.plan.budgets`.

Spend comes from the store as hourly ``cost_usd`` split by each budget's scope; the projection,
overrun probability, breach date and alerts are the planner's. A budget in another currency is
shown in that currency (every USD figure times amount / limit in USD, so the gauge is on one
scale); one without an exchange rate is left out with the reason.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from tokenplan.capacity import CapacityPlan
from tokenplan.plan.budgets import BudgetsConfig, BudgetStatus
from tokenplan.plan.projection import Projection
from tokenplan.report import formatting as fmt
from tokenplan.report.model import AlertRow, BudgetRow, Card, Currency, Section, Status
from tokenplan.timestamps import iso_utc as _iso

__all__ = ["budget_rows", "budgets_section", "month_end_card"]


def budgets_section(
    plan: CapacityPlan, budgets: BudgetsConfig | None, *, fx: Any
) -> Section[BudgetRow]:
    """The plan's spend against each configured budget."""
    if not budgets:
        return Section(available=False, note="no budgets configured: pass --budgets budgets.toml")
    rows, skipped = budget_rows(plan.budget_statuses(budgets, fx=fx))
    return Section(available=bool(rows), note="; ".join(skipped), items=rows)


def budget_rows(statuses: list[BudgetStatus]) -> tuple[list[BudgetRow], list[str]]:
    """One gauge row per budget that could be judged, and why the others could not."""
    rows, skipped = [], []
    for status in statuses:
        budget, proj = status.budget, status.projection
        if proj is None or status.limit_usd is None or status.p_overrun is None:
            reason = "; ".join(a.message for a in status.alerts) or status.note or "no projection"
            reason = reason.rstrip(".")
            # Planner alerts may already name their budget; never print the name twice.
            named = reason.startswith(f"{budget.name}:")
            skipped.append(reason if named else f"{budget.name}: {reason}")
            continue
        # Show the budget in its own currency: every USD figure scaled by the same factor.
        scale = float(budget.amount) / status.limit_usd if status.limit_usd > 0 else 1.0
        rows.append(
            BudgetRow(
                name=budget.name,
                scope="all" if budget.scope == "all" else f"{budget.scope} {budget.match}",
                period=budget.period.value,
                period_start=_iso(proj.period_start),
                period_end=_iso(proj.period_end),
                currency=budget.currency,
                amount=float(budget.amount),
                so_far=proj.so_far * scale,
                projected=proj.projected * scale,
                lo_80=proj.lo_80 * scale,
                hi_80=proj.hi_80 * scale,
                lo_95=proj.lo_95 * scale,
                hi_95=proj.hi_95 * scale,
                p_over_limit=status.p_overrun,
                breach_at=None if proj.breach_at is None else _iso(proj.breach_at),
                thresholds=list(budget.thresholds),
                amount_usd=status.limit_usd,
                alerts=[
                    AlertRow(
                        severity=a.severity,
                        message=a.message,
                        threshold=None if a.threshold is None else a.threshold * scale,
                        probability=a.probability,
                    )
                    for a in status.alerts
                ],
                method=proj.method,
            )
        )
    return rows, skipped


def _status(p: float) -> Status:
    return "bad" if p >= 0.5 else "warn" if p >= 0.2 else "ok"


def month_end_card(
    budgets: Section[BudgetRow], month_end: Projection | None, fx: Currency | None
) -> Card:
    """Projected month-end spend against the monthly budget for all spend, with P(overrun).

    Without such a budget the card still shows the plan's projection of the month's total
    spend (UTC months) and says that no budget is set.
    """
    title = "Projected month end vs budget"
    month = next((b for b in budgets.items if b.period == "month" and b.scope == "all"), None)
    if month is not None:
        rate = month.amount_usd / month.amount if month.amount_usd and month.amount else 1.0
        usd = month.projected * rate
        return Card(
            key="month_end",
            title=title,
            value=usd,
            value_local=None if fx is None else usd * fx.rate,
            unit="usd",
            detail=(
                f"budget {fmt.money(month.amount, month.currency)} · "
                f"P(overrun) {month.p_over_limit * 100:.0f}% · 80% range "
                f"{fmt.money(month.lo_80 * rate)}–{fmt.money(month.hi_80 * rate)}"
                + (f" · breach {pd.Timestamp(month.breach_at):%a %d %b}" if month.breach_at else "")
            ),
            status=_status(month.p_over_limit),
        )
    proj = month_end
    if proj is None:
        return Card(
            key="month_end",
            title=title,
            value=None,
            unit="usd",
            detail="not available: the store has no costs for this usage",
            status="na",
        )
    why = "no monthly budget for all spend" if budgets.items else "no budget set"
    return Card(
        key="month_end",
        title="Projected month-end spend",
        value=proj.projected,
        value_local=None if fx is None else proj.projected * fx.rate,
        unit="usd",
        detail=(
            f"{why} · {proj.period_start:%b %Y}, so far {fmt.money(proj.so_far)} · 80% range "
            f"{fmt.money(proj.lo_80)}–{fmt.money(proj.hi_80)}"
        ),
        status="na",
    )
