"""Which importer reads a file: decided from its content (first bytes, CSV header, JSON keys).

Gzip is opened transparently everywhere, so ``x.csv.gz`` and ``x.csv`` are the same format.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tokenplan.errors import InvalidInput

USAGE_CSV = "usage_csv"
EVENTS_CSV = "events_csv"
EVENTS_JSONL = "events_jsonl"
EVENTS_PARQUET = "events_parquet"
AZURE_TRACE = "azure_trace"
MOONCAKE_TRACE = "mooncake_trace"
ANTHROPIC_USAGE = "anthropic_usage"
OPENAI_USAGE = "openai_usage"
LITELLM_SPEND = "litellm_spend"

FORMATS: dict[str, str] = {
    USAGE_CSV: "usage series CSV (timestamp, model, requests, tokens, cost per bucket)",
    EVENTS_CSV: "raw usage events as CSV (one row per API call, UsageEvent columns)",
    EVENTS_JSONL: "raw usage events as JSON lines",
    EVENTS_PARQUET: "raw usage events as Parquet",
    AZURE_TRACE: "Azure LLM inference trace 2023 (TIMESTAMP, ContextTokens, GeneratedTokens)",
    MOONCAKE_TRACE: "Mooncake trace as CSV (timestamp_ms, input_length, output_length)",
    ANTHROPIC_USAGE: "Anthropic Admin API usage report JSON (usage_report/messages pages)",
    OPENAI_USAGE: "OpenAI organization usage JSON (usage/completions pages)",
    LITELLM_SPEND: "LiteLLM proxy spend logs (CSV or JSON: request_id, startTime, spend, ...)",
}
_ALIASES = {
    "usage": USAGE_CSV,
    "csv": EVENTS_CSV,
    "events": EVENTS_CSV,
    "jsonl": EVENTS_JSONL,
    "parquet": EVENTS_PARQUET,
    "azure": AZURE_TRACE,
    "mooncake": MOONCAKE_TRACE,
    "anthropic": ANTHROPIC_USAGE,
    "openai": OPENAI_USAGE,
    "litellm": LITELLM_SPEND,
}
_SNIFF_BYTES = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"


@dataclass
class Source:
    """A file to import: its path, the name used in messages, and a byte-progress callback."""

    path: Path
    on_bytes: Callable[[int], None] | None = None
    gzipped: bool = field(init=False)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        if not self.path.exists():
            raise InvalidInput(f"{self.path}: no such file.")
        if self.path.is_dir():
            raise InvalidInput(f"{self.path}: is a directory, not a file.")
        self.size = self.path.stat().st_size
        with self.path.open("rb") as raw:
            self.gzipped = raw.read(2) == GZIP_MAGIC

    @property
    def name(self) -> str:
        """The path as the user gave it, for messages."""
        return str(self.path)

    def open(self) -> BinaryIO:
        """The file's (decompressed) bytes; reading reports compressed bytes to ``on_bytes``."""
        raw: BinaryIO = _CountingReader(self.path.open("rb"), self.on_bytes)  # type: ignore[assignment]
        if self.gzipped:
            return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
        return raw

    def open_text(self) -> io.TextIOWrapper:
        """The file as UTF-8 text (BOM tolerated), universal newlines kept for the csv module."""
        return io.TextIOWrapper(self.open(), encoding="utf-8-sig", newline="")

    def head(self, size: int = _SNIFF_BYTES) -> bytes:
        """The first ``size`` decompressed bytes (fewer if the file is shorter or truncated)."""
        with self.path.open("rb") as raw:
            if not self.gzipped:
                return raw.read(size)
            try:
                return gzip.GzipFile(fileobj=raw).read(size)
            except (EOFError, OSError):
                # A truncated gzip still has a readable start; keep what decompresses.
                raw.seek(0)
                return _partial_gunzip(raw.read(size * 4))[:size]


class _CountingReader(io.RawIOBase):
    """A binary file that reports how many bytes were read so far."""

    def __init__(self, raw: BinaryIO, on_bytes: Callable[[int], None] | None) -> None:
        self._raw = raw
        self._on_bytes = on_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n and self._on_bytes is not None:
            self._on_bytes(n)
        return int(n or 0)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _partial_gunzip(data: bytes) -> bytes:
    import zlib

    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)


def normalize_format(fmt: str) -> str:
    """Canonical format name from a ``--format`` value (``usage-csv``, ``anthropic``, ...)."""
    key = fmt.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in FORMATS:
        raise InvalidInput(
            f"unknown format {fmt!r}; use one of {', '.join(FORMATS)} "
            "(or leave --format out to detect it from the content)."
        )
    return key


def detect_format(source: Source) -> str:
    """Guess the format of a file from its first bytes; raise `InvalidInput` if unknown."""
    head = source.head()
    if head.startswith(PARQUET_MAGIC):
        return EVENTS_PARQUET
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    stripped = text.lstrip()
    if not stripped:
        raise InvalidInput(f"{source.name}: the file is empty.")
    if stripped[0] in "[{":
        return _detect_json(stripped, source)
    return _detect_csv(text, source)


# A JSON key: a string token followed by a colon. Read from the text, not a parse, because the
# head may end mid-document. Matching keys rather than substrings keeps a value that happens to
# be "starting_at" (a team name, say) from turning raw events into a usage report.
_KEY = re.compile(r'(?<!\\)"((?:[^"\\]|\\.)*)"\s*:')
_OPENAI_OBJECT = re.compile(r'(?<!\\)"object"\s*:\s*"organization\.usage')


def _detect_json(text: str, source: Source) -> str:
    keys = set(_KEY.findall(text))
    if text[0] == "{" and _first_line_is_event(text):
        return EVENTS_JSONL
    if {"startTime", "spend"} <= keys:
        return LITELLM_SPEND
    if keys & {"uncached_input_tokens", "starting_at"}:
        return ANTHROPIC_USAGE
    if keys & {"num_model_requests", "start_time"} or _OPENAI_OBJECT.search(text):
        return OPENAI_USAGE
    if text[0] == "{" and keys & {"ts", "model"}:
        return EVENTS_JSONL
    raise InvalidInput(
        f"{source.name}: JSON that is neither raw events (JSON lines with ts, model, tokens) "
        "nor an Anthropic or OpenAI usage report; pass --format."
    )


def _first_line_is_event(text: str) -> bool:
    """True when the first line is a whole flat object with a ``ts`` key: one raw event."""
    try:
        first = json.loads(text.split("\n", 1)[0])
    except (ValueError, RecursionError):
        # Not a whole object (or nested too deeply): the reader says which, with its line.
        return False
    return isinstance(first, dict) and "ts" in first and "data" not in first


def _detect_csv(text: str, source: Source) -> str:
    first_line = text.splitlines()[0] if text.splitlines() else ""
    try:
        header = next(csv.reader([first_line]))
    except (csv.Error, StopIteration):
        header = []
    cols = {c.strip().lower() for c in header}
    if {"request_id", "starttime", "spend", "prompt_tokens"} <= cols:
        return LITELLM_SPEND
    if {"timestamp", "contexttokens", "generatedtokens"} <= cols:
        return AZURE_TRACE
    if {"timestamp_ms", "input_length", "output_length"} <= cols:
        return MOONCAKE_TRACE
    if "ts" in cols and {"model", "input_tokens", "output_tokens"} & cols:
        return EVENTS_CSV
    if "timestamp" in cols:
        return USAGE_CSV
    raise InvalidInput(
        f"{source.name}, line 1: the header {first_line[:120]!r} matches no known format "
        "(a usage CSV starts with 'timestamp', raw events with 'ts'); pass --format."
    )
