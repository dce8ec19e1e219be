"""`reprice`: price stored rows again after a price change (per row, tiers per request).

Only rows tokenplan priced itself, or could not price, are touched: a cost the source stated
(a provider's bill, an event's own ``cost_usd``) is never replaced. A model the book does not
know keeps an unknown cost (NULL), never 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from tokenplan.pricing.book import PriceBook
from tokenplan.store.duckdb_store import DuckDBStore
from tokenplan.store.reprice import OLD_COST, priceable_rows, save_costs, stated_cost_rows

__all__ = ["RepriceSummary", "reprice"]


@dataclass(frozen=True, slots=True)
class RepriceSummary:
    """What one reprice changed."""

    rows: int
    changed: int
    unpriced_rows: int
    before_usd: Decimal | None
    after_usd: Decimal | None
    stated_rows: int
    unknown_origin_rows: int
    unpriced_models: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


def reprice(
    store: DuckDBStore, book: PriceBook, *, since: datetime | None = None
) -> RepriceSummary:
    """Recompute the cost of every row tokenplan priced (since ``since``) with ``book``."""
    rows = changed = unpriced = 0
    before: Decimal | None = None
    after: Decimal | None = None
    models: set[str] = set()
    notes: list[str] = []
    with store.transaction():
        for batch in (False, True):
            table = priceable_rows(store, since, batch=batch)
            if table.num_rows == 0:
                continue
            result = book.price_rows(table, batch=batch)
            priced: pa.Table = result.table
            models.update(result.unpriced_models)
            notes.extend(result.notes)
            save_costs(store, priced)
            new = priced.column("cost_usd")
            old = priced.column(OLD_COST)
            rows += priced.num_rows
            unpriced += new.null_count
            changed += int(pc.sum(pc.fill_null(pc.not_equal(old, new), True)).as_py() or 0)
            changed -= int(pc.sum(pc.and_(pc.is_null(old), pc.is_null(new))).as_py() or 0)
            before = _add(before, pc.sum(old).as_py())
            after = _add(after, pc.sum(new).as_py())
    stated, unknown = stated_cost_rows(store, since)
    return RepriceSummary(
        rows=rows,
        changed=changed,
        unpriced_rows=unpriced,
        before_usd=before,
        after_usd=after,
        stated_rows=stated,
        unknown_origin_rows=unknown,
        unpriced_models=tuple(sorted(models)),
        notes=tuple(dict.fromkeys(notes)),
    )


def _add(total: Decimal | None, value: Decimal | None) -> Decimal | None:
    if value is None:
        return total
    return value if total is None else total + value
