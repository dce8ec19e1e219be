"""`tokenplan demo` end to end, as a user runs it: a subprocess into a fresh folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tokenplan.cli.demo_cmd import bundled
from tokenplan.plan.budgets import load_budgets
from tokenplan.plan.limits import load_limits


def test_demo_files_are_shipped_and_load() -> None:
    budgets = load_budgets(bundled("budgets.toml"))
    assert {(b.scope, b.period.value) for b in budgets.budgets} == {
        ("all", "month"),
        ("model", "week"),
    }
    assert all(b.thresholds == (0.8, 1.0) for b in budgets.budgets)
    limits = load_limits(bundled("limits.toml"))
    assert {r.family for r in limits.rate_limits} == {"m-large", "m-small"}


def test_demo_writes_the_forecast_and_the_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokenplan",
            "demo",
            *("--db", str(out / "demo.duckdb")),
            *("--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert str((out / "report.html").resolve()) in done.stdout.replace("\n", "")
    forecast = pd.read_csv(out / "forecast.csv")
    assert list(forecast.columns) == [
        "series",
        "timestamp",
        "mean",
        "lo_80",
        "hi_80",
        "lo_95",
        "hi_95",
    ]
    assert "<svg" in (out / "report.html").read_text()
    report = json.loads((out / "report.json").read_text())
    # Every plan section has numbers on the demo data.
    assert len(report["budgets"]["items"]) == 2
    assert all(0 <= b["p_over_limit"] <= 1 for b in report["budgets"]["items"])
    assert report["headroom"]["items"]
    assert any(a["kind"] == "switch_model" for a in report["advice"]["items"])
    assert next(c for c in report["cards"] if c["key"] == "month_end")["value"] > 0
    assert_figures_agree(report, forecast)
    assert_daily_table_shows_each_day_once(done.stdout)


def close(a: float, b: float) -> bool:
    """Equal up to float summation order (display rounding is far coarser)."""
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)


def assert_figures_agree(report: dict, forecast: pd.DataFrame) -> None:
    """Card = weekly table = fan = breakdown sum = forecast.csv, for tokens and cost."""
    week = report["capacity"]["items"][0]["weekly"][0]
    card = next(c for c in report["cards"] if c["key"] == "next_week")
    start, end = pd.Timestamp(week["start"]), pd.Timestamp(week["end"])
    stamps = pd.to_datetime(forecast["timestamp"])
    in_week = forecast[(stamps >= start) & (stamps < end)]
    csv_total = float(in_week.loc[in_week["series"] == "total", "mean"].sum())
    csv_parts = float(in_week.loc[in_week["series"] != "total", "mean"].sum())
    assert close(card["value"], week["tokens"])
    assert close(csv_total, week["tokens"])
    assert close(csv_parts, csv_total)
    fans = report["fans"]["items"]
    assert fans[0]["series"] == "total"
    fan_total = sum(p["mean"] for p in fans[0]["forecast"] if start <= pd.Timestamp(p["ds"]) < end)
    assert close(fan_total, csv_total)
    for fan in fans[1:]:
        name = fan["series"].partition("=")[2]
        fan_sum = sum(p["mean"] for p in fan["forecast"])
        assert close(fan_sum, float(forecast.loc[forecast["series"] == name, "mean"].sum()))
    models = [r for r in report["breakdown"]["items"] if r["dimension"] == "model"]
    assert close(sum(r["forecast_tokens"] for r in models), csv_total)
    cost_fan = sum(p["mean"] for p in report["cost_fan"]["items"][0]["forecast"])
    assert close(cost_fan, week["cost_usd"])
    assert close(sum(r["forecast_cost_usd"] for r in models), week["cost_usd"])
    # The demo's data ends mid-day: the first and last forecast days are marked, the rest whole.
    daily = report["capacity"]["items"][0]["daily"]
    assert [d["partial"] for d in daily] == [d["hours"] < 24 for d in daily]
    assert daily[0]["partial"]
    assert daily[-1]["partial"]
    assert close(sum(d["tokens"] for d in daily), csv_total)
    # No part's range is above the total's at the same hour.
    wide = forecast.pivot(index="timestamp", columns="series")
    for q in ("lo_80", "hi_80", "lo_95", "hi_95"):
        parts = wide[q].drop(columns="total")
        assert (parts.le(wide[q]["total"] + 1e-6, axis=0)).all().all(), q


def assert_daily_table_shows_each_day_once(stdout: str) -> None:
    """The partial last day is marked as partial and appears once per model."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith("│ 2000-")]
    keys = [(ln.split("│")[1].split()[0], ln.split("│")[2].strip()) for ln in lines]
    usage = [k for k in keys if k[1]]  # the usage table has a model cell on the first line
    assert len(usage) == len(set(usage))
    assert "partial" in stdout
