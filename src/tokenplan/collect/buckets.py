"""Pre-aggregated buckets: their width, and request ids that make re-imports idempotent.

A bucket row's ``request_id`` is deterministic and built only from what the export itself
states about the bucket: its bounds and its dimensions::

    bucket:<format>:<start Z>:<width s>:<provider>:<model>:<team>:<feature>:<user>:<key_id>

for provider reports (which give each bucket's start and end), and, for the usage series CSV
(which gives only the start; its width is inferred from the spacing of the whole file)::

    bucket:usage_csv:<start Z>:<provider>:<model>:<team>:<feature>:<user>:<key_id>

Empty for an unknown dimension, with ``#<k>`` appended to the k-th repeat of the same key
within one file. Importing the same export twice, or two exports that overlap, stores each
bucket once (the store replaces it when the later export differs: last export wins). An
inferred width never enters the id: two exports of the same hour, one of which also holds a
``:30`` row, must name that hour the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tokenplan.collect.columns import iso_strings

KEY_DIMENSIONS = ("provider", "model", "team", "feature", "user", "key_id")


def series_keys(table: pa.Table) -> pa.Array:
    """One string per row naming its series (all dimensions, nulls as empty)."""
    parts = [pc.cast(table.column(d), pa.string()) for d in KEY_DIMENSIONS]
    joined = pc.binary_join_element_wise(*parts, ":", null_handling="replace", null_replacement="")
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def infer_width(ts: pa.Array | pa.ChunkedArray, keys: pa.Array) -> int | None:
    """Bucket width in seconds: the gcd of the gaps between timestamps within each series.

    One width for the whole file, so that a series seen only in sparse buckets still gets the
    file's spacing. ``None`` when no series has two distinct timestamps.
    """
    if len(ts) < 2:
        return None
    micros = pc.cast(ts, pa.int64()).to_numpy(zero_copy_only=False)
    codes = pc.dictionary_encode(keys).indices.to_numpy(zero_copy_only=False)
    order = np.lexsort((micros, codes))
    m, c = micros[order], codes[order]
    gaps = np.diff(m)[(np.diff(c) == 0) & (np.diff(m) > 0)]
    if gaps.size == 0:
        distinct = np.unique(micros)
        if distinct.size < 2:
            return None
        gaps = np.diff(distinct)
    width_us = int(np.gcd.reduce(gaps.astype(np.int64)))
    return max(1, width_us // 1_000_000)


def bucket_ids(
    fmt: str, table: pa.Table, extra: Sequence[pa.Array] = (), *, stated_width: bool = True
) -> pa.Array:
    """Deterministic ``request_id``s for the bucket rows of ``table`` (see the module doc).

    ``extra`` columns (e.g. a provider's service tier) are appended to the key. Pass
    ``stated_width=False`` when ``bucket_s`` was inferred rather than read from the export.
    """
    start = iso_strings(table.column("ts"))
    bounds = [start]
    if stated_width:
        bounds.append(pc.cast(table.column("bucket_s"), pa.string()))
    dims = [pc.cast(table.column(d), pa.string()) for d in KEY_DIMENSIONS]
    base = pc.binary_join_element_wise(
        f"bucket:{fmt}",
        *bounds,
        *dims,
        *extra,
        ":",
        null_handling="replace",
        null_replacement="",
    )
    if isinstance(base, pa.ChunkedArray):
        base = base.combine_chunks()
    repeat = occurrence(base)
    if not repeat.any():
        return base
    suffix = pa.array(np.where(repeat > 0, np.char.add("#", repeat.astype(str)), ""))
    return pc.binary_join_element_wise(base, suffix, "")


def occurrence(values: pa.Array) -> np.ndarray:
    """For each element, how many equal elements come before it."""
    codes = pc.dictionary_encode(values).indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(codes)]))
    result = np.empty(len(codes), dtype=np.int64)
    result[order] = np.arange(len(codes)) - group_start
    return result
