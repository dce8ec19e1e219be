"""`tokenplan budget | spikes | project` through the real CLI on a real DuckDB file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_process import run_cli


def _store(tmp_path: Path, frame: pd.DataFrame, name: str) -> Path:
    csv = tmp_path / f"{name}.csv"
    frame.to_csv(csv, index=False)
    db = tmp_path / f"{name}.duckdb"
    out = run_cli("import", str(csv), "--db", str(db))
    assert out.returncode == 0, out.stdout + out.stderr
    return db


@pytest.fixture(scope="module")
def spend_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # $1/h for the support bot from 2025-03-03 00:00 to 2025-03-05 11:00 (noon on day 3).
    ts = pd.date_range("2025-03-03", "2025-03-05 11:00", freq="1h")
    frame = pd.DataFrame(
        {
            "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model": "gpt-4o",
            "requests": 10,
            "input_tokens": 1000,
            "output_tokens": 100,
            "cost_usd": 1.0,
            "feature": "support-bot",
            "team": "research",
        }
    )
    return _store(tmp_path_factory.mktemp("spend"), frame, "spend")


def _budgets(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "budgets.toml"
    path.write_text(body)
    return path


BREACHED = """
[fx]
currency = "CNY"
per_usd = 8

[[budget]]
name = "daily"
amount = 10
period = "day"

[[budget]]
name = "bot in yuan"
scope = "feature"
match = "support-bot"
amount = 400
currency = "CNY"
period = "day"
"""


def test_budget_exits_1_on_a_critical_alert_and_says_breached_on(
    spend_db: Path, tmp_path: Path
) -> None:
    out = run_cli("budget", "--db", str(spend_db), "--config", str(_budgets(tmp_path, BREACHED)))
    assert out.returncode == 1, out.stdout + out.stderr
    # $12 spent by 11:00 on a $10 day: the 10th dollar is spent by 10:00 on 2025-03-05.
    assert "breached on 2025-03-05" in out.stdout
    assert "expected" not in out.stdout.split("bot in yuan")[0].split("daily")[-1]


def test_budget_json_is_in_the_budgets_own_currency(spend_db: Path, tmp_path: Path) -> None:
    config = _budgets(tmp_path, BREACHED)
    out = run_cli("budget", "--db", str(spend_db), "--config", str(config), "--format", "json")
    assert out.returncode == 1, out.stderr
    rows = {b["name"]: b for b in json.loads(out.stdout)["budgets"]}
    daily, bot = rows["daily"], rows["bot in yuan"]
    assert daily["breached"] is True
    assert daily["breach_at"].startswith("2025-03-05T10")
    assert any(a["severity"] == "critical" for a in daily["alerts"])
    assert bot["currency"] == "CNY"
    assert bot["amount_usd"] == pytest.approx(50.0)
    assert bot["so_far"] == pytest.approx(12 * 8.0)  # yuan
    assert bot["so_far_usd"] == pytest.approx(12.0)
    assert bot["breached"] is False


def test_budget_alerts_quote_yuan_with_usd_beside(spend_db: Path, tmp_path: Path) -> None:
    config = _budgets(
        tmp_path,
        '[fx]\ncurrency = "CNY"\nper_usd = 8\n\n[[budget]]\nname = "yuan"\n'
        'amount = 80\ncurrency = "CNY"\nperiod = "day"\nthresholds = [0.5]\n',
    )
    out = run_cli("budget", "--db", str(spend_db), "--config", str(config), "--format", "json")
    assert out.returncode == 0, out.stderr  # a 50% warning is not critical
    (alert,) = json.loads(out.stdout)["budgets"][0]["alerts"]
    assert alert["severity"] == "warning"
    assert "80.00 CNY ($10.00)" in alert["message"]
    assert "96.00 CNY ($12.00) spent" in alert["message"]


def test_budget_match_typo_names_the_closest_value(spend_db: Path, tmp_path: Path) -> None:
    config = _budgets(
        tmp_path,
        '[[budget]]\nname = "bot"\nscope = "feature"\nmatch = "suport-bot"\namount = 100\n',
    )
    out = run_cli("budget", "--db", str(spend_db), "--config", str(config))
    assert out.returncode == 0, out.stderr
    assert "'suport-bot' selects no feature; closest values: 'support-bot'" in out.stdout


def test_budget_config_error_names_file_budget_and_key_once(spend_db: Path, tmp_path: Path) -> None:
    config = _budgets(tmp_path, '[[budget]]\nname = "weekly"\namount = 100\nperiod = "fortnight"\n')
    out = run_cli("budget", "--db", str(spend_db), "--config", str(config))
    assert out.returncode == 2
    message = (out.stdout + out.stderr).strip()
    assert str(config) in message
    assert "'weekly'" in message
    assert "period" in message
    assert message.count(str(config)) == 1
    assert message.count("fortnight") == 1


def _hourly(days: int, burst: bool, factor: float = 6.5) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    ts = pd.date_range("2025-03-01", periods=days * 24, freq="1h")
    usual = 100 + 60 * np.sin(2 * np.pi * (ts.hour.to_numpy() - 6) / 24)
    y = rng.poisson(usual).astype(float)
    if burst:
        y[-6:-4] = factor * usual[-6:-4]  # two buckets at ~5x the upper band by default
    return pd.DataFrame(
        {
            "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model": "gpt-4o",
            "requests": y.astype(int),
            "input_tokens": (y * 100).astype(int),
            "output_tokens": (y * 10).astype(int),
        }
    )


def test_spikes_default_k_catches_a_two_bucket_burst(tmp_path: Path) -> None:
    db = _store(tmp_path, _hourly(14, burst=True), "burst")
    out = run_cli("spikes", "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert "spike" in out.stdout
    assert "nothing unusual" not in out.stdout
    # --k 3 wants three buckets in a row, unless they reach 5x the usual (SURGE): this burst
    # does (6.4x), a burst at 3x waits for a third bucket.
    strict = run_cli("spikes", "--db", str(db), "--k", "3")
    assert "6.4x the usual" in strict.stdout
    mild = _store(tmp_path, _hourly(14, burst=True, factor=3.0), "mild")
    assert "nothing unusual" not in run_cli("spikes", "--db", str(mild)).stdout
    assert "nothing unusual" in run_cli("spikes", "--db", str(mild), "--k", "3").stdout


def test_spikes_default_k_leaves_ordinary_peaks_alone(tmp_path: Path) -> None:
    db = _store(tmp_path, _hourly(14, burst=False), "calm")
    out = run_cli("spikes", "--db", str(db), "--since", "7d")
    assert out.returncode == 0, out.stderr
    assert "nothing unusual" in out.stdout


def test_spikes_rejects_a_bad_relative_time(tmp_path: Path) -> None:
    db = _store(tmp_path, _hourly(3, burst=False), "bad")
    out = run_cli("spikes", "--db", str(db), "--until", "yesterday-ish")
    assert out.returncode == 2
    assert "--until 'yesterday-ish'" in out.stdout + out.stderr


def test_project_takes_a_relative_as_of(tmp_path: Path) -> None:
    frame = _hourly(14, burst=False)
    csv = tmp_path / "usage.csv"
    frame.to_csv(csv, index=False)
    base = ("project", "--input", str(csv), "--metric", "requests", "--period", "day")
    rel = run_cli(*base, "--as-of", "1d", "--format", "json")
    assert rel.returncode == 0, rel.stderr
    # The last bucket is 2025-03-14 23:00; a day before it lies in the period of 2025-03-13.
    assert json.loads(rel.stdout)["period_start"] == "2025-03-13T00:00:00Z"
    bad = run_cli(*base, "--as-of", "soon")
    assert bad.returncode == 2
    assert "--as-of 'soon'" in bad.stdout + bad.stderr


def test_project_and_usage_say_the_newest_hour_is_still_filling(tmp_path: Path) -> None:
    # Raw calls, one every 10 minutes for three days, then 10 minutes of the newest hour.
    ts = pd.date_range("2025-03-03", "2025-03-06 00:10", freq="10min")
    events = tmp_path / "calls.jsonl"
    events.write_text(
        "".join(
            json.dumps(
                {
                    "ts": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "model": "gpt-4o",
                    "input_tokens": 100,
                    "output_tokens": 10,
                    "request_id": f"r{i}",
                }
            )
            + "\n"
            for i, t in enumerate(ts)
        )
    )
    db = tmp_path / "calls.duckdb"
    assert run_cli("import", str(events), "--db", str(db)).returncode == 0
    base = ("project", "--db", str(db), "--metric", "requests", "--period", "day")
    shown = run_cli(*base, "--freq", "1h")
    assert shown.returncode == 0, shown.stderr
    assert "part of the bucket from 2025-03-06T00:00:00Z" in " ".join(shown.stdout.split())
    # So far: the day's two calls of 00:00 and 00:10 are in the hour still filling.
    out = run_cli(*base, "--freq", "1h", "--format", "json")
    result = json.loads(out.stdout)
    assert result["period_start"] == "2025-03-06T00:00:00Z"
    assert result["so_far"] == 0
    # `usage` shows the two calls of the hour still filling, and says why the row is low.
    usage = run_cli("usage", "--db", str(db), "--metric", "requests", "--since", "3h")
    assert usage.returncode == 0, usage.stderr
    text = " ".join(usage.stdout.split())
    assert "the last bucket, from 2025-03-06T00:00:00Z, holds the data up to" in text
    csv = run_cli("usage", "--db", str(db), "--metric", "requests", "--format", "csv")
    assert csv.stdout.rstrip().endswith(",2")  # the data alone: no note in a CSV
