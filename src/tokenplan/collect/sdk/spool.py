"""`Spool`: events waiting for the collector, one JSON object a line, fsync'd, size-bounded."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("tokenplan.instrument")


class Spool:
    """An append-only NDJSON file of events not yet accepted by the collector.

    Appends are fsync'd, so an acknowledged append survives a crash. When the file would grow
    past ``max_bytes`` new events are refused and counted in ``dropped`` (the older ones are
    kept to be replayed). Events carry request ids, so replaying one twice counts it once.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int = 64 * 1024 * 1024):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.dropped = 0
        self.unreadable = 0
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def size(self) -> int:
        """Bytes waiting in the spool file."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def append(self, rows: Sequence[dict[str, Any]]) -> int:
        """Add rows; returns how many were written (the rest did not fit and were dropped)."""
        lines = [json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in rows]
        with self._lock:
            room = self.max_bytes - self.size()
            keep = []
            for line in lines:
                if len(line) > room:
                    break
                keep.append(line)
                room -= len(line)
            self.dropped += len(lines) - len(keep)
            if len(keep) < len(lines):
                log.warning(
                    "tokenplan: spool %s is full (%d bytes); %d events dropped",
                    self.path,
                    self.max_bytes,
                    len(lines) - len(keep),
                )
            if keep:
                with open(self.path, "ab") as f:
                    f.write(b"".join(keep))
                    f.flush()
                    os.fsync(f.fileno())
            return len(keep)

    def read(self) -> list[dict[str, Any]]:
        """Every readable row (a line torn by a crash mid-write is skipped and counted)."""
        with self._lock:
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                return []
        rows = []
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                self.unreadable += 1
                continue
            if isinstance(row, dict):
                rows.append(row)
        return rows

    def clear(self) -> None:
        """Remove every row (all were delivered); the sink's single thread appends in between."""
        with self._lock:
            self.path.unlink(missing_ok=True)
