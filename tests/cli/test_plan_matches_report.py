"""The planning commands and the report read one plan: same store, same settings, same figures."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_process import run_cli

HORIZON = "48"


def _run(*args: str, **options: Any) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, timeout=600, **options)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One store; the report's JSON and each command's JSON, run on it with the same settings."""
    tmp = tmp_path_factory.mktemp("same")
    rng = np.random.default_rng(3)
    ts = pd.date_range("2025-03-01", "2025-03-20 13:00", freq="1h")
    rows = []
    for model, scale in (("claude-sonnet-4-5", 1.0), ("claude-haiku-4-5", 0.4)):
        usual = scale * (300 + 200 * np.sin(2 * np.pi * (ts.hour.to_numpy() - 6) / 24))
        requests = rng.poisson(usual)
        rows.append(
            pd.DataFrame(
                {
                    "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "model": model,
                    "requests": requests,
                    "input_tokens": requests * 1500,
                    "output_tokens": requests * 300,
                    "cost_usd": np.round(requests * 0.009, 6),
                }
            )
        )
    csv = tmp / "usage.csv"
    pd.concat(rows).to_csv(csv, index=False)
    db = tmp / "s.duckdb"
    assert _run("import", str(csv), "--db", str(db)).returncode == 0
    budgets = tmp / "budgets.toml"
    budgets.write_text(
        '[[budget]]\nname = "month"\namount = 2500\nperiod = "month"\n\n'
        '[[budget]]\nname = "sonnet day"\nscope = "model"\nmatch = "claude-sonnet-4-5"\n'
        'amount = 60\nperiod = "day"\n'
    )
    limits = tmp / "limits.toml"
    limits.write_text(
        '[current_tier]\nanthropic = "t1"\n\n'
        '[[rate_limit]]\nprovider = "anthropic"\nfamily = "sonnet"\n'
        'models = ["claude-sonnet-4*"]\ntier = "t1"\nrank = 1\nrpm = 20\nitpm = 500_000\n\n'
        '[[rate_limit]]\nprovider = "anthropic"\nfamily = "sonnet"\n'
        'models = ["claude-sonnet-4*"]\ntier = "t2"\nrank = 2\nrpm = 4_000\nitpm = 4_000_000\n'
    )
    report = _run(
        "report",
        *("--db", str(db), "--out", str(tmp / "r.html"), "--json", str(tmp / "r.json")),
        *("--budgets", str(budgets), "--limits", str(limits), "--horizon", HORIZON),
    )
    assert report.returncode == 0, report.stderr
    budget = _run(
        "budget",
        *("--db", str(db), "--config", str(budgets), "--horizon", HORIZON, "--format", "json"),
    )
    headroom = _run(
        "headroom",
        *("--db", str(db), "--limits", str(limits), "--horizon", HORIZON, "--format", "json"),
    )
    project = _run(
        "project",
        *("--db", str(db), "--metric", "cost_usd", "--period", "month", "--limit", "2500"),
        *("--format", "json"),
    )
    spikes = _run("spikes", "--db", str(db), "--format", "json")
    for name, out in (("budget", budget), ("headroom", headroom), ("project", project)):
        assert out.returncode in (0, 1), (name, out.stderr)
    assert spikes.returncode in (0, 1), spikes.stderr
    return {
        "report": json.loads((tmp / "r.json").read_text()),
        "budget": json.loads(budget.stdout),
        "budget_rc": budget.returncode,
        "headroom": json.loads(headroom.stdout),
        "headroom_rc": headroom.returncode,
        "project": json.loads(project.stdout),
        "spikes": json.loads(spikes.stdout),
    }


def test_budget_figures_equal_the_reports(outputs: dict[str, Any]) -> None:
    shown = {b["name"]: b for b in outputs["report"]["budgets"]["items"]}
    cli = {b["name"]: b for b in outputs["budget"]["budgets"]}
    assert set(shown) == set(cli) == {"month", "sonnet day"}
    for name, row in shown.items():
        for key in ("so_far", "projected", "lo_80", "hi_80", "p_over_limit"):
            assert cli[name][key] == pytest.approx(row[key], rel=1e-12), (name, key)
    assert outputs["budget"]["as_of"] == outputs["report"]["as_of"]


def test_project_is_the_budget_computation(outputs: dict[str, Any]) -> None:
    month = next(b for b in outputs["budget"]["budgets"] if b["name"] == "month")
    proj = outputs["project"]
    assert proj["period_start"] == "2025-03-01T00:00:00Z"
    assert proj["projected"] == pytest.approx(month["projected_usd"], rel=1e-12)
    assert proj["p_over_limit"] == pytest.approx(month["p_over_limit"], rel=1e-12)


def test_headroom_figures_and_limits_source_equal_the_reports(outputs: dict[str, Any]) -> None:
    section = outputs["report"]["headroom"]
    cli = outputs["headroom"]
    assert [r["name"] for r in cli["items"]] == [r["name"] for r in section["items"]]
    assert cli["items"], "the hand-written limits match claude-sonnet-4-5"
    for mine, theirs in zip(cli["items"], section["items"], strict=True):
        assert mine["limit_kind"] == theirs["limit_kind"]
        for key in ("peak_p99", "headroom", "p_hit_max"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-12), key
    # Both name the same limits file, and the model that no limit covers.
    assert cli["limits_source"].endswith("limits.toml")
    assert f"limits from {cli['limits_source']}" in section["note"]
    assert cli["unlimited_models"] == ["claude-haiku-4-5"]
    assert "claude-haiku-4-5" in section["note"]
    # Hourly data: the busiest minute is inferred, and both say so.
    assert "inferred from hourly data" in section["note"]
    assert any("inferred from hourly data" in n for n in cli["notes"])


def test_a_likely_hit_limit_exits_1(outputs: dict[str, Any]) -> None:
    # Sonnet's busiest hours carry ~500 requests: 500 / 60 x 4 (hourly data) = 33 RPM > t1's 20.
    rpm = next(r for r in outputs["headroom"]["items"] if r["limit_kind"] == "RPM")
    assert rpm["tier"] == "t1"
    assert rpm["severity"] == "critical"
    assert rpm["holding_tier"] == "t2"
    assert outputs["headroom_rc"] == 1


def test_spikes_read_the_same_plan(outputs: dict[str, Any]) -> None:
    shown = outputs["report"]["spikes"]["items"]
    cli = outputs["spikes"]
    assert cli["metric"] == outputs["report"]["metric"]
    assert [(a["kind"], a["start"]) for a in cli["anomalies"]] == [
        (s["kind"], s["start"]) for s in shown
    ]
