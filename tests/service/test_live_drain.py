"""Draining the stream into DuckDB: everything moved, nothing twice, crashes included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
from live_fixtures import assert_live_matches_store, events, minute_now, table

import tokenplan
from tokenplan.cli import main
from tokenplan.cli.drain_cmd import KILL_AFTER_COMMIT
from tokenplan.errors import StoreError
from tokenplan.service.drain import DEFAULT_GROUP, Drainer
from tokenplan.service.live import RedisSink
from tokenplan.service.live_batches import ROW_FORMAT
from tokenplan.service.live_counters import LiveCounters
from tokenplan.service.live_keys import DEAD_LETTERS, STREAM
from tokenplan.store import open_store


class CrashAfterCommit(Exception):
    """Stands for a drainer dying between its DuckDB commit and its XACK."""


def _crash(ids: Sequence[bytes]) -> None:
    raise CrashAfterCommit(f"{len(ids)} entries committed, none acknowledged")


def _fill(
    client: redis.Redis, batches: int, size: int = 40, tag: str = "b"
) -> tuple[int, datetime]:
    """Accept ``batches`` batches; every third carries no request ids. Returns rows, start."""
    start = minute_now() - timedelta(minutes=45)
    sink = RedisSink(client)
    for k in range(batches):
        prefix = None if k % 3 == 2 else f"{tag}{k}-"
        rows = events(size, start=start + timedelta(seconds=k * size), prefix=prefix)
        sink.accept(table(rows))
    return batches * size, start


def _pending(client: redis.Redis, group: str = DEFAULT_GROUP) -> int:
    return int(client.xpending(STREAM, group)["pending"])


def test_drain_moves_everything_and_the_store_equals_the_counters(
    redis_client: redis.Redis, db_path: Path
) -> None:
    rows, start = _fill(redis_client, 6)
    with open_store(db_path) as store:
        stats = Drainer(redis_client, store, consumer="one").run(once=True)
        assert (stats.entries, stats.inserted, stats.duplicates) == (6, rows, 0)
        assert store.summary().requests == rows
        assert_live_matches_store(
            LiveCounters(redis_client), store, start - timedelta(minutes=1), minute_now()
        )
    assert _pending(redis_client) == 0


def test_a_retried_batch_counts_once_in_the_store(redis_client: redis.Redis, db_path: Path) -> None:
    start = minute_now() - timedelta(minutes=5)
    batch = table(events(30, start=start))
    sink = RedisSink(redis_client)
    sink.accept(batch)
    with open_store(db_path) as store:
        Drainer(redis_client, store, consumer="one").run(once=True)
        sink.accept(batch)  # the client retried after the first drain
        Drainer(redis_client, store, consumer="one").run(once=True)
        assert store.summary().requests == 30


def test_a_drainer_sigkilled_after_commit_restarts_without_double_counting(
    redis_client: redis.Redis, redis_url: str, db_path: Path
) -> None:
    rows, start = _fill(redis_client, 3)
    args = ["drain", "--redis", redis_url, "--db", str(db_path), "--once", "--consumer", "c1"]
    env = {**os.environ, KILL_AFTER_COMMIT: "1"}
    src = str(Path(tokenplan.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    crashed = subprocess.run(
        [sys.executable, "-m", "tokenplan", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    with open_store(db_path, mode="read") as store:
        assert store.summary().requests == rows  # committed ...
    assert _pending(redis_client) == 3  # ... but never acknowledged
    # The restart takes back its pending entries, finds them written, and only acknowledges.
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 0
    assert _pending(redis_client) == 0
    with open_store(db_path) as store:
        assert store.summary().requests == rows
        assert_live_matches_store(
            LiveCounters(redis_client),
            store,
            start - timedelta(minutes=1),
            minute_now(),
            bys=(None, "team"),
            metrics=("requests", "total_tokens", "cost_usd"),
        )


def test_another_drainer_claims_the_entries_of_a_dead_one(
    redis_client: redis.Redis, db_path: Path
) -> None:
    rows, _ = _fill(redis_client, 4)
    with open_store(db_path) as store:
        with pytest.raises(CrashAfterCommit):
            Drainer(redis_client, store, consumer="dead", on_commit=_crash).run(once=True)
        assert _pending(redis_client) == 4
        # Not idle long enough yet: the live consumer's entries are left alone.
        stats = Drainer(redis_client, store, consumer="other", min_idle_ms=60_000).run(once=True)
        assert stats.entries == 0
        assert _pending(redis_client) == 4
        stats = Drainer(redis_client, store, consumer="other", min_idle_ms=0).run(once=True)
        assert (stats.entries, stats.inserted, stats.duplicates) == (4, 0, rows)
        assert store.summary().requests == rows
    assert _pending(redis_client) == 0


def test_two_drainers_in_one_group_split_the_work_without_duplicates(
    redis_client: redis.Redis, db_path: Path
) -> None:
    rows, _ = _fill(redis_client, 12, size=25)
    both_committed = threading.Barrier(2)

    def wait_for_the_other(ids: Sequence[bytes]) -> None:
        # Each drainer's first commit waits for the other's: both must have taken work.
        if not both_committed.broken:
            both_committed.wait(timeout=20)

    with open_store(db_path) as first, open_store(db_path) as second:
        drainers = [
            Drainer(redis_client, store, consumer=name, count=1, on_commit=wait_for_the_other)
            for name, store in (("a", first), ("b", second))
        ]
        threads = [threading.Thread(target=d.run, kwargs={"once": True}) for d in drainers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        stats = [d.stats for d in drainers]
        assert all(s.entries > 0 for s in stats), stats
        assert sum(s.entries for s in stats) == 12
        assert sum(s.inserted for s in stats) == rows
        assert sum(s.duplicates for s in stats) == 0
    with open_store(db_path, mode="read") as store:
        assert store.summary().requests == rows


def test_the_stream_is_trimmed_only_below_what_every_group_acknowledged(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    _fill(redis_client, 5)
    redis_client.xgroup_create(STREAM, "audit", id="0")  # a second group that has read nothing
    with open_store(tmp_path / "a.duckdb") as store:
        Drainer(redis_client, store, consumer="one").run(once=True)
    assert redis_client.xlen(STREAM) == 5
    # The audit group reads three and acknowledges one: trimming stops at its first pending.
    read = redis_client.xreadgroup("audit", "x", {STREAM: ">"}, count=3)[0][1]
    redis_client.xack(STREAM, "audit", read[0][0])
    _fill(redis_client, 1, tag="later")
    with open_store(tmp_path / "a.duckdb") as store:
        Drainer(redis_client, store, consumer="one").run(once=True)
    assert redis_client.xrange(STREAM)[0][0] == read[1][0]
    with open_store(tmp_path / "b.duckdb") as store:
        stats = Drainer(redis_client, store, consumer="x", group="audit").run(once=True)
        assert stats.entries == 5  # its two pending, and the three it had not read
        assert store.summary().requests == 5 * 40
    assert redis_client.xlen(STREAM) == 1  # the last entry both groups delivered stays


def test_an_unreadable_entry_goes_to_the_dead_letters_and_the_rest_drains(
    redis_client: redis.Redis, db_path: Path
) -> None:
    rows, _ = _fill(redis_client, 2)
    redis_client.xadd(STREAM, {"format": ROW_FORMAT, "rows": 1, "data": b"not arrow"})
    with open_store(db_path) as store:
        stats = Drainer(redis_client, store, consumer="one").run(once=True)
        assert (stats.entries, stats.inserted, stats.dead_letters) == (3, rows, 1)
    dead = redis_client.xrange(DEAD_LETTERS)
    assert len(dead) == 1
    assert dead[0][1][b"data"] == b"not arrow"
    assert b"Arrow" in dead[0][1][b"reason"]
    assert _pending(redis_client) == 0


def test_an_entry_of_an_unknown_format_stops_the_drain_and_stays(
    redis_client: redis.Redis, db_path: Path
) -> None:
    redis_client.xadd(STREAM, {"format": "arrow-ipc-zstd/9", "data": b"?"})
    with open_store(db_path) as store, pytest.raises(StoreError, match="upgrade tokenplan"):
        Drainer(redis_client, store, consumer="one").run(once=True)
    assert _pending(redis_client) == 1


def _drained(client: redis.Redis, timeout: float = 60) -> None:
    """Wait until a running drainer has acknowledged everything in the stream."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            groups = {g["name"]: g for g in client.xinfo_groups(STREAM)}
        except redis.ResponseError:
            groups = {}
        group = groups.get(DEFAULT_GROUP.encode()) or groups.get(DEFAULT_GROUP)
        if group and not group["pending"] and group["lag"] == 0:
            return
        assert time.monotonic() < deadline, f"the drain did not catch up: {group}"
        time.sleep(0.05)


def test_a_running_drain_lets_other_commands_read_the_store(
    redis_client: redis.Redis, redis_url: str, db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tokenplan drain` on its own is the store's writer; with `--no-drain` collectors there is
    no service to read through, so the file must open to `usage` and `import` meanwhile."""
    open_store(db_path).close()
    env = dict(os.environ)
    src = str(Path(tokenplan.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    args = ["drain", "--redis", redis_url, "--db", str(db_path), "--consumer", "live"]
    with subprocess.Popen(
        [sys.executable, "-m", "tokenplan", *args], env=env, stderr=subprocess.PIPE, text=True
    ) as drainer:
        try:
            rows, _ = _fill(redis_client, 2, size=20, tag="first-")
            _drained(redis_client)  # the drainer runs and has written
            for k in range(6):  # batches keep arriving while the store is read
                more, _ = _fill(redis_client, 2, size=20, tag=f"k{k}-")
                rows += more
                capsys.readouterr()
                with pytest.raises(SystemExit) as read:
                    main(["usage", "--db", str(db_path), "--metric", "requests", "--format", "csv"])
                assert read.value.code == 0, capsys.readouterr().err
            _drained(redis_client)
        finally:
            drainer.send_signal(signal.SIGTERM)
            _, err = drainer.communicate(timeout=60)
    assert drainer.returncode == 0, err
    with open_store(db_path, mode="read") as store:
        assert store.summary().requests == rows
