"""Named questions the planner asks a store, as a small protocol and its DuckDB answers.

The capacity plan (`tokenplan.capacity`) asks only these, so a Redis- or Parquet-backed store
satisfies the planner by answering them; SQL stays here, never in `report` or `plan`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

import duckdb
import pandas as pd

from tokenplan.errors import InvalidInput, StoreError
from tokenplan.events import DIMENSIONS
from tokenplan.store.duckdb_store import DuckDBStore, StoreSummary
from tokenplan.store.schema import METRIC_SQL
from tokenplan.store.series_sql import NONE_LABEL, OTHER_LABEL

__all__ = [
    "REQUEST_STATUSES",
    "TOKEN_KINDS",
    "DuckDBQueries",
    "UsageQueries",
    "UsageTotals",
    "UsageTotalsSource",
    "queries_for",
]

# Request outcomes the totals split by: ``unknown`` counts requests from sources that do not
# say whether they failed (some usage exports); ``error`` is every failure not known to be a
# rate limit.
REQUEST_STATUSES = ("ok", "error", "rate_limited", "unknown")
# Token kinds: ``input`` includes cache reads and writes (DESIGN.md's convention); ``unsplit``
# counts tokens known only as a total. Total tokens are input + output + unsplit.
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write", "unsplit")


@dataclass(frozen=True, slots=True)
class TwiceCounted:
    """Days on which one provider's model is stored both as calls and as reported buckets."""

    provider: str | None
    model: str
    days: int
    first: date


def twice_extent(twice: Sequence[TwiceCounted]) -> str:
    """ "N day(s) of M model(s)": how much `counted_twice` found, as every note words it."""
    return f"{sum(t.days for t in twice):,} day(s) of {len(twice):,} model(s)"


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Whole-history totals of one model and provider; a count no row knows is left out."""

    model: str
    provider: str
    requests: Mapping[str, int]
    tokens: Mapping[str, int]
    cost_usd: Decimal | None


class UsageTotalsSource(Protocol):
    """A store that can total its whole history per model and provider in one pass."""

    def usage_totals(self, max_models: int | None = None) -> list[UsageTotals]:
        """Requests by status, tokens by kind and cost per model and provider, all time."""
        ...


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

    def open_since(self) -> datetime | None:
        """Start of the earliest bucket stored while still open (a provider pull's current
        hour, an export's current day) after the last bucket stored whole, or None."""
        ...

    def cache_read_share(self, since: datetime) -> float:
        """Cache-read tokens as a share of input tokens since ``since``."""
        ...

    def counted_twice(self, since: datetime) -> list[TwiceCounted]:
        """Provider and model days since ``since`` held both as raw calls and as reported
        buckets (the SDK's events and a provider's usage report of the same calls)."""
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
        """Delegates to `DuckDBStore.series` (float values), stray timestamps left out, a
        bucket wider than ``freq`` spread evenly over it (the plan is per hour)."""
        return self.store.series(
            metric, freq, tuple(by), since, until, trim_outliers=True, top=top, spread=True
        )

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

    def open_since(self) -> datetime | None:
        """`DuckDBStore.open_since`."""
        return self.store.open_since()

    def widest_bucket_seconds(self, since: datetime) -> int:
        """Widest bucket among rows since ``since`` (0 when none)."""
        rows = self._run("SELECT coalesce(max(bucket_s), 0) FROM usage WHERE ts >= ?", since)
        return int(rows[0][0])

    def counted_twice(self, since: datetime) -> list[TwiceCounted]:
        """See `UsageQueries.counted_twice` (UTC days; most days first)."""
        rows = self._run(
            """
            WITH raw AS (SELECT DISTINCT provider, model, ts::DATE AS day FROM usage
                         WHERE bucket_s = 0 AND ts >= ?),
                 rep AS (SELECT DISTINCT provider, model, ts::DATE AS day FROM usage
                         WHERE bucket_s > 0 AND ts >= $1)
            SELECT provider, model, count(*), min(day) FROM raw
            JOIN rep USING (provider, model, day) GROUP BY ALL ORDER BY 3 DESC, 1, 2
            """,
            since,
        )
        return [TwiceCounted(p, m, int(n), first) for p, m, n, first in rows]

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

    def usage_totals(self, max_models: int | None = None) -> list[UsageTotals]:
        """Requests by status, tokens by kind and cost per model and provider, all time.

        One grouped pass over the table, read on its own cursor so that a scrape thread never
        shares the writer's. With ``max_models`` and more pairs than that, all but the
        ``max_models - 1`` biggest (by tokens, then requests) are summed as ``(other)``.
        """
        top = "NULL" if max_models is None else str(max(int(max_models), 1))
        cursor = self.store.connection.cursor()
        try:
            rows = cursor.execute(_TOTALS_SQL.format(top=top)).fetchall()
        except duckdb.Error as exc:
            raise StoreError(f"totalling the store {self.store.path} failed: {exc}") from exc
        finally:
            cursor.close()
        return [_usage_totals(row) for row in rows]

    def _run(self, sql: str, since: datetime) -> list[tuple[Any, ...]]:
        return self.store.connection.execute(sql, [since.replace(tzinfo=None)]).fetchall()


def queries_for(store: DuckDBStore | UsageQueries) -> UsageQueries:
    """The named queries of ``store``: a `DuckDBStore` is wrapped, anything else is used as is."""
    if isinstance(store, DuckDBStore):
        return DuckDBQueries(store)
    return store


# Unknown stays unknown: ``sum`` of only NULLs is NULL, and a NULL count is left out.
_TOTAL_COLUMNS = {
    "ok": "CASE WHEN failed_requests IS NOT NULL THEN requests - failed_requests END",
    "error": "failed_requests - coalesce(rate_limited_requests, 0)",
    "rate_limited": "rate_limited_requests",
    "unknown": (
        "CASE WHEN failed_requests IS NULL THEN requests - coalesce(rate_limited_requests, 0) END"
    ),
    "input": "input_tokens",
    "output": "output_tokens",
    "cache_read": "cache_read_tokens",
    "cache_write": "cache_write_tokens",
    "unsplit": "unsplit_tokens",
}
_SUMS = ",\n".join(f"sum({sql})::HUGEINT AS {name}" for name, sql in _TOTAL_COLUMNS.items())
_RESUMS = ", ".join(f"sum({name})::HUGEINT" for name in _TOTAL_COLUMNS)
_TOTALS_SQL = f"""
WITH g AS (
    SELECT coalesce(model, '{NONE_LABEL}') AS model, coalesce(provider, '{NONE_LABEL}') AS provider,
           {_SUMS},
           sum(cost_usd) AS cost_usd
    FROM usage GROUP BY ALL
),
r AS (
    SELECT *, count(*) OVER () AS n,
           row_number() OVER (
               ORDER BY coalesce(input, 0) + coalesce(output, 0) + coalesce(unsplit, 0) DESC,
                        coalesce(ok, 0) + coalesce(error, 0) + coalesce(rate_limited, 0)
                            + coalesce(unknown, 0) DESC,
                        model, provider
           ) AS rank
    FROM g
),
p AS (
    SELECT *, {{top}} IS NULL OR n <= {{top}} OR rank < {{top}} AS kept FROM r
)
SELECT CASE WHEN kept THEN model ELSE '{OTHER_LABEL}' END,
       CASE WHEN kept THEN provider ELSE '{OTHER_LABEL}' END,
       {_RESUMS}, sum(cost_usd)
FROM p GROUP BY 1, 2 ORDER BY 1, 2
"""


def _usage_totals(row: tuple[Any, ...]) -> UsageTotals:
    counts = dict(zip(_TOTAL_COLUMNS, row[2:-1], strict=True))
    return UsageTotals(
        model=str(row[0]),
        provider=str(row[1]),
        requests={k: int(counts[k]) for k in REQUEST_STATUSES if counts[k] is not None},
        tokens={k: int(counts[k]) for k in TOKEN_KINDS if counts[k] is not None},
        cost_usd=row[-1],
    )
