"""Anthropic Admin API usage report (``GET /v1/organizations/usage_report/messages``).

Each bucket (``starting_at`` .. ``ending_at``) has ``results[]``; one store row per result:

- ``input_tokens`` = ``uncached_input_tokens + cache_read_input_tokens
  + cache_creation.ephemeral_5m_input_tokens + cache_creation.ephemeral_1h_input_tokens``
  (tokenplan counts cached tokens inside input, like OpenAI; Anthropic reports them apart);
  ``cache_read_tokens`` = ``cache_read_input_tokens``; ``cache_write_tokens`` = the two
  ``cache_creation`` fields, of which ``cache_write_1h_tokens`` keeps the 1-hour ones (they
  are priced at 2x input, the 5-minute ones at 1.25x).
- ``api_key_id`` → ``key_id``; ``workspace_id`` → ``team`` (null, the default workspace,
  stays null); provider ``anthropic``; ``bucket_s`` = the bucket's width.
- The report has no request counts, so ``requests`` is unknown (NULL). It has no cost either
  (that is the separate cost report): cost comes from the price book.
- ``service_tier`` (``batch``, ``priority``) and ``context_window`` are part of the row's
  ``request_id`` and are reported in the import notes, because they change the price; batch
  rows are priced at the price book's batch rates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import tzinfo
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tokenplan.collect import columns as col
from tokenplan.collect import report_pages
from tokenplan.collect.detect import ANTHROPIC_USAGE, Source

PROVIDER = "anthropic"
_BATCH_NOTE = (
    ": priced at batch rates (unpriced without one; see batch_multiplier in the overrides)"
)
TOKENS = (
    "uncached_input_tokens",
    "cache_read_input_tokens",
    "ephemeral_5m_input_tokens",
    "ephemeral_1h_input_tokens",
    "output_tokens",
)


def read(source: Source, *, tz: tzinfo | None, notes: list[str]) -> Iterator[pa.Table]:
    """Parse every page of an Anthropic usage report file into store rows."""
    yield from tables(report_pages.load_pages(source), source.name, notes)


def tables(pages: list[report_pages.Page], name: str, notes: list[str]) -> Iterator[pa.Table]:
    """Store rows of report pages (from a file or the API); ``name`` appears in messages."""
    rows = report_pages.Rows()
    tiers: Counter[str] = Counter()
    windows: Counter[str] = Counter()
    for place, bucket, result in report_pages.results(pages, name):
        creation = result.get("cache_creation") or {}
        if not isinstance(creation, dict):
            creation = {"ephemeral_5m_input_tokens": creation}
        rows.add(
            place,
            starting_at=bucket.get("starting_at"),
            ending_at=bucket.get("ending_at"),
            model=result.get("model"),
            api_key_id=result.get("api_key_id"),
            workspace_id=result.get("workspace_id"),
            service_tier=result.get("service_tier"),
            context_window=result.get("context_window"),
            uncached_input_tokens=result.get("uncached_input_tokens"),
            cache_read_input_tokens=result.get("cache_read_input_tokens", 0),
            ephemeral_5m_input_tokens=creation.get("ephemeral_5m_input_tokens", 0),
            ephemeral_1h_input_tokens=creation.get("ephemeral_1h_input_tokens", 0),
            output_tokens=result.get("output_tokens"),
        )
        tiers[str(result.get("service_tier") or "standard")] += 1
        windows[str(result.get("context_window") or "")] += 1
    note = report_pages.pagination_note(pages)
    if note:
        notes.append(note)
    for tier, count in sorted(tiers.items()):
        if tier != "standard":
            notes.append(
                f"{count} result rows are service_tier={tier}"
                + (_BATCH_NOTE if tier == "batch" else ": priced at list rates")
            )
    long_rows = sum(c for w, c in windows.items() if w and not w.startswith("0-"))
    if long_rows:
        notes.append(
            f"{long_rows} result rows are long-context requests (context_window above 200k)"
        )
    if len(rows):
        yield from report_pages.build(
            ANTHROPIC_USAGE,
            rows,
            name,
            _convert,
            id_extra=("service_tier", "context_window"),
            batch=("service_tier", "batch"),
        )


def _convert(raw: dict[str, pa.Array]) -> dict[str, Any]:
    start = col.timestamps(raw["starting_at"], "starting_at", None)
    end = col.timestamps(raw["ending_at"], "ending_at", None)
    width = pc.divide(pc.cast(pc.subtract(end, start), pa.int64()), 1_000_000)
    col.check(pc.less_equal(width, 0), raw["ending_at"], "ending_at", "is not after starting_at.")
    parts = {
        name: col.counts(
            raw[name], name, required=name in ("uncached_input_tokens", "output_tokens")
        )
        for name in TOKENS
    }
    parts = {k: pc.fill_null(v, 0) for k, v in parts.items()}
    cache_write = pc.add_checked(
        parts["ephemeral_5m_input_tokens"], parts["ephemeral_1h_input_tokens"]
    )
    cache_read = parts["cache_read_input_tokens"]
    model = pc.fill_null(col.strings(raw["model"]), "unknown")
    return {
        "ts": start,
        "bucket_s": width,
        "provider": PROVIDER,
        "model": model,
        "team": col.strings(raw["workspace_id"]),
        "key_id": col.strings(raw["api_key_id"]),
        "input_tokens": col.bounded(
            pc.add_checked(pc.add_checked(parts["uncached_input_tokens"], cache_read), cache_write),
            raw["uncached_input_tokens"],
            "uncached_input_tokens",
        ),
        "output_tokens": parts["output_tokens"],
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "cache_write_1h_tokens": parts["ephemeral_1h_input_tokens"],
    }
