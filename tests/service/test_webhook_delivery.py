"""Delivery against a real loopback receiver: retries, what is not retried, and secrets kept."""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from webhook_receiver import Receiver, Reply, serve

from tokenplan.plan.alerts import Alert
from tokenplan.service.alert_state import AlertState
from tokenplan.service.notifier import Delivery, Notifier, RetryPolicy
from tokenplan.service.webhooks import Kind, Webhook

NOW = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)
SECRET = "SECsuper-secret-value-42"
TOKEN = "tok-abcdef0123456789"
ALERT = Alert(
    kind="headroom_low",
    severity="critical",
    subject="openai gpt-4o (tier-1) TPM",
    message="openai gpt-4o (tier-1) TPM: 95% of the limit.",
    value=950.0,
    key="headroom:openai/gpt-4o/tier-1/tpm:0.2",
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()


class Sleeps(list[float]):
    """A `sleep` that records how long it was asked to wait and returns at once."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _send(
    hook: Webhook, sleeps: Sleeps, retry: RetryPolicy | None = None, state: AlertState | None = None
) -> Delivery:
    with httpx.Client(timeout=5) as client:
        notifier = Notifier(
            [hook],
            state or AlertState(),
            client=client,
            clock=lambda: NOW,
            sleep=sleeps,
            retry=retry,
            rng=random.Random(7),
        )
        (delivery,) = notifier.notify([ALERT])
    return delivery


def test_two_500s_then_success_is_one_delivery_in_three_attempts(receiver: Receiver) -> None:
    receiver.script = [Reply(500, b"oops"), Reply(500, b"oops")]
    sleeps = Sleeps()
    state = AlertState()
    hook = Webhook(name="j", kind=Kind.json, url=f"{receiver.url}/a")
    delivery = _send(hook, sleeps, state=state)
    assert delivery.ok
    assert delivery.attempts == 3
    assert len(receiver.requests) == 3
    # The same message each time; it was recorded once delivered.
    assert len({r.body for r in receiver.requests}) == 1
    assert list(state.entries("j")) == [ALERT.key]
    # Full jitter: each wait within [0, base x 2^(n-1)].
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 1.0
    assert 0 <= sleeps[1] <= 2.0


def test_a_4xx_is_not_retried_and_not_recorded(receiver: Receiver) -> None:
    receiver.script = [Reply(400, b"invalid_payload", {"Content-Type": "text/plain"})]
    sleeps = Sleeps()
    state = AlertState()
    hook = Webhook(name="s", kind=Kind.slack, url=f"{receiver.url}/services/T/B/{TOKEN}")
    delivery = _send(hook, sleeps, state=state)
    assert not delivery.ok
    assert delivery.attempts == 1
    assert sleeps == []
    assert len(receiver.requests) == 1
    assert delivery.error is not None
    assert "HTTP 400 (invalid_payload)" in delivery.error
    assert state.entries("s") == {}  # tried again next cycle


def test_429_waits_what_retry_after_asks(receiver: Receiver) -> None:
    receiver.script = [Reply(429, b"", {"Retry-After": "7"})]
    sleeps = Sleeps()
    hook = Webhook(name="j", kind=Kind.json, url=f"{receiver.url}/a")
    delivery = _send(hook, sleeps)
    assert delivery.ok
    assert delivery.attempts == 2
    assert sleeps == [7.0]


def test_retry_after_as_an_http_date_is_honoured(receiver: Receiver) -> None:
    when = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    receiver.script = [Reply(503, b"", {"Retry-After": when})]
    sleeps = Sleeps()
    hook = Webhook(name="j", kind=Kind.json, url=f"{receiver.url}/a")
    assert _send(hook, sleeps).ok
    assert sleeps == [30.0]


def test_a_retry_after_beyond_the_budget_ends_the_tries(receiver: Receiver) -> None:
    receiver.script = [Reply(429, b"", {"Retry-After": "3600"})]
    sleeps = Sleeps()
    hook = Webhook(name="j", kind=Kind.json, url=f"{receiver.url}/a")
    delivery = _send(hook, sleeps, RetryPolicy(max_wait=60))
    assert not delivery.ok
    assert sleeps == []
    assert delivery.error is not None
    assert "60 s allowed" in delivery.error


def test_attempts_stop_at_the_maximum(receiver: Receiver) -> None:
    receiver.default = Reply(503, b"down")
    sleeps = Sleeps()
    hook = Webhook(name="j", kind=Kind.json, url=f"{receiver.url}/a")
    delivery = _send(hook, sleeps, RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=1.0))
    assert not delivery.ok
    assert delivery.attempts == 4
    assert len(receiver.requests) == 4
    assert len(sleeps) == 3
    assert max(sleeps) <= 1.0  # capped


@pytest.mark.parametrize(
    ("kind", "reply", "retried"),
    [
        (Kind.dingtalk, b'{"errcode":310000,"errmsg":"sign not match"}', False),
        (Kind.wecom, b'{"errcode":93000,"errmsg":"invalid webhook url"}', False),
        (Kind.feishu, b'{"code":19021,"msg":"sign match fail"}', False),
        (Kind.dingtalk, b'{"errcode":130101,"errmsg":"send too fast"}', True),
        (Kind.wecom, b'{"errcode":45009,"errmsg":"api freq out of limit"}', True),
    ],
)
def test_a_robots_error_code_in_a_200_is_a_failure(
    receiver: Receiver, kind: Kind, reply: bytes, retried: bool
) -> None:
    receiver.default = Reply(200, reply)
    sleeps = Sleeps()
    hook = Webhook(name="r", kind=kind, url=f"{receiver.url}/robot?access_token={TOKEN}")
    delivery = _send(hook, sleeps, RetryPolicy(max_attempts=3))
    assert not delivery.ok
    assert delivery.error is not None
    assert "error code" in delivery.error
    assert delivery.attempts == (3 if retried else 1)


def test_a_robot_reply_that_is_not_json_is_a_failure(receiver: Receiver) -> None:
    receiver.default = Reply(200, b"<html>proxy</html>", {"Content-Type": "text/html"})
    hook = Webhook(name="w", kind=Kind.wecom, url=f"{receiver.url}/send?key={TOKEN}")
    delivery = _send(hook, Sleeps())
    assert not delivery.ok
    assert delivery.attempts == 1


def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens there now: every attempt is refused.
    sleeps = Sleeps()
    hook = Webhook(name="j", kind=Kind.json, url=f"http://127.0.0.1:{port}/a?token={TOKEN}")
    delivery = _send(hook, sleeps, RetryPolicy(max_attempts=3))
    assert not delivery.ok
    assert delivery.attempts == 3
    assert len(sleeps) == 2
    assert delivery.error is not None
    assert "ConnectError" in delivery.error
    assert TOKEN not in delivery.error


def test_secrets_never_reach_logs_or_errors(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    # Echo the secrets back in the error text: a reply must not smuggle them into a log line.
    echo = (
        f'{{"errcode":1,"errmsg":"bad sign for {SECRET} at {receiver.url}?access_token={TOKEN}"}}'
    )
    receiver.default = Reply(200, echo.encode())
    hook = Webhook(
        name="ding",
        kind=Kind.dingtalk,
        url=f"{receiver.url}/robot/send?access_token={TOKEN}",
        secret=SECRET,
    )
    with caplog.at_level(logging.DEBUG, logger="tokenplan"):
        delivery = _send(hook, Sleeps())
    assert not delivery.ok
    shown = caplog.text + str(delivery) + repr(hook)
    assert "ding" in caplog.text  # the webhook is named, by its name
    assert SECRET not in shown
    assert TOKEN not in shown
    assert "***" in (delivery.error or "")


def test_a_failed_resolved_message_is_tried_again_next_cycle(receiver: Receiver) -> None:
    hook = Webhook(name="j", kind=Kind.json, url=f"{receiver.url}/a")
    state = AlertState()
    clock = [NOW]
    with httpx.Client(timeout=5) as client:
        notifier = Notifier([hook], state, client=client, clock=lambda: clock[0], sleep=Sleeps())
        assert notifier.notify([ALERT])[0].ok
        receiver.default = Reply(404, b"gone")
        clock[0] += timedelta(hours=1)
        (failed,) = notifier.notify([])
        assert failed.status == "resolved"
        assert not failed.ok
        receiver.default = Reply()
        (again,) = notifier.notify([])
    assert again.status == "resolved"
    assert again.ok
    assert state.entries("j") == {}


def test_a_url_httpx_refuses_fails_at_once_without_showing_it() -> None:
    sleeps = Sleeps()
    hook = Webhook(name="j", kind=Kind.dingtalk, url=f"http://[::1/r?t={TOKEN}")
    delivery = _send(hook, sleeps)
    assert not delivery.ok
    assert delivery.attempts == 1
    assert sleeps == []
    assert delivery.error is not None
    assert "InvalidURL" in delivery.error
    assert TOKEN not in delivery.error


def test_a_webhook_that_stays_down_is_skipped_for_the_rest_of_the_cycle(
    receiver: Receiver,
) -> None:
    receiver.default = Reply(503, b"down")
    other = Alert(kind="spike", severity="critical", subject="s", message="m", key="spike:s")
    hook = Webhook(name="j", kind=Kind.json, url=f"{receiver.url}/a")
    with httpx.Client(timeout=5) as client:
        notifier = Notifier([hook], AlertState(), client=client, clock=lambda: NOW, sleep=Sleeps())
        first, second = notifier.notify([ALERT, other])
    assert first.attempts == 5
    assert second.attempts == 0
    assert not second.ok
    assert len(receiver.requests) == 5
    # A webhook that refuses one message (a 4xx) is still tried with the next.
    receiver.default = Reply(400, b"bad")
    with httpx.Client(timeout=5) as client:
        notifier = Notifier([hook], AlertState(), client=client, clock=lambda: NOW, sleep=Sleeps())
        assert [d.attempts for d in notifier.notify([ALERT, other])] == [1, 1]
