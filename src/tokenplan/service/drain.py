"""`Drainer`: the one writer that moves the Redis stream into the DuckDB store, exactly once.

It reads ``tokenplan:events`` in a consumer group (XREADGROUP), writes a read's entries in one
DuckDB transaction, and acknowledges them (XACK) only after the commit. Each entry's id is
recorded in the store in the same transaction as its rows (`DuckDBStore.write_batches_once`), so an
entry redelivered after a crash between the commit and the XACK writes nothing twice, rows
without a ``request_id`` included. On start it takes back its own unacknowledged entries and
claims those of consumers idle longer than ``min_idle`` (XAUTOCLAIM), and it keeps claiming
while it runs. After each acknowledgement it trims the stream below what every group has
acknowledged, never further. An entry that cannot be decoded is moved to
``tokenplan:events:dead`` (kept, with the reason) instead of blocking the stream.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Final, Protocol

import pyarrow as pa
import redis

from tokenplan.errors import InvalidInput, StoreError
from tokenplan.service.live_batches import ROW_FORMAT, decode_rows
from tokenplan.service.live_keys import DEAD_LETTERS, STREAM, STREAM_ORIGIN
from tokenplan.store import WriteResult

__all__ = ["DEFAULT_GROUP", "DrainStats", "Drainer"]

log = logging.getLogger(__name__)

DEFAULT_GROUP: Final = "tokenplan-drain"
# Entries per read; each is one accepted batch (typically a few hundred rows).
READ_COUNT: Final = 50
MIN_IDLE_MS: Final = 60_000
BLOCK_MS: Final = 1_000

# Trim below the oldest entry any group still needs: its first pending entry, or (nothing
# pending) its last delivered one. Ids compare as digit strings: Lua numbers are doubles.
TRIM_SCRIPT: Final = """#!lua
local stream = KEYS[1]
if redis.call('EXISTS', stream) == 0 then return 0 end
local groups = redis.call('XINFO', 'GROUPS', stream)
if #groups == 0 then return 0 end
local function less(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local function before(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if am ~= bm then return less(am, bm) end
  return less(as, bs)
end
local floor = nil
for _, g in ipairs(groups) do
  local info = {}
  for k = 1, #g, 2 do info[g[k]] = g[k + 1] end
  local bound = info['last-delivered-id']
  if info['pending'] > 0 then bound = redis.call('XPENDING', stream, info['name'])[2] end
  if floor == nil or before(bound, floor) then floor = bound end
end
return redis.call('XTRIM', stream, 'MINID', floor)
"""

Entry = tuple[bytes, dict[bytes, bytes] | None]


class BatchWriter(Protocol):
    """Where drained entries go: `DuckDBStore`, or `tokenplan.store.turns.StoreInTurns`."""

    def write_batches_once(self, batches: Sequence[tuple[str, pa.Table]]) -> WriteResult:
        """Write each keyed batch whose key is not stored yet, in one transaction."""
        ...


@dataclass(frozen=True, slots=True)
class DrainStats:
    """What a drainer did: stream entries handled, rows read, new rows, rows already stored."""

    entries: int = 0
    rows: int = 0
    inserted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    trimmed: int = 0

    def __add__(self, other: DrainStats) -> DrainStats:
        return DrainStats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


class Drainer:
    """Moves stream entries into ``store`` as consumer ``consumer`` of ``group``.

    ``on_idle`` runs whenever a read finds nothing new (`tokenplan drain` lets the file go).
    """

    def __init__(
        self,
        client: redis.Redis,
        store: BatchWriter,
        *,
        consumer: str,
        group: str = DEFAULT_GROUP,
        stream: str = STREAM,
        count: int = READ_COUNT,
        min_idle_ms: int = MIN_IDLE_MS,
        block_ms: int = BLOCK_MS,
        on_commit: Callable[[Sequence[bytes]], None] | None = None,
        on_idle: Callable[[], None] | None = None,
        where: str = "Redis",
    ) -> None:
        if not consumer or not group:
            raise InvalidInput("the consumer group and consumer name must not be empty.")
        self._client = client
        self._store = store
        self._consumer = consumer
        self._group = group
        self._stream = stream
        self._count = max(1, count)
        self._min_idle_ms = max(0, min_idle_ms)
        self._block_ms = block_ms
        self._on_commit = on_commit
        self._on_idle = on_idle
        self._where = where
        self._trim = client.register_script(TRIM_SCRIPT)
        self.stats = DrainStats()

    def run(self, *, once: bool = False, stop: threading.Event | None = None) -> DrainStats:
        """Drain until ``stop`` is set (or, with ``once``, until the stream has nothing new)."""
        stop = stop or threading.Event()
        try:
            self._ensure_group()
            origin = self._origin()
            self._take_back_own(origin)
            self._claim_idle(origin)
            claimed_at = time.monotonic()
            while not stop.is_set():
                entries = _entries(
                    self._client.xreadgroup(
                        self._group,
                        self._consumer,
                        {self._stream: ">"},
                        count=self._count,
                        block=None if once else self._block_ms,
                    )
                )
                if entries:
                    self._handle(entries, origin)
                else:
                    if self._on_idle is not None:
                        self._on_idle()
                    if once:
                        break
                if time.monotonic() - claimed_at > self._min_idle_ms / 2000:
                    self._claim_idle(origin)
                    claimed_at = time.monotonic()
        except redis.RedisError as exc:
            raise StoreError(f"draining the stream at {self._where} failed: {exc}") from exc
        return self.stats

    def _ensure_group(self) -> None:
        try:
            # From id 0: entries added before any drainer existed are drained too.
            self._client.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _origin(self) -> str:
        # A random id for this stream's history, in every key the store records: entry ids
        # restart if the Redis data is lost, and two servers may drain into one store.
        self._client.set(STREAM_ORIGIN, uuid.uuid4().hex, nx=True)
        value = self._client.get(STREAM_ORIGIN)
        return value.decode() if isinstance(value, bytes) else str(value)

    def _take_back_own(self, origin: str) -> None:
        # Entries this consumer read before a restart and never acknowledged.
        after = "0"
        while True:
            entries = _entries(
                self._client.xreadgroup(
                    self._group, self._consumer, {self._stream: after}, count=self._count
                )
            )
            if not entries:
                return
            self._handle(entries, origin)
            after = _text(entries[-1][0])

    def _claim_idle(self, origin: str) -> None:
        # Entries of consumers that read them and went quiet (crashed) for min_idle.
        start = "0-0"
        while True:
            reply: Any = self._client.xautoclaim(
                self._stream,
                self._group,
                self._consumer,
                self._min_idle_ms,
                start_id=start,
                count=self._count,
            )
            start, entries = _text(reply[0]), reply[1]
            if entries:
                log.info("claimed %d idle entries from other consumers", len(entries))
                self._handle(entries, origin)
            if start == "0-0":
                return

    def _handle(self, entries: Sequence[Entry], origin: str) -> None:
        batches: list[tuple[bytes, pa.Table]] = []
        dead: list[tuple[bytes, dict[bytes, bytes], str]] = []
        for entry_id, payload in entries:
            if not payload:  # deleted from the stream while pending: nothing to write
                continue
            fmt = payload.get(b"format")
            if fmt != ROW_FORMAT:
                raise StoreError(
                    f"stream entry {_text(entry_id)} is in format {fmt!r}, which this tokenplan "
                    f"does not read ({ROW_FORMAT.decode()}); upgrade tokenplan to drain it."
                )
            try:
                batches.append((entry_id, decode_rows(payload.get(b"data", b""))))
            except InvalidInput as exc:
                dead.append((entry_id, payload, str(exc)))
        done = DrainStats(entries=len(entries), dead_letters=len(dead))
        if batches:
            keyed = [(f"{origin}/{self._stream}/{_text(i)}", table) for i, table in batches]
            result = self._store.write_batches_once(keyed)
            rows = sum(table.num_rows for _, table in batches)
            done += DrainStats(rows=rows, inserted=result.inserted, duplicates=result.duplicates)
        ids = [entry_id for entry_id, _ in entries]
        if self._on_commit is not None:
            self._on_commit(ids)
        pipe = self._client.pipeline(transaction=True)
        for entry_id, payload, reason in dead:
            log.warning("stream entry %s moved to %s: %s", _text(entry_id), DEAD_LETTERS, reason)
            kept: dict[Any, Any] = {**payload, b"entry": entry_id, b"reason": reason}
            pipe.xadd(DEAD_LETTERS, kept)
        pipe.xack(self._stream, self._group, *ids)
        pipe.execute()
        trimmed = int(self._trim(keys=[self._stream]))
        self.stats += replace(done, trimmed=trimmed)


def _entries(reply: Any) -> list[Entry]:
    """The entries of a one-stream XREADGROUP reply (``[[stream, entries]]``)."""
    return list(reply[0][1]) if reply else []


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class BackgroundDrainer:
    """A `Drainer` on a thread of `tokenplan serve --redis`: the store's one writer.

    A Redis outage is waited out (retried with capped exponential backoff, logged once per
    outage), never fatal: what collectors accepted stays in the stream until it is drained.
    """

    def __init__(self, drainer: Drainer, *, max_backoff: float = 30.0) -> None:
        self._drainer = drainer
        self._max_backoff = max_backoff
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tokenplan-drain", daemon=True)

    @property
    def stats(self) -> DrainStats:
        """What the drainer did so far."""
        return self._drainer.stats

    def start(self) -> None:
        """Start draining in the background."""
        self._thread.start()

    def close(self, timeout: float = 30.0) -> bool:
        """Finish the batch in hand (commit, acknowledge) and stop; False if still busy."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        delay = 0.5
        failing = False
        while not self._stop.is_set():
            try:
                self._drainer.run(stop=self._stop)
                return
            except StoreError as exc:
                if not failing:
                    log.warning("draining paused, retrying: %s", exc)
                failing = True
            except Exception:  # a bug must not stop ingestion silently: log it loudly, retry
                log.exception("the drainer failed; retrying")
            self._stop.wait(delay)
            delay = min(delay * 2, self._max_backoff)
