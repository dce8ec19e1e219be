"""`import_file`: detect a file's format, parse it, price it and store it in one transaction."""

from __future__ import annotations

import contextlib
import importlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from tokenplan.collect import detect
from tokenplan.collect.checks import content_hash, time_outliers
from tokenplan.collect.columns import is_batch, mark_stated_costs
from tokenplan.collect.detect import Source
from tokenplan.timestamps import iso_utc
from tokenplan.untrusted import visible

if TYPE_CHECKING:
    from tokenplan.store.duckdb_store import DuckDBStore
    from tokenplan.store.overlaps import Overlap

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes read so far, file size in bytes)."""

Reader = Callable[..., Iterator[pa.Table]]
PROGRESS_MIN_BYTES = 8 << 20


class Pricer(Protocol):
    """What the importer needs of a price source (`tokenplan.pricing.PriceBook` is one)."""

    def price_rows(self, table: pa.Table, *, batch: bool = False) -> Any:
        """Fill ``cost_usd`` where it is NULL; return ``table``, ``unpriced_models``, ``notes``."""
        ...


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What one import read and stored."""

    path: str
    format: str
    rows_read: int
    inserted: int
    duplicates: int
    start: datetime | None
    end: datetime | None
    models: tuple[str, ...]
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: Decimal | None
    unpriced_models: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    rejected: int = 0
    replaced: int = 0
    """Stored buckets a newer export changed (last export wins per bucket and dimension)."""


_READERS: dict[str, tuple[str, str]] = {
    detect.USAGE_CSV: ("usage_csv", "read"),
    detect.EVENTS_CSV: ("events_file", "read_csv"),
    detect.EVENTS_JSONL: ("events_file", "read_jsonl"),
    detect.EVENTS_PARQUET: ("events_file", "read_parquet"),
    detect.AZURE_TRACE: ("traces", "read_azure"),
    detect.MOONCAKE_TRACE: ("traces", "read_mooncake"),
    detect.ANTHROPIC_USAGE: ("anthropic_usage", "read"),
    detect.OPENAI_USAGE: ("openai_usage", "read"),
    detect.LITELLM_SPEND: ("litellm_spend", "read"),
}


def reader_for(fmt: str) -> Reader:
    """The function that parses format ``fmt`` into store rows."""
    module, function = _READERS[fmt]
    reader: Reader = getattr(importlib.import_module(f"tokenplan.collect.{module}"), function)
    return reader


@dataclass
class _Totals:
    rows: int = 0
    inserted: int = 0
    duplicates: int = 0
    replaced: int = 0
    start: datetime | None = None
    end: datetime | None = None
    models: set[str] = field(default_factory=set)
    input_tokens: int = 0
    output_tokens: int = 0
    unsplit_tokens: int = 0
    cost: Decimal | None = None
    unpriced: set[str] = field(default_factory=set)
    stamps: list[pa.Array] = field(default_factory=list)
    without_ids: int = 0
    overlaps: list[Overlap | None] = field(default_factory=list)
    # Buckets of a snapshot export that end after the import: (request id, start), naive UTC.
    still_open: list[tuple[str, datetime]] = field(default_factory=list)
    reaches: datetime | None = None  # the end of the latest bucket

    def add(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        if not table.num_rows:
            return
        self.stamps.append(table.column("ts").combine_chunks())
        self.without_ids += table.column("request_id").null_count
        lo, hi = pc.min_max(table.column("ts")).values()
        lo_dt, hi_dt = lo.as_py(), hi.as_py()
        self.start = lo_dt if self.start is None else min(self.start, lo_dt)
        self.end = hi_dt if self.end is None else max(self.end, hi_dt)
        self.models.update(pc.unique(table.column("model")).to_pylist())
        self.input_tokens += pc.sum(table.column("input_tokens")).as_py() or 0
        self.output_tokens += pc.sum(table.column("output_tokens")).as_py() or 0
        self.unsplit_tokens += pc.sum(table.column("unsplit_tokens")).as_py() or 0
        cost = pc.sum(table.column("cost_usd")).as_py()
        if cost is not None:
            self.cost = cost if self.cost is None else self.cost + cost


def import_file(
    store: DuckDBStore,
    path: str | Path,
    *,
    fmt: str | None = None,
    prices: Pricer | None = None,
    tz: tzinfo | None = None,
    progress: bool | ProgressCallback = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ImportSummary:
    """Import one file into ``store`` atomically: all rows, or nothing and an `InvalidInput`.

    A bucket of a provider's usage export that ends after ``clock()`` was still open when the
    file was exported: it is stored, and marked open (`DuckDBStore.open_since`) so the plan
    forecasts it rather than reading a part of it as the whole, until a later export of it.
    """
    source = Source(Path(path))
    now = clock().astimezone(UTC).replace(tzinfo=None)
    name = detect.normalize_format(fmt) if fmt else detect.detect_format(source)
    notes: list[str] = []
    totals = _Totals()
    with _Progress(source, progress) as on_bytes:
        source.on_bytes = on_bytes

        def parsed() -> Iterator[pa.Table]:
            for table in reader_for(name)(source, tz=tz, notes=notes):
                priced = _price(table, prices, notes, totals)
                totals.add(priced)
                yield priced

        with store.transaction():
            for priced in prefetch(parsed()):
                result = store.write(priced)
                totals.inserted += result.inserted
                totals.duplicates += result.duplicates
                totals.replaced += result.replaced
                if name in _SNAPSHOT_FORMATS:
                    totals.overlaps.append(_overlap(store, priced, name))
                    _open_buckets(priced, now, totals)
            if name in _SNAPSHOT_FORMATS and totals.start is not None:
                _mark_open(store, name, totals, notes)
            notes.extend(_warnings(store, source, name, totals))
            notes.extend(_ahead(totals, now))
    return ImportSummary(
        path=source.name,
        format=name,
        rows_read=totals.rows,
        inserted=totals.inserted,
        duplicates=totals.duplicates,
        start=_utc(totals.start),
        end=_utc(totals.end),
        models=tuple(sorted(totals.models)),
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        total_tokens=totals.input_tokens + totals.output_tokens + totals.unsplit_tokens,
        cost_usd=totals.cost,
        unpriced_models=tuple(sorted(totals.unpriced)),
        notes=tuple(dict.fromkeys(notes)),
        replaced=totals.replaced,
    )


# Formats whose rows are buckets named by their bounds (last export wins per bucket).
_SNAPSHOT_FORMATS = (detect.USAGE_CSV, detect.ANTHROPIC_USAGE, detect.OPENAI_USAGE)

_RAW_FORMATS = (
    detect.EVENTS_CSV,
    detect.EVENTS_JSONL,
    detect.EVENTS_PARQUET,
    detect.AZURE_TRACE,
    detect.MOONCAKE_TRACE,
    detect.LITELLM_SPEND,
)


def _warnings(store: DuckDBStore, source: Source, fmt: str, totals: _Totals) -> list[str]:
    """Notes on what was stored but may be wrong: a repeated raw file, stray timestamps."""
    out = []
    digest = content_hash(source.path)
    if fmt in _RAW_FORMATS and totals.without_ids:
        earlier = store.file_imported(digest)
        if earlier is not None:
            out.append(
                f"WARNING: a file with the same content was imported on {earlier:%Y-%m-%d %H:%M} "
                f"UTC; its {totals.without_ids:,} events without request ids are now counted "
                "twice (give events request ids to make re-imports idempotent)"
            )
    store.record_file(digest, source.name, fmt, totals.rows)
    overlaps = [o for o in totals.overlaps if o is not None]
    if overlaps:
        earliest = min(overlaps, key=lambda o: o.start)
        out.append(
            f"WARNING: {sum(o.count for o in overlaps):,} buckets of this file overlap stored "
            "buckets of the same kind of export with other bounds (first at "
            f"{earliest.start:%Y-%m-%dT%H:%M:%SZ}, model {visible(earliest.model)}: "
            f"{earliest.width_s:,} s here, {earliest.stored_width_s:,} s stored); both are "
            "counted. If they describe the same usage, import one bucket width into a fresh store"
        )
    if totals.start is not None and (fmt in _SNAPSHOT_FORMATS or fmt in _RAW_FORMATS):
        from tokenplan.store.queries import DuckDBQueries, twice_extent

        twice = [
            t for t in DuckDBQueries(store).counted_twice(totals.start) if t.model in totals.models
        ]
        if twice:
            out.append(
                f"WARNING: {twice_extent(twice)} "
                f"({visible(twice[0].model)} first) are now stored both as calls and as a "
                "provider's report buckets: usage, spend, budgets and the plan sum both there "
                "(only `tokenplan reconcile` reads them apart). To plan on one of them, keep the "
                "other in another store"
            )
    far = time_outliers(totals.stamps)
    if far is not None:
        count, first, last = far
        out.append(
            f"{count:,} events lie far outside the bulk of this file's time range "
            f"({iso_utc(first)} … {iso_utc(last)}); check their timestamps"
        )
    return out


# Clocks disagree by seconds; a time zone read as UTC moves rows by hours.
_SKEW = timedelta(minutes=5)


def _ahead(totals: _Totals, now: datetime) -> list[str]:
    """A note when rows are dated after the import: usually local times read as UTC."""
    if totals.end is None or totals.end <= now + _SKEW:
        return []
    bound = pa.scalar(now + _SKEW, pa.timestamp("us"))
    count = sum(pc.sum(pc.greater(s, bound)).as_py() or 0 for s in totals.stamps)
    return [
        f"WARNING: {count:,} rows are dated after now, the latest {iso_utc(totals.end)} "
        f"({_hours(totals.end - now)} ahead): were local times read as UTC? Timestamps "
        "without an offset are UTC unless --tz names their zone"
    ]


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:,.1f} h" if hours < 48 else f"{hours / 24:,.0f} days"


def _open_buckets(rows: pa.Table, now: datetime, totals: _Totals) -> None:
    """Note the rows whose bucket holds ``now`` (naive UTC), and how far the file reaches."""
    if not rows.num_rows:
        return
    width = pc.cast(
        pc.multiply(pc.cast(rows.column("bucket_s"), pa.int64()), 1_000_000), pa.duration("us")
    )
    ends = pc.add(rows.column("ts"), width)
    last = pc.max(ends).as_py()
    totals.reaches = last if totals.reaches is None else max(totals.reaches, last)
    at = pa.scalar(now, pa.timestamp("us"))
    # Open: under way at the import. A bucket wholly after it is not open but misdated (a
    # clock or a synthetic file); marked, it would hide every bucket after it from the plan.
    still = rows.filter(pc.and_(pc.greater(ends, at), pc.less_equal(rows.column("ts"), at)))
    totals.still_open.extend(
        (rid, ts)
        for rid, ts in zip(
            still.column("request_id").to_pylist(), still.column("ts").to_pylist(), strict=True
        )
        if rid is not None
    )


def _mark_open(store: DuckDBStore, fmt: str, totals: _Totals, notes: list[str]) -> None:
    """Replace the open-bucket marks of this kind of export over the file's span."""
    from tokenplan.store.pulls import mark_open_buckets

    assert totals.start is not None
    span = (totals.start, totals.reaches or totals.start)
    mark_open_buckets(store, f"import:{fmt}", "usage", span, totals.still_open)
    if totals.still_open:
        first = min(ts for _, ts in totals.still_open)
        notes.append(
            f"the buckets from {iso_utc(first)} on end after now: they were still open when the "
            "file was exported, so their numbers are partial. The plan forecasts them instead "
            "of reading them as whole; import a later export to replace them"
        )


def _overlap(store: DuckDBStore, rows: pa.Table, fmt: str) -> Overlap | None:
    from tokenplan.store.overlaps import overlapping_buckets

    return overlapping_buckets(store, rows, fmt)


def prefetch(items: Iterator[pa.Table], depth: int = 1) -> Iterator[pa.Table]:
    """Produce ``items`` in a background thread, ``depth`` ahead of the consumer.

    Parsing and pricing (Arrow compute) and the store's insert (DuckDB) both release the GIL,
    so on two cores the next batch is parsed while the previous one is written.
    """
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        handoff.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(("done", None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            handoff.put(("error", exc))

    worker = threading.Thread(target=produce, name="tokenplan-import", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while worker.is_alive():
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.1)
        worker.join()


def _price(table: pa.Table, prices: Pricer | None, notes: list[str], totals: _Totals) -> pa.Table:
    table = mark_stated_costs(table)
    cost = table.column("cost_usd")
    if cost.null_count == 0:
        return table
    if prices is None:
        priced_by_tokens = pc.or_(
            pc.greater(pc.fill_null(table.column("input_tokens"), 0), 0),
            pc.greater(pc.fill_null(table.column("output_tokens"), 0), 0),
        )
        unpriced = pc.and_(pc.is_null(cost), priced_by_tokens)
        totals.unpriced.update(pc.unique(pc.filter(table.column("model"), unpriced)).to_pylist())
        return table
    result = prices.price_rows(table, batch=is_batch(table))
    totals.unpriced.update(result.unpriced_models)
    notes.extend(result.notes)
    priced: pa.Table = result.table
    return priced


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


class _Progress:
    """A rich progress bar by bytes read (or the caller's callback), for large files only."""

    def __init__(self, source: Source, progress: bool | ProgressCallback) -> None:
        self._source = source
        self._progress = progress
        self._bar: Any = None
        self._done = 0

    def __enter__(self) -> Callable[[int], None] | None:
        total = self._source.size
        if callable(self._progress):
            callback = self._progress

            def report(n: int) -> None:
                self._done += n
                callback(self._done, total)

            return report
        if not self._progress or total < PROGRESS_MIN_BYTES:
            return None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("importing {task.description}", markup=False),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        task = self._bar.add_task(visible(self._source.path.name), total=total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
