"""OpenAI organization usage (``GET /v1/organization/usage/completions``).

Each bucket (``start_time`` .. ``end_time``, Unix seconds) has ``results[]``; one store row
per result:

- ``input_tokens`` is taken as is: OpenAI's count already *includes* the cached tokens, which
  is tokenplan's convention too; ``cache_read_tokens`` = ``input_cached_tokens``;
  ``cache_write_tokens`` = 0 (OpenAI does not bill cache writes).
- ``requests`` = ``num_model_requests``; ``project_id`` → ``team``, ``api_key_id`` →
  ``key_id``, ``user_id`` → ``user``; provider ``openai``.
- ``batch`` (true for Batch API usage) is part of the row's ``request_id`` and is reported in
  the import notes; those rows are priced at the price book's batch rates (left unpriced when
  it has none: set ``batch_multiplier`` in the price overrides).
- The report carries no cost (that is the separate costs endpoint, in dollars): cost comes
  from the price book.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import tzinfo
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tokenplan.collect import columns as col
from tokenplan.collect import report_pages
from tokenplan.collect.detect import OPENAI_USAGE, Source

PROVIDER = "openai"
_EPOCH_US = 1_000_000


def read(source: Source, *, tz: tzinfo | None, notes: list[str]) -> Iterator[pa.Table]:
    """Parse every page of an OpenAI completions usage report file into store rows."""
    yield from tables(report_pages.load_pages(source), source.name, notes)


def tables(pages: list[report_pages.Page], name: str, notes: list[str]) -> Iterator[pa.Table]:
    """Store rows of report pages (from a file or the API); ``name`` appears in messages."""
    rows = report_pages.Rows()
    batch_rows = 0
    for place, bucket, result in report_pages.results(pages, name):
        rows.add(
            place,
            start_time=bucket.get("start_time"),
            end_time=bucket.get("end_time"),
            model=result.get("model"),
            project_id=result.get("project_id"),
            api_key_id=result.get("api_key_id"),
            user_id=result.get("user_id"),
            batch=result.get("batch"),
            input_tokens=result.get("input_tokens"),
            input_cached_tokens=result.get("input_cached_tokens", 0),
            output_tokens=result.get("output_tokens"),
            num_model_requests=result.get("num_model_requests"),
        )
        batch_rows += result.get("batch") is True
    note = report_pages.pagination_note(pages)
    if note:
        notes.append(note)
    if batch_rows:
        notes.append(
            f"{batch_rows} result rows are Batch API usage (batch=true): priced at batch rates "
            "(unpriced without one; see batch_multiplier in the price overrides)"
        )
    if len(rows):
        yield from report_pages.build(
            OPENAI_USAGE, rows, name, _convert, id_extra=("batch",), batch=("batch", "true")
        )


def _seconds(raw: pa.Array, name: str) -> pa.Array:
    seconds = col.counts(raw, name, required=True)
    return pc.cast(pc.multiply(seconds, _EPOCH_US), pa.timestamp("us"))


def _convert(raw: dict[str, pa.Array]) -> dict[str, Any]:
    start = _seconds(raw["start_time"], "start_time")
    end = _seconds(raw["end_time"], "end_time")
    width = pc.divide(pc.cast(pc.subtract(end, start), pa.int64()), _EPOCH_US)
    col.check(pc.less_equal(width, 0), raw["end_time"], "end_time", "is not after start_time.")
    inp = col.counts(raw["input_tokens"], "input_tokens", required=True)
    cached = pc.fill_null(
        col.counts(raw["input_cached_tokens"], "input_cached_tokens", required=False), 0
    )
    col.check(
        pc.greater(cached, inp),
        cached,
        "input_cached_tokens",
        "is more than input_tokens (which includes cached tokens).",
    )
    batch = col.strings(raw["batch"])
    col.check(
        pc.invert(pc.is_in(pc.fill_null(batch, "false"), value_set=pa.array(["true", "false"]))),
        batch,
        "batch",
        "is not true, false or null.",
    )
    return {
        "ts": start,
        "bucket_s": width,
        "provider": PROVIDER,
        "model": pc.fill_null(col.strings(raw["model"]), "unknown"),
        "team": col.strings(raw["project_id"]),
        "key_id": col.strings(raw["api_key_id"]),
        "user": col.strings(raw["user_id"]),
        "requests": col.counts(raw["num_model_requests"], "num_model_requests", required=False),
        "input_tokens": inp,
        "output_tokens": col.counts(raw["output_tokens"], "output_tokens", required=True),
        "cache_read_tokens": cached,
        "cache_write_tokens": 0,
    }
