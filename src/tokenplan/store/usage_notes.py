"""What a usage table must say beside its rows: read by `tokenplan usage` and `/v1/usage`."""

from __future__ import annotations

from datetime import datetime

from tokenplan.frequency import Frequency
from tokenplan.store.duckdb_store import DuckDBStore
from tokenplan.store.queries import DuckDBQueries, twice_extent

_EPOCH = datetime(1970, 1, 1)


def usage_notes(store: DuckDBStore, frequency: Frequency, since: datetime | None) -> list[str]:
    """Notes on rows from ``since`` at ``frequency``: buckets wider than it (shown at their
    start, 0 after), and calls also held as a provider's report (counted twice)."""
    queries = DuckDBQueries(store)
    first = since or _EPOCH
    notes = []
    widest = 0 if frequency.months else queries.widest_bucket_seconds(first)
    if frequency.seconds < widest:
        # A bucket is kept whole at its start: 1h from daily exports reads 0 for 23 hours.
        wide = Frequency(widest).label
        notes.append(
            f"the store holds buckets {wide} wide in this range: per {frequency.label} each "
            f"shows at its start and the rest of it reads 0; use --freq {wide} or wider to "
            "read them"
        )
    twice = queries.counted_twice(first)
    if twice:
        notes.append(
            f"{twice_extent(twice)} are stored both "
            "as calls and as a provider's report: these totals count them twice (`tokenplan "
            "reconcile` reads them apart)"
        )
    return notes
