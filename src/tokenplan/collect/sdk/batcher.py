"""`EventBatcher`: a bounded queue drained by a background thread; the call path never waits."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

log = logging.getLogger("tokenplan.instrument")

T = TypeVar("T")
OnFull = Literal["drop_new", "drop_oldest"]


@dataclass(frozen=True, slots=True)
class BatcherStats:
    """Counts since the batcher started: what came in, what left, what was dropped or failed."""

    submitted: int
    delivered: int
    dropped: int
    failed: int
    pending: int


class EventBatcher(Generic[T]):
    """Hand items to ``deliver`` in batches from a daemon thread; ``submit`` never blocks.

    When ``capacity`` items wait, ``on_full`` drops the new item or the oldest one; drops are
    counted (`stats`) and logged once per burst. ``deliver`` runs only on the worker thread and
    its exceptions are counted and logged, never raised.
    """

    def __init__(
        self,
        deliver: Callable[[Sequence[T]], None],
        *,
        capacity: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        on_full: OnFull = "drop_oldest",
        name: str = "tokenplan-batcher",
    ) -> None:
        if capacity < 1 or batch_size < 1 or flush_interval <= 0:
            raise ValueError("capacity and batch_size must be >= 1, flush_interval > 0.")
        if on_full not in ("drop_new", "drop_oldest"):
            raise ValueError(f"on_full must be 'drop_new' or 'drop_oldest', not {on_full!r}.")
        self._deliver = deliver
        self._capacity = capacity
        self._batch_size = batch_size
        self._interval = flush_interval
        self._drop_oldest = on_full == "drop_oldest"
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._submitted = self._delivered = self._dropped = self._failed = 0
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> bool:
        """Queue ``item``; False when it (or the oldest item) was dropped: the queue was full."""
        with self._lock:
            self._submitted += 1
            if len(self._items) >= self._capacity:
                self._dropped += 1
                if self._dropped & (self._dropped - 1) == 0:  # 1, 2, 4, 8 ... never a log flood
                    log.warning("tokenplan: event queue full, %d events dropped", self._dropped)
                if not self._drop_oldest:
                    return False
                self._items.popleft()
                self._items.append(item)
                return False
            self._items.append(item)
            full_batch = len(self._items) >= self._batch_size
        if full_batch:
            self._wake.set()
        return True

    def stats(self) -> BatcherStats:
        """The counters so far."""
        with self._lock:
            return BatcherStats(
                self._submitted,
                self._delivered,
                self._dropped,
                self._failed,
                len(self._items) + self._in_flight,
            )

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far was handed to ``deliver``; False on timeout."""
        self._wake.set()
        with self._idle:
            return self._idle.wait_for(
                lambda: not self._items and not self._in_flight, timeout=timeout
            )

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued, then stop the worker thread."""
        with self._lock:
            self._stopping = True
        self._wake.set()
        self._thread.join(timeout)

    def _take(self) -> list[T]:
        with self._lock:
            n = min(self._batch_size, len(self._items))
            batch = [self._items.popleft() for _ in range(n)]
            self._in_flight = n
            return batch

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            while batch := self._take():
                try:
                    self._deliver(batch)
                    ok = True
                except Exception:
                    log.exception("tokenplan: delivering %d events failed", len(batch))
                    ok = False
                with self._idle:
                    if ok:
                        self._delivered += len(batch)
                    else:
                        self._failed += len(batch)
                    self._in_flight = 0
                    self._idle.notify_all()
            with self._idle:
                self._in_flight = 0
                self._idle.notify_all()
                if self._stopping:
                    return
