"""Budgets: TOML, FX conversion, projections and alerts as values."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tokenplan.errors import ConfigError
from tokenplan.plan.budgets import evaluate_budgets, load_budgets, scopes_needed
from tokenplan.plan.periods import Period
from tokenplan.pricing import FxRate

CONFIG = """
[fx]
currency = "CNY"
per_usd = 8

[[budget]]
name = "everything, daily"
scope = "all"
amount = 100
period = "day"
thresholds = [0.5, 1.0]

[[budget]]
name = "bot, daily, in yuan"
scope = "feature"
match = "bot"
amount = 400
currency = "CNY"
period = "day"

[[budget]]
name = "team in euros"
scope = "team"
match = "research"
amount = 50
currency = "EUR"
period = "day"
"""


def _spend() -> dict[str, pd.DataFrame]:
    ds = pd.date_range("2025-03-01", periods=24 * 7 + 12, freq="h")
    # $2/h for the bot and $1/h for research: $36 so far today at 12:00, $72 by midnight.
    bot = pd.DataFrame({"unique_id": "bot", "ds": ds, "y": 2.0})
    research = pd.DataFrame({"unique_id": "research", "ds": ds, "y": 1.0})
    total = pd.DataFrame({"unique_id": "total", "ds": ds, "y": 3.0})
    return {"all": total, "feature": bot, "team": research}


def test_load_and_evaluate_with_fx(tmp_path: Path) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(CONFIG)
    config = load_budgets(path)
    assert scopes_needed(config) == {"all", "feature", "team"}
    status = {s.budget.name: s for s in evaluate_budgets(config, _spend())}

    everything = status["everything, daily"]
    assert everything.limit_usd == 100.0
    assert everything.projection is not None
    assert everything.projection.so_far == pytest.approx(36.0)
    # A flat $3/h series: the projection is $72 and sure not to pass $100.
    assert everything.projection.projected == pytest.approx(72.0, rel=0.02)
    assert everything.p_overrun == pytest.approx(0.0, abs=0.01)
    # 50% of $100 = $50: projected $72 is past it, so one "projected" alert; nothing reached.
    assert [a.kind for a in everything.alerts] == ["budget_projected"]
    assert everything.alerts[0].threshold == 50.0

    bot = status["bot, daily, in yuan"]
    # 400 CNY at 8 CNY per USD = $50; the bot spends $24 by noon and about $48 by midnight.
    assert bot.limit_usd == pytest.approx(50.0)
    assert bot.projection is not None
    assert bot.projection.so_far == pytest.approx(24.0)
    assert bot.alerts == () or all(a.severity == "warning" for a in bot.alerts)

    # No EUR rate anywhere: a config alert, not an exception.
    euros = status["team in euros"]
    assert euros.limit_usd is None
    assert euros.alerts[0].kind == "budget_config"


def test_fx_rate_argument_and_reached_alert() -> None:
    from tokenplan.plan.budgets import Budget

    budget = Budget(
        name="tight",
        amount=Decimal("140"),
        currency="CNY",
        period=Period.day,
        thresholds=(0.8, 1.0),
    )
    statuses = evaluate_budgets([budget], _spend(), fx=FxRate(currency="CNY", per_usd=Decimal("7")))
    s = statuses[0]
    # 140 CNY / 7 = $20; $36 spent: both thresholds reached, the 100% one is critical.
    assert s.limit_usd == pytest.approx(20.0)
    assert [(a.kind, a.severity) for a in s.alerts] == [
        ("budget_reached", "warning"),
        ("budget_reached", "critical"),
    ]
    assert s.p_overrun == 1.0
    assert s.projection is not None
    assert s.projection.breach_at == pd.Timestamp("2025-03-08 06:40", tz="UTC")


def test_noisy_spend_gives_probability_between_0_and_1() -> None:
    rng = np.random.default_rng(0)
    ds = pd.date_range("2025-03-01", periods=24 * 14 + 12, freq="h")
    y = 3.0 * rng.lognormal(0, 0.5, len(ds))
    spend = {"all": pd.DataFrame({"unique_id": "total", "ds": ds, "y": y})}
    from tokenplan.plan.budgets import Budget

    s = evaluate_budgets(
        [
            Budget(
                name="b",
                amount=Decimal(str(round(float(y[-12:].sum() * 2.05), 2))),
                period=Period.day,
            )
        ],
        spend,
    )[0]
    assert s.p_overrun is not None
    assert 0.05 < s.p_overrun < 0.95


def test_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text('[[budget]]\nscope = "model"\namount = 10\n')
    with pytest.raises(ConfigError, match="match"):
        load_budgets(path)
    path.write_text("[[budget]]\namount = -1\n")
    with pytest.raises(ConfigError, match="amount"):
        load_budgets(path)
