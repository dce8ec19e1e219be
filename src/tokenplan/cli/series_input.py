"""Where a command's usage series comes from: an ``--input`` file or the store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from tokenplan.collect import import_file
from tokenplan.errors import InvalidInput
from tokenplan.frequency import Frequency, parse_freq
from tokenplan.store import DuckDBStore, open_store
from tokenplan.store.duckdb_store import resolve_db_path

# Raw events carry no bucket width of their own; an hour is what planning usually wants.
DEFAULT_FREQ = "1h"
# The store's bucket grid starts here (a Monday at midnight UTC).
_STORE_ORIGIN = pd.Timestamp("2000-01-03")


def load_series(
    *,
    input_path: Path | None,
    db: Path | None,
    metric: str,
    freq: str | None,
    by: Sequence[str] = (),
) -> tuple[pd.DataFrame, Frequency]:
    """The tidy ``unique_id, ds, y`` series of ``metric`` and the frequency it is at.

    An ``--input`` file is imported into a throwaway in-memory store (any format `tokenplan
    import` reads); without it the series comes from the store. ``freq`` defaults to the
    data's own spacing.
    """
    if input_path is not None:
        if not input_path.is_file():
            raise InvalidInput(f"--input {input_path}: no such file.")
        store = DuckDBStore(":memory:")
        import_file(store, input_path)
    else:
        store = open_store(resolve_db_path(db), mode="read")
    with store:
        width = store.bucket_seconds()
        frequency = parse_freq(freq) if freq else parse_freq(f"{width}s" if width else DEFAULT_FREQ)
        if width and frequency.seconds < width:
            raise InvalidInput(
                f"--freq {frequency.label} is finer than the data's own buckets "
                f"({Frequency(width).label}); use --freq {Frequency(width).label} or wider."
            )
        frame = store.series(metric, frequency, by)
        if width and frequency.seconds == width and not frame.empty:
            frame["ds"] = frame["ds"] + _phase(store, width)
    where = f"--input {input_path}" if input_path else f"the store {store.path}"
    if frame.empty:
        raise InvalidInput(f"{where} holds no usage to forecast.")
    if frame["y"].isna().all():
        raise InvalidInput(
            f"{where} does not record {metric} (the source leaves it empty); "
            "choose another --metric, e.g. requests."
        )
    return frame, frequency


def _phase(store: DuckDBStore, width: int) -> pd.Timedelta:
    """How far the data's own buckets start after the store's grid (16h for days at 16:00Z).

    At the data's own width the store puts each bucket on its grid line; shifting back by
    this keeps the series' phase, so the first forecast bucket follows the last one recorded.
    """
    start = store.summary().start
    if start is None:
        return pd.Timedelta(0)
    stamp = pd.Timestamp(start)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return (stamp - _STORE_ORIGIN) % pd.Timedelta(seconds=width)
