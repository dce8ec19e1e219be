"""Import-time warnings that do not refuse a file: repeated raw files, stray timestamps.

Time outliers (documented rule): the bulk of a file is its timestamps between the first and
the third quartile; an event more than ten bulk widths (and at least 30 days) before or after
the bulk is an outlier, such as a stray epoch-zero or far-future stamp. The import stores
them (they are data) and reports their count and range; `DuckDBStore.series(...,
trim_outliers=True)` leaves them out by the same rule over the whole store.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tokenplan.store.duckdb_store import OUTLIER_MIN_DAYS, OUTLIER_SPANS

MIN_OUTLIER_GAP_US = OUTLIER_MIN_DAYS * 86_400 * 1_000_000
_CHUNK = 1 << 20


def content_hash(path: Path) -> str:
    """SHA-256 of the file's bytes as stored (compressed files hash their compressed bytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def time_outliers(stamps: list[pa.Array]) -> tuple[int, datetime, datetime] | None:
    """``(count, first, last)`` of the events far outside the bulk (module doc), or None."""
    if not stamps:
        return None
    micros = np.concatenate(
        [pc.cast(s, pa.int64()).to_numpy(zero_copy_only=False) for s in stamps if len(s)]
        or [np.empty(0, dtype=np.int64)]
    )
    if micros.size < 3:
        return None
    lo, hi = np.percentile(micros, [25, 75], method="nearest")
    gap = max(OUTLIER_SPANS * (hi - lo), MIN_OUTLIER_GAP_US)
    far = micros[(micros < lo - gap) | (micros > hi + gap)]
    if far.size == 0:
        return None
    return int(far.size), _dt(int(far.min())), _dt(int(far.max()))


def _dt(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, UTC)
