"""Named questions the planner asks a store, as a small protocol and its DuckDB answers.

The capacity plan (`tokenplan.capacity`) asks only these, so a Redis- or Parquet-backed store
satisfies the planner by answering them; SQL stays here, never in `report` or `plan`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from tokenplan.errors import InvalidInput
from tokenplan.events import DIMENSIONS
from tokenplan.store.duckdb_store import NONE_LABEL, DuckDBStore, StoreSummary
from tokenplan.store.schema import METRIC_SQL

__all__ = ["DuckDBQueries", "UsageQueries", "queries_for"]


class UsageQueries(Protocol):
    """What the capacity plan reads from a store."""

    def series(
        self,
        metric: str,
        freq: str,
        by: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        top: int | None = None,
    ) -> pd.DataFrame:
        """Metric at a frequency, split by dimensions, as tidy ``unique_id, ds, y``.

        With ``top``, all but the ``top - 1`` biggest series are summed as ``(other)``.
        """
        ...

    def totals(
        self, metric: str, dimension: str, since: datetime, until: datetime | None = None
    ) -> pd.Series:
        """Sum of ``metric`` per value of ``dimension`` in ``[since, until)`` (no grid)."""
        ...

    def summary(self) -> StoreSummary:
        """Rows, span and unpriced models of the whole store."""
        ...

    def widest_bucket_seconds(self, since: datetime) -> int:
        """Widest bucket (seconds) among rows since ``since``; 0 when there are none."""
        ...

    def cache_read_share(self, since: datetime) -> float:
        """Cache-read tokens as a share of input tokens since ``since``."""
        ...

    def model_providers(self, since: datetime) -> dict[str, str | None]:
        """The provider each model was called through most often since ``since``."""
        ...


class DuckDBQueries:
    """`UsageQueries` answered by SQL on a `DuckDBStore`."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store

    def series(
        self,
        metric: str,
        freq: str,
        by: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        top: int | None = None,
    ) -> pd.DataFrame:
        """Delegates to `DuckDBStore.series` (float values), stray timestamps left out."""
        return self.store.series(metric, freq, tuple(by), since, until, trim_outliers=True, top=top)

    def totals(
        self, metric: str, dimension: str, since: datetime, until: datetime | None = None
    ) -> pd.Series:
        """Sum of ``metric`` per value of ``dimension`` in ``[since, until)`` (unknown → 0)."""
        if metric not in METRIC_SQL or dimension not in DIMENSIONS:
            raise InvalidInput(f"cannot total {metric!r} by {dimension!r}.")
        end = "" if until is None else "AND ts < ?"
        params = [since] if until is None else [since, until]
        rows = self.store.connection.execute(
            f"""SELECT coalesce("{dimension}", '{NONE_LABEL}'),
                       coalesce(sum({METRIC_SQL[metric]}), 0)::DOUBLE
                FROM usage WHERE ts >= ? {end} GROUP BY 1""",
            [p.replace(tzinfo=None) for p in params],
        ).fetchall()
        return pd.Series({str(k): float(v) for k, v in rows}, dtype=float)

    def summary(self) -> StoreSummary:
        """`DuckDBStore.summary`, its span that of the bulk (`DuckDBStore.time_bulk`).

        One stray epoch-zero or far-future event must not move the plan's as-of time or its
        training window; the import already reported it, and the totals still count it.
        """
        summary = self.store.summary()
        bulk = self.store.time_bulk()
        if bulk is None:
            return summary
        return replace(summary, start=bulk[0], end=bulk[1])

    def widest_bucket_seconds(self, since: datetime) -> int:
        """Widest bucket among rows since ``since`` (0 when none)."""
        rows = self._run("SELECT coalesce(max(bucket_s), 0) FROM usage WHERE ts >= ?", since)
        return int(rows[0][0])

    def cache_read_share(self, since: datetime) -> float:
        """Cache-read tokens over input tokens since ``since`` (0 without input tokens)."""
        rows = self._run(
            "SELECT coalesce(sum(cache_read_tokens), 0), coalesce(sum(input_tokens), 0) "
            "FROM usage WHERE ts >= ?",
            since,
        )
        cached, total = (float(v) for v in rows[0])
        return cached / total if total > 0 else 0.0

    def model_providers(self, since: datetime) -> dict[str, str | None]:
        """Most frequent provider per model since ``since``."""
        rows = self._run(
            "SELECT model, mode(provider) FROM usage WHERE ts >= ? GROUP BY model", since
        )
        return {str(m): (None if p is None else str(p)) for m, p in rows}

    def _run(self, sql: str, since: datetime) -> list[tuple[Any, ...]]:
        return self.store.connection.execute(sql, [since.replace(tzinfo=None)]).fetchall()


def queries_for(store: DuckDBStore | UsageQueries) -> UsageQueries:
    """The named queries of ``store``: a `DuckDBStore` is wrapped, anything else is used as is."""
    if isinstance(store, DuckDBStore):
        return DuckDBQueries(store)
    return store
