"""`build_report`: read the store, forecast, call the planners, gather every number shown.

The forecaster and the planners are handed in or imported here, never re-implemented: a
section whose computation is missing is marked unavailable with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, cast

import pandas as pd

from tokenplan.report import sections
from tokenplan.report.advice import advice_section, model_providers
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
from tokenplan.report.sections import LEVELS, iso, unavailable
from tokenplan.store import DuckDBStore

if TYPE_CHECKING:
    from tokenplan.plan.budgets import BudgetsConfig
    from tokenplan.pricing import FxRate, PriceBook

# Twelve weeks is enough for weekly seasonality and keeps the forecast fast on big stores.
TRAIN_DAYS = 84
# Beyond this many models or teams the rest is pooled, so charts stay legible.
MAX_SERIES = 8
OTHER = "(other)"


class ForecastLike(Protocol):
    """What the forecast engine returns: a frame of means and ranges, and notes per series."""

    @property
    def frame(self) -> pd.DataFrame: ...

    @property
    def notes(self) -> Mapping[str, str] | Sequence[str]: ...


Forecaster = Callable[..., ForecastLike]


def build_report(
    store: DuckDBStore,
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
) -> Report:
    """Everything the report shows, computed from the store as of its newest data.

    Without ``prices`` the advice is priced with genai-prices' list prices (``PriceBook()``);
    ``alternatives`` maps model patterns to the cheaper model advice may suggest.
    """
    notes: list[str] = []
    exact_fx = fx if fx is not None else getattr(prices, "fx", None)
    fx = _as_currency(exact_fx)
    summary = store.summary()
    generated = iso(clock())
    empty = Report(
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
        fans=unavailable("the store is empty"),
        cost_fan=unavailable("the store is empty"),
        breakdown=unavailable("the store is empty"),
        daily_by_model=unavailable("the store is empty"),
        capacity=unavailable("the store is empty"),
        budgets=unavailable("the store is empty"),
        headroom=unavailable("the store is empty"),
        spikes=unavailable("the store is empty"),
        advice=unavailable("the store is empty"),
    )
    if summary.rows == 0 or summary.end is None:
        notes.append("The store holds no usage yet: import some with `tokenplan import`.")
        return empty
    last = pd.Timestamp(summary.end).floor("h")
    as_of = last + pd.Timedelta(hours=1)
    # Never before the first data: the store zero-fills a window, and fake zeros would
    # drag the forecast and the spike baselines down.
    start = pd.Timestamp(summary.start).floor("h") if summary.start else as_of
    since = max(as_of - pd.Timedelta(days=TRAIN_DAYS), start).to_pydatetime()
    metric = _token_metric(store, since, notes)
    tokens = _frames(store, metric, since, notes)
    costs = _frames(store, "cost_usd", since, notes) if _has_costs(store, since) else None
    if summary.unpriced_models:
        notes.append(
            "Costs leave out models without a price: " + ", ".join(summary.unpriced_models) + "."
        )
    forecast_fn = forecaster or _engine(notes)
    model_notes: list[str] = []
    tok_res = _forecast(forecast_fn, tokens, horizon_hours, model_notes, "tokens")
    cost_res = _forecast(forecast_fn, costs, horizon_hours, model_notes, "cost")
    tok_fc = _frame_of(tok_res)
    cost_fc = _frame_of(cost_res)
    cut = as_of - pd.Timedelta(days=history_days)
    fans = _fans(tokens, tok_fc, cut, metric)
    cost_fans = _fans(costs, cost_fc, cut, "cost_usd") if costs is not None else None
    capacity = _capacity(tok_res, cost_res, fx)
    per_model = sections.model_forecasts(store, forecast_fn, since=since, horizon=horizon_hours)
    spend_all = store.series("cost_usd", "1h", (), since, as_of.to_pydatetime())
    book = prices if prices is not None else _default_book(exact_fx)
    report = Report(
        title=title,
        generated_at=generated,
        data_start=iso(summary.start),
        data_end=iso(as_of),
        as_of=iso(as_of),
        horizon_hours=horizon_hours,
        metric=metric,
        currency=fx,
        notes=notes,
        forecast_notes=model_notes,
        cards=[],
        fans=Section(available=bool(fans), items=fans)
        if tok_fc is not None
        else unavailable("no forecast: " + _last_note(notes), items=fans),
        cost_fan=(
            Section(available=True, items=[f for f in cost_fans if f.series == "total"])
            if cost_fans and cost_fc is not None
            else unavailable("no cost forecast: the store has no costs for this usage")
        ),
        breakdown=Section(available=True, items=_breakdown(tokens, costs, tok_fc, cost_fc, cut)),
        daily_by_model=_daily_by_model(tokens, tok_fc, cut),
        capacity=capacity,
        budgets=budgets_section(store, budgets, fx=_as_fx_rate(exact_fx), since=since, as_of=as_of),
        headroom=sections.headroom_section(store, limits, per_model, since=since, as_of=as_of),
        spikes=sections.spikes_section(store, metric, since),
        advice=advice_section(
            per_model,
            book,
            providers=model_providers(store, since),
            at=as_of.to_pydatetime(),
            fx=fx,
            alternatives=alternatives,
        ),
    )
    report.cards = sections.cards(report, store, as_of, fx, spend_all)
    return report


# -- data ------------------------------------------------------------------------------------


def _token_metric(store: DuckDBStore, since: datetime, notes: list[str]) -> str:
    """Total tokens, unless the source does not know them (some traces only count requests)."""
    total = store.series("total_tokens", "1h", (), since)
    if total["y"].notna().any():
        return "total_tokens"
    notes.append("The usage has no token counts, so the report forecasts requests instead.")
    return "requests"


def _has_costs(store: DuckDBStore, since: datetime) -> bool:
    return bool(store.series("cost_usd", "1d", (), since)["y"].notna().any())


def _frames(store: DuckDBStore, metric: str, since: datetime, notes: list[str]) -> pd.DataFrame:
    """Hourly ``total``, ``model=…`` and ``team=…`` series stacked in one tidy frame."""
    parts = [store.series(metric, "1h", (), since)]
    for dim in ("model", "team"):
        frame = store.series(metric, "1h", (dim,), since)
        if frame.empty or set(frame["unique_id"]) == {"(none)"}:
            continue
        parts.append(_pool(frame, dim))
    out = pd.concat(parts, ignore_index=True)
    if out["y"].isna().any():
        notes.append(f"Some hours do not say their {metric}; they count as zero.")
        out["y"] = out["y"].fillna(0.0)
    out["y"] = out["y"].astype(float)
    return out


def _pool(frame: pd.DataFrame, dim: str) -> pd.DataFrame:
    """Keep the biggest series of a dimension and pool the rest as ``(other)``."""
    sizes = frame.groupby("unique_id")["y"].sum().sort_values(ascending=False)
    keep = set(sizes.index[: MAX_SERIES - 1]) if len(sizes) > MAX_SERIES else set(sizes.index)
    frame = frame.assign(unique_id=frame["unique_id"].where(frame["unique_id"].isin(keep), OTHER))
    pooled = frame.groupby(["unique_id", "ds"])["y"].sum(min_count=1).reset_index()
    pooled["unique_id"] = f"{dim}=" + pooled["unique_id"]
    return pooled


def _engine(notes: list[str]) -> Forecaster | None:
    try:
        from tokenplan.forecast import forecast
    except ImportError:
        notes.append("not available: the forecast engine (tokenplan.forecast) is not installed.")
        return None
    return cast(Forecaster, forecast)


def _forecast(
    fn: Forecaster | None, frame: pd.DataFrame | None, horizon: int, notes: list[str], what: str
) -> ForecastLike | None:
    if fn is None or frame is None:
        return None
    result = fn(frame, horizon=horizon, freq="1h", levels=LEVELS)
    said = result.notes
    lines = [f"{k}: {v}" for k, v in said.items()] if isinstance(said, Mapping) else list(said)
    notes.extend(f"{what} · {line}" for line in lines)
    return result


def _frame_of(result: ForecastLike | None) -> pd.DataFrame | None:
    if result is None:
        return None
    out = result.frame.copy()
    out["ds"] = pd.to_datetime(out["ds"])
    return out


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
        rows.append(
            BreakdownRow(
                dimension=dim,
                name=name,
                tokens=value,
                cost_usd=cost.get(uid),
                share=value / total if total else 0.0,
                forecast_tokens=tok_f.get(uid),
                forecast_cost_usd=cost_f.get(uid),
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


def _capacity(
    tok_res: ForecastLike | None, cost_res: ForecastLike | None, fx: Currency | None
) -> Section[Capacity]:
    tok_fc, cost_fc = _frame_of(tok_res), _frame_of(cost_res)
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
        tok_range = _sum_range(tok_res, first, end)
        cost_range = _sum_range(cost_res, first, end)
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


def _sum_range(
    result: ForecastLike | None, start: pd.Timestamp, end: pd.Timestamp
) -> tuple[float | None, float | None]:
    """80% range of a period total from the engine's joint paths (ranges of hours do not add)."""
    interval = getattr(result, "sum_interval", None)
    if interval is None:
        return None, None
    got = interval("total", start, end, levels=(80,))
    return float(got["lo_80"]), float(got["hi_80"])


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
