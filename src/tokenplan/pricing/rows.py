"""Pricing store rows in bulk: rates resolved once per (provider, model, day), costs in numpy.

A table may hold 10M rows and a handful of models, so rates are looked up per distinct key and
the per-row arithmetic is exact int64 in units of 10^-scale of the price currency, falling back
to Python Decimal for the rare rows whose totals could overflow int64.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tokenplan.events import COST_TYPE
from tokenplan.pricing.book import day_start
from tokenplan.pricing.rates import Rates, TierRates, round_usd

if TYPE_CHECKING:
    from tokenplan.pricing.book import PriceBook

_DAY_US = 86_400_000_000
_EPOCH = date(1970, 1, 1)
_SAFE = float(2**61)  # headroom below 2**63 for float error in the overflow estimate
_MAX_SCALE = 18  # per-token decimals the int64 path handles; finer rates go the slow path
_DENSE_LIMIT = 20_000_000


@dataclass
class PricedRows:
    """Rows with ``cost_usd`` filled where it could be, and what could not be priced."""

    table: pa.Table
    unpriced_models: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def price_rows(
    book: PriceBook, table: pa.Table, *, batch: bool = False, chunk_rows: int = 1_000_000
) -> PricedRows:
    """Fill NULL ``cost_usd`` from the book; rows with unknown tokens or prices stay NULL."""
    if table.num_rows == 0 or table.column("cost_usd").null_count == 0:
        return PricedRows(table)
    stats = _Stats()
    # Slices bound the numpy temporaries (~20 int64 columns) to a chunk, not the whole table.
    parts: list[pa.Array] = []
    for start in range(0, table.num_rows, chunk_rows):
        part = table.slice(start, chunk_rows)
        parts.extend(_price_slice(book, part, batch, stats).chunks)
    filled = pa.chunked_array(parts, type=COST_TYPE)
    was = table.column("cost_usd")
    out = table.set_column(table.schema.get_field_index("cost_usd"), "cost_usd", filled)
    if "cost_computed" in out.schema.names:
        # Filled here: tokenplan's own price, which `tokenplan reprice` may redo.
        priced_here = pc.and_(pc.is_null(was), pc.is_valid(filled))
        marked = pc.if_else(priced_here, True, out.column("cost_computed"))
        out = out.set_column(out.schema.get_field_index("cost_computed"), "cost_computed", marked)
    return PricedRows(out, stats.unknown, stats.notes())


@dataclass
class _Stats:
    """What could not be priced, or was priced on an assumption, summed over slices."""

    unknown: set[str] = field(default_factory=set)
    missing: int = 0
    bad_cache: int = 0
    no_count: int = 0
    averaged: Counter[str] = field(default_factory=Counter)
    blind: Counter[str] = field(default_factory=Counter)
    rate_notes: dict[str, None] = field(default_factory=dict)
    # rates by (provider, model, day number, second of day), shared by all slices
    memo: dict[tuple[str | None, str, int, int], Rates | None] = field(default_factory=dict)

    def notes(self) -> list[str]:
        out = []
        if self.missing:
            out.append(
                f"{self.missing:,} rows have no input or output token count; "
                "their cost stays empty."
            )
        if self.bad_cache:
            out.append(
                f"{self.bad_cache:,} rows have more cached tokens than input tokens; their cost "
                "stays empty (input_tokens must include cached tokens)."
            )
        if self.no_count:
            out.append(
                f"{self.no_count:,} bucket rows have no request count but their model charges "
                "per request; their cost stays empty."
            )
        for model, count in sorted(self.averaged.items()):
            out.append(
                f"{count:,} bucket rows of {model} were priced at the context tier of their "
                "average request (input_tokens / requests); buckets mixing short and long "
                "prompts may cost more."
            )
        for model, count in sorted(self.blind.items()):
            out.append(
                f"{count:,} bucket rows of {model} have no request count, so they were priced "
                "at the base context tier; long prompts above the tier threshold cost more."
            )
        return out + list(self.rate_notes)


def _price_slice(book: PriceBook, table: pa.Table, batch: bool, stats: _Stats) -> pa.ChunkedArray:
    """Filled ``cost_usd`` of one slice of rows."""
    n = table.num_rows
    cost_col = table.column("cost_usd")
    need = _np_bool(pc.is_null(cost_col))
    if not need.any():
        return cost_col

    models = _uniq("model", table)
    providers = _uniq("provider", table)
    model_idx = _np_int(pc.index_in(table.column("model"), value_set=models))
    prov_col = pc.fill_null(table.column("provider"), "")
    pm = _np_int(pc.index_in(prov_col, value_set=providers)) * len(models) + model_idx

    us = _np_int(pc.cast(table.column("ts"), pa.int64()))
    day = us // _DAY_US
    d0 = int(day[need].min())
    n_days = int(day[need].max()) - d0 + 1

    # Time-of-day prices (DeepSeek off-peak): split the day at every point where a price changes.
    pm_points: dict[int, tuple[int, ...]] = {}
    for code in np.unique(pm[need]).tolist():
        prov, model = providers[code // len(models)], models[code % len(models)]
        pts = book.boundaries(prov.as_py(), model.as_py())
        if pts:
            pm_points[code] = pts
    n_seg = 1 + max((len(p) for p in pm_points.values()), default=0)
    key = (pm * n_days + (day - d0)) * n_seg
    if pm_points:
        tod = (us % _DAY_US) // 1_000_000
        for code, pts in pm_points.items():
            rows = pm == code
            key[rows] += np.searchsorted(np.asarray(pts), tod[rows], side="right")
    key[~need] = -1
    keys, k = _compact(key, need)

    rates: list[Rates | None] = []
    for code in keys.tolist():
        rest, s = divmod(code, n_seg)
        pm_code, d = divmod(rest, n_days)
        provider = providers[pm_code // len(models)].as_py() or None
        model = models[pm_code % len(models)].as_py()
        seconds = pm_points[pm_code][s - 1] if s else 0
        memo_key = (provider, model, d0 + d, seconds)
        if memo_key not in stats.memo:
            when = day_start(_EPOCH + timedelta(days=d0 + d), seconds)
            found = book.rates(provider, model, when, batch=batch)
            stats.memo[memo_key] = found
            if found is None:
                stats.unknown.add(model)
            elif found.note:
                stats.rate_notes.setdefault(found.note)
        rates.append(stats.memo[memo_key])

    inp, inp_ok = _ints(table, "input_tokens")
    out, out_ok = _ints(table, "output_tokens")
    cr, _ = _ints(table, "cache_read_tokens")  # NULL cache counts mean "none reported": 0
    cw, _ = _ints(table, "cache_write_tokens")
    cw1h, _ = _ints(table, "cache_write_1h_tokens")  # NULL: writes not split by TTL
    req, req_ok = _ints(table, "requests")
    # Events are one request each; a bucket without a count has an unknown average (0 here).
    bucket = _np_int(pc.fill_null(table.column("bucket_s"), 0))
    req = np.where(req_ok & (req > 0), req, np.where(bucket == 0, 1, 0))
    uncached = inp - cr - cw

    plan = _RatePlan(rates)
    k0 = np.maximum(k, 0)
    known = np.array([r is not None for r in rates], dtype=bool)
    row_known = need & known[k0]
    tokens_ok = need & inp_ok & out_ok
    bad_cache = tokens_ok & ((uncached < 0) | (cw1h > cw))
    # A per-request fee cannot be charged on a bucket that does not say how many requests it had.
    no_count = row_known & tokens_ok & (req == 0) & plan.fee[k0]
    priced = row_known & tokens_ok & ~bad_cache & ~no_count
    kk = np.where(priced, k, 0)
    tier = plan.tiers_of(kk, inp, req, priced)
    flat = kk * plan.width + tier if plan.width > 1 else kk
    units = plan.units(flat, uncached, cr, cw - cw1h, cw1h, out, req)
    # Amounts are <= (input + output + requests) x the key's largest rate: check that bound
    # against int64 once for the slice, and row by row only when it might overflow.
    total = inp + out + req
    bound = float(total.max()) * float(plan.rmax.max()) * float(plan.q.max()) * 2
    slow = priced & plan.slow[kk]
    if bound >= _SAFE:
        est = total.astype(np.float64) * plan.rmax[kk] * plan.q[kk] * 2
        slow |= priced & (est >= _SAFE)
    fast = priced & ~slow
    if plan.all_plain:
        c12 = units
    else:
        q, div = plan.q[kk], plan.div[kk]
        c12 = (units * q * 2 + div) // (2 * div)  # round half up; costs are never negative
    # An int64 count of 1e-12 USD is the unscaled value of a decimal128(38, 12): reinterpret it.
    fast_arr = pa.array(np.where(fast, c12, 0), mask=~fast).cast(pa.decimal128(38, 0))
    computed = pa.Array.from_buffers(COST_TYPE, n, fast_arr.buffers(), fast_arr.null_count)
    if slow.any():
        idx = np.flatnonzero(slow)
        exact = [
            _exact(
                rates[k[i]],
                (int(inp[i]), int(out[i]), int(cr[i]), int(cw[i])),
                int(req[i]),
                int(cw1h[i]),
            )
            for i in idx.tolist()
        ]
        computed = pc.replace_with_mask(computed, pa.array(slow), pa.array(exact, COST_TYPE))

    stats.missing += int((need & ~tokens_ok).sum())
    stats.bad_cache += int(bad_cache.sum())
    stats.no_count += int(no_count.sum())
    tiered = priced & plan.tiered[kk]
    for mask, counter in ((tiered & (req > 1), stats.averaged), (tiered & (req == 0), stats.blind)):
        if mask.any():
            counter.update(pc.filter(table.column("model"), pa.array(mask)).to_pylist())
    return pc.coalesce(cost_col, computed)


def _exact(rates: Rates | None, tokens: tuple[int, int, int, int], req: int, cw1h: int) -> Decimal:
    """One row priced with Python Decimal, the same way as the int64 path."""
    assert rates is not None
    inp, out, cr, cw = tokens
    # req == 0 means "unknown": the base tier, and no request fee (such rows are not priced).
    tier = rates.tier_for(inp, req) if req > 0 else rates.base
    return round_usd(rates.to_usd(tier.amount(inp, out, cr, cw, req, cw1h)))


class _RatePlan:
    """Per-key rate arrays: thresholds and integer rates per tier, FX as a ratio."""

    def __init__(self, rates: list[Rates | None]) -> None:
        known = [r for r in rates if r is not None]
        self.ntiers = max((len(r.tiers) for r in known), default=0)
        self.width = self.ntiers + 1
        decimals = [_decimals(t) for r in known for t in _all_tiers(r)]
        self.scale = max([12, *(d for d in decimals if d <= _MAX_SCALE)])
        size = max(len(rates), 1)
        self.thr = np.zeros((size, max(self.ntiers, 1)), dtype=np.int64)
        self.has = np.zeros((size, max(self.ntiers, 1)), dtype=bool)
        self.r = np.zeros((6, size * self.width), dtype=np.int64)
        self.fee = np.zeros(size, dtype=bool)
        self.q = np.ones(size, dtype=np.int64)
        self.div = np.ones(size, dtype=np.int64)
        self.slow = np.zeros(size, dtype=bool)
        self.tiered = np.zeros(size, dtype=bool)
        for i, r in enumerate(rates):
            if r is None:
                continue
            self.tiered[i] = bool(r.tiers)
            self.fee[i] = any(t.request > 0 for t in _all_tiers(r))
            for t, (above, _) in enumerate(r.tiers):
                self.thr[i, t], self.has[i, t] = above, True
            tiers = [r.base, *(tr for _, tr in r.tiers)]
            tiers += [tiers[-1]] * (self.width - len(tiers))
            if max(_decimals(t) for t in tiers) > self.scale:
                self.slow[i] = True
                continue
            for t, tr in enumerate(tiers):
                self.r[:, i * self.width + t] = _units(tr, self.scale)
            num, den = r.per_usd.as_integer_ratio()
            # usd = amount / per_usd = amount * den / num, in units of 10^-scale -> 10^-12
            self.q[i], self.div[i] = den, num * 10 ** (self.scale - 12)
        self.rmax = self.r.reshape(6, size, self.width).max(axis=(0, 2)).astype(np.float64)
        self.all_plain = bool((self.q == 1).all() and (self.div == 1).all())

    def tiers_of(
        self, k: np.ndarray, inp: np.ndarray, req: np.ndarray, rows: np.ndarray
    ) -> np.ndarray:
        """Tier index per row from its average request; unknown request counts get the base."""
        tier = np.zeros(len(k), dtype=np.int64)
        for t in range(self.ntiers):
            tier += rows & (req > 0) & self.has[k, t] & (inp > self.thr[k, t] * req)
        return tier

    def units(
        self,
        flat: np.ndarray,
        uncached: np.ndarray,
        cr: np.ndarray,
        cw: np.ndarray,
        cw1h: np.ndarray,
        out: np.ndarray,
        req: np.ndarray,
    ) -> np.ndarray:
        """Integer amounts in 10^-scale of the price currency (may wrap: see the bound check).

        ``cw`` are the 5-minute cache writes, ``cw1h`` the 1-hour ones.
        """
        with np.errstate(over="ignore"):
            units = uncached * self.r[0][flat]
            units += cr * self.r[1][flat]
            units += cw * self.r[2][flat]
            units += cw1h * self.r[5][flat]
            units += out * self.r[3][flat]
            if self.fee.any():
                units += req * self.r[4][flat]
        return units


def _all_tiers(r: Rates) -> list[TierRates]:
    return [r.base, *(t for _, t in r.tiers)]


# Many keys (one per model and day) share a handful of distinct tiers: convert each once.
@lru_cache(maxsize=4096)
def _units(t: TierRates, scale: int) -> tuple[int, int, int, int, int, int]:
    """A tier's rates as integers in 10^-scale (input, cache read, write, output, fee, 1h write)."""
    values = (t.input, t.cache_read, t.cache_write, t.output, t.request, t.hour_write)
    i, r, w, o, f, h = (int(v.scaleb(scale)) for v in values)
    return i, r, w, o, f, h


@lru_cache(maxsize=4096)
def _decimals(t: TierRates) -> int:
    """Decimal places needed to write every rate of a tier exactly."""
    return max(
        max(0, -int(v.normalize().as_tuple().exponent))
        for v in (t.input, t.output, t.cache_read, t.cache_write, t.request, t.hour_write)
    )


def _compact(key: np.ndarray, need: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys among needed rows and each row's index into them (-1 where not needed)."""
    top = int(key.max()) + 1
    if top <= _DENSE_LIMIT:
        present = np.zeros(top, dtype=bool)
        present[key[need]] = True
        keys = np.flatnonzero(present)
        lookup = np.full(top, -1, dtype=np.int64)
        lookup[keys] = np.arange(len(keys))
        k = np.where(need, lookup[np.maximum(key, 0)], -1)
        return keys, k
    arr = pa.array(key[need])
    keys = pc.unique(arr).to_numpy()
    k = np.full(len(key), -1, dtype=np.int64)
    k[need] = _np_int(pc.index_in(arr, value_set=pa.array(keys)))
    return keys, k


def _uniq(name: str, table: pa.Table) -> pa.Array:
    col = table.column(name)
    if name == "provider":
        col = pc.fill_null(col, "")
    return pc.unique(col)


def _ints(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    col = table.column(name)
    ok = _np_bool(pc.is_valid(col))
    return _np_int(pc.fill_null(col, 0)), ok


def _np_int(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(values.to_numpy(), dtype=np.int64)


def _np_bool(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)
