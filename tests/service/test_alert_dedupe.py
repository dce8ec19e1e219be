"""Deduplication: once per condition, again on change or after `repeat_after`, then resolved."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from webhook_receiver import Receiver, serve

from tokenplan.errors import ConfigError
from tokenplan.plan.alerts import Alert
from tokenplan.service.alert_state import AlertState
from tokenplan.service.notifier import DedupeRules, Notifier
from tokenplan.service.webhooks import Kind, Webhook

START = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)
HEADROOM = Alert(
    kind="headroom_low",
    severity="warning",
    subject="openai gpt-4o (tier-1) TPM",
    message="headroom 15%",
    value=850.0,
    threshold=1000.0,
    key="headroom:openai/gpt-4o/tier-1/tpm:0.2",
)


def _reached(share: float, period: str, spent: float = 450.0) -> Alert:
    return Alert(
        kind="budget_reached",
        severity="critical" if share >= 1 else "warning",
        subject="monthly",
        message=f"{share:.0%} of the monthly budget is reached",
        value=spent,
        threshold=500.0 * share,
        key=f"budget:monthly:{share:g}:{period}",
    )


class Clock:
    """An injected clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as c:
        yield c


def _notifier(
    receiver: Receiver,
    clock: Clock,
    client: httpx.Client,
    state: AlertState | None = None,
    *,
    min_severity: str = "warning",
    repeat_after: timedelta | None = timedelta(hours=4),
) -> Notifier:
    hook = Webhook(name="ops", kind=Kind.json, url=f"{receiver.url}/a", min_severity=min_severity)
    return Notifier(
        [hook],
        state or AlertState(),
        client=client,
        clock=clock,
        sleep=lambda s: None,
        rules=DedupeRules(repeat_after=repeat_after, material_change=0.25),
    )


def _statuses(receiver: Receiver) -> list[tuple[str, str]]:
    return [(r.json()["status"], r.json()["key"]) for r in receiver.requests]


def test_same_alert_twice_is_one_message(
    receiver: Receiver, clock: Clock, client: httpx.Client
) -> None:
    notifier = _notifier(receiver, clock, client)
    notifier.notify([HEADROOM])
    clock.advance(hours=1)
    assert notifier.notify([HEADROOM]) == []
    assert _statuses(receiver) == [("firing", HEADROOM.key)]


def test_a_change_of_severity_or_a_material_value_sends_again(
    receiver: Receiver, clock: Clock, client: httpx.Client
) -> None:
    notifier = _notifier(receiver, clock, client)
    notifier.notify([HEADROOM])
    clock.advance(minutes=10)
    notifier.notify([replace(HEADROOM, value=900.0)])  # +6%: not material
    clock.advance(minutes=10)
    notifier.notify([replace(HEADROOM, value=1200.0)])  # +41% on what was last sent
    clock.advance(minutes=10)
    notifier.notify([replace(HEADROOM, value=1200.0, severity="critical")])
    assert [s for s, _ in _statuses(receiver)] == ["firing", "changed", "changed"]
    bodies = [r.json() for r in receiver.requests]
    assert bodies[1]["value"] == 1200.0
    assert bodies[2]["severity"] == "critical"
    assert bodies[2]["since"] == "2025-03-05T12:00:00Z"  # the condition's first message


def test_cleared_sends_resolved_once(
    receiver: Receiver, clock: Clock, client: httpx.Client
) -> None:
    notifier = _notifier(receiver, clock, client)
    notifier.notify([HEADROOM])
    clock.advance(hours=1)
    notifier.notify([])
    clock.advance(hours=1)
    notifier.notify([])
    assert _statuses(receiver) == [("firing", HEADROOM.key), ("resolved", HEADROOM.key)]
    resolved = receiver.requests[1].json()
    assert resolved["title"].startswith("RESOLVED")
    assert resolved["message"] == HEADROOM.message


def test_a_kind_not_judged_this_time_is_neither_raised_nor_resolved(
    receiver: Receiver, clock: Clock, client: httpx.Client
) -> None:
    # `tokenplan alert` run once with --limits and once without: the second run says nothing
    # about headroom, so it must not tell the channel the limit is safe again.
    notifier = _notifier(receiver, clock, client)
    notifier.notify([HEADROOM], frozenset({"headroom_low", "spike", "drop"}))
    clock.advance(hours=1)
    notifier.notify([], frozenset({"spike", "drop"}))
    assert _statuses(receiver) == [("firing", HEADROOM.key)]
    assert list(notifier.state.entries("ops")) == [HEADROOM.key]
    clock.advance(hours=1)
    notifier.notify([], frozenset({"headroom_low"}))  # judged again, and clear: resolved
    assert _statuses(receiver) == [("firing", HEADROOM.key), ("resolved", HEADROOM.key)]


def test_a_threshold_reached_stays_told_through_a_run_that_did_not_judge_budgets(
    receiver: Receiver, clock: Clock, client: httpx.Client
) -> None:
    march = "2025-03-01T00:00Z"
    notifier = _notifier(receiver, clock, client)
    notifier.notify([_reached(0.8, march)], frozenset({"budget_reached"}))
    clock.advance(hours=1)
    notifier.notify([], frozenset({"spike", "drop"}))  # a run without --budgets
    clock.advance(hours=1)
    notifier.notify([_reached(0.8, march, spent=460.0)], frozenset({"budget_reached"}))
    # Told once in March: the run in between did not make it forget, so no second message.
    assert _statuses(receiver) == [("firing", f"budget:monthly:0.8:{march}")]


def test_repeat_after_elapsed_sends_again(
    receiver: Receiver, clock: Clock, client: httpx.Client
) -> None:
    notifier = _notifier(receiver, clock, client)
    notifier.notify([HEADROOM])
    clock.advance(hours=3, minutes=59)
    notifier.notify([HEADROOM])
    clock.advance(minutes=1)
    notifier.notify([HEADROOM])
    clock.advance(hours=1)
    notifier.notify([HEADROOM])
    assert [s for s, _ in _statuses(receiver)] == ["firing", "repeat"]


def test_repeat_never_stays_quiet(receiver: Receiver, clock: Clock, client: httpx.Client) -> None:
    notifier = _notifier(receiver, clock, client, repeat_after=None)
    notifier.notify([HEADROOM])
    clock.advance(days=30)
    notifier.notify([HEADROOM])
    assert len(receiver.requests) == 1


def test_each_budget_threshold_fires_once_per_period(
    receiver: Receiver, clock: Clock, client: httpx.Client
) -> None:
    notifier = _notifier(receiver, clock, client)
    march = "2025-03-01T00:00Z"
    notifier.notify([_reached(0.8, march)])
    for hours in range(1, 30, 6):
        clock.advance(hours=hours)  # past repeat_after, and spend keeps growing
        notifier.notify([_reached(0.8, march, spent=450.0 + 20 * hours)])
    notifier.notify([_reached(0.8, march, 499.0), _reached(1.0, march, 520.0)])
    clock.advance(days=20)
    # April: the thresholds are new conditions, and March's end quietly (no "resolved").
    april = "2025-04-01T00:00Z"
    notifier.notify([_reached(0.8, april, 420.0)])
    assert _statuses(receiver) == [
        ("firing", f"budget:monthly:0.8:{march}"),
        ("firing", f"budget:monthly:1:{march}"),
        ("firing", f"budget:monthly:0.8:{april}"),
    ]
    assert list(notifier.state.entries("ops")) == [f"budget:monthly:0.8:{april}"]


def test_a_likely_overrun_that_comes_true_is_a_change_not_a_resolve(
    receiver: Receiver, clock: Clock, client: httpx.Client
) -> None:
    notifier = _notifier(receiver, clock, client)
    key = "budget:monthly:1:2025-03-01T00:00Z"
    likely = Alert(
        kind="budget_projected",
        severity="critical",
        subject="monthly",
        message="83% chance",
        value=560.0,
        key=key,
    )
    notifier.notify([likely])
    clock.advance(days=2)
    notifier.notify([_reached(1.0, "2025-03-01T00:00Z", 505.0)])
    assert _statuses(receiver) == [("firing", key), ("changed", key)]
    assert receiver.requests[1].json()["kind"] == "budget_reached"


def test_below_min_severity_is_not_sent(
    receiver: Receiver, clock: Clock, client: httpx.Client
) -> None:
    notifier = _notifier(receiver, clock, client, min_severity="critical")
    notifier.notify([HEADROOM])  # a warning
    assert receiver.requests == []
    notifier.notify([replace(HEADROOM, severity="critical")])
    assert len(receiver.requests) == 1


def test_state_survives_a_restart(
    receiver: Receiver, clock: Clock, client: httpx.Client, tmp_path: Path
) -> None:
    path = tmp_path / "state" / "alerts.json"
    _notifier(receiver, clock, client, AlertState(path)).notify([HEADROOM])
    stored = json.loads(path.read_text())
    assert stored["version"] == 1
    assert stored["targets"]["ops"][HEADROOM.key]["last_sent"] == START.isoformat()
    clock.advance(hours=1)
    # A new process: same file, nothing new to say; then the condition clears.
    again = _notifier(receiver, clock, client, AlertState(path))
    assert again.notify([HEADROOM]) == []
    again.notify([])
    assert _statuses(receiver) == [("firing", HEADROOM.key), ("resolved", HEADROOM.key)]
    assert json.loads(path.read_text())["targets"] == {}
    # Atomic writes leave no temporary files behind.
    assert sorted(p.name for p in path.parent.iterdir()) == ["alerts.json", "alerts.json.lock"]


def test_dry_run_decides_without_sending_or_recording(
    receiver: Receiver, clock: Clock, client: httpx.Client, tmp_path: Path
) -> None:
    path = tmp_path / "alerts.json"
    notifier = _notifier(receiver, clock, client, AlertState(path))
    due = notifier.pending([HEADROOM])
    assert [(t.name, n.status) for t, n in due] == [("ops", "firing")]
    assert receiver.requests == []
    assert not path.exists()


def test_a_corrupt_state_file_is_named_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    path.write_text('{"version": 1, "targets": {"ops": {"k": {"kind": "x"')
    with pytest.raises(ConfigError, match=r"alerts\.json is not valid JSON; delete it"):
        AlertState(path)
