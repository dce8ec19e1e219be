"""Alerts from a capacity plan: budgets, rate-limit headroom and spikes, each with a stable key.

Forecast-driven alerts (a budget likely to be exceeded before its period ends, headroom below a
floor within the plan's horizon) and state-driven ones (spend crossed a threshold, a spike or
drop going on now) are all read from `tokenplan.capacity.CapacityPlan`: nothing here forecasts
or projects. Every alert is judged at the plan's as-of time; the notifier holds the clock.

Each alert's ``key`` (kind, subject, threshold, period) is what the notifier dedupes on. A
budget threshold's "likely" and "reached" alerts share one key per period, so a likely overrun
that comes true is one condition getting worse, not a new one plus a "resolved".
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from tokenplan.plan.alerts import Alert
from tokenplan.plan.budgets import BudgetsConfig

if TYPE_CHECKING:
    from tokenplan.capacity import CapacityPlan
    from tokenplan.plan.budgets import BudgetStatus
    from tokenplan.plan.headroom import Headroom
    from tokenplan.plan.limits import LimitsConfig
    from tokenplan.plan.spikes import Anomaly
    from tokenplan.pricing import FxRate
    from tokenplan.service.contracts import PlanSnapshot

__all__ = [
    "SEVERITIES",
    "AlertLoop",
    "AlertRules",
    "AlertSender",
    "Judged",
    "judge_plan",
    "plan_alerts",
    "severity_rank",
]

logger = logging.getLogger(__name__)

SEVERITIES = ("info", "warning", "critical")


def severity_rank(severity: str) -> int:
    """0 for info, 1 for warning, 2 for critical (unknown severities count as info)."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRules:
    """What raises an alert: budget thresholds, the headroom floor, whether spikes count."""

    # Shares of each budget that alert; None keeps each budget's own ``thresholds``.
    thresholds: tuple[float, ...] | None = None
    # Alert when the forecast p99 busiest minute leaves less than this share of a limit free.
    headroom_below: float = 0.2
    spikes: bool = True
    # Newest buckets searched for a spike or drop; only one still going on alerts.
    spike_recent: int = 24


BUDGET_KINDS = frozenset({"budget_reached", "budget_projected", "budget_config"})
HEADROOM_KINDS = frozenset({"headroom_low"})
SPIKE_KINDS = frozenset({"spike", "drop"})


@dataclass(frozen=True, slots=True)
class Judged:
    """The alerts a plan raises now, and the alert kinds it judged: a condition told before is
    resolved only when its kind was judged again (a run without ``--budgets``, or with no
    headroom to read, says nothing about budgets or headroom)."""

    alerts: list[Alert]
    kinds: frozenset[str]


def judge_plan(
    plan: CapacityPlan,
    *,
    budgets: BudgetsConfig | None = None,
    limits: LimitsConfig | None = None,
    fx: FxRate | None = None,
    rules: AlertRules | None = None,
) -> Judged:
    """Every alert the plan raises now, keyed, most severe first, and the kinds judged.

    ``budgets`` and ``limits`` are optional: without them there are no budget or headroom
    alerts. The plan computes the readings; this only chooses which of them alert.
    """
    rules = rules or AlertRules()
    if plan.empty:
        return Judged([], frozenset())
    found: list[Alert] = []
    kinds: set[str] = set()
    if budgets is not None and budgets.budgets:
        found += _budget_alerts(plan.budget_statuses(_with_thresholds(budgets, rules), fx=fx))
        kinds |= BUDGET_KINDS
    if limits is not None:
        check = plan.headroom(limits)
        if isinstance(check, str):
            logger.info("no headroom alerts: %s", check)
        else:
            horizon = plan.settings.horizon_hours
            found += [
                a for r in check.rows if (a := _headroom_alert(r, rules, horizon)) is not None
            ]
            kinds |= HEADROOM_KINDS
    if rules.spikes:
        metric = plan.metric
        found += [_spike_alert(a, metric) for a in plan.anomalies(rules.spike_recent) if a.ongoing]
        kinds |= SPIKE_KINDS
    ordered = sorted(found, key=lambda a: (-severity_rank(a.severity), a.key or ""))
    return Judged(ordered, frozenset(kinds))


def plan_alerts(
    plan: CapacityPlan,
    *,
    budgets: BudgetsConfig | None = None,
    limits: LimitsConfig | None = None,
    fx: FxRate | None = None,
    rules: AlertRules | None = None,
) -> list[Alert]:
    """Every alert the plan raises now (`judge_plan`'s alerts)."""
    return judge_plan(plan, budgets=budgets, limits=limits, fx=fx, rules=rules).alerts


def _with_thresholds(budgets: BudgetsConfig, rules: AlertRules) -> BudgetsConfig:
    if rules.thresholds is None:
        return budgets
    shares = tuple(sorted(rules.thresholds))
    return replace(budgets, budgets=tuple(replace(b, thresholds=shares) for b in budgets.budgets))


def _budget_alerts(statuses: Sequence[BudgetStatus]) -> list[Alert]:
    out = []
    for status in statuses:
        proj, limit = status.projection, status.limit_usd
        period = None if proj is None else _stamp(proj.period_start)
        for alert in status.alerts:
            if alert.kind in ("budget_reached", "budget_projected") and limit and period:
                share = _share(alert.threshold, limit, status.budget.thresholds)
                key = f"budget:{status.budget.name}:{share:g}:{period}"
            else:
                key = f"{alert.kind}:{status.budget.name}"
            out.append(replace(alert, key=key))
    return out


def _share(level: float | None, limit: float, shares: Sequence[float]) -> float:
    """The configured share behind an alert's threshold (``limit x share``), exactly."""
    if level is None or not shares:
        return 0.0
    return min(shares, key=lambda s: abs(limit * s - level))


def _headroom_alert(row: Headroom, rules: AlertRules, horizon: int) -> Alert | None:
    share = row.headroom_share
    if share >= rules.headroom_below and row.severity == "ok":
        return None
    severity = "critical" if row.severity == "critical" or share < 0 else "warning"
    subject = f"{row.provider} {row.family} ({row.tier}) {row.kind.upper()}"
    when = ""
    if row.first_risk_at is not None:
        when = f"; first at risk {pd.Timestamp(row.first_risk_at):%Y-%m-%d %H:%M} UTC"
    left = (
        f"leaving {share:.0%} headroom"
        if share >= 0
        else f"{row.p99_peak / row.limit:,.1f}x the limit"
    )
    message = (
        f"{subject}: the busiest minute is forecast to reach {row.p99_peak:,.0f} against the "
        f"{row.limit:,}/min limit (p99) within {horizon} h, {left} (alert below "
        f"{rules.headroom_below:.0%} headroom); chance of hitting it {row.p_hit_max:.0%}{when}."
    )
    return Alert(
        kind="headroom_low",
        severity=severity,
        subject=subject,
        message=message,
        at=row.first_risk_at,
        value=row.p99_peak,
        threshold=float(row.limit),
        probability=row.p_hit_max,
        key=(
            f"headroom:{row.provider}/{row.family}/{row.tier}/{row.kind}:{rules.headroom_below:g}"
        ),
    )


def _spike_alert(found: Anomaly, metric: str) -> Alert:
    # A spike on the total is one condition whichever model the excess is pinned on this hour;
    # a drop of one model while the rest carries on is that model's own outage.
    part = f"{found.dimension}={found.culprit}" if found.kind == "drop" and found.culprit else None
    subject = metric if part is None else f"{metric} {part}"
    return Alert(
        kind=found.kind,
        severity=found.severity,
        subject=subject,
        message=found.message,
        at=found.start,
        value=found.peak_ratio if math.isfinite(found.peak_ratio) else None,
        threshold=found.expected,
        key=f"{found.kind}:{subject}",
    )


def _stamp(at: Any) -> str:
    stamp = pd.Timestamp(at)
    stamp = stamp.tz_convert("UTC") if stamp.tzinfo is not None else stamp
    return stamp.strftime("%Y-%m-%dT%H:%MZ")


# Webhook URLs carry tokens; an error from deep down must not carry one into a log line.
_URL = re.compile(r"https?://\S+")


class AlertSender(Protocol):
    """What `AlertLoop` hands alerts to (`tokenplan.service.notifier.Notifier`)."""

    def notify(self, alerts: Sequence[Alert], judged: frozenset[str] | None = None) -> Any:
        """Send what is new, changed, due again or resolved (of the ``judged`` kinds)."""
        ...


class AlertLoop:
    """What the service runs after each plan refresh: the plan's alerts, through the notifier.

    A failure is logged and swallowed, so a broken webhook never stops the plan refresher.
    """

    def __init__(
        self,
        notifier: AlertSender,
        *,
        budgets: BudgetsConfig | None = None,
        limits: LimitsConfig | None = None,
        fx: FxRate | None = None,
        rules: AlertRules | None = None,
    ) -> None:
        self.notifier = notifier
        self.budgets, self.limits, self.fx = budgets, limits, fx
        self.rules = rules or AlertRules()

    def __call__(self, snapshot: PlanSnapshot) -> Any:
        """Derive the alerts of ``snapshot.plan`` and hand them to the notifier."""
        try:
            judged = judge_plan(
                snapshot.plan,
                budgets=self.budgets,
                limits=self.limits,
                fx=self.fx,
                rules=self.rules,
            )
            return self.notifier.notify(judged.alerts, judged.kinds)
        except Exception as exc:  # the refresher must outlive any alerting failure
            text = _URL.sub("<url>", str(exc))
            logger.error(
                "alerts for the plan as of %s failed: %s: %s",
                snapshot.as_of,
                type(exc).__name__,
                text,
            )
            return None
