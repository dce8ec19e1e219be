"""The capacity plan: one forecast per metric, parts that sum to the total, one total per split."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenplan.capacity import PlanSettings, cohere, make_plan
from tokenplan.errors import InvalidInput
from tokenplan.events import USAGE_SCHEMA
from tokenplan.plan.budgets import Budget, BudgetsConfig
from tokenplan.plan.known import records
from tokenplan.report import Currency, build_report, render_html
from tokenplan.store import DuckDBStore

START = datetime(2025, 3, 3, tzinfo=UTC)
CLOCK = datetime(2025, 4, 1, tzinfo=UTC)
QUANTILES = ("lo_80", "hi_80", "lo_95", "hi_95")


@dataclass
class Result:
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def incoherent(
    df: pd.DataFrame, horizon: int, freq: str = "1h", levels: Sequence[int] = (80, 95)
) -> Result:
    """Repeat the last day times a per-series factor: parts do not add up, ranges are wide."""
    out = []
    for uid, part in df.groupby("unique_id", sort=False):
        part = part.sort_values("ds")
        factor = 0.5 + (zlib.crc32(str(uid).encode()) % 100) / 50
        season = part["y"].to_numpy()[-24:] * factor
        ds = pd.date_range(part["ds"].iloc[-1] + pd.Timedelta(hours=1), periods=horizon, freq="h")
        mean = np.resize(season, horizon).astype(float)
        frame = pd.DataFrame({"unique_id": uid, "ds": ds, "mean": mean})
        for level, width in zip(levels, (0.5, 1.5), strict=False):
            frame[f"lo_{level}"] = mean * (1 - width / 2)
            frame[f"hi_{level}"] = mean * (1 + width)
        out.append(frame)
    return Result(pd.concat(out, ignore_index=True))


def make_store(rows: list[tuple[int, str, str, int, bool]], path: str = ":memory:") -> DuckDBStore:
    """Hourly rows: (hour, model, team, tokens, priced)."""
    cols: dict[str, list[object]] = {name: [] for name in USAGE_SCHEMA.names}
    for hour, model, team, tokens, priced in rows:
        row = {
            "ts": (pd.Timestamp(START) + pd.Timedelta(hours=hour)).tz_localize(None),
            "bucket_s": 3600,
            "provider": "anthropic",
            "model": model,
            "team": team,
            "requests": max(tokens // 1000, 1),
            "input_tokens": tokens // 2,
            "output_tokens": tokens - tokens // 2,
            "cost_usd": Decimal(tokens) / Decimal(1_000_000) if priced else None,
            "source": "test",
        }
        for name in cols:
            cols[name].append(row.get(name))
    store = DuckDBStore(path)
    store.write(pa.Table.from_pydict(cols, schema=USAGE_SCHEMA))
    return store


row = st.tuples(
    st.integers(0, 24 * 4 - 1),
    st.sampled_from(["m-a", "m-b", "m-c"]),
    st.sampled_from(["t-x", "t-y"]),
    st.integers(0, 50_000),
    st.just(True),
)


def assert_coherent(fc: pd.DataFrame) -> None:
    total = fc[fc["unique_id"] == "total"].set_index("ds")
    for dim in ("model", "team"):
        parts = fc[fc["unique_id"].str.startswith(f"{dim}=")]
        if parts.empty:
            continue
        sums = parts.groupby("ds")["mean"].sum()
        np.testing.assert_allclose(sums, total.loc[sums.index, "mean"], rtol=1e-9, atol=1e-6)
        joined = parts.join(total[list(QUANTILES)], on="ds", rsuffix="_total")
        for q in QUANTILES:
            assert (joined[q] <= joined[f"{q}_total"] + 1e-9).all(), (dim, q)
        assert (parts["lo_80"] <= parts["mean"] + 1e-9).all()
        assert (parts["mean"] <= parts["hi_80"] + 1e-9).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row, min_size=30, max_size=120))
def test_parts_sum_to_the_total_and_never_exceed_it(
    rows: list[tuple[int, str, str, int, bool]],
) -> None:
    store = make_store(rows)
    plan = make_plan(store, settings=PlanSettings(horizon_hours=48), forecaster=incoherent)
    for metric in ("total_tokens", "cost_usd"):
        fc = plan.forecast_frame(metric)
        assert fc is not None
        assert_coherent(fc)


@settings(max_examples=10, deadline=None)
@given(st.lists(row, min_size=30, max_size=80))
def test_the_total_does_not_depend_on_the_split(
    rows: list[tuple[int, str, str, int, bool]],
) -> None:
    store = make_store(rows)
    totals = []
    for dims in ((), ("model",), ("team",), ("model", "team")):
        plan = make_plan(
            store, settings=PlanSettings(horizon_hours=24, dimensions=dims), forecaster=incoherent
        )
        fc = plan.forecast_frame("total_tokens")
        assert fc is not None
        totals.append(fc[fc["unique_id"] == "total"]["mean"].to_numpy())
    for other in totals[1:]:
        np.testing.assert_array_equal(other, totals[0])


def test_cohere_splits_evenly_when_every_part_forecasts_zero() -> None:
    ds = pd.Timestamp("2025-01-01")
    frame = pd.DataFrame(
        {
            "unique_id": ["total", "model=a", "model=b"],
            "ds": [ds] * 3,
            "mean": [10.0, 0.0, 0.0],
            "lo_80": [5.0, 0.0, 0.0],
            "hi_80": [20.0, 0.0, 0.0],
        }
    )
    out = cohere(frame, levels=(80,)).set_index("unique_id")
    assert out.loc["model=a", "mean"] == out.loc["model=b", "mean"] == 5.0
    assert out.loc["model=a", "hi_80"] >= 5.0


def hours(
    n: int, model: str, team: str, tokens: int, priced: bool = True
) -> list[tuple[int, str, str, int, bool]]:
    return [(h, model, team, tokens * (1 + h % 24 // 12), priced) for h in range(n)]


def test_report_figures_are_the_plans_in_usd_and_local_currency() -> None:
    store = make_store(hours(24 * 14, "m-a", "t-x", 9_000) + hours(24 * 14, "m-b", "t-y", 3_000))
    report = build_report(
        store, forecaster=incoherent, clock=lambda: CLOCK, fx=Currency(code="CNY", rate=7.25)
    )
    week = report.capacity.items[0].weekly[0]
    card = next(c for c in report.cards if c.key == "next_week")
    assert card.value == week.tokens
    fan_total = sum(p.mean for p in report.fans.items[0].forecast)
    assert report.fans.items[0].series == "total"
    assert abs(fan_total - week.tokens) <= 1e-6 * week.tokens
    for dim in ("model", "team"):
        rows = [r for r in report.breakdown.items if r.dimension == dim]
        assert abs(sum(r.forecast_tokens or 0 for r in rows) - week.tokens) <= 1e-6 * week.tokens
        cost = sum(r.forecast_cost_usd or 0 for r in rows)
        assert week.cost_usd is not None
        assert abs(cost - week.cost_usd) <= 1e-6 * week.cost_usd
    assert week.cost_local is not None
    assert abs(week.cost_local - week.cost_usd * 7.25) < 1e-6
    days = report.capacity.items[0].daily
    assert [d.partial for d in days] == [d.hours < 24 for d in days]
    assert sum(d.tokens for d in days) == sum(h.tokens for h in report.capacity.items[0].hourly)
    cost_fan = sum(p.mean for p in report.cost_fan.items[0].forecast)
    assert abs(cost_fan - week.cost_usd) <= 1e-6 * week.cost_usd


def test_an_unpriced_model_costs_unknown_with_the_fix_never_zero() -> None:
    store = make_store(
        hours(24 * 7, "m-priced", "t-x", 9_000) + hours(24 * 7, "m-mystery", "t-x", 3_000, False)
    )
    report = build_report(store, forecaster=incoherent, clock=lambda: CLOCK)
    row = next(r for r in report.breakdown.items if r.name == "m-mystery")
    assert row.cost_usd is None
    assert row.forecast_cost_usd is None
    assert "tokenplan prices m-mystery" in report.breakdown.note
    html = render_html(report)
    assert "tokenplan prices m-mystery" in html
    assert "unknown" in html


def test_a_quiet_day_is_not_a_reading_of_a_metric_nothing_records() -> None:
    # Requests only, from a model without a price, and one day without calls. The store
    # zero-fills that day: read as a reading, the plan forecast zero tokens and "$0.00".
    rows = [(h, "m-mystery", "t-x", 5_000, False) for h in range(24 * 10) if not 96 <= h < 120]
    store = make_store(rows)
    store.connection.execute("UPDATE usage SET input_tokens = NULL, output_tokens = NULL")
    plan = make_plan(store, forecaster=incoherent)
    assert plan.metric == "requests"
    assert "cost_usd" not in plan.history
    assert plan.spend_projection() is None
    with pytest.raises(InvalidInput, match="does not record cost_usd: no model in it has"):
        plan.projection("cost_usd", period="month")
    with pytest.raises(InvalidInput, match="does not record total_tokens"):
        plan.projection("total_tokens", period="month")
    assert plan.projection("requests", period="month").projected > 0
    # A budget on that spend is unknown, with a warning, not 0% of its limit.
    [status] = plan.budget_statuses(
        BudgetsConfig(budgets=(Budget(name="all", amount=Decimal(100)),))
    )
    assert status.projection is None
    assert "the spend is unknown" in status.alerts[0].message
    report = build_report(store, forecaster=incoherent, clock=lambda: CLOCK)
    cards = {c.key: c for c in report.cards}
    assert cards["spend_to_date"].value is None
    assert cards["month_end"].value is None
    assert "no costs" in cards["month_end"].detail
    assert cards["next_week"].value is not None
    assert cards["next_week"].value > 0
    assert "cost unknown" in cards["next_week"].detail


def test_records_reads_zeros_beside_unknown_buckets_as_quiet() -> None:
    nan = float("nan")
    assert not records(pd.Series([nan, 0.0, nan, 0.0]))
    assert not records(pd.Series([nan, nan]))
    assert records(pd.Series([nan, 0.0, 3.0]))  # partly known: the known part counts
    assert records(pd.Series([0.0, 0.0]))  # known zeros (a model priced at nothing)
    assert records(pd.Series([], dtype=float))


def test_open_plans_a_store_file(tmp_path: Path) -> None:
    import tokenplan as tp

    path = f"{tmp_path}/usage.duckdb"
    make_store(hours(48, "m-a", "t-x", 1_000), path).close()
    with tp.open(path) as planner:
        plan = planner.plan(horizon_hours=24, forecaster=incoherent)
    fc = plan.forecast_frame("total_tokens")
    assert fc is not None
    assert len(fc[fc["unique_id"] == "total"]) == 24


def test_a_stray_epoch_event_does_not_move_the_plan() -> None:
    """One 1970 row (reported at import) changes neither the as-of time nor the forecast."""
    rows = [(h, "m-a", "t-x", 10_000 + 3_000 * (h % 24 > 8), True) for h in range(24 * 8)]
    clean = make_plan(
        make_store(rows), settings=PlanSettings(horizon_hours=24), forecaster=incoherent
    )
    epoch_hours = -int((pd.Timestamp(START) - pd.Timestamp("1970-01-01", tz="UTC")).days * 24)
    stray = make_plan(
        make_store([*rows, (epoch_hours, "m-a", "t-x", 500, True)]),
        settings=PlanSettings(horizon_hours=24),
        forecaster=incoherent,
    )
    assert stray.as_of == clean.as_of
    assert stray.since == clean.since
    a, b = clean.forecast_frame("total_tokens"), stray.forecast_frame("total_tokens")
    assert a is not None
    assert b is not None
    pd.testing.assert_frame_equal(a, b)


def test_forecasts_are_made_on_first_read_and_once() -> None:
    calls: list[int] = []

    def counting(df: pd.DataFrame, horizon: int, **kw: object) -> Result:
        calls.append(len(df))
        return incoherent(df, horizon)

    plan = make_plan(
        make_store(hours(24 * 3, "m-a", "t-x", 1_000)),
        settings=PlanSettings(horizon_hours=24),
        forecaster=counting,
    )
    assert plan.budget_statuses(()) == []  # a reading that needs no forecast makes none
    assert calls == []
    first = plan.forecast_frame("total_tokens")
    assert len(calls) == 2  # tokens and cost, each once for the total and every split
    assert plan.forecast_frame("total_tokens") is first
    assert not isinstance(plan.per_model, str)
    assert plan.per_model is plan.per_model
    assert len(calls) == 2 + len(plan.model_history)


def _minute_rows(start: pd.Timestamp, minutes: int, model: str) -> pa.Table:
    """Minute rows with every hour's busiest minute at 3x its quiet minutes."""
    ts = pd.date_range(start, periods=minutes, freq="1min")
    requests = np.where(ts.minute == 30, 30, 10)
    frame = pd.DataFrame(
        {
            "ts": ts,
            "bucket_s": 60,
            "provider": "anthropic",
            "model": model,
            "requests": requests,
            "input_tokens": requests * 100,
            "output_tokens": requests * 10,
            "source": "test",
        }
    )
    for name in USAGE_SCHEMA.names:
        if name not in frame:
            frame[name] = None
    return pa.Table.from_pandas(
        frame[USAGE_SCHEMA.names], schema=USAGE_SCHEMA, preserve_index=False
    )


def test_busiest_minute_is_learned_from_the_recent_minute_data_behind_older_hours() -> None:
    from tokenplan.plan.limits import LimitsConfig, RateLimit

    # Three weeks of hourly rows, then eight days of minute rows (the last seven are learned).
    store = make_store(hours(24 * 21, "claude-sonnet-4-5", "t-x", 60_000))
    store.write(
        _minute_rows(
            pd.Timestamp(START).tz_localize(None) + pd.Timedelta(days=21),
            8 * 1440,
            "claude-sonnet-4-5",
        )
    )
    limit = RateLimit(
        provider="anthropic", family="sonnet", models=("claude-*",), tier="t1", rank=1, rpm=100
    )
    plan = make_plan(store, settings=PlanSettings(horizon_hours=24), forecaster=incoherent)
    check = plan.headroom(LimitsConfig((limit,), source="t.toml"))
    assert not isinstance(check, str)
    requests = next(n for n in check.peaks if "requests" in n.split(":")[0])
    # Mean minute (59 x 10 + 30) / 60 = 10.33; busiest 30: a measured ratio of 2.9.
    assert "learned from 168 hour(s) of minute data" in requests
    assert "total tokens: busiest minute learned" in " ".join(check.peaks)
    # Metrics whose busiest minute was found the same way share one line.
    assert len(check.peaks) == len({n.split(": ", 1)[1] for n in check.peaks})
    # Hourly data only: inferred, and the note says so.
    hourly = make_plan(
        make_store(hours(24 * 21, "claude-sonnet-4-5", "t-x", 60_000)),
        settings=PlanSettings(horizon_hours=24),
        forecaster=incoherent,
    ).headroom(LimitsConfig((limit,), source="t.toml"))
    assert not isinstance(hourly, str)
    assert all("inferred from hourly data" in n for n in hourly.peaks)


def test_as_of_judges_only_the_data_before_it() -> None:
    rows = hours(24 * 10, "m-a", "t-x", 1_000)
    full = make_plan(make_store(rows), settings=PlanSettings(horizon_hours=24))
    cut = datetime(2025, 3, 8, 11, 30, tzinfo=UTC)
    early = make_plan(make_store(rows), settings=PlanSettings(horizon_hours=24, as_of=cut))
    assert full.as_of == pd.Timestamp("2025-03-13 00:00")
    assert early.as_of == pd.Timestamp("2025-03-08 12:00")  # the 11:00 bucket is judged
    assert early.last_bucket == pd.Timestamp("2025-03-08 11:00")
    assert early.history["total_tokens"]["ds"].max() == pd.Timestamp("2025-03-08 11:00")
    proj = early.projection("total_tokens", period="day")
    assert proj.period_start == pd.Timestamp("2025-03-08", tz="UTC")
    # 1,000 tokens an hour before noon: 12 hours so far.
    assert proj.so_far == 12 * 1_000


def test_many_models_are_pooled_before_forecasting_and_shared_out_after() -> None:
    # 40 models: the biggest get a forecast each, the rest one pooled forecast that is
    # shared out by their last days, so headroom and advice still see every model.
    rows = [
        (
            hour,
            f"m-{k:02d}",
            "t-x",
            (40 - k) * 1000 + (0 if k < 30 or hour >= 24 * 6 else 5000),
            True,
        )
        for hour in range(24 * 7)
        for k in range(40)
    ]
    seen: list[int] = []

    def counting(df: pd.DataFrame, **kw: object) -> Result:
        seen.append(df["unique_id"].nunique())
        return incoherent(df, **kw)  # type: ignore[arg-type]

    settings = PlanSettings(horizon_hours=24, history_days=1, max_series=5, max_model_series=6)
    plan = make_plan(make_store(rows), settings=settings, forecaster=counting)
    # The plan forecasts on first read: the usage series, then the per-model ones.
    assert plan.forecasts
    assert isinstance(plan.per_model, dict)
    assert max(seen) <= 1 + 2 * 5  # total + 5 per dimension (model, team)
    requests = plan.per_model["requests"]
    assert requests["unique_id"].nunique() == 40
    assert "(other)" not in set(requests["unique_id"])
    tokens = plan.per_model["input_tokens"]
    one_hour = tokens[tokens["ds"] == tokens["ds"].min()].set_index("unique_id")["mean"]
    # The pool (m-05 … m-39) sums to what the forecaster said for it, split by the last day:
    # m-30 … m-39 lost 5,000 tokens an hour on the last day, so their share is smaller.
    pooled = one_hour.drop([f"m-{k:02d}" for k in range(5)])
    assert pooled.sum() > 0
    share = pooled / pooled.sum()
    last_day = {f"m-{k:02d}": (40 - k) * 1000 // 2 for k in range(5, 40)}
    expected = pd.Series(last_day) / sum(last_day.values())
    assert np.allclose(share.sort_index(), expected.sort_index())
    assert any("share one pooled forecast" in note for note in plan.forecast_notes)


def test_hours_the_log_missed_are_unknown_to_the_plans_forecast() -> None:
    # NASA's 1995 log missed 119 hours (3.4 days of them in a row). The charts show them as
    # zero; the forecast reads them as unknown, since a week of zeros read as traffic becomes
    # the weekly cycle's (a week ahead, MASE 0.447 -> 1.532 on NASA's own weeks).
    from tokenplan.collect import import_file

    seen: list[pd.DataFrame] = []

    def recording(
        df: pd.DataFrame, horizon: int, freq: str = "1h", levels: Sequence[int] = (80, 95)
    ) -> Result:
        seen.append(df)
        return Result(incoherent(df, horizon, freq, levels).frame, ["fitted"])

    store = DuckDBStore(":memory:")
    import_file(store, Path(__file__).parent / "data/shared/nasa_http_1995_proxy/hourly.csv")
    plan = make_plan(store, settings=PlanSettings(train_days=84), forecaster=recording)
    assert plan.forecast_frame(plan.metric) is not None
    shown = plan.history[plan.metric]
    shown = shown[shown["unique_id"] == "total"]
    read = seen[0][seen[0]["unique_id"] == "total"]
    assert int(read["y"].isna().sum()) == 119
    assert (shown["y"][read["y"].isna().to_numpy()] == 0).all()  # the charts' zeros
    assert any("the forecasts leave them unknown" in note for note in plan.notes)
    # Its notes name the metric forecast: requests, as the trace has no token counts.
    assert "requests · fitted" in plan.forecast_notes
    assert not any(note.startswith("tokens") for note in plan.forecast_notes)


def _filling(
    minutes_in_last_hour: int,
    factor: float = 1.0,
    path: str = ":memory:",
    *,
    hours_at_factor: int = 0,
) -> DuckDBStore:
    """Ten days of minute rows, then the newest hour filled for its first minutes only (at
    ``factor`` times the usual rate, as are the ``hours_at_factor`` whole hours before it):
    live data read mid-hour."""
    start = pd.Timestamp(START).tz_localize(None)
    store = DuckDBStore(path)
    usual = 10 * 1440 - 60 * hours_at_factor
    store.write(_minute_rows(start, usual, "claude-sonnet-4-5"))
    last = _minute_rows(
        start + pd.Timedelta(minutes=usual),
        60 * hours_at_factor + minutes_in_last_hour,
        "claude-sonnet-4-5",
    )
    frame = last.to_pandas()
    for name in ("requests", "input_tokens", "output_tokens"):
        frame[name] = (frame[name] * factor).round().astype("int64")
    store.write(pa.Table.from_pandas(frame, schema=USAGE_SCHEMA, preserve_index=False))
    return store


def test_an_hour_still_filling_is_forecast_not_read_as_history(tmp_path: Path) -> None:
    from tokenplan.cli.series_input import load_series

    path = tmp_path / "s.duckdb"
    store = _filling(10, path=str(path))
    plan = make_plan(store, settings=PlanSettings(horizon_hours=24), forecaster=incoherent)
    newest = pd.Timestamp(START).tz_localize(None) + pd.Timedelta(days=10)
    assert plan.as_of == newest
    assert plan.reads_to == newest + pd.Timedelta(hours=1)
    assert plan.history["total_tokens"]["ds"].max() == newest - pd.Timedelta(hours=1)
    assert plan.forecast_frame("total_tokens")["ds"].min() == newest
    assert any("covers only part of the bucket from 2025-03-13T00:00:00Z" in n for n in plan.notes)
    # `tokenplan forecast` reads the same history.
    store.close()
    frame, _ = load_series(input_path=None, db=str(path), metric="total_tokens", freq="1h")
    assert frame["ds"].max() == newest - pd.Timedelta(hours=1)
    # A store whose last hour is whole reads it.
    whole = make_plan(_filling(60), settings=PlanSettings(horizon_hours=24), forecaster=incoherent)
    assert whole.as_of == newest + pd.Timedelta(hours=1)
    assert whole.reads_to == whole.as_of
    assert not any("covers only part" in n for n in whole.notes)


def test_spikes_read_the_hour_still_filling_and_never_call_it_a_drop() -> None:
    settings = PlanSettings(horizon_hours=24)
    # Ten minutes of a runaway job at 47x: reported now, not when the hour is over.
    surge = make_plan(_filling(10, factor=47), settings=settings, forecaster=incoherent)
    found = surge.anomalies()
    assert [(a.kind, a.ongoing) for a in found] == [("spike", True)]
    # Its size counts ten minutes of the hour: the message says it will grow.
    assert found[0].message.endswith("the newest bucket is 17% in, so its numbers are partial.")
    # Ten ordinary minutes are a sixth of an hour, not a collapse.
    quiet = make_plan(_filling(10), settings=settings, forecaster=incoherent)
    assert quiet.anomalies() == []


def test_a_drop_is_judged_against_the_part_of_the_hour_already_in() -> None:
    settings = PlanSettings(horizon_hours=24)
    # An hour at a tenth of a percent of the usual, then 40 minutes of the next one: the
    # outage is reported now, against two thirds of the hour's usual.
    late = make_plan(
        _filling(40, factor=0.001, hours_at_factor=1), settings=settings, forecaster=incoherent
    )
    assert late.filled == pytest.approx(40 / 60, abs=1e-3)
    found = late.anomalies()
    assert [(a.kind, a.buckets, a.ongoing) for a in found] == [("drop", 2, True)]
    # Ten minutes in, the hour's share is too small to tell a collapse from a quiet spell.
    early = make_plan(
        _filling(10, factor=0.001, hours_at_factor=1), settings=settings, forecaster=incoherent
    )
    assert early.anomalies() == []


def _mark_open(store: DuckDBStore, hour: pd.Timestamp, request_id: str) -> None:
    """What a pull does with a bucket still open: its row keeps an id, and a mark names it."""
    con = store.connection
    con.execute("UPDATE usage SET request_id = ? WHERE ts = ?", [request_id, hour.to_pydatetime()])
    con.execute(
        "INSERT INTO tokenplan_pull_partials VALUES ('anthropic', 'usage', ?, ?)",
        [request_id, hour.to_pydatetime()],
    )


def test_an_hour_a_provider_pull_stored_still_open_is_forecast(tmp_path: Path) -> None:
    from tokenplan.cli.series_input import load_series

    # Ten days of hourly report rows; the pull at 12:05 stored the 12:00 hour still open.
    path = tmp_path / "pulled.duckdb"
    store = make_store(hours(24 * 10 + 13, "m-a", "t-x", 1_000), str(path))
    open_hour = pd.Timestamp(START).tz_localize(None) + pd.Timedelta(hours=24 * 10 + 12)
    _mark_open(store, open_hour, "r-open")
    # A mark no later pull came back to, with whole hours after it, hides nothing newer.
    _mark_open(store, open_hour - pd.Timedelta(days=3), "r-stale")
    plan = make_plan(store, settings=PlanSettings(horizon_hours=24), forecaster=incoherent)
    assert plan.as_of == open_hour
    assert plan.filled == 0.0  # how much of it is in is not known: it is never a drop
    assert plan.forecast_frame("total_tokens")["ds"].min() == open_hour
    store.close()
    frame, _ = load_series(input_path=None, db=str(path), metric="total_tokens", freq="1h")
    assert frame["ds"].max() == open_hour - pd.Timedelta(hours=1)
    # Without the open bucket the same rows are whole hours, read to the end.
    whole = make_plan(
        make_store(hours(24 * 10 + 13, "m-a", "t-x", 1_000)),
        settings=PlanSettings(horizon_hours=24),
        forecaster=incoherent,
    )
    assert whole.as_of == open_hour + pd.Timedelta(hours=1)
    # An open bucket a later pull never came back for, with data after it: left alone, so it
    # does not pull the plan back to it.
    later = make_store(hours(24 * 12, "m-a", "t-x", 1_000))
    _mark_open(later, open_hour, "r-open")
    moved_on = make_plan(later, settings=PlanSettings(horizon_hours=24), forecaster=incoherent)
    assert moved_on.as_of == pd.Timestamp(START).tz_localize(None) + pd.Timedelta(days=12)
