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
