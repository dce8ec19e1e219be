"""Public per-request traces: Azure LLM inference 2023 and Mooncake (FAST'25), as CSV (or .gz).

- Azure: ``TIMESTAMP, ContextTokens, GeneratedTokens[, service]``. Timestamps carry no zone;
  the trace is in UTC, so they are read as UTC (or in ``--tz`` when given). ``service`` becomes
  the model (``azure-code`` / ``azure-conv``; ``azure`` without the column), provider ``azure``.
- Mooncake: ``timestamp_ms`` (relative to the trace start), ``input_length``,
  ``output_length``. The calendar date is unknown: t=0 is the nominal 2000-01-01T00:00:00Z
  (as the data's SOURCE.md does); model ``all``, provider ``mooncake``.

Each request gets a content-based ``request_id`` (``trace:<format>:<ts>:<model>:<in>:<out>``,
``#k`` for the k-th identical request), so importing a trace twice stores it once. Neither
trace records failures or caching, so those counts are stored as unknown (NULL), not zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, tzinfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tokenplan.collect import columns as col
from tokenplan.collect.buckets import occurrence
from tokenplan.collect.detect import AZURE_TRACE, MOONCAKE_TRACE, Source
from tokenplan.collect.positions import csv_line
from tokenplan.collect.usage_csv import read_header, read_strings
from tokenplan.errors import InvalidInput, at

NOMINAL_START_US = int(np.datetime64("2000-01-01T00:00:00", "us").astype(np.int64))


def read_azure(source: Source, *, tz: tzinfo | None, notes: list[str]) -> Iterator[pa.Table]:
    """Azure LLM inference trace (2023 layout) as one event per request."""
    header = read_header(source)
    names = {c.lower(): c for c in header}
    need = ("timestamp", "contexttokens", "generatedtokens")
    missing = [n for n in need if n not in names]
    if missing:
        raise InvalidInput(f"{at(source.name, 1)}: an Azure trace needs the columns {need}.")
    wanted = [names[n] for n in need] + ([names["service"]] if "service" in names else [])
    raw = read_strings(source, wanted)
    notes.append("timestamps carry no zone: read as " + ("--tz" if tz else "UTC (as documented)"))
    try:
        ts = col.timestamps(_one(raw, names["timestamp"]), names["timestamp"], tz or UTC)
        inp = col.counts(_one(raw, names["contexttokens"]), names["contexttokens"], required=True)
        out = col.counts(
            _one(raw, names["generatedtokens"]), names["generatedtokens"], required=True
        )
        if "service" in names:
            model = col.strings(_one(raw, names["service"]))
            col.check(pc.is_null(model), None, names["service"], "the service is missing.")
        else:
            model = pa.repeat(pa.scalar("azure"), raw.num_rows)
    except col.RowError as err:
        line = csv_line(source, err.index)
        raise InvalidInput(f"{at(source.name, line, err.field)}: {err.problem}") from None
    yield _events(AZURE_TRACE, source, ts, model, "azure", inp, out)


def read_mooncake(source: Source, *, tz: tzinfo | None, notes: list[str]) -> Iterator[pa.Table]:
    """Mooncake trace (``timestamp_ms`` relative) as one event per request at a nominal date."""
    header = read_header(source)
    need = ("timestamp_ms", "input_length", "output_length")
    if not set(need) <= set(header):
        raise InvalidInput(f"{at(source.name, 1)}: a Mooncake trace needs the columns {need}.")
    raw = read_strings(source, list(need))
    notes.append("relative timestamps: t=0 is the nominal 2000-01-01T00:00:00Z")
    try:
        offset = col.counts(_one(raw, "timestamp_ms"), "timestamp_ms", required=True)
        inp = col.counts(_one(raw, "input_length"), "input_length", required=True)
        out = col.counts(_one(raw, "output_length"), "output_length", required=True)
    except col.RowError as err:
        line = csv_line(source, err.index)
        raise InvalidInput(f"{at(source.name, line, err.field)}: {err.problem}") from None
    micros = pc.add(pc.multiply(offset, 1000), NOMINAL_START_US)
    ts = pc.cast(micros, pa.timestamp("us"))
    model = pa.repeat(pa.scalar("all"), raw.num_rows)
    yield _events(MOONCAKE_TRACE, source, ts, model, "mooncake", inp, out)


def _one(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks()


def _events(
    fmt: str,
    source: Source,
    ts: pa.Array,
    model: pa.Array,
    provider: str,
    inp: pa.Array,
    out: pa.Array,
) -> pa.Table:
    n = len(ts)
    stamp = col.iso_strings(ts)
    ids = pc.binary_join_element_wise(
        f"trace:{fmt}", stamp, model, pc.cast(inp, pa.string()), pc.cast(out, pa.string()), ":"
    )
    repeat = occurrence(ids)
    if repeat.any():
        suffix = pa.array(np.where(repeat > 0, np.char.add("#", repeat.astype(str)), ""))
        ids = pc.binary_join_element_wise(ids, suffix, "")
    return col.usage_table(
        n,
        {
            "ts": ts,
            "bucket_s": 0,
            "provider": provider,
            "model": model,
            "requests": 1,
            "input_tokens": inp,
            "output_tokens": out,
            "request_id": ids,
            "source": source.name,
        },
    )
