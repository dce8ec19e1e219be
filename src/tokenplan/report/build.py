"""`build_report`: the report's sections as readings of one `tokenplan.capacity.CapacityPlan`.

The plan reads the store and forecasts once; this module only turns its frames into the rows
the HTML and JSON show, so the card, tables, fans and breakdown are the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pandas as pd

from tokenplan.capacity import CapacityPlan, Forecaster, PlanSettings, make_plan
from tokenplan.report import sections
from tokenplan.report.advice import advice_section
from tokenplan.report.budgets import budgets_section
from tokenplan.report.model import (
    BreakdownRow,
    Capacity,
    Currency,
    DayRow,
    Fan,
    FanPoint,
    HourRow,
    Point,
    Report,
    Section,
    StackedDay,
    WeekRow,
)
from tokenplan.report.sections import unavailable
from tokenplan.store import DuckDBStore
from tokenplan.store.queries import UsageQueries
from tokenplan.timestamps import iso_utc as iso

if TYPE_CHECKING:
    from tokenplan.plan.budgets import BudgetsConfig
    from tokenplan.pricing import FxRate, PriceBook


def build_report(
    store: DuckDBStore | UsageQueries,
    *,
    prices: Any = None,
    fx: Currency | FxRate | None = None,
    budgets: BudgetsConfig | None = None,
    limits: Any = None,
    alternatives: Mapping[str, str] | None = None,
    horizon_hours: int = 168,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    forecaster: Forecaster | None = None,
    history_days: int = 14,
    title: str = "LLM usage and capacity report",
    plan: CapacityPlan | None = None,
) -> Report:
    """Everything the report shows, read from one `CapacityPlan` (made here unless given).

    Without ``prices`` the advice is priced with genai-prices' list prices (``PriceBook()``);
    ``alternatives`` maps model patterns to the cheaper model advice may suggest.
    """
    if plan is None:
        settings = PlanSettings(horizon_hours=horizon_hours, history_days=history_days)
        plan = make_plan(store, settings=settings, forecaster=forecaster)
    return report_from_plan(
        plan,
        prices=prices,
        fx=fx,
        budgets=budgets,
        limits=limits,
        alternatives=alternatives,
        generated_at=clock(),
        title=title,
    )


def report_from_plan(
    plan: CapacityPlan,
    *,
    prices: Any = None,
    fx: Currency | FxRate | None = None,
    budgets: BudgetsConfig | None = None,
    limits: Any = None,
    alternatives: Mapping[str, str] | None = None,
    generated_at: datetime,
    title: str = "LLM usage and capacity report",
) -> Report:
    """The report's sections, each a reading of ``plan`` (nothing is forecast again here)."""
    # Forecasting first: its notes (an engine that is missing, say) belong to the report's.
    plan.forecasts  # noqa: B018
    notes = list(plan.notes)
    exact_fx = fx if fx is not None else getattr(prices, "fx", None)
    fx = _as_currency(exact_fx)
    horizon_hours = plan.settings.horizon_hours
    generated = iso(generated_at)
    if plan.as_of is None or plan.since is None:
        gone: Section[Any] = unavailable("the store is empty")
        return Report(
            title=title,
            generated_at=generated,
            data_start=None,
            data_end=None,
            as_of=None,
            horizon_hours=horizon_hours,
            metric="total_tokens",
            currency=fx,
            notes=notes,
            forecast_notes=[],
            cards=[],
            fans=gone,
            cost_fan=gone,
            breakdown=gone,
            daily_by_model=gone,
            capacity=gone,
            budgets=gone,
            headroom=gone,
            spikes=gone,
            advice=gone,
        )
    as_of, metric = plan.as_of, plan.metric
    tokens = plan.history[metric]
    costs = plan.history.get("cost_usd")
    tok_fc = plan.forecast_frame(metric)
    cost_fc = plan.forecast_frame("cost_usd")
    cut = as_of - pd.Timedelta(days=plan.settings.history_days)
    fans = _fans(tokens, tok_fc, cut, metric)
    cost_fans = _fans(costs, cost_fc, cut, "cost_usd") if costs is not None else None
    book = prices if prices is not None else _default_book(exact_fx)
    queries = plan.queries
    unpriced = set(plan.unpriced_models)
    report = Report(
        title=title,
        generated_at=generated,
        data_start=iso(plan.summary.start),
        data_end=iso(as_of),
        as_of=iso(as_of),
        horizon_hours=horizon_hours,
        metric=metric,
        currency=fx,
        notes=notes,
        forecast_notes=list(plan.forecast_notes),
        cards=[],
        fans=Section(available=bool(fans), items=fans)
        if tok_fc is not None
        else unavailable("no forecast: " + _last_note(notes), items=fans),
        cost_fan=(
            Section(available=True, items=[f for f in cost_fans if f.series == "total"])
            if cost_fans and cost_fc is not None
            else unavailable("no cost forecast: the store has no costs for this usage")
        ),
        breakdown=Section(
            available=True,
            items=_breakdown(tokens, costs, tok_fc, cost_fc, cut, unpriced),
            note=unpriced_note(unpriced),
        ),
        daily_by_model=_daily_by_model(tokens, tok_fc, cut),
        capacity=_capacity(plan, fx),
        budgets=budgets_section(plan, budgets, fx=_as_fx_rate(exact_fx)),
        headroom=sections.headroom_section(plan, limits),
        spikes=sections.spikes_section(plan),
        advice=advice_section(plan, book, fx=fx, alternatives=alternatives),
    )
    report.cards = sections.cards(
        report, queries, as_of, fx, plan.spend_projection("month"), plan.newest_bucket
    )
    return report


def unpriced_note(unpriced: set[str] | Sequence[str]) -> str:
    """Why some costs are unknown, and the command that fixes it."""
    if not unpriced:
        return ""
    names = sorted(unpriced)
    return (
        f"Cost unknown for {', '.join(names)}: no price is known. Add one to a prices file, "
        f"check it with `tokenplan prices {names[0]} --prices prices.toml`, then re-import."
    )


def _fans(
    hist: pd.DataFrame | None, fc: pd.DataFrame | None, cut: pd.Timestamp, metric: str
) -> list[Fan]:
    if hist is None:
        return []
    fans = []
    recent = hist[hist["ds"] >= cut]
    sizes = recent.groupby("unique_id")["y"].sum()
    # Total first, then each dimension's series from biggest to smallest.
    order = sorted(sizes.index, key=lambda u: (u != "total", str(u).partition("=")[0], -sizes[u]))
    for uid in order:
        part = recent[recent["unique_id"] == uid]
        future = fc[fc["unique_id"] == uid] if fc is not None else fc
        fans.append(
            Fan(
                series=str(uid),
                label=_label(str(uid)),
                metric=metric,
                history=[
                    Point(ds=iso(d), y=float(y)) for d, y in zip(part["ds"], part["y"], strict=True)
                ],
                forecast=[] if future is None else [_fan_point(r) for r in future.itertuples()],
            )
        )
    return fans


def _fan_point(row: Any) -> FanPoint:
    return FanPoint(
        ds=iso(row.ds),
        mean=float(row.mean),
        lo_80=float(row.lo_80),
        hi_80=float(row.hi_80),
        lo_95=float(row.lo_95),
        hi_95=float(row.hi_95),
    )


def _breakdown(
    tokens: pd.DataFrame,
    costs: pd.DataFrame | None,
    tok_fc: pd.DataFrame | None,
    cost_fc: pd.DataFrame | None,
    cut: pd.Timestamp,
    unpriced: set[str] | None = None,
) -> list[BreakdownRow]:
    def sums(frame: pd.DataFrame | None, col: str, since: pd.Timestamp | None) -> dict[str, float]:
        if frame is None:
            return {}
        part = frame if since is None else frame[frame["ds"] >= since]
        return {str(k): float(v) for k, v in part.groupby("unique_id")[col].sum().items()}

    tok, cost = sums(tokens, "y", cut), sums(costs, "y", cut)
    tok_f, cost_f = sums(tok_fc, "mean", None), sums(cost_fc, "mean", None)
    total = tok.get("total", 0.0)
    rows = []
    for uid, value in tok.items():
        if uid == "total":
            continue
        dim, _, name = uid.partition("=")
        # An unpriced model's cost is unknown, not zero (its hours were zero-filled).
        unknown = dim == "model" and name in (unpriced or set())
        rows.append(
            BreakdownRow(
                dimension=dim,
                name=name,
                tokens=value,
                cost_usd=None if unknown else cost.get(uid),
                share=value / total if total else 0.0,
                forecast_tokens=tok_f.get(uid),
                forecast_cost_usd=None if unknown else cost_f.get(uid),
            )
        )
    return sorted(rows, key=lambda r: (r.dimension, -r.tokens))


def _daily_by_model(
    tokens: pd.DataFrame, fc: pd.DataFrame | None, cut: pd.Timestamp
) -> Section[StackedDay]:
    models = tokens[tokens["unique_id"].str.startswith("model=")]
    if models.empty:
        return unavailable("the usage is not split by model")
    # Whole days only, so a partial first or last day does not look like a dip.
    first_day = cut.normalize() + (
        pd.Timedelta(days=1) if cut != cut.normalize() else pd.Timedelta(0)
    )
    days: list[StackedDay] = []
    for frame, col, is_fc in ((models[models["ds"] >= first_day], "y", False), (fc, "mean", True)):
        if frame is None:
            continue
        part = frame[frame["unique_id"].str.startswith("model=")]
        hours = part.groupby(part["ds"].dt.normalize())["ds"].nunique()
        full = set(hours[hours == 24].index)
        part = part[part["ds"].dt.normalize().isin(full)]
        grouped = part.groupby([part["ds"].dt.normalize(), "unique_id"])[col].sum()
        for date in sorted({d for d, _ in grouped.index}):
            values = {uid.partition("=")[2]: float(v) for uid, v in grouped[date].items()}
            days.append(StackedDay(date=iso(date)[:10], forecast=is_fc, values=values))
    return Section(available=bool(days), items=days, note="" if days else "no whole days yet")


def _capacity(plan: CapacityPlan, fx: Currency | None) -> Section[Capacity]:
    tok_fc, cost_fc = plan.forecast_frame(plan.metric), plan.forecast_frame("cost_usd")
    if tok_fc is None:
        return unavailable("no forecast")
    hours = tok_fc[tok_fc["unique_id"] == "total"].sort_values("ds").reset_index(drop=True)
    cost = (
        cost_fc[cost_fc["unique_id"] == "total"].set_index("ds")["mean"]
        if cost_fc is not None
        else None
    )

    def local(v: float | None) -> float | None:
        return None if fx is None or v is None else v * fx.rate

    def cost_at(ds: pd.Timestamp) -> float | None:
        return float(cost[ds]) if cost is not None and ds in cost.index else None

    hourly = [
        HourRow(
            ds=iso(ds),
            tokens=float(mean),
            tokens_lo_80=float(lo),
            tokens_hi_80=float(hi),
            cost_usd=cost_at(ds),
            cost_local=local(cost_at(ds)),
        )
        for ds, mean, lo, hi in zip(
            hours["ds"], hours["mean"], hours["lo_80"], hours["hi_80"], strict=True
        )
    ]
    hours["cost"] = [h.cost_usd for h in hourly]
    daily = []
    for date, part in hours.groupby(hours["ds"].dt.normalize()):
        c = _sum_or_none(part["cost"])
        daily.append(
            DayRow(
                date=iso(date)[:10],
                hours=len(part),
                partial=len(part) < 24,
                tokens=float(part["mean"].sum()),
                cost_usd=c,
                cost_local=local(c),
            )
        )
    weekly = []
    start = hours["ds"].iloc[0]
    week = ((hours["ds"] - start) // pd.Timedelta(days=7)).astype(int)
    for _, part in hours.groupby(week):
        c = _sum_or_none(part["cost"])
        n_days = len(part) / 24
        peak = part.iloc[int(part["mean"].to_numpy().argmax())]
        avg = None if c is None else c / n_days
        first, end = part["ds"].iloc[0], part["ds"].iloc[-1] + pd.Timedelta(hours=1)
        tok_range = plan.sum_range(plan.metric, first, end)
        cost_range = plan.sum_range("cost_usd", first, end)
        weekly.append(
            WeekRow(
                start=iso(part["ds"].iloc[0]),
                end=iso(part["ds"].iloc[-1] + pd.Timedelta(hours=1)),
                days=n_days,
                tokens=float(part["mean"].sum()),
                cost_usd=c,
                avg_daily_cost_usd=avg,
                peak_hour=iso(peak["ds"]),
                peak_tokens=float(peak["mean"]),
                cost_local=local(c),
                avg_daily_cost_local=local(avg),
                tokens_lo_80=tok_range[0],
                tokens_hi_80=tok_range[1],
                cost_lo_80=cost_range[0],
                cost_hi_80=cost_range[1],
            )
        )
    return Section(available=True, items=[Capacity(hourly=hourly, daily=daily, weekly=weekly)])


def _sum_or_none(values: pd.Series) -> float | None:
    return None if values.isna().all() else float(values.sum())


# -- small things ----------------------------------------------------------------------------


def _default_book(fx: Currency | FxRate | None) -> PriceBook:
    """genai-prices list prices, with the report's second currency."""
    from tokenplan.pricing import PriceBook

    return PriceBook(fx=_as_fx_rate(fx))


def _as_fx_rate(fx: Currency | FxRate | None) -> FxRate | None:
    """The report's `Currency` as an exact `FxRate` (what budgets and prices convert with)."""
    from tokenplan.pricing import FxRate

    if isinstance(fx, Currency):
        return FxRate(currency=fx.code, per_usd=Decimal(str(fx.rate)))
    return fx


def _as_currency(fx: Currency | FxRate | None) -> Currency | None:
    """`FxRate` (exact, from the price book) as the report's plain `Currency`."""
    if fx is None or isinstance(fx, Currency):
        return fx
    return Currency(code=fx.currency, rate=float(fx.per_usd), note="configured rate")


def _last_note(notes: list[str]) -> str:
    return notes[-1] if notes else "the forecast did not run"


def _label(uid: str) -> str:
    if uid == "total":
        return "All usage"
    dim, _, name = uid.partition("=")
    return f"{dim.capitalize()} {name}"
