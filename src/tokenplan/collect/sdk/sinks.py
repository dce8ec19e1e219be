"""Where instrumented calls go: the local store, or a collector URL with a local spool."""

from __future__ import annotations

import gzip
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from tokenplan.collect.sdk.provider_calls import ParsedCall
from tokenplan.collect.sdk.spool import Spool
from tokenplan.errors import InvalidInput, StoreLocked
from tokenplan.events import ObservedLimit, UsageEvent

try:
    import fcntl
except ImportError:  # Windows: no shared spool lock; one process per store there
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("tokenplan.instrument")

SOURCE = "sdk"


class Sink(Protocol):
    """Receives parsed calls in batches, on the batcher's thread only."""

    def write(self, calls: Sequence[ParsedCall]) -> None:
        """Keep ``calls`` (events and the rate limits their headers reported)."""


class StoreSink:
    """Write events, priced, and rate limits to a DuckDB store.

    Events are priced with ``prices`` (a `tokenplan.pricing.PriceBook`, e.g. with your
    overrides), by default genai-prices' list prices, loaded on the first batch (on the
    batcher's thread, never on the call path). Without a cost, spend, budgets and advice
    would not see the calls.

    The store is opened for each batch and closed again, so other tokenplan commands can open
    the same file in between. While another process holds the file (a `tokenplan report`, a
    second app process's batch, `tokenplan serve`), opening waits up to ``lock_wait`` seconds
    on the batcher's thread, then the batch goes to ``spool`` (default: ``<store>.pending.ndjson``)
    and is written before the next batch that gets the store. The spool is shared by every
    process writing that store, under an exclusive file lock, so one left by an app that
    stopped is written by the next. Rate limits of a spooled batch are not kept: the next
    answer's headers report them again.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        prices: Any = None,
        source: str = SOURCE,
        lock_wait: float = 5.0,
        spool: Spool | str | os.PathLike[str] | None = None,
    ) -> None:
        from tokenplan.store.duckdb_store import resolve_db_path

        self.path = resolve_db_path(path)
        self.prices = prices
        self.source = source
        self.lock_wait = lock_wait
        self.spooled = 0
        self._told = False
        self.spool: Spool | None
        if isinstance(spool, Spool):
            self.spool = spool
        elif spool is not None:
            self.spool = Spool(spool)
        else:
            self.spool = None if self.path == ":memory:" else Spool(f"{self.path}.pending.ndjson")

    def write(self, calls: Sequence[ParsedCall]) -> None:
        """Write the spool's events and this batch in one transaction (or spool the batch)."""
        spool = self.spool
        if spool is None or not spool.size():
            try:
                self._write([], calls)
                self._told = False
                return
            except StoreLocked as exc:
                if spool is None:
                    raise
                with _exclusive(spool):
                    self._keep(calls, exc)
                return
        with _exclusive(spool):
            waiting = spool.read()
            try:
                self._write(_spooled_events(waiting, str(spool.path)), calls)
            except StoreLocked as exc:
                self._keep(calls, exc)
                return
            spool.clear()
        self._told = False
        log.info("tokenplan: wrote %d spooled events to %s", len(waiting), self.path)

    def _write(self, waiting: Sequence[UsageEvent], calls: Sequence[ParsedCall]) -> None:
        from tokenplan.events import events_to_table
        from tokenplan.store import open_store
        from tokenplan.store.rate_limits import record_rate_limits

        events = [*waiting, *(c.event for c in calls)]
        if not events:
            return
        table = events_to_table(events, source=self.source)
        if self.prices is None:
            from tokenplan.pricing import PriceBook

            self.prices = PriceBook()
        table = self.prices.price_rows(table).table
        limits = [lim for c in calls for lim in c.limits]
        with open_store(self.path, wait=self.lock_wait) as store, store.transaction():
            store.write(table)
            if limits:
                record_rate_limits(store, limits)

    def _keep(self, calls: Sequence[ParsedCall], exc: StoreLocked) -> None:
        assert self.spool is not None
        kept = self.spool.append([event_to_json(c.event) for c in calls])
        self.spooled += kept
        holder = f" (PID {exc.pid})" if exc.pid is not None else ""
        # Once per hold: a service holding the store for good must not log every second.
        told, self._told = self._told, True
        (log.info if told else log.warning)(
            "tokenplan: the store %s is in use by another process%s; %d events spooled to %s "
            "(%d bytes waiting) and written once the store is free. If `tokenplan serve` "
            "holds it, record through CollectorSink to the service instead.",
            self.path,
            holder,
            kept,
            self.spool.path,
            self.spool.size(),
        )

    def write_limits(self, limits: Sequence[ObservedLimit]) -> None:
        """Record rate limits only (for a `CollectorSink` that sends events elsewhere)."""
        from tokenplan.store import open_store
        from tokenplan.store.rate_limits import record_rate_limits

        with open_store(self.path, wait=self.lock_wait) as store:
            record_rate_limits(store, limits)


def _spooled_events(rows: Sequence[dict[str, Any]], where: str) -> list[UsageEvent]:
    """The spool's rows as events; a row edited into something invalid is logged and left out
    (kept, it would stop every later batch from being written)."""
    events = []
    for i, row in enumerate(rows, start=1):
        try:
            events.append(UsageEvent.from_mapping(row, source=where, line=i))
        except InvalidInput as exc:
            log.error("tokenplan: a spooled event is left out: %s", exc)
    return events


@contextmanager
def _exclusive(spool: Spool | None) -> Iterator[None]:
    """Hold ``spool`` alone across processes (a lock file beside it), so one process's write
    and clear never drop rows another appended in between."""
    if spool is None or fcntl is None:
        yield
        return
    with open(f"{spool.path}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def event_to_json(event: UsageEvent) -> dict[str, Any]:
    """One event as the collector's JSON (`UsageEvent.from_mapping` reads it back)."""
    known = event.tokens_known
    row: dict[str, Any] = {
        "ts": event.ts.isoformat().replace("+00:00", "Z"),
        "provider": event.provider,
        "model": event.model,
        "input_tokens": event.input_tokens if known else None,
        "output_tokens": event.output_tokens if known else None,
        "cache_read_tokens": event.cache_read_tokens if known else None,
        "cache_write_tokens": event.cache_write_tokens if known else None,
        "latency_ms": event.latency_ms,
        "status": event.status,
        "cost_usd": None if event.cost_usd is None else str(event.cost_usd),
        "team": event.team,
        "feature": event.feature,
        "user": event.user,
        "key_id": event.key_id,
        "request_id": event.request_id,
    }
    if not known:
        row["tokens_known"] = False
    return {k: v for k, v in row.items() if v is not None or k.endswith("_tokens")}


# (url, gzip'd JSON body, headers, timeout) -> (HTTP status, the start of the answer's body);
# raises OSError when unreachable.
Post = Callable[[str, bytes, dict[str, str], float], tuple[int, bytes]]
_REASON_BYTES = 2000


def post_with_urllib(
    url: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int, bytes]:
    """POST with the standard library (the package needs no HTTP client of its own)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status), b""
    except urllib.error.HTTPError as exc:
        answer = exc.read()
        exc.close()
        return int(exc.code), answer[:_REASON_BYTES]


def _reason(answer: bytes) -> str:
    """What a refusing collector said: its ``error`` field, else the start of the text."""
    text = answer.decode("utf-8", "replace")
    try:
        value = json.loads(text)
    except ValueError:
        return text[:300]
    error = value.get("error") if isinstance(value, dict) else None
    return str(error)[:500] if error else text[:300]


@dataclass(slots=True)
class CollectorStats:
    """What the collector sink did so far."""

    sent: int = 0
    spooled: int = 0
    replayed: int = 0
    rejected: int = 0
    latest_limits: dict[tuple[str, str, str | None, str], ObservedLimit] = field(
        default_factory=dict
    )


class CollectorSink:
    """POST events to a tokenplan collector (``POST /v1/events``, bearer token).

    When the collector is unreachable or answers 5xx, 429 or 401, events go to ``spool`` and
    are replayed before the next batch (processes sharing a spool path take turns on it); a
    422 (data the collector refuses) is logged and counted, never retried. Rate limits go to
    ``limits_store`` (a `StoreSink`) when given, and are kept in ``stats.latest_limits``
    either way. The token is never logged.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        spool: Spool | str | os.PathLike[str],
        post: Post = post_with_urllib,
        timeout: float = 10.0,
        limits_store: StoreSink | None = None,
    ) -> None:
        self.url = url.rstrip("/") + (
            "" if url.rstrip("/").endswith("/v1/events") else "/v1/events"
        )
        self._token = token if token is not None else os.environ.get("TOKENPLAN_TOKEN")
        self.spool = spool if isinstance(spool, Spool) else Spool(spool)
        self._post = post
        self.timeout = timeout
        self.limits_store = limits_store
        self.stats = CollectorStats()

    def _send(self, rows: Sequence[dict[str, Any]]) -> bool:
        """True when the collector took ``rows`` (or refused them for good, counted)."""
        body = gzip.compress(json.dumps(list(rows), separators=(",", ":")).encode(), 5)
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            status, answer = self._post(self.url, body, headers, self.timeout)
        except OSError as exc:
            log.warning("tokenplan: collector %s unreachable (%s); spooling", self.url, exc)
            return False
        if 200 <= status < 300:
            return True
        if status == 413 and len(rows) > 1:
            half = len(rows) // 2
            return self._send(rows[:half]) and self._send(rows[half:])
        if status in (400, 413, 422):
            self.stats.rejected += len(rows)
            log.error(
                "tokenplan: collector refused %d events (HTTP %d): %s",
                len(rows),
                status,
                _reason(answer),
            )
            return True
        log.warning("tokenplan: collector answered HTTP %d; spooling", status)
        return False

    def replay(self) -> bool:
        """Send what the spool holds; True when it is empty afterwards."""
        with _exclusive(self.spool):
            return self._replay()

    def _replay(self) -> bool:
        rows = self.spool.read()
        if not rows:
            if self.spool.size():
                self.spool.clear()  # only torn lines left
            return True
        for start in range(0, len(rows), 500):
            if not self._send(rows[start : start + 500]):
                return False
        self.spool.clear()
        self.stats.replayed += len(rows)
        return True

    def write(self, calls: Sequence[ParsedCall]) -> None:
        """Replay the spool, then send this batch; spool it when the collector is down."""
        for c in calls:
            for lim in c.limits:
                self.stats.latest_limits[(lim.provider, lim.model, lim.key_id, lim.kind)] = lim
        if self.limits_store is not None and any(c.limits for c in calls):
            try:
                self.limits_store.write_limits([lim for c in calls for lim in c.limits])
            except Exception:
                log.exception("tokenplan: writing rate limits failed")
        rows = [event_to_json(c.event) for c in calls]
        if not rows:
            return
        # The spool is read, sent and cleared under its file lock: app servers' worker
        # processes often share one spool path, and a clear must not drop another's rows.
        if self.spool.size():
            with _exclusive(self.spool):
                if not self._replay():
                    self.stats.spooled += self.spool.append(rows)
                    return
        if self._send(rows):
            self.stats.sent += len(rows)
        else:
            with _exclusive(self.spool):
                self.stats.spooled += self.spool.append(rows)


__all__ = ["CollectorSink", "Sink", "StoreSink", "event_to_json", "post_with_urllib"]
