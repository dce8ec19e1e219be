"""Where a command's usage series comes from: an ``--input`` file or the store."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from tokenplan.collect import import_file
from tokenplan.errors import InvalidInput
from tokenplan.frequency import Frequency, parse_freq
from tokenplan.plan.history import grid_phase, reaches
from tokenplan.plan.known import records, unrecorded
from tokenplan.store import DuckDBStore, open_store
from tokenplan.store.duckdb_store import resolve_db_path
from tokenplan.store.lake_store import LakeStore
from tokenplan.timestamps import from_wall_time, to_wall_time

# Raw events carry no bucket width of their own; an hour is what planning usually wants.
DEFAULT_FREQ = "1h"


@contextmanager
def open_source(input_path: Path | None, db: str | None) -> Iterator[DuckDBStore]:
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


def own_frequency(store: DuckDBStore, freq: str | None, *, calendar: bool = False) -> Frequency:
    """``--freq``, or the data's own bucket width; never finer than the data's buckets.

    With ``calendar``, calendar months (``1mo``) are accepted too.
    """
    width = store.bucket_seconds()
    if freq:
        frequency = parse_freq(freq, calendar=calendar)
    else:
        frequency = parse_freq(f"{width}s" if width else DEFAULT_FREQ)
    if width and not frequency.months and frequency.seconds < width:
        raise InvalidInput(
            f"--freq {frequency.label} is finer than the data's own buckets "
            f"({Frequency(width).label}); use --freq {Frequency(width).label} or wider."
        )
    return frequency


def load_series(
    *,
    input_path: Path | None,
    db: str | None,
    metric: str,
    freq: str | None,
    by: Sequence[str] = (),
    tz: str | None = None,
    engine: object = None,
) -> tuple[pd.DataFrame, Frequency]:
    """The tidy ``unique_id, ds, y`` series of ``metric`` and the frequency it is at.

    The series comes from `open_source`; ``freq`` defaults to the data's own spacing. Days,
    weeks and months start at midnight in ``tz`` (default UTC); ``ds`` stays naive UTC.
    Buckets wider than the data's own that it covers only in part (the first and last day
    of hourly data, say) are left out, and a bucket holding an hour the source did not record
    is unknown (``complete``, `DuckDBStore.series`): a forecast would read them as dips. From
    a Parquet lake with an open ``engine`` (a Dask client, ``"ray"``, a Spark session), the
    rollup runs on the engine (`tokenplan.scale.lake_rollup`), except for calendar months and
    local days.
    """
    with open_source(input_path, db) as store:
        frequency = own_frequency(store, freq, calendar=True)
        width = store.bucket_seconds()
        if (
            engine is not None
            and isinstance(store, LakeStore)
            and not frequency.months
            and not (tz is not None and frequency.calendar)
        ):
            from tokenplan.scale.lake_rollup import rollup_lake

            frame = rollup_lake(
                store.root, metric, frequency.label, by, engine=engine, complete=True
            )
        else:
            # Complete buckets only: a day holding an hour the log missed is unknown, not a
            # day of little traffic.
            frame = store.series(metric, frequency, by, tz=tz, complete=True)
        local = tz is not None and frequency.calendar
        summary, opened = store.summary(), store.open_since()
        own = bool(width) and frequency.seconds == width and not local
        if width and own and not frame.empty:
            frame["ds"] = frame["ds"] + grid_phase(summary.start, width)
        if summary.end is not None and (
            (not own and (not width or frequency.months or frequency.seconds > width))
            # A bucket a provider pull stored while still open is partial at any width.
            or opened is not None
        ):
            covered = (summary.start, reaches(summary.end, width, opened))
            frame = _whole_buckets(frame, frequency, tz or "UTC", covered)
        where = f"--input {input_path}" if input_path else f"the store {store.path}"
    if frame.empty:
        raise InvalidInput(f"{where} holds no usage to forecast.")
    if not records(frame["y"]):
        raise InvalidInput(f"{where} does not record {metric}: {unrecorded(metric)}.")
    return frame, frequency


def _whole_buckets(
    frame: pd.DataFrame,
    frequency: Frequency,
    tz: str,
    covered: tuple[Any, pd.Timestamp],
) -> pd.DataFrame:
    """``frame`` without a first or last bucket that the data covers only in part; their
    starts are in ``attrs["partial"]`` (a command may say why its forecast starts there)."""
    first, data_end = covered
    if frame.empty or first is None:
        return frame
    starts = pd.Series(sorted(frame["ds"].unique()))
    wall = to_wall_time(starts, tz)
    step = (
        pd.DateOffset(months=frequency.months)
        if frequency.months
        else pd.Timedelta(seconds=frequency.seconds)
    )
    ends = from_wall_time(wall + step, tz)
    keep = (starts >= pd.Timestamp(first)) & (ends <= data_end)
    # Too short to spare them: keep the partial buckets rather than nothing.
    if keep.sum() < 2:
        return frame
    out = frame[frame["ds"].isin(set(starts[keep]))].reset_index(drop=True)
    out.attrs["partial"] = [pd.Timestamp(t) for t in starts[~keep]]
    return out
