"""Where a command's usage series comes from: an ``--input`` file or the store."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from tokenplan.capacity import grid_phase
from tokenplan.collect import import_file
from tokenplan.errors import InvalidInput
from tokenplan.frequency import Frequency, parse_freq
from tokenplan.store import DuckDBStore, open_store
from tokenplan.store.duckdb_store import resolve_db_path

# Raw events carry no bucket width of their own; an hour is what planning usually wants.
DEFAULT_FREQ = "1h"


@contextmanager
def open_source(input_path: Path | None, db: Path | None) -> Iterator[DuckDBStore]:
    """The store a command reads: ``--input`` in a throwaway in-memory store, or ``--db`` read-only.

    Any format `tokenplan import` reads works as ``--input``.
    """
    if input_path is not None:
        if not input_path.is_file():
            raise InvalidInput(f"--input {input_path}: no such file.")
        store = DuckDBStore(":memory:")
        import_file(store, input_path)
    else:
        store = open_store(resolve_db_path(db), mode="read")
    with store:
        yield store


def own_frequency(store: DuckDBStore, freq: str | None) -> Frequency:
    """``--freq``, or the data's own bucket width; never finer than the data's buckets."""
    width = store.bucket_seconds()
    frequency = parse_freq(freq) if freq else parse_freq(f"{width}s" if width else DEFAULT_FREQ)
    if width and frequency.seconds < width:
        raise InvalidInput(
            f"--freq {frequency.label} is finer than the data's own buckets "
            f"({Frequency(width).label}); use --freq {Frequency(width).label} or wider."
        )
    return frequency


def load_series(
    *,
    input_path: Path | None,
    db: Path | None,
    metric: str,
    freq: str | None,
    by: Sequence[str] = (),
) -> tuple[pd.DataFrame, Frequency]:
    """The tidy ``unique_id, ds, y`` series of ``metric`` and the frequency it is at.

    The series comes from `open_source`; ``freq`` defaults to the data's own spacing.
    """
    with open_source(input_path, db) as store:
        frequency = own_frequency(store, freq)
        width = store.bucket_seconds()
        frame = store.series(metric, frequency, by)
        if width and frequency.seconds == width and not frame.empty:
            frame["ds"] = frame["ds"] + grid_phase(store.summary().start, width)
        where = f"--input {input_path}" if input_path else f"the store {store.path}"
    if frame.empty:
        raise InvalidInput(f"{where} holds no usage to forecast.")
    if frame["y"].isna().all():
        raise InvalidInput(
            f"{where} does not record {metric} (the source leaves it empty); "
            "choose another --metric, e.g. requests."
        )
    return frame, frequency
