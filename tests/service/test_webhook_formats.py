"""Each webhook format as it arrives at a real loopback receiver, and the vendors' signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote_plus

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from webhook_receiver import Receiver, Recorded, serve

from tokenplan.plan.alerts import Alert
from tokenplan.service.alert_state import AlertState
from tokenplan.service.notifier import Notifier
from tokenplan.service.webhooks import (
    Kind,
    Notice,
    Webhook,
    dingtalk_sign,
    feishu_sign,
    render,
)

NOW = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)  # 1741176000 s
SECRET = "SECtest-secret"
# Computed outside Python with openssl (see the test docstrings), so the rule is checked, not
# re-derived from the code under test.
FEISHU_VECTOR = "3b+DdwCiu7Z7s401s9v0wE9rhcgz6icuNlJuzvsDtTc="
DINGTALK_VECTOR = "QuZ0/a0EvDebd0DzOXPt2a8KLwf6mjir31qlpE8uRVQ="

ALERT = Alert(
    kind="budget_projected",
    severity="critical",
    subject="All models, monthly",
    message="All models, monthly: 83% chance of passing 100% of the $500.00 month budget.",
    value=612.5,
    threshold=500.0,
    probability=0.83,
    key="budget:All models, monthly:1:2025-03-01T00:00Z",
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()


def _deliver(receiver: Receiver, hook: Webhook, alert: Alert = ALERT) -> Recorded:
    with httpx.Client() as client:
        notifier = Notifier(
            [hook], AlertState(), client=client, clock=lambda: NOW, sleep=lambda s: None
        )
        (delivery,) = notifier.notify([alert])
    assert delivery.ok, delivery.error
    (request,) = receiver.requests
    assert request.headers["Content-Type"].startswith("application/json")
    return request


def test_slack_sends_text_and_blocks(receiver: Receiver) -> None:
    receiver.default = receiver.default.__class__(200, b"ok", {"Content-Type": "text/plain"})
    hook = Webhook(name="s", kind=Kind.slack, url=f"{receiver.url}/services/T0/B0/x")
    body = _deliver(receiver, hook).json()
    assert body["text"].startswith("CRITICAL: budget overrun likely: All models, monthly")
    header, section, context = body["blocks"]
    assert header["type"] == "header"
    assert header["text"]["type"] == "plain_text"
    assert section["text"] == {"type": "mrkdwn", "text": ALERT.message}
    assert ALERT.key in context["elements"][0]["text"]


def test_slack_escapes_its_control_characters() -> None:
    hook = Webhook(name="s", kind=Kind.slack, url="https://hooks.slack.com/services/x")
    alert = Alert(kind="spike", severity="critical", subject="<!channel>", message="a & <b>")
    body = json.loads(render(hook, Notice(status="firing", alert=alert), now=NOW).body)
    assert body["blocks"][1]["text"]["text"] == "a &amp; &lt;b&gt;"
    assert "<!channel>" not in body["text"]


def test_feishu_card_is_signed_in_the_body(receiver: Receiver) -> None:
    """Vector: printf '' | openssl dgst -sha256 -mac HMAC -macopt key:"1741176000<LF>SEC…"."""
    hook = Webhook(name="f", kind=Kind.feishu, url=f"{receiver.url}/hook/abc", secret=SECRET)
    body = _deliver(receiver, hook).json()
    assert body["timestamp"] == "1741176000"
    expected = base64.b64encode(
        hmac.new(f"1741176000\n{SECRET}".encode(), b"", hashlib.sha256).digest()
    ).decode()
    assert body["sign"] == expected == FEISHU_VECTOR
    assert body["msg_type"] == "interactive"
    card = body["card"]
    assert card["header"]["template"] == "red"
    assert card["header"]["title"]["content"].startswith("CRITICAL")
    assert card["elements"][0]["text"] == {"tag": "plain_text", "content": ALERT.message}


def test_feishu_text_without_secret_has_no_signature(receiver: Receiver) -> None:
    hook = Webhook(name="f", kind=Kind.feishu, url=f"{receiver.url}/hook/abc", msg_type="text")
    body = _deliver(receiver, hook).json()
    assert set(body) == {"msg_type", "content"}
    assert body["msg_type"] == "text"
    assert ALERT.message in body["content"]["text"]


def test_feishu_text_cannot_mention_everyone() -> None:
    hook = Webhook(name="f", kind=Kind.feishu, url="https://x.test/h", msg_type="text")
    alert = Alert(
        kind="spike", severity="critical", subject='<at user_id="all">x</at>', message="m"
    )
    body = json.loads(render(hook, Notice(status="firing", alert=alert), now=NOW).body)
    assert "<at" not in body["content"]["text"]


def test_dingtalk_markdown_is_signed_in_the_url(receiver: Receiver) -> None:
    """Vector: printf '1741176000000<LF>SEC…' | openssl dgst -sha256 -hmac SEC… -binary | base64."""
    url = f"{receiver.url}/robot/send?access_token=tok123456789"
    hook = Webhook(name="d", kind=Kind.dingtalk, url=url, secret=SECRET)
    request = _deliver(receiver, hook)
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), f"1741176000000\n{SECRET}".encode(), hashlib.sha256).digest()
    ).decode()
    assert expected == DINGTALK_VECTOR
    assert request.query == {
        "access_token": "tok123456789",
        "timestamp": "1741176000000",
        "sign": expected,
    }
    # urlencode(base64(...)): '+', '/' and '=' travel percent-encoded.
    assert f"sign={quote_plus(expected)}" in request.raw_query
    body = request.json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"].startswith("CRITICAL")
    assert ALERT.message in body["markdown"]["text"]
    assert "sign" not in body
    assert "timestamp" not in body


def test_wecom_markdown_fits_its_byte_limit(receiver: Receiver) -> None:
    hook = Webhook(name="w", kind=Kind.wecom, url=f"{receiver.url}/cgi-bin/webhook/send?key=k")
    long = Alert(kind="spike", severity="warning", subject="s", message="用量" * 3000)
    body = _deliver(receiver, hook, long).json()
    assert set(body) == {"msgtype", "markdown"}
    assert body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert len(content.encode("utf-8")) <= 4096
    assert content.startswith("### WARNING")
    assert content.endswith("…")


def test_generic_json_is_the_alert(receiver: Receiver) -> None:
    hook = Webhook(name="j", kind=Kind.json, url=f"{receiver.url}/alerts")
    body = _deliver(receiver, hook).json()
    assert body == {
        "source": "tokenplan",
        "status": "firing",
        "key": ALERT.key,
        "kind": "budget_projected",
        "severity": "critical",
        "subject": ALERT.subject,
        "title": "CRITICAL: budget overrun likely: All models, monthly",
        "message": ALERT.message,
        "at": None,
        "value": 612.5,
        "threshold": 500.0,
        "probability": 0.83,
        "since": None,
        "sent_at": "2025-03-05T12:00:00Z",
    }


def test_signing_functions_match_the_vectors() -> None:
    assert feishu_sign(SECRET, 1741176000) == FEISHU_VECTOR
    assert dingtalk_sign(SECRET, 1741176000000) == DINGTALK_VECTOR


def test_infinite_values_travel_as_null() -> None:
    hook = Webhook(name="j", kind=Kind.json, url="https://x.test/a")
    alert = Alert(kind="spike", severity="critical", subject="s", message="m", value=float("inf"))
    body = json.loads(render(hook, Notice(status="firing", alert=alert), now=NOW).body)
    assert body["value"] is None


KINDS = [
    Webhook(name="s", kind=Kind.slack, url="https://hooks.slack.test/services/x"),
    Webhook(name="f", kind=Kind.feishu, url="https://f.test/h", secret=SECRET),
    Webhook(name="t", kind=Kind.feishu, url="https://f.test/h", msg_type="text"),
    Webhook(name="d", kind=Kind.dingtalk, url="https://d.test/r?access_token=t", secret=SECRET),
    Webhook(name="w", kind=Kind.wecom, url="https://w.test/s?key=k"),
    Webhook(name="j", kind=Kind.json, url="https://j.test/a"),
]


def _carried(hook: Webhook, body: dict[str, object]) -> str:
    """Every string in the body, joined: where the alert's text must be found."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            found.append(node)
        elif isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(body)
    text = "\n".join(found)
    if hook.kind is Kind.slack:
        text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text.replace("\u200b", "")


@settings(max_examples=60, deadline=None)
@given(
    message=st.text(max_size=300),
    subject=st.text(max_size=40),
    status=st.sampled_from(["firing", "changed", "repeat", "resolved"]),
)
def test_any_alert_text_round_trips_in_every_format(
    message: str, subject: str, status: str
) -> None:
    alert = Alert(kind="spike", severity="critical", subject=subject, message=message, key="k")
    for hook in KINDS:
        out = render(hook, Notice(status=status, alert=alert), now=NOW)
        body = json.loads(out.body.decode("utf-8"))  # valid UTF-8 JSON, whatever the text
        carried = _carried(hook, body)
        assert message in carried, hook.kind
        assert subject in carried, hook.kind
