"""The capacity plan's projections: one computation for budgets, the report and the card.

A store of hourly spend from Monday 3 March 2025 to Wednesday 19 March 11:00 (a quiet night,
a busy day, $2 an hour on average), planned with the engine's fast candidates so the test is
quick: the plan's 168-hour forecast covers the rest of the week of 17 March, not of March.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tokenplan.capacity import CapacityPlan, PlanSettings, make_plan
from tokenplan.events import USAGE_SCHEMA
from tokenplan.forecast import ForecastResult, forecast
from tokenplan.plan.budgets import BudgetsConfig, load_budgets
from tokenplan.report import build_report, report_to_dict
from tokenplan.store import DuckDBStore

START = pd.Timestamp("2025-03-03")
HOURS = 16 * 24 + 12

BUDGETS = """
[[budget]]
name = "all, monthly"
scope = "all"
amount = 2000
period = "month"

[[budget]]
name = "sonnet, weekly"
scope = "model"
match = "claude-sonnet"
amount = 300
period = "week"

[[budget]]
name = "sonnet, daily, tight"
scope = "model"
match = "claude-sonnet"
amount = 10
period = "day"
"""


def _rows() -> pa.Table:
    rng = np.random.default_rng(7)
    cols: dict[str, list[object]] = {name: [] for name in USAGE_SCHEMA.names}
    for h in range(HOURS):
        ts = (START + pd.Timedelta(hours=h)).to_pydatetime()
        busy = 1.0 + 0.6 * np.sin(2 * np.pi * ((h % 24) - 8) / 24)
        for model, share in (("claude-sonnet", 0.75), ("claude-haiku", 0.25)):
            cost = 2.0 * share * busy * float(rng.lognormal(0, 0.1))
            row = {
                "ts": ts,
                "bucket_s": 3600,
                "provider": "anthropic",
                "model": model,
                "team": "search",
                "requests": 10,
                "input_tokens": int(cost * 100_000),
                "output_tokens": int(cost * 20_000),
                "cost_usd": Decimal(str(round(cost, 6))),
                "source": "synthetic",
            }
            for name in cols:
                cols[name].append(row.get(name))
    return pa.Table.from_pydict(cols, schema=USAGE_SCHEMA)


def _fast(df: pd.DataFrame, horizon: int, freq: str, levels: Sequence[int]) -> ForecastResult:
    return forecast(
        df, horizon=horizon, freq=freq, levels=levels, local_models=False, lightgbm=False
    )


@pytest.fixture(scope="module")
def store() -> Any:
    s = DuckDBStore(":memory:")
    s.write(_rows())
    yield s
    s.close()


@pytest.fixture(scope="module")
def plan(store: DuckDBStore) -> CapacityPlan:
    return make_plan(store, settings=PlanSettings(horizon_hours=168), forecaster=_fast)


@pytest.fixture(scope="module")
def budgets(tmp_path_factory: pytest.TempPathFactory) -> BudgetsConfig:
    path: Path = tmp_path_factory.mktemp("budgets") / "budgets.toml"
    path.write_text(BUDGETS)
    return load_budgets(path)


def test_budgets_report_and_card_show_the_plans_one_projection(
    store: DuckDBStore, plan: CapacityPlan, budgets: BudgetsConfig
) -> None:
    month = plan.spend_projection("month")
    assert month is not None
    assert plan.spend_projection("month") is month  # computed once per plan
    statuses = {s.budget.name: s.projection for s in plan.budget_statuses(budgets)}
    monthly = statuses["all, monthly"]
    assert monthly is not None
    # The budget adds a limit, nothing else: the same projection as the plan's month.
    assert (monthly.so_far, monthly.projected, monthly.lo_80, monthly.hi_95) == (
        month.so_far,
        month.projected,
        month.lo_80,
        month.hi_95,
    )
    report = report_to_dict(
        build_report(store, plan=plan, budgets=budgets, clock=lambda: datetime.now(UTC))
    )
    rows = {row["name"]: row for row in report["budgets"]["items"]}
    assert rows["all, monthly"]["projected"] == month.projected
    assert rows["sonnet, weekly"]["projected"] == statuses["sonnet, weekly"].projected  # type: ignore[union-attr]
    card = next(c for c in report["cards"] if c["key"] == "month_end")
    assert card["value"] == pytest.approx(month.projected)


def test_the_plans_forecast_carries_the_rest_it_covers(
    plan: CapacityPlan, budgets: BudgetsConfig
) -> None:
    statuses = {s.budget.name: s.projection for s in plan.budget_statuses(budgets)}
    week, month = statuses["sonnet, weekly"], statuses["all, monthly"]
    assert week is not None
    assert month is not None
    # 108 hours left in the week: inside the plan's 168-hour forecast of model=claude-sonnet.
    result = plan.results["cost_usd"]
    frame = result.frame
    rest = frame[(frame["unique_id"] == "model=claude-sonnet") & (frame["ds"] < "2025-03-24")]
    assert "the plan's" in week.method
    assert week.candidates["engine"] == pytest.approx(float(rest["mean"].sum()))
    # 300 hours left in March: beyond the plan's forecast, so the engine runs for it.
    assert "the plan's" not in month.method


def test_a_breached_budget_says_when(plan: CapacityPlan, budgets: BudgetsConfig) -> None:
    [tight] = [s for s in plan.budget_statuses(budgets) if s.budget.name.endswith("tight")]
    assert tight.p_overrun == 1.0
    messages = [a.message for a in tight.alerts if a.severity == "critical"]
    assert len(messages) == 1
    # About $1.50/h for sonnet from midnight: $10 is passed on the morning of the 19th.
    assert "breached on 2025-03-19 " in messages[0]
    assert all(a.at is not None for a in tight.alerts)
