"""The seams of the service: where accepted events go, and the plan that reads are served from.

Ingest hands every accepted batch to an `EventSink`; the sink returns only once the batch is
durable (committed to the store, or written to a Redis stream with append-only persistence),
so a 2xx means the events survive a SIGKILL. Reads (JSON API, ``/metrics``, alerts) take the
latest `PlanSnapshot` from a `PlanSource`, which a background task refreshes on a schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

if TYPE_CHECKING:
    from tokenplan.capacity import CapacityPlan

__all__ = ["AcceptResult", "EventSink", "PlanSnapshot", "PlanSource"]


@dataclass(frozen=True, slots=True)
class AcceptResult:
    """What a sink did with one batch: new events kept, and retries it recognised."""

    accepted: int
    duplicates: int


class EventSink(Protocol):
    """Takes batches of events (an Arrow table of `tokenplan.events.USAGE_SCHEMA` rows)."""

    def accept(self, table: pa.Table) -> AcceptResult:
        """Keep the batch durably, counting each ``request_id`` once; return when durable."""
        ...

    def close(self) -> None:
        """Flush and release what the sink holds."""
        ...


@dataclass(frozen=True, slots=True)
class PlanSnapshot:
    """One computed plan, with when it was computed and the data time it judges up to."""

    plan: CapacityPlan
    computed_at: datetime
    as_of: datetime | None


class PlanSource(Protocol):
    """Where reads find the latest plan (``None`` until the first one is computed)."""

    def latest(self) -> PlanSnapshot | None:
        """The newest completed plan, or ``None``."""
        ...
