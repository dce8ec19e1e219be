"""The Redis live path: `RedisSink` takes each batch into a stream and live counters at once.

For several collector processes or hosts feeding one store: each collector's sink runs one
Lua script per batch, which (a) drops events whose ``request_id`` was seen in the last 7 days,
(b) adds the rest to the ``tokenplan:events`` stream as one entry, and (c) adds them to
per-minute counters (kept 7 days) and daily totals (kept 400 days) for the whole and per
model, team and feature. A script runs atomically and is checked before its first write, so
a batch is taken whole or not at all. One writer (`tokenplan.service.drain`) moves the stream
into DuckDB; `tokenplan.service.live_counters` reads the counters.

Durability: `RedisSink.accept` returns only after Redis answered, so a 2xx built on it means
Redis holds the batch. That survives a crash of Redis itself only with the append-only file:
run Redis with ``appendonly yes`` and ``appendfsync always`` for "never lost"; with
``appendfsync everysec`` a crash of the Redis host can lose the last second of acknowledged
batches. `open_redis_sink` logs a warning when the server says it runs otherwise. If the
connection drops after Redis ran a batch but before its reply, `accept` raises; the caller's
retry is recognised by ``request_id`` (events without one would count twice, as in any
at-least-once ingest), so the client must not resend by itself (`connect`'s does not).
Scripts touch keys they compute, so this needs a standalone (or Sentinel) Redis, not Cluster.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

import pyarrow as pa
import redis

from tokenplan.errors import InvalidInput, StoreError
from tokenplan.service.contracts import AcceptResult
from tokenplan.service.live_batches import ROW_FORMAT, Increments, conform, encode_rows, increments
from tokenplan.service.live_keys import SEEN, SEEN_FOR, STREAM
from tokenplan.service.redis_connection import check_persistence, connect, redact

__all__ = ["COUNTER_LIMIT", "RedisSink", "open_redis_sink"]

# Redis counters are signed 64-bit; a batch that would take one past this is refused whole.
COUNTER_LIMIT: Final = 9 * 10**18
# Concurrent collectors can mark an id seen between our look and our write; we look again.
MAX_ATTEMPTS: Final = 8

# ARGV: ttl, stream, format, payload, rows, ids, counters. ``ids`` is JSON
# ``[[new ids], [ids believed seen]]``; ``counters`` is JSON ``[[[key, expireat, [field,
# "increment", ...]], ...], [[key, expireat, [member, ...]], ...]]`` (increments are strings:
# Lua numbers are doubles). Returns {1, entry id or false} when applied; {0, {ids seen}} when
# the ids given as new or seen are no longer so (nothing written); {2, key, field} when a
# counter would overflow (nothing written).
ACCEPT_SCRIPT: Final = f"""#!lua
local LIMIT = {COUNTER_LIMIT}
local SEEN = '{SEEN}'
local ttl, stream, format, payload, rows = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ids = cjson.decode(ARGV[6])
local counters = cjson.decode(ARGV[7])
local function kind(key) return redis.call('TYPE', key)['ok'] end
local present, stale = {{}}, false
for _, id in ipairs(ids[1]) do
  if redis.call('EXISTS', SEEN .. id) == 1 then present[#present + 1] = id; stale = true end
end
for _, id in ipairs(ids[2]) do
  if redis.call('EXISTS', SEEN .. id) == 1 then present[#present + 1] = id else stale = true end
end
if stale then return {{0, present}} end
local t = kind(stream)
if t ~= 'none' and t ~= 'stream' then return redis.error_reply('WRONGTYPE ' .. stream) end
for _, h in ipairs(counters[1]) do
  t = kind(h[1])
  if t ~= 'none' and t ~= 'hash' then return redis.error_reply('WRONGTYPE ' .. h[1]) end
  local f = h[3]
  for k = 1, #f, 2 do
    local after = tonumber(redis.call('HGET', h[1], f[k]) or '0') + tonumber(f[k + 1])
    if after > LIMIT or after < -LIMIT then return {{2, h[1], f[k]}} end
  end
end
for _, s in ipairs(counters[2]) do
  t = kind(s[1])
  if t ~= 'none' and t ~= 'set' then return redis.error_reply('WRONGTYPE ' .. s[1]) end
end
-- Every check passed: nothing below can fail, so the batch applies whole.
for _, id in ipairs(ids[1]) do redis.call('SET', SEEN .. id, '1', 'EX', ttl) end
local entry = false
if rows ~= '0' then
  entry = redis.call('XADD', stream, '*', 'format', format, 'rows', rows, 'data', payload)
end
for _, h in ipairs(counters[1]) do
  local f = h[3]
  for k = 1, #f, 2 do redis.call('HINCRBY', h[1], f[k], f[k + 1]) end
  redis.call('EXPIREAT', h[1], h[2])
end
for _, s in ipairs(counters[2]) do
  for _, m in ipairs(s[3]) do redis.call('SADD', s[1], m) end
  redis.call('EXPIREAT', s[1], s[2])
end
return {{1, entry}}
"""


class RedisSink:
    """An `EventSink` writing to Redis: the stream for the drainer, and the live counters."""

    def __init__(self, client: redis.Redis, *, where: str = "Redis", stream: str = STREAM) -> None:
        self._client = client
        self._where = where
        self._stream = stream
        self._script = client.register_script(ACCEPT_SCRIPT)

    @property
    def client(self) -> redis.Redis:
        """The Redis client (shared with `LiveCounters` and the drainer in one process)."""
        return self._client

    def accept(self, table: pa.Table) -> AcceptResult:
        """Take one batch whole: counted once per ``request_id``; returns once Redis has it."""
        table = conform(table)
        if table.num_rows == 0:
            return AcceptResult(0, 0)
        ids: list[str | None] = table["request_id"].to_pylist()
        seen: set[str] = set()
        for _attempt in range(MAX_ATTEMPTS):
            keep, fresh, repeated = _split(ids, seen)
            kept = table if len(keep) == table.num_rows else table.take(pa.array(keep, pa.int64()))
            reply = self._run(kept, fresh, repeated)
            if reply[0] == 1:
                return AcceptResult(kept.num_rows, table.num_rows - kept.num_rows)
            if reply[0] == 2:
                raise InvalidInput(
                    f"the batch would take the live counter {_text(reply[2])!r} of "
                    f"{_text(reply[1])!r} beyond {COUNTER_LIMIT:,}; nothing was stored. Check "
                    "the token counts and costs for implausibly large values."
                )
            seen = {_text(rid) for rid in reply[1]}
        raise StoreError(
            f"Redis at {self._where}: the batch's request ids kept changing under concurrent "
            f"writers ({MAX_ATTEMPTS} attempts); nothing was stored, retry the batch."
        )

    def _run(self, kept: pa.Table, fresh: Sequence[str], repeated: Sequence[str]) -> list:
        counters = increments(kept)
        if counters.largest() > COUNTER_LIMIT:
            raise InvalidInput(
                f"the batch adds more than {COUNTER_LIMIT:,} to one live counter (a token count "
                "or cost in pico-dollars); nothing was stored."
            )
        payload = encode_rows(kept) if kept.num_rows else b""
        args = [
            int(SEEN_FOR.total_seconds()),
            self._stream,
            ROW_FORMAT,
            payload,
            kept.num_rows,
            _json([fresh, repeated]),
            _json(_counter_spec(counters)),
        ]
        try:
            return list(self._script(args=args))
        except redis.RedisError as exc:
            raise StoreError(f"Redis at {self._where} did not take the batch: {exc}") from exc

    def close(self) -> None:
        """Release the client's connections."""
        self._client.close()


def open_redis_sink(url: str) -> RedisSink:
    """A `RedisSink` on the server at ``url``; warns if its persistence can lose acknowledged
    events (see the module docstring)."""
    client = connect(url)
    where = redact(url)
    check_persistence(client, where)
    return RedisSink(client, where=where)


def _split(ids: list[str | None], seen: set[str]) -> tuple[list[int], list[str], list[str]]:
    """Rows to keep, ids to mark seen, and ids believed seen already (the first of each id
    in a batch is the one kept)."""
    keep: list[int] = []
    fresh: list[str] = []
    repeated: set[str] = set()
    first: set[str] = set()
    for index, rid in enumerate(ids):
        if rid is None:
            keep.append(index)
        elif rid in seen:
            repeated.add(rid)
        elif rid not in first:
            first.add(rid)
            fresh.append(rid)
            keep.append(index)
    return keep, fresh, sorted(repeated)


def _counter_spec(counters: Increments) -> list[list[list[object]]]:
    hashes: list[list[object]] = []
    for key, fields in counters.hashes.items():
        flat: list[str] = []
        for name, amount in fields.items():
            flat += [name, str(amount)]
        hashes.append([key, counters.expiry[key], flat])
    sets = [[key, counters.expiry[key], sorted(m)] for key, m in counters.sets.items()]
    return [hashes, sets]


def _json(value: object) -> str:
    # Raw UTF-8, not backslash-u escapes: Lua's cjson would mangle escaped surrogate pairs.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
