"""`StoreInTurns`: a writer that opens the store file only to write, so other processes get in.

DuckDB lets one process open a file at a time. `tokenplan drain` run on its own is the store's
one writer, and holding the file for good would leave no way to read it (a `--no-drain`
collector has no store): every `tokenplan report`, `usage` or `budget` would fail while it
runs. So it holds the file only while writing, and lets go when the stream is idle or after
``hold`` seconds of back-to-back writes (for ``gap`` seconds, longer than a waiting reader's
poll). While another process holds the file it waits without limit: what it writes meanwhile
waits in Redis, unacknowledged.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from types import TracebackType

import pyarrow as pa

from tokenplan.errors import StoreLocked
from tokenplan.store.duckdb_store import DuckDBStore, WriteResult, open_store

log = logging.getLogger(__name__)

HOLD_S = 1.0
GAP_S = 0.25


class StoreInTurns:
    """Open ``path`` for each write and let it go between them (see the module docstring).

    Construction opens the store once, so a file that is not a store is refused at once.
    ``stop`` ends a wait for another process's hold with `StoreLocked`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        adopt: bool = False,
        hold: float = HOLD_S,
        gap: float = GAP_S,
        stop: threading.Event | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.hold = hold
        self.gap = gap
        self.stop = stop or threading.Event()
        self._adopt = adopt
        self._store: DuckDBStore | None = None
        self._opened_at = 0.0
        self.turns = 0  # times the file was let go while writes kept coming
        self._acquire()

    def write_batches_once(self, batches: Sequence[tuple[str, pa.Table]]) -> WriteResult:
        """`DuckDBStore.write_batches_once` in this writer's turn."""
        return self._acquire().write_batches_once(batches)

    def release(self) -> None:
        """Let the file go (the stream is idle, or the writer stops)."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def close(self) -> None:
        """Let the file go for good."""
        self.release()

    def __enter__(self) -> StoreInTurns:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _acquire(self) -> DuckDBStore:
        if self._store is not None and time.monotonic() - self._opened_at > self.hold:
            self.release()
            self.turns += 1
            time.sleep(self.gap)
        if self._store is None:
            self._store = self._open()
            self._opened_at = time.monotonic()
        return self._store

    def _open(self) -> DuckDBStore:
        told = False
        while True:
            try:
                return open_store(self.path, mode="write", adopt=self._adopt, wait=1.0)
            except StoreLocked as exc:
                if self.stop.is_set():
                    raise
                if not told:  # once per wait: a long `tokenplan report` is not a fault
                    log.info("waiting for the store: %s", exc)
                    told = True
