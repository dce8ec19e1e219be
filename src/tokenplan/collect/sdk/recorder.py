"""`Recorder`: captured calls → batcher thread → parsed events → a sink."""

from __future__ import annotations

import atexit
import logging
import time
from collections.abc import Callable, Sequence

from tokenplan.collect.sdk.batcher import BatcherStats, EventBatcher, OnFull
from tokenplan.collect.sdk.provider_calls import CapturedCall, ParsedCall, to_event
from tokenplan.collect.sdk.sinks import Sink

log = logging.getLogger("tokenplan.instrument")


class Recorder:
    """Owns the bounded batcher and the sink that instrumented clients report to.

    ``submit`` is all the call path does; parsing and writing run on the batcher's thread.
    ``unknown_tokens`` counts calls recorded with tokens unknown (see `UsageEvent.tokens_known`).
    """

    def __init__(
        self,
        sink: Sink,
        *,
        capacity: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        on_full: OnFull = "drop_oldest",
        clock: Callable[[], float] = time.time,
        close_at_exit: bool = True,
    ) -> None:
        self.sink = sink
        self.clock = clock
        self.unknown_tokens = 0
        self.unparsed = 0
        self._batcher: EventBatcher[CapturedCall] = EventBatcher(
            self._deliver,
            capacity=capacity,
            batch_size=batch_size,
            flush_interval=flush_interval,
            on_full=on_full,
        )
        if close_at_exit:
            atexit.register(self.close)

    def submit(self, call: CapturedCall) -> bool:
        """Queue one finished call (never blocks; False when the queue dropped one)."""
        return self._batcher.submit(call)

    def _deliver(self, calls: Sequence[CapturedCall]) -> None:
        parsed: list[ParsedCall] = []
        for call in calls:
            try:
                p = to_event(call)
            except Exception:
                self.unparsed += 1
                log.exception("tokenplan: could not read a %s response", call.provider)
                continue
            if not p.event.tokens_known:
                self.unknown_tokens += 1
            parsed.append(p)
        if parsed:
            self.sink.write(parsed)

    def stats(self) -> BatcherStats:
        """Submitted, delivered, dropped, failed and pending counts."""
        return self._batcher.stats()

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every call so far reached the sink (for tests and shutdown)."""
        return self._batcher.flush(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued and stop the thread."""
        self._batcher.close(timeout)
        atexit.unregister(self.close)
