"""Models whose stored usage has no known cost, with the token volume left unpriced."""

from __future__ import annotations

from dataclasses import dataclass

from tokenplan.store.duckdb_store import DuckDBStore
from tokenplan.store.series_sql import NONE_LABEL

__all__ = ["MissingPrice", "missing_prices"]


@dataclass(frozen=True, slots=True)
class MissingPrice:
    """One provider and model without a price: how much of its usage is unpriced."""

    provider: str
    model: str
    rows: int
    requests: int | None
    input_tokens: int
    output_tokens: int
    first: object
    last: object


def missing_prices(store: DuckDBStore) -> list[MissingPrice]:
    """Models with rows whose cost is unknown (tokens but no cost), biggest volume first."""
    rows = store.connection.execute(
        f"""SELECT coalesce(provider, '{NONE_LABEL}'), model, count(*), sum(requests)::HUGEINT,
                   coalesce(sum(input_tokens), 0)::HUGEINT AS inp,
                   coalesce(sum(output_tokens), 0)::HUGEINT AS outp, min(ts), max(ts)
            FROM usage
            WHERE cost_usd IS NULL AND (input_tokens > 0 OR output_tokens > 0)
            GROUP BY ALL
            ORDER BY inp + outp DESC, 1, 2"""
    ).fetchall()
    return [
        MissingPrice(str(p), str(m), int(n), None if r is None else int(r), int(i), int(o), lo, hi)
        for p, m, n, r, i, o, lo, hi in rows
    ]
