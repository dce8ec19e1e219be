"""Send alerts to webhooks: once per condition, again on change or after a while, then resolved.

Per webhook and alert key, `Notifier.pending` decides what to say:

- ``firing``: a key not told before;
- ``changed``: its kind or severity changed, or its value moved by ``material_change`` or more;
- ``repeat``: unchanged but last told ``repeat_after`` ago (budget thresholds reached never
  repeat: each fires once per budget period, its key carries the period);
- ``resolved``: a key told before is no longer raised (a reached threshold whose period is
  over is forgotten quietly instead).

Each message is sent with retries: exponential backoff with full jitter on connection errors,
HTTP 429 (waiting what ``Retry-After`` asks), 5xx and the robots' rate-limit codes; never on
another 4xx or error code. A webhook still failing that way after its retries is skipped for
the rest of the cycle, so one dead endpoint cannot stall every message. State is recorded only
after a delivery succeeds, so a failed one is tried again next cycle.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

from tokenplan.plan.alerts import Alert
from tokenplan.service.alert_state import AlertState, Entry
from tokenplan.service.alerting import severity_rank
from tokenplan.service.webhooks import Notice, Problem, Webhook, render, reply_problem

__all__ = ["ONCE_KINDS", "DedupeRules", "Delivery", "Notifier", "RetryPolicy"]

logger = logging.getLogger(__name__)

# Alerts that fire once per key and never repeat or resolve (the key carries the period).
ONCE_KINDS = frozenset({"budget_reached"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How hard to try one message: attempts, backoff base and cap, total wait allowed."""

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    # Seconds of waiting between attempts, all told; a Retry-After beyond it ends the tries.
    max_wait: float = 120.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max_delay, base x 2^(attempt-1))]."""
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


@dataclass(frozen=True, slots=True, kw_only=True)
class DedupeRules:
    """When an ongoing condition is told again."""

    # None: never repeat an unchanged condition.
    repeat_after: timedelta | None = timedelta(hours=4)
    # Relative move of the alert's value that counts as a change (0.25: by a quarter).
    material_change: float = 0.25


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """What became of one message to one webhook."""

    target: str
    key: str
    status: str
    ok: bool
    attempts: int
    error: str | None = None
    # The failure may pass later (no reply, 429, 5xx): the webhook is skipped for the cycle.
    transient: bool = False


class Notifier:
    """Sends alerts to ``targets``, deduplicated against ``state``; every dependency passed in.

    ``clock`` returns an aware UTC datetime; ``sleep`` waits between attempts (tests pass a
    recorder); ``rng`` draws the jitter.
    """

    def __init__(
        self,
        targets: Sequence[Webhook],
        state: AlertState,
        *,
        client: httpx.Client,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None],
        retry: RetryPolicy | None = None,
        rules: DedupeRules | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.targets, self.state = tuple(targets), state
        self.client, self.clock, self.sleep = client, clock, sleep
        self.retry = retry or RetryPolicy()
        self.rules = rules or DedupeRules()
        self.rng = rng or random.Random()

    def pending(
        self, alerts: Sequence[Alert], judged: frozenset[str] | None = None
    ) -> list[tuple[Webhook, Notice]]:
        """What each webhook would be sent now for ``alerts``; nothing is sent or recorded."""
        now = self._now()
        return [(t, n) for t in self.targets for n in self._decide(t, alerts, now, judged)]

    def notify(
        self, alerts: Sequence[Alert], judged: frozenset[str] | None = None
    ) -> list[Delivery]:
        """Send what is due for ``alerts`` to every webhook; record what was delivered.

        A condition told before and not raised now is resolved when its kind is in ``judged``
        (default: every kind); of a kind not judged this time, it is left as it was.
        """
        out = []
        with self.state.locked():
            now = self._now()
            for target in self.targets:
                down = False
                for notice in self._decide(target, alerts, now, judged):
                    # A webhook that is down would make every message wait out its retries.
                    delivery = self._skip(target, notice) if down else self._send(target, notice)
                    down = down or delivery.transient
                    out.append(delivery)
                    if delivery.ok:
                        self._record(target, notice)
                        self.state.save()
            # Forget reached thresholds of periods that are over (no message for those).
            for target in self.targets:
                for key in self._expired(target, alerts, judged):
                    self.state.drop(target.name, key)
            self.state.save()
        return out

    def _now(self) -> datetime:
        # State times are compared across restarts: keep them aware (a naive clock means UTC).
        now = self.clock()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now

    # -- deciding --------------------------------------------------------------------------

    def _current(self, target: Webhook, alerts: Sequence[Alert]) -> dict[str, Alert]:
        floor = severity_rank(target.min_severity)
        return {_key(a): a for a in alerts if severity_rank(a.severity) >= floor}

    def _decide(
        self,
        target: Webhook,
        alerts: Sequence[Alert],
        now: datetime,
        judged: frozenset[str] | None = None,
    ) -> list[Notice]:
        current = self._current(target, alerts)
        told = self.state.entries(target.name)
        out = []
        for key, alert in current.items():
            entry = told.get(key)
            since = None if entry is None else entry.first_sent_at
            status = self._status(entry, alert, now)
            if status is not None:
                out.append(Notice(status=status, alert=alert, since=since))
        for key, entry in told.items():
            if judged is not None and entry.kind not in judged:
                continue  # not judged this time: neither raised nor resolved
            if key not in current and entry.kind not in ONCE_KINDS:
                gone = Alert(
                    kind=entry.kind,
                    severity=entry.severity,
                    subject=entry.subject,
                    message=entry.message,
                    value=entry.value,
                    key=key,
                )
                out.append(Notice(status="resolved", alert=gone, since=entry.first_sent_at))
        return out

    def _status(self, entry: Entry | None, alert: Alert, now: datetime) -> str | None:
        if entry is None:
            return "firing"
        if entry.kind != alert.kind or entry.severity != alert.severity:
            return "changed"
        if alert.kind in ONCE_KINDS:
            return None
        if _moved(entry.value, alert.value, self.rules.material_change):
            return "changed"
        repeat = self.rules.repeat_after
        if repeat is not None and now - entry.last_sent_at >= repeat:
            return "repeat"
        return None

    def _expired(
        self, target: Webhook, alerts: Sequence[Alert], judged: frozenset[str] | None = None
    ) -> list[str]:
        current = self._current(target, alerts)
        told = self.state.entries(target.name)
        return [
            k
            for k, e in told.items()
            if k not in current
            and e.kind in ONCE_KINDS
            # Not judged this time: forgetting it would tell the threshold again next run.
            and (judged is None or e.kind in judged)
        ]

    def _record(self, target: Webhook, notice: Notice) -> None:
        if notice.status == "resolved":
            self.state.drop(target.name, notice.key)
            return
        now = self._now().isoformat()
        alert = notice.alert
        value = alert.value if alert.value is not None and math.isfinite(alert.value) else None
        first = notice.since.isoformat() if notice.since is not None else now
        self.state.put(
            target.name,
            notice.key,
            Entry(
                kind=alert.kind,
                severity=alert.severity,
                subject=alert.subject,
                message=alert.message,
                value=value,
                first_sent=first,
                last_sent=now,
            ),
        )

    # -- sending ---------------------------------------------------------------------------

    def _skip(self, target: Webhook, notice: Notice) -> Delivery:
        return Delivery(
            target=target.name,
            key=notice.key,
            status=notice.status,
            ok=False,
            attempts=0,
            error=f"webhook {target.name!r}: not tried, it failed earlier in this cycle",
            transient=True,
        )

    def _send(self, target: Webhook, notice: Notice) -> Delivery:
        """POST one notice, retrying what may pass later, within the policy's limits."""
        waited, attempt, problem = 0.0, 0, None
        while True:
            attempt += 1
            wait_for = None
            try:
                outgoing = render(target, notice, now=self._now())
                response = self.client.post(
                    outgoing.url,
                    content=outgoing.body,
                    headers={"Content-Type": "application/json; charset=utf-8"},
                )
            except httpx.TransportError as exc:
                # The type only: transport messages can quote the URL, which holds the token.
                problem = Problem(f"{type(exc).__name__} (no reply)", retryable=True)
            except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
                # A URL httpx refuses (a bad port, say) will not get better by waiting.
                problem = Problem(f"{type(exc).__name__} (not sent)", retryable=False)
            else:
                problem = reply_problem(target.kind, response)
                if problem is None:
                    logger.info(
                        "sent %s alert %s to webhook %r (attempt %d)",
                        notice.status,
                        notice.key,
                        target.name,
                        attempt,
                    )
                    return Delivery(
                        target=target.name,
                        key=notice.key,
                        status=notice.status,
                        ok=True,
                        attempts=attempt,
                    )
                if response.status_code in (429, 503):
                    wait_for = _retry_after(response.headers.get("Retry-After"), self._now())
            reason = target.scrub(problem.reason)
            if not problem.retryable or attempt >= self.retry.max_attempts:
                break
            delay = wait_for if wait_for is not None else self.retry.backoff(attempt, self.rng)
            if waited + delay > self.retry.max_wait:
                reason += f"; the next try would wait past the {self.retry.max_wait:g} s allowed"
                break
            logger.warning(
                "webhook %r: %s alert %s: %s; retrying in %.1f s",
                target.name,
                notice.status,
                notice.key,
                reason,
                delay,
            )
            self.sleep(delay)
            waited += delay
        tries = "attempt" if attempt == 1 else "attempts"
        error = f"webhook {target.name!r}: {reason} after {attempt} {tries}"
        logger.error("%s alert %s not delivered: %s", notice.status, notice.key, error)
        return Delivery(
            target=target.name,
            key=notice.key,
            status=notice.status,
            ok=False,
            attempts=attempt,
            error=error,
            transient=problem.retryable,
        )


def _key(alert: Alert) -> str:
    return alert.key or f"{alert.kind}:{alert.subject}"


def _moved(old: float | None, new: float | None, share: float) -> bool:
    """Whether the value moved materially: appeared, vanished, or changed by ``share`` or more."""
    if old is None or new is None or not math.isfinite(new):
        return (old is None) != (new is None or not math.isfinite(new))
    scale = max(abs(old), abs(new))
    return scale > 0 and abs(new - old) >= share * scale


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = (when - now).total_seconds() if when.tzinfo else None  # type: ignore[assignment]
        if seconds is None:
            return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None
