"""Webhook payloads and signing: Slack, Feishu / Lark, DingTalk, WeCom, and generic JSON.

Formats and signing rules, as the vendors document them:

- Slack incoming webhook: ``text`` (the notification fallback) and ``blocks``; replies ``ok``.
- Feishu / Lark custom bot: ``msg_type`` ``text`` or ``interactive`` (a card). With a signing
  secret the body carries ``timestamp`` (seconds) and ``sign`` =
  base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b"")). Replies ``{"code": 0}``.
- DingTalk robot: ``msgtype: markdown``. With a secret, URL parameters ``timestamp`` (ms) and
  ``sign`` = urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}"))).
  Replies ``{"errcode": 0}``.
- WeCom group robot: ``msgtype: markdown`` (at most 4,096 bytes). Replies ``{"errcode": 0}``.
- JSON: the alert as one JSON object, for anything else that takes a webhook.

The chat robots answer HTTP 200 with an error code in the body, so `reply_problem` reads the
body. A webhook's URL (it embeds the robot's token) and its secret are secrets: never logged,
never put in an error; `Webhook.scrub` blanks them out of any text that might carry them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pandas as pd

from tokenplan.plan.alerts import Alert

__all__ = [
    "Kind",
    "Notice",
    "Outgoing",
    "Problem",
    "Webhook",
    "dingtalk_sign",
    "feishu_sign",
    "render",
    "reply_problem",
]


class Kind(StrEnum):
    """The payload format a webhook takes."""

    slack = "slack"
    feishu = "feishu"
    dingtalk = "dingtalk"
    wecom = "wecom"
    json = "json"


SIGNED_KINDS = (Kind.feishu, Kind.dingtalk)
FEISHU_MSG_TYPES = ("interactive", "text")
# Body codes that mean "too many messages, try later": worth a retry with backoff.
# DingTalk 130101 "send too fast"; WeCom 45009 "api freq out of limit"; Feishu 11232.
_RATE_LIMIT_CODES = {Kind.dingtalk: {130101}, Kind.wecom: {45009}, Kind.feishu: {11232}}
# Vendor caps: Slack section text 3,000 chars and header 150; WeCom markdown 4,096 bytes;
# Feishu and DingTalk take more, but a chat message past a few KB helps nobody.
_SLACK_SECTION = 3000
_SLACK_HEADER = 150
_WECOM_BYTES = 4096
_CHAT_BYTES = 4000
_ZWSP = "\u200b"
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True, kw_only=True)
class Webhook:
    """One place alerts go: its name, format, URL, optional signing secret, severity floor."""

    name: str
    kind: Kind
    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    min_severity: str = "warning"
    # Feishu only: ``interactive`` (a coloured card) or ``text``.
    msg_type: str = "interactive"

    def secrets(self) -> tuple[str, ...]:
        """Text that must never be shown: the secret, the URL and each of its query values."""
        found = [self.url]
        try:
            parts = urlsplit(self.url)
        except ValueError:
            parts = None  # a malformed URL: blank it whole
        if parts is not None:
            found += [v for _, v in parse_qsl(parts.query) if len(v) >= 6]
            # Slack and Feishu put the token in the path, not the query.
            found += [p for p in parts.path.split("/") if len(p) >= 16]
        if self.secret:
            found.append(self.secret)
        return tuple(sorted(set(found), key=len, reverse=True))

    def scrub(self, text: str) -> str:
        """``text`` with every secret of this webhook blanked out."""
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """One message about one alert: ``firing`` (new), ``changed``, ``repeat`` or ``resolved``."""

    status: str
    alert: Alert
    since: datetime | None = None

    @property
    def key(self) -> str:
        """The alert's dedupe key (its kind and subject when it has none)."""
        return self.alert.key or f"{self.alert.kind}:{self.alert.subject}"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A rendered request: where to POST (secret: holds the token) and the JSON body bytes."""

    url: str = field(repr=False)
    body: bytes


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a reply counts as a failure, and whether trying again later may help."""

    reason: str
    retryable: bool


_LABELS = {
    "budget_reached": "budget threshold reached",
    "budget_projected": "budget overrun likely",
    "budget_config": "budget configuration",
    "headroom_low": "rate-limit headroom low",
    "spike": "usage spike",
    "drop": "usage drop",
}
_STATUS_WORDS = {"firing": "", "changed": " (changed)", "repeat": " (still on)"}


def title(notice: Notice) -> str:
    """One line: severity or RESOLVED, what kind of alert, and its subject."""
    alert = notice.alert
    label = _LABELS.get(alert.kind, alert.kind.replace("_", " "))
    if notice.status == "resolved":
        return _clean(f"RESOLVED: {label}: {alert.subject}")
    word = _STATUS_WORDS.get(notice.status, "")
    return _clean(f"{alert.severity.upper()}{word}: {label}: {alert.subject}")


def text(notice: Notice) -> str:
    """The message body: the alert's own sentence, prefixed when it has cleared."""
    message = notice.alert.message
    if notice.status == "resolved":
        message = f"Cleared. It was: {message}"
    return _clean(message)


def render(webhook: Webhook, notice: Notice, *, now: datetime) -> Outgoing:
    """The request ``webhook`` takes for ``notice``, signed at ``now`` when it has a secret."""
    url = webhook.url
    if webhook.kind is Kind.slack:
        body = _slack(notice)
    elif webhook.kind is Kind.feishu:
        body = _feishu(notice, webhook.msg_type)
        if webhook.secret:
            stamp = int(now.timestamp())
            body = {"timestamp": str(stamp), "sign": feishu_sign(webhook.secret, stamp), **body}
    elif webhook.kind is Kind.dingtalk:
        body = _dingtalk(notice)
        if webhook.secret:
            stamp = int(now.timestamp() * 1000)
            sign = dingtalk_sign(webhook.secret, stamp)
            # httpx percent-encodes the parameter: that is the urlencode step of the rule.
            params = {"timestamp": str(stamp), "sign": sign}
            url = str(httpx.URL(url).copy_merge_params(params))
    elif webhook.kind is Kind.wecom:
        body = {"msgtype": "markdown", "markdown": {"content": _markdown(notice, _WECOM_BYTES)}}
    else:
        body = _generic(notice, now)
    data = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Outgoing(url, data.encode("utf-8"))


def feishu_sign(secret: str, timestamp: int) -> str:
    """Feishu / Lark: base64 of HMAC-SHA256 keyed by ``"{timestamp}\\n{secret}"`` over nothing."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk: base64 of HMAC-SHA256 keyed by the secret over ``"{timestamp}\\n{secret}"``.

    Returned before URL-encoding: `render` adds it as a query parameter, which encodes it.
    """
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode("ascii")


def reply_problem(kind: Kind, response: httpx.Response) -> Problem | None:
    """Why ``response`` is a failed delivery (status, or a robot's error code), or None."""
    status = response.status_code
    if status == 429:
        return Problem("HTTP 429 (rate limited)", retryable=True)
    if status >= 500:
        return Problem(f"HTTP {status}", retryable=True)
    if status >= 300:
        return Problem(f"HTTP {status}{_reason(kind, response)}", retryable=False)
    if kind in (Kind.slack, Kind.json):
        return None
    try:
        reply = response.json()
    except ValueError:
        return Problem(f"HTTP {status} with a reply that is not JSON", retryable=False)
    if not isinstance(reply, dict):
        return Problem(f"HTTP {status} with an unexpected reply", retryable=False)
    # Feishu answers {"code": 0}; its older endpoints {"StatusCode": 0}; the others errcode.
    code = reply.get("errcode", reply.get("code", reply.get("StatusCode", 0)))
    if code in (0, "0", None):
        return None
    message = reply.get("errmsg") or reply.get("msg") or reply.get("StatusMessage") or ""
    retry = isinstance(code, int) and code in _RATE_LIMIT_CODES.get(kind, set())
    return Problem(f"error code {code}: {str(message)[:200]}", retryable=retry)


def _reason(kind: Kind, response: httpx.Response) -> str:
    # Slack says why in plain text (invalid_payload, no_service); robots in JSON.
    body = response.text[:200].strip()
    return f" ({body})" if body and "\n" not in body and kind is Kind.slack else ""


# -- formats ---------------------------------------------------------------------------------


def _slack(notice: Notice) -> dict[str, Any]:
    head, body = title(notice), _slack_escape(text(notice))
    return {
        "text": _cut_chars(f"{_slack_escape(head)}\n{body}", _SLACK_SECTION),
        "blocks": [
            # plain_text: shown as is, never parsed for mentions.
            {
                "type": "header",
                "text": {"type": "plain_text", "text": _cut_chars(head, _SLACK_HEADER)},
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut_chars(body, _SLACK_SECTION)},
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": _cut_chars(_slack_escape(_footer(notice)), _SLACK_SECTION),
                    }
                ],
            },
        ],
    }


def _slack_escape(value: str) -> str:
    # Slack's three control characters: unescaped, a subject like <!channel> would ping a room.
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_FEISHU_TEMPLATES = {"critical": "red", "warning": "orange", "info": "blue"}


def _feishu(notice: Notice, msg_type: str) -> dict[str, Any]:
    if msg_type == "text":
        # Feishu text turns <at user_id="all"> into a mention of everyone; a data value must not.
        content = _defang(f"{title(notice)}\n{text(notice)}\n{_footer(notice)}", "<at")
        return {"msg_type": "text", "content": {"text": _cut_bytes(content, _CHAT_BYTES)}}
    template = (
        "green"
        if notice.status == "resolved"
        else _FEISHU_TEMPLATES.get(notice.alert.severity, "blue")
    )
    # plain_text elements: no markup, so nothing in an alert can format or mention.
    return {
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {
                "title": {"tag": "plain_text", "content": title(notice)},
                "template": template,
            },
            "elements": [
                {
                    "tag": "div",
                    "text": {"tag": "plain_text", "content": _cut_bytes(text(notice), _CHAT_BYTES)},
                },
                {"tag": "note", "elements": [{"tag": "plain_text", "content": _footer(notice)}]},
            ],
        },
    }


def _dingtalk(notice: Notice) -> dict[str, Any]:
    return {
        "msgtype": "markdown",
        "markdown": {
            "title": _cut_chars(title(notice), 64),
            "text": _markdown(notice, _CHAT_BYTES),
        },
    }


def _markdown(notice: Notice, limit: int) -> str:
    """DingTalk and WeCom markdown: a heading, the message quoted, a footer."""
    head = title(notice)
    lines = [f"### {head}", "", f"> {text(notice)}", "", _footer(notice)]
    # WeCom markdown mentions with <@userid>; a data value must not.
    return _cut_bytes(_defang("\n".join(lines), "<@"), limit)


def _generic(notice: Notice, now: datetime) -> dict[str, Any]:
    alert = notice.alert
    return {
        "source": "tokenplan",
        "status": notice.status,
        "key": notice.key,
        "kind": alert.kind,
        "severity": alert.severity,
        "subject": _clean(alert.subject),
        "title": title(notice),
        "message": _clean(alert.message),
        "at": _iso(alert.at),
        "value": _number(alert.value),
        "threshold": _number(alert.threshold),
        "probability": _number(alert.probability),
        "since": _iso(notice.since),
        "sent_at": _iso(now),
    }


def _footer(notice: Notice) -> str:
    since = f" · since {_iso(notice.since)}" if notice.since else ""
    return _clean(f"tokenplan · {notice.key}{since}")


# -- text helpers ----------------------------------------------------------------------------


def _clean(value: str) -> str:
    """Valid UTF-8 text: lone surrogates (which JSON cannot carry as UTF-8) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", value)


def _defang(value: str, marker: str) -> str:
    return value.replace(marker, marker[0] + _ZWSP + marker[1:])


def _cut_chars(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _cut_bytes(value: str, limit: int) -> str:
    data = value.encode("utf-8")
    if len(data) <= limit:
        return value
    # Cut at a character boundary, leaving room for the ellipsis (3 bytes).
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


def _iso(at: Any) -> str | None:
    if at is None:
        return None
    stamp = pd.Timestamp(at)
    stamp = stamp.tz_convert("UTC") if stamp.tzinfo is not None else stamp
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
