"""Alerts from a real plan on a real DuckDB store; `AlertLoop`; `tokenplan alert` end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from webhook_receiver import Receiver, Reply, serve

from tokenplan.capacity import CapacityPlan, PlanSettings, make_plan
from tokenplan.collect.importer import import_file
from tokenplan.plan.alerts import Alert
from tokenplan.plan.budgets import load_budgets
from tokenplan.plan.limits import load_limits
from tokenplan.service.alerting import AlertLoop, AlertRules, plan_alerts
from tokenplan.service.alerts_config import load_alerts, make_alert_loop
from tokenplan.service.contracts import PlanSnapshot

BUDGETS = """
[[budget]]
name = "daily"
amount = 10
period = "day"

[[budget]]
name = "monthly"
amount = 400
period = "month"
"""

# gpt-4o runs ~100 requests an hour (a busiest minute near 7): 5 RPM cannot hold it, while the
# token limit is far away and must not alert.
LIMITS = """
[current_tier]
openai = "tier-1"

[[rate_limit]]
provider = "openai"
family = "gpt-4o"
models = ["gpt-4o*"]
tier = "tier-1"
rank = 1
rpm = 5
tpm = 1_000_000_000
"""


def _usage() -> pd.DataFrame:
    # Nine and a half days of $1/h with a daily shape; the last three hours run at 10x.
    ts = pd.date_range("2025-03-01", "2025-03-10 11:00", freq="1h")
    shape = 1.0 + 0.3 * np.sin(2 * np.pi * ts.hour.to_numpy() / 24)
    boost = np.where(np.arange(len(ts)) >= len(ts) - 3, 10.0, 1.0)
    return pd.DataFrame(
        {
            "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model": "gpt-4o",
            "requests": np.round(100 * shape * boost).astype(int),
            "input_tokens": np.round(10_000 * shape * boost).astype(int),
            "output_tokens": np.round(1_000 * shape * boost).astype(int),
            "cost_usd": np.round(1.0 * shape * boost, 4),
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("alerts")
    csv = folder / "usage.csv"
    _usage().to_csv(csv, index=False)
    from tokenplan.store import open_store

    db = folder / "usage.duckdb"
    with open_store(db) as store:
        import_file(store, csv)
    (folder / "budgets.toml").write_text(BUDGETS)
    (folder / "limits.toml").write_text(LIMITS)
    return {"db": db, "budgets": folder / "budgets.toml", "limits": folder / "limits.toml"}


@pytest.fixture(scope="module")
def plan(files: dict[str, Path]) -> Iterator[CapacityPlan]:
    from tokenplan.store import open_store

    with open_store(files["db"], mode="read") as store:
        yield make_plan(store, settings=PlanSettings(horizon_hours=24, train_days=14))


@pytest.fixture(scope="module")
def alerts(plan: CapacityPlan, files: dict[str, Path]) -> list[Alert]:
    return plan_alerts(
        plan,
        budgets=load_budgets(files["budgets"]),
        limits=load_limits(files["limits"]),
        rules=AlertRules(thresholds=(0.5, 0.8, 1.0)),
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()


def test_budget_thresholds_reached_and_likely_are_keyed_by_period(alerts: list[Alert]) -> None:
    keyed = {a.key: a for a in alerts}
    # The day's $10: all three shares spent by 11:00 (the spike hours alone cost ~$30).
    for share in ("0.5", "0.8", "1"):
        reached = keyed[f"budget:daily:{share}:2025-03-10T00:00Z"]
        assert reached.kind == "budget_reached"
    assert keyed["budget:daily:1:2025-03-10T00:00Z"].severity == "critical"
    assert keyed["budget:daily:0.5:2025-03-10T00:00Z"].severity == "warning"
    # The month's $400: half spent (~$250), the rest forecast to pass it before March ends.
    assert keyed["budget:monthly:0.5:2025-03-01T00:00Z"].kind == "budget_reached"
    likely = keyed["budget:monthly:1:2025-03-01T00:00Z"]
    assert likely.kind == "budget_projected"
    assert likely.severity == "critical"
    assert likely.probability is not None
    assert likely.probability >= 0.5


def test_headroom_below_the_floor_alerts_and_a_far_limit_does_not(alerts: list[Alert]) -> None:
    headroom = [a for a in alerts if a.kind == "headroom_low"]
    assert [a.key for a in headroom] == ["headroom:openai/gpt-4o/tier-1/rpm:0.2"]
    (rpm,) = headroom
    assert rpm.severity == "critical"
    assert rpm.threshold == 5.0
    assert rpm.value is not None
    assert rpm.value > 5.0
    assert "within 24 h" in rpm.message


def test_a_spike_going_on_now_alerts(alerts: list[Alert]) -> None:
    spikes = [a for a in alerts if a.kind == "spike"]
    assert [a.key for a in spikes] == ["spike:total_tokens"]
    assert spikes[0].severity == "critical"
    assert spikes[0].at == pd.Timestamp("2025-03-10 09:00")


def test_alerts_come_most_severe_first(alerts: list[Alert]) -> None:
    ranks = [("info", "warning", "critical").index(a.severity) for a in alerts]
    assert ranks == sorted(ranks, reverse=True)


def test_without_budgets_or_limits_only_spikes_alert(plan: CapacityPlan) -> None:
    assert {a.kind for a in plan_alerts(plan)} == {"spike"}
    assert plan_alerts(plan, rules=AlertRules(spikes=False)) == []


def test_alert_loop_sends_each_alert_once(
    plan: CapacityPlan,
    files: dict[str, Path],
    receiver: Receiver,
    alerts: list[Alert],
    tmp_path: Path,
) -> None:
    config = tmp_path / "alerts.toml"
    config.write_text(
        "[alerts]\nthresholds = [0.5, 0.8, 1.0]\n\n[[webhook]]\n"
        f'name = "j"\nkind = "json"\nurl = "{receiver.url}/a"\nmin_severity = "info"\n'
    )
    snapshot = PlanSnapshot(plan=plan, computed_at=datetime.now(UTC), as_of=None)
    with httpx.Client(timeout=5) as client:
        loop = make_alert_loop(
            load_alerts(config, env={}),
            client=client,
            clock=lambda: datetime(2025, 3, 10, 12, tzinfo=UTC),
            sleep=lambda s: None,
            budgets=load_budgets(files["budgets"]),
            limits=load_limits(files["limits"]),
        )
        first = loop(snapshot)
        second = loop(snapshot)
    assert {d.key for d in first} == {a.key for a in alerts}
    assert all(d.ok for d in first)
    assert second == []
    assert {r.json()["key"] for r in receiver.requests} == {a.key for a in alerts}


def test_alert_loop_survives_a_failing_notifier(
    plan: CapacityPlan, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def notify(self, alerts: object, judged: object = None) -> None:
            raise RuntimeError("boom at https://hooks.example/services/T/B/secret-token")

    snapshot = PlanSnapshot(plan=plan, computed_at=datetime.now(UTC), as_of=None)
    assert AlertLoop(Broken())(snapshot) is None
    assert "boom" in caplog.text
    assert "secret-token" not in caplog.text


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the CLI in this process (the plan's engine is warm): exit code and all output."""
    from tokenplan.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["alert", *args])
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out + out.err


def test_tokenplan_alert_sends_records_and_exits_1_on_a_failed_send(
    files: dict[str, Path],
    receiver: Receiver,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "alerts.toml"
    config.write_text(
        f"""
[alerts]
thresholds = [0.5, 0.8, 1.0]

[[webhook]]
name = "good"
kind = "wecom"
url = "{receiver.url}/good?key=k"
min_severity = "critical"

[[webhook]]
name = "bad"
kind = "dingtalk"
url = "{receiver.url}/bad?access_token=t"
secret = "SECcli-secret"
min_severity = "critical"
"""
    )
    good = Reply(200, b'{"errcode":0,"errmsg":"ok"}')
    bad = Reply(200, b'{"errcode":310000,"errmsg":"sign not match"}')
    # Webhooks are sent in file order: every "good" message, then every "bad" one, which
    # DingTalk refuses (a wrong signature: not retried, not recorded, exit 1).
    critical = 4  # daily 100% reached, monthly 100% likely, RPM headroom, the spike
    receiver.script = [good] * critical + [bad] * critical
    code, shown = _cli(
        capsys,
        *("--db", str(files["db"]), "--alerts", str(config), "--horizon", "24"),
        *("--budgets", str(files["budgets"]), "--limits", str(files["limits"])),
    )
    assert code == 1, shown
    assert "SECcli-secret" not in shown
    assert shown.count("not delivered") == critical
    paths = [r.path for r in receiver.requests]
    assert paths == ["/good"] * critical + ["/bad"] * critical
    assert all("sign=" in r.raw_query for r in receiver.requests if r.path == "/bad")
    state = json.loads((tmp_path / "alerts-state.json").read_text())
    assert set(state["targets"]) == {"good"}
    assert len(state["targets"]["good"]) == critical


def test_tokenplan_alert_dry_run_prints_and_sends_nothing(
    files: dict[str, Path],
    receiver: Receiver,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "alerts.toml"
    config.write_text(f'[[webhook]]\nname = "ops"\nkind = "slack"\nurl = "{receiver.url}/s"\n')
    code, shown = _cli(
        capsys, "--db", str(files["db"]), "--alerts", str(config), "--horizon", "24", "--dry-run"
    )
    assert code == 0, shown
    assert "1 alert(s) from the plan of data up to 2025-03-10T12:00:00Z." in shown
    assert "would send to ops (slack): CRITICAL: usage spike: total_tokens" in shown
    assert receiver.requests == []
    assert not (tmp_path / "alerts-state.json").exists()


def test_tokenplan_alert_without_budgets_does_not_resolve_budget_alerts(
    files: dict[str, Path],
    receiver: Receiver,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "alerts.toml"
    config.write_text(f'[[webhook]]\nname = "ops"\nkind = "json"\nurl = "{receiver.url}/j"\n')
    common = ("--db", str(files["db"]), "--alerts", str(config), "--horizon", "24")
    _cli(capsys, *common, "--budgets", str(files["budgets"]))
    first = [r.json()["key"] for r in receiver.requests]
    assert any(key.startswith("budget:") for key in first)
    # The same cron line without --budgets judged no budget: it must not say they cleared.
    _cli(capsys, *common)
    later = [(r.json()["status"], r.json()["key"]) for r in receiver.requests[len(first) :]]
    assert not [key for status, key in later if status == "resolved" and key.startswith("budget")]
