"""Where integrations send usage: the local store, or a collector's ``POST /v1/events``.

Both are `tokenplan.service.contracts.EventSink`s (``accept(table)``), fed by `Batcher`, a
background thread so that an app's call path only ever does a non-blocking ``put``. This is a
deliberately small sender; the SDK instrumentation's spooling batcher can replace it.
"""

from __future__ import annotations

import gzip
import json
import logging
import queue
import threading
from collections.abc import Callable
from datetime import UTC
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from tokenplan.errors import StoreError
from tokenplan.service.contracts import AcceptResult, EventSink

__all__ = ["Batcher", "CollectorSink", "StoreSink"]

_log = logging.getLogger(__name__)


class StoreSink:
    """Writes batches to the DuckDB store at ``path`` (opened per batch: other writers may run)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def accept(self, table: pa.Table) -> AcceptResult:
        """Write the batch in one transaction; ``request_id`` repeats are counted once."""
        from tokenplan.store import open_store

        with open_store(self.path) as store:
            result = store.write(table)
        return AcceptResult(result.inserted, result.duplicates)

    def close(self) -> None:
        """Nothing is held between batches."""


class CollectorSink:
    """Posts batches as gzipped NDJSON UsageEvents to a collector's ``/v1/events``.

    The events contract needs token counts, so failed calls whose tokens are unknown are not
    sent (they are counted in ``unsent``).
    """

    def __init__(self, url: str, token: str, *, client: Any) -> None:
        self._url = url.rstrip("/") + "/v1/events"
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/x-ndjson",
            "Content-Encoding": "gzip",
        }
        self._client = client
        self.unsent = 0

    def __repr__(self) -> str:  # never show the token
        return f"CollectorSink({self._url!r})"

    def accept(self, table: pa.Table) -> AcceptResult:
        """Send the batch; raise `StoreError` if the collector did not take it."""
        lines = []
        for row in table.to_pylist():
            if row["input_tokens"] is None or row["output_tokens"] is None:
                self.unsent += 1
                continue
            lines.append(json.dumps(_event_json(row), separators=(",", ":")))
        if not lines:
            return AcceptResult(0, 0)
        body = gzip.compress(("\n".join(lines) + "\n").encode())
        try:
            reply = self._client.post(self._url, content=body, headers=self._headers)
        except Exception as exc:  # httpx.HTTPError and friends: wrapped once, here
            raise StoreError(f"the collector at {self._url} is unreachable ({exc}).") from exc
        if reply.status_code != 200:
            raise StoreError(f"the collector at {self._url} answered {reply.status_code}.")
        answer = reply.json()
        return AcceptResult(int(answer.get("accepted", 0)), int(answer.get("duplicates", 0)))

    def close(self) -> None:
        """The http client belongs to the caller."""


def _event_json(row: dict[str, Any]) -> dict[str, Any]:
    status = "rate_limited" if row["rate_limited_requests"] else "ok"
    if row["failed_requests"] and status == "ok":
        status = "error"
    out: dict[str, Any] = {
        "ts": row["ts"].replace(tzinfo=UTC).isoformat(),
        "status": status,
        "latency_ms": row["latency_ms_sum"],
        "cost_usd": None if row["cost_usd"] is None else str(Decimal(row["cost_usd"])),
    }
    for name in ("provider", "model", "team", "feature", "user", "key_id", "request_id"):
        out[name] = row[name]
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
        out[name] = row[name] or 0
    return {k: v for k, v in out.items() if v is not None}


class Batcher:
    """A bounded queue drained by one thread into ``sink`` every ``interval_s`` or ``batch`` rows.

    ``put`` never blocks; when the queue is full the row is dropped and counted in ``dropped``
    (a sink that is down for long must not stall or grow the app).
    """

    def __init__(
        self,
        sink: EventSink,
        *,
        batch: int = 500,
        interval_s: float = 0.5,
        capacity: int = 100_000,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.sink = sink
        self._batch = batch
        self._interval = interval_s
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=capacity)
        self._on_error = on_error
        self._idle = threading.Condition()
        self._pending = 0
        self.dropped = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="tokenplan-batcher", daemon=True)
        self._thread.start()

    def put(self, rows: pa.Table) -> None:
        """Queue rows for the sink without blocking."""
        with self._idle:
            try:
                self._queue.put_nowait(rows)
            except queue.Full:
                self.dropped += rows.num_rows
                return
            self._pending += 1

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far reached the sink (or failed); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Flush, stop the thread and close the sink."""
        self.flush(timeout)
        self._queue.put(None)
        self._thread.join(timeout)
        self.sink.close()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            tables = [first]
            rows = first.num_rows
            stop = False
            while rows < self._batch:
                try:
                    more = self._queue.get(timeout=self._interval)
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                tables.append(more)
                rows += more.num_rows
            self._deliver(tables)
            if stop:
                return

    def _deliver(self, tables: list[pa.Table]) -> None:
        try:
            self.sink.accept(pa.concat_tables(tables))
        except Exception as exc:  # never raise into the app; count and report
            self.failed += sum(t.num_rows for t in tables)
            _log.warning("tokenplan: %d usage rows were not kept: %s", len(tables), exc)
            if self._on_error is not None:
                self._on_error(exc)
        finally:
            with self._idle:
                self._pending -= len(tables)
                self._idle.notify_all()
