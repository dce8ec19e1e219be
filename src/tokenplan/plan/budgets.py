"""Budgets from a TOML file, judged with the calibrated period projection.

```toml
[fx]                       # optional: how many units of `currency` buy one USD
currency = "CNY"
per_usd = 7.2

[[budget]]
name = "all models, monthly"
scope = "all"              # all | model | team | feature | key_id
amount = 500
currency = "USD"
period = "month"           # day | week | month
thresholds = [0.8, 1.0]    # shares of the amount that raise an alert
tz = "UTC"

[[budget]]
name = "support bot"
scope = "feature"
match = "support-bot"      # the value of the scope dimension
amount = 1000
currency = "CNY"
period = "week"
```
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pandas as pd

from tokenplan.config_file import read_toml, refuse_unknown, table, tables
from tokenplan.errors import ConfigError, InvalidInput, TokenplanError
from tokenplan.plan.alerts import Alert
from tokenplan.plan.known import records
from tokenplan.plan.periods import Period, check_tz, parse_period
from tokenplan.plan.projection import Projection, project

__all__ = [
    "SCOPES",
    "Budget",
    "BudgetStatus",
    "BudgetsConfig",
    "evaluate_budgets",
    "load_budgets",
    "scopes_needed",
    "series_id",
]

SCOPES = ("all", "model", "team", "feature", "key_id")


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """A spending limit over a period, for everything or one value of a dimension."""

    name: str
    amount: Decimal
    currency: str = "USD"
    period: Period = Period.month
    scope: str = "all"
    match: str | None = None
    thresholds: tuple[float, ...] = (0.8, 1.0)
    tz: str = "UTC"

    def __post_init__(self) -> None:
        # Accept "day" and 500 as well as Period.day and Decimal("500").
        object.__setattr__(self, "period", parse_period(self.period))
        object.__setattr__(self, "amount", Decimal(str(self.amount)))
        object.__setattr__(self, "currency", self.currency.upper())


@dataclass(frozen=True, slots=True)
class BudgetsConfig:
    """The budgets of one file and its optional exchange rate."""

    budgets: tuple[Budget, ...]
    fx_currency: str | None = None
    fx_per_usd: Decimal | None = None
    source: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetStatus:
    """Where one budget stands: spend so far, projected spend, overrun chance, alerts."""

    budget: Budget
    limit_usd: float | None
    projection: Projection | None
    alerts: tuple[Alert, ...]
    note: str = ""

    @property
    def p_overrun(self) -> float | None:
        """Probability the period's spend exceeds the budget."""
        if self.projection is None or self.limit_usd is None:
            return None
        return self.projection.p_over(self.limit_usd)


def series_id(budget: Budget) -> str:
    """The capacity plan's name for the series a budget watches: ``total`` or ``scope=match``."""
    return "total" if budget.scope == "all" else f"{budget.scope}={budget.match}"


def scopes_needed(budgets: Sequence[Budget] | BudgetsConfig) -> set[str]:
    """The dimensions the caller must split spend by (``all`` means the total)."""
    items = budgets.budgets if isinstance(budgets, BudgetsConfig) else budgets
    return {b.scope for b in items}


def load_budgets(path: str | Path) -> BudgetsConfig:
    """Read and check a budgets TOML file."""
    data = read_toml(path, "budgets", parse_float=float)
    refuse_unknown(data, ("budget", "fx"), str(path))
    fx = table(data.get("fx", {}), f"{path}, [fx]")
    refuse_unknown(fx, ("currency", "per_usd"), f"{path}, [fx]")
    currency = str(fx["currency"]).upper() if "currency" in fx else None
    per_usd = _rate(fx["per_usd"], f"{path}, [fx]") if "per_usd" in fx else None
    entries = tables(data, "budget", str(path))
    if not entries:
        raise ConfigError(f"{path}: no [[budget]] entries; add at least one.")
    budgets = tuple(_budget(e, f"{path}, [[budget]] #{i}") for i, e in enumerate(entries, 1))
    return BudgetsConfig(budgets, currency, per_usd, str(path))


def _rate(value: Any, where: str) -> Decimal:
    from tokenplan.pricing.rates import parse_per_usd

    try:
        return parse_per_usd(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: field 'per_usd': {exc}; give units per USD.") from None


def _decimal(value: Any, where: str, key: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{where}: field '{key}' must be a number, not {value!r}.") from None
    if not amount.is_finite() or amount <= 0:
        raise ConfigError(f"{where}: field '{key}' must be a positive number, not {value!r}.")
    return amount


_BUDGET_KEYS = ("name", "scope", "match", "amount", "currency", "period", "tz", "thresholds")


def _budget(item: dict[str, Any], where: str) -> Budget:
    if item.get("name"):
        where = f"{where} ({item['name']!r})"
    refuse_unknown(item, _BUDGET_KEYS, where)
    key = "scope"
    try:
        scope = str(item.get("scope", "all"))
        if scope not in SCOPES:
            raise ConfigError(f"{where}: scope {scope!r} is not one of {', '.join(SCOPES)}.")
        match = item.get("match")
        if scope != "all" and not match:
            raise ConfigError(f"{where}: scope '{scope}' needs a 'match' value (which {scope}).")
        key = "thresholds"
        thresholds = tuple(float(t) for t in item.get("thresholds", (0.8, 1.0)))
        if any(t <= 0 for t in thresholds):
            raise ConfigError(f"{where}: thresholds must be positive shares such as 0.8 or 1.0.")
        if "amount" not in item:
            raise ConfigError(f"{where}: field 'amount' is missing; add it.")
        amount = _decimal(item["amount"], where, "amount")
        key = "period"
        period = parse_period(str(item.get("period", "month")))
        key = "tz"
        tz = check_tz(str(item.get("tz", "UTC")))
        key = "currency"
        return Budget(
            name=str(item.get("name") or (f"{scope} {match}" if match else "all")),
            amount=amount,
            currency=str(item.get("currency", "USD")).upper(),
            period=period,
            scope=scope,
            match=str(match) if match else None,
            thresholds=tuple(sorted(thresholds)),
            tz=tz,
        )
    except ConfigError:
        raise  # already names file, budget and key: wrapping again would repeat them
    except InvalidInput as exc:
        raise ConfigError(f"{where}: field '{key}': {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: field '{key}': {exc}.") from None


def _limit_usd(
    budget: Budget, config_fx: tuple[str | None, Decimal | None], fx: Any
) -> float | None:
    if budget.currency == "USD":
        return float(budget.amount)
    if fx is not None and getattr(fx, "currency", None) == budget.currency:
        return float(fx.to_usd(budget.amount))
    currency, per_usd = config_fx
    if currency == budget.currency and per_usd is not None:
        return float(budget.amount / per_usd)
    return None


def evaluate_budgets(
    budgets: BudgetsConfig | Sequence[Budget],
    spend: Mapping[str, pd.DataFrame],
    *,
    fx: Any = None,
    as_of: Any = None,
    forecast: Any = None,
    period_of: Any = None,
) -> list[BudgetStatus]:
    """Judge each budget on spend in USD (``spend[scope]``: ``unique_id, ds, y`` split by scope).

    ``spend["all"]`` is the total (any ``unique_id``); ``spend["model"]`` etc. have the
    dimension value as ``unique_id``. ``fx`` is a `tokenplan.pricing.FxRate` for budgets in
    another currency. ``forecast`` is the capacity plan's forecast of spend (series ``total``
    and ``model=…``, ``team=…``), used for the rest of a period it covers; ``period_of`` a
    time inside the periods to judge (`project`). Problems become alerts on the budget, never
    exceptions.
    """
    config_fx = (
        (budgets.fx_currency, budgets.fx_per_usd)
        if isinstance(budgets, BudgetsConfig)
        else (None, None)
    )
    items = budgets.budgets if isinstance(budgets, BudgetsConfig) else tuple(budgets)
    return [_evaluate(b, spend, config_fx, fx, as_of, forecast, period_of) for b in items]


def _evaluate(
    budget: Budget,
    spend: Mapping[str, pd.DataFrame],
    config_fx: tuple[str | None, Decimal | None],
    fx: Any,
    as_of: Any,
    forecast: Any = None,
    period_of: Any = None,
) -> BudgetStatus:
    limit = _limit_usd(budget, config_fx, fx)
    frame = spend.get(budget.scope)
    known: list[str] = []
    if frame is not None and budget.scope != "all":
        known = sorted(set(frame["unique_id"].dropna().astype(str)))
        frame = frame[frame["unique_id"].astype(str) == budget.match]
    if frame is None or frame.empty:
        message = f"no spend recorded for {budget.scope} {budget.match or ''}".strip() + "."
        severity = "info"
        if known and budget.match not in known:
            # Most often a typo in `match`: name what exists so the fix is obvious.
            close = difflib.get_close_matches(str(budget.match), known, n=3, cutoff=0.5)
            hint = close or known[:5]
            word = "closest" if close else "existing"
            message = (
                f"{message[:-1]}: match {budget.match!r} selects no {budget.scope}; "
                f"{word} values: {', '.join(repr(v) for v in hint)}."
            )
            severity = "warning"
        alert = Alert(kind="budget_config", severity=severity, subject=budget.name, message=message)
        return BudgetStatus(budget=budget, limit_usd=limit, projection=None, alerts=(alert,))
    if not records(frame["y"]):
        # Nothing known is not nothing spent: a budget at 0% would wave through any bill.
        alert = Alert(
            kind="budget_config",
            severity="warning",
            subject=budget.name,
            message=(
                f"{budget.name}: the spend is unknown, as no model in "
                f"{'the usage' if budget.scope == 'all' else f'{budget.scope} {budget.match}'} "
                "has a known price (see `tokenplan prices MODEL`)."
            ),
        )
        return BudgetStatus(budget=budget, limit_usd=limit, projection=None, alerts=(alert,))
    try:
        proj = project(
            frame[["ds", "y"]],
            period=budget.period,
            limit=limit,
            as_of=as_of,
            tz=budget.tz,
            forecast=forecast,
            series_id=series_id(budget),
            period_of=period_of,
        )
    except TokenplanError as exc:
        alert = Alert(
            kind="budget_config", severity="warning", subject=budget.name, message=str(exc)
        )
        return BudgetStatus(budget=budget, limit_usd=limit, projection=None, alerts=(alert,))
    if limit is None:
        alert = Alert(
            kind="budget_config",
            severity="warning",
            subject=budget.name,
            message=(
                f"the budget is in {budget.currency} but no {budget.currency} exchange rate is "
                f'configured; add [fx] currency = "{budget.currency}" and per_usd to the file.'
            ),
        )
        return BudgetStatus(budget=budget, limit_usd=None, projection=proj, alerts=(alert,))
    return BudgetStatus(
        budget=budget, limit_usd=limit, projection=proj, alerts=tuple(_alerts(budget, limit, proj))
    )


def _money(budget: Budget, usd: float, limit_usd: float) -> str:
    """An amount in the budget's own currency, with USD beside it when that differs."""
    if budget.currency == "USD":
        return f"${usd:,.2f}"
    per_usd = float(budget.amount) / limit_usd if limit_usd > 0 else 0.0
    return f"{usd * per_usd:,.2f} {budget.currency} (${usd:,.2f})"


def _alerts(budget: Budget, limit: float, proj: Projection) -> list[Alert]:
    out = []
    for share in budget.thresholds:
        level = limit * share
        severity = "critical" if share >= 1 else "warning"
        if proj.so_far >= level:
            at = proj.crossed_at(level)
            when = ""
            if at is not None and share >= 1:
                when = f", breached on {at.strftime('%Y-%m-%d %H:%M')} UTC"
            out.append(
                Alert(
                    kind="budget_reached",
                    severity=severity,
                    subject=budget.name,
                    message=(
                        f"{budget.name}: {share:.0%} of the {_money(budget, limit, limit)} "
                        f"{budget.period.value} budget is reached{when}; "
                        f"{_money(budget, proj.so_far, limit)} spent."
                    ),
                    at=at,
                    value=proj.so_far,
                    threshold=level,
                    probability=1.0,
                )
            )
            continue
        p = proj.p_over(level)
        if p >= 0.5:
            out.append(
                Alert(
                    kind="budget_projected",
                    severity=severity,
                    subject=budget.name,
                    message=(
                        f"{budget.name}: {p:.0%} chance of passing {share:.0%} of the "
                        f"{_money(budget, limit, limit)} {budget.period.value} budget "
                        f"(projected {_money(budget, proj.projected, limit)}, 80% range "
                        f"{_money(budget, proj.lo_80, limit)} to "
                        f"{_money(budget, proj.hi_80, limit)})."
                    ),
                    at=proj.breach_at if share >= 1 else None,
                    value=proj.projected,
                    threshold=level,
                    probability=p,
                )
            )
    return out
