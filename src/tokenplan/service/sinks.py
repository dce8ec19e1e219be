"""`DuckDBSink`: accepted batches committed to the DuckDB store before the request is answered.

One writer thread owns the store's connection. Requests queue their batch and wait; the writer
takes every batch waiting (up to a row cap), writes them in one transaction
(`DuckDBStore.write_each`) and then answers each request. DuckDB appends the commit to its
write-ahead log and fsyncs it before COMMIT returns (``fsync_mode`` STANDARD, its default), so
an answered batch survives a SIGKILL, and a busy service pays one commit for many requests.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import pyarrow as pa

from tokenplan.errors import StoreError, TokenplanError
from tokenplan.service.contracts import AcceptResult
from tokenplan.store import DuckDBStore

__all__ = ["DuckDBSink", "SinkClosed"]

log = logging.getLogger(__name__)

# Rows one transaction takes at most; more waiting batches go in the next one.
MAX_GROUP_ROWS = 100_000


class SinkClosed(TokenplanError):
    """The service is shutting down and takes no more events."""

    status = 503


@dataclass(slots=True)
class _Pending:
    table: pa.Table
    done: Future[AcceptResult]


class DuckDBSink:
    """An `EventSink` that group-commits batches to ``store`` from one writer thread.

    The sink owns ``store``'s connection while open (other threads read through
    `DuckDBStore.reader`); ``on_commit`` callbacks run on the writer after each commit that
    kept new rows.
    """

    def __init__(
        self,
        store: DuckDBStore,
        *,
        max_group_rows: int = MAX_GROUP_ROWS,
        on_commit: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.store = store
        self.max_group_rows = max_group_rows
        self._on_commit = list(on_commit)
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._writer = threading.Thread(target=self._run, name="tokenplan-writer", daemon=True)
        self._writer.start()

    def accept(self, table: pa.Table) -> AcceptResult:
        """Commit ``table`` (with other waiting batches); return once it is durable."""
        if table.num_rows == 0:
            return AcceptResult(0, 0)
        pending = _Pending(table, Future())
        with self._lock:
            if self._closed:
                raise SinkClosed("the service is shutting down; send the batch again shortly.")
            self._queue.put(pending)
        return pending.done.result()

    def close(self) -> None:
        """Commit what is queued, then stop the writer (the store stays open)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._writer.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            group, rows = [first], first.table.num_rows
            while rows < self.max_group_rows:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                group.append(more)
                rows += more.table.num_rows
            self._commit(group)

    def _commit(self, group: list[_Pending]) -> None:
        try:
            results = self.store.write_each([p.table for p in group])
        except Exception as exc:
            if len(group) > 1:
                # One bad batch must not fail the others: each alone, in its own transaction.
                for pending in group:
                    self._commit([pending])
                return
            log.error("writing a batch of %d events failed: %s", group[0].table.num_rows, exc)
            error = exc if isinstance(exc, TokenplanError) else StoreError(str(exc))
            group[0].done.set_exception(error)
            return
        for pending, result in zip(group, results, strict=True):
            pending.done.set_result(AcceptResult(result.inserted, result.duplicates))
        if any(r.inserted for r in results):
            for callback in self._on_commit:
                try:
                    callback()
                except Exception:  # a listener's failure must not stop the writer
                    log.exception("an on_commit callback failed")
