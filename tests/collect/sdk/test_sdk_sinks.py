"""Where recorded calls go: the store, a collector (spooled while it is down), the batcher."""

from __future__ import annotations

import gzip
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anthropic
import fake_provider as fp
import openai
import pytest

from tokenplan.collect.sdk import (
    CollectorSink,
    EventBatcher,
    Recorder,
    Spool,
    StoreSink,
    instrument,
)
from tokenplan.collect.sdk.provider_calls import ParsedCall
from tokenplan.errors import StoreLocked
from tokenplan.events import UsageEvent
from tokenplan.store import open_store
from tokenplan.store.rate_limits import read_rate_limits

TOKEN = "collector-token-123"


def _event(i: int, **kw: Any) -> ParsedCall:
    return ParsedCall(
        UsageEvent(
            ts=datetime(2025, 6, 1, 12, 0, i % 60, tzinfo=UTC),
            provider="openai",
            model="gpt-4o",
            input_tokens=100 + i,
            output_tokens=10,
            request_id=f"req-{i}",
            **kw,
        ),
        [],
    )


def test_store_sink_writes_events_nulls_for_unknown_tokens_and_limits(
    db_path: Path,
) -> None:
    with fp.FakeProvider() as server:
        server.queue(fp.message(), fp.chat_stream(with_usage=False))
        recorder = Recorder(StoreSink(db_path), flush_interval=0.05, close_at_exit=False)
        with anthropic.Anthropic(api_key="k", base_url=server.url, max_retries=0) as a:
            instrument(a, team="t1", recorder=recorder)
            a.messages.create(
                model="claude-sonnet-4-5", max_tokens=8, messages=[{"role": "user", "content": "x"}]
            )
        with openai.OpenAI(api_key="k", base_url=server.url + "/v1", max_retries=0) as o:
            instrument(o, team="t1", recorder=recorder)
            for _ in o.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
            ):
                pass
        assert recorder.flush(10)
        recorder.close()
    with open_store(db_path, mode="read") as store:
        s = store.summary()
        assert (s.rows, s.requests) == (2, 2)
        # Only the Anthropic call's tokens are known; the stream without usage adds NULL, not 0.
        assert (s.input_tokens, s.output_tokens) == (1112, 40)
        frame = store.series("input_tokens", "1d", by=["model"])
        unknown = frame[frame["unique_id"].str.contains("gpt-4o-mini")]
        assert unknown["y"].isna().all() or unknown.empty
        limits = read_rate_limits(store)
    by_kind = {(lim.model, lim.kind): lim.limit for lim in limits}
    assert by_kind[("claude-sonnet-4-5-20250929", "input_tokens")] == 2_000_000
    assert by_kind[("gpt-4o-mini-2024-07-18", "tokens")] == 800_000


def test_rate_limits_keep_only_the_latest_observation(db_path: Path) -> None:
    from tokenplan.collect.sdk.rate_limit_headers import read_rate_limits as parse
    from tokenplan.store.rate_limits import record_rate_limits

    def seen(limit: str, minute: int) -> list[Any]:
        headers = {"x-ratelimit-limit-requests": limit, "x-ratelimit-remaining-requests": "1"}
        return parse(
            headers.get,
            provider="openai",
            model="gpt-4o",
            key_id=None,
            observed_at=datetime(2025, 6, 1, 12, minute, tzinfo=UTC),
        )

    with open_store(db_path) as store:
        record_rate_limits(store, seen("500", 5))
        record_rate_limits(store, seen("300", 1))  # older: ignored
        assert [lim.limit for lim in read_rate_limits(store)] == [500]
        record_rate_limits(store, seen("5000", 9))
        assert [lim.limit for lim in read_rate_limits(store)] == [5000]


class Collector:
    """A loopback stand-in of the service's ``POST /v1/events`` (bearer, gzip, idempotent)."""

    def __init__(self, port: int, *, flaky: bool = False) -> None:
        self.events: dict[str, UsageEvent] = {}
        self.posts = 0
        self.flaky = flaky  # every other post answers 503
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                owner.posts += 1
                body = self.rfile.read(int(self.headers["content-length"]))
                if owner.flaky and owner.posts % 2:
                    return self._answer(503, {"detail": "busy"})
                if self.headers.get("authorization") != f"Bearer {TOKEN}":
                    return self._answer(401, {"detail": "bad token"})
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                rows = json.loads(body)
                accepted = duplicates = 0
                for i, row in enumerate(rows):
                    event = UsageEvent.from_mapping(row, source="body", line=i)
                    if event.request_id in owner.events:
                        duplicates += 1
                    else:
                        owner.events[str(event.request_id)] = event
                        accepted += 1
                self._answer(200, {"accepted": accepted, "duplicates": duplicates})

            def _answer(self, status: int, value: Any) -> None:
                data = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_collector_down_spools_then_replays_without_double_counting(tmp_path: Path) -> None:
    port = _free_port()
    spool = Spool(tmp_path / "spool.ndjson")
    sink = CollectorSink(f"http://127.0.0.1:{port}", token=TOKEN, spool=spool, timeout=2)
    unknown = ParsedCall(
        UsageEvent(
            ts=datetime(2025, 6, 1, tzinfo=UTC),
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=0,
            output_tokens=0,
            request_id="req-unknown",
            tokens_known=False,
        ),
        [],
    )
    sink.write([_event(i) for i in range(3)] + [unknown])  # nobody listens: all spooled
    assert (sink.stats.sent, sink.stats.spooled) == (0, 4)
    assert len(spool.read()) == 4
    assert TOKEN not in spool.path.read_text()
    collector = Collector(port)
    try:
        sink.write([_event(i) for i in range(2, 6)])  # replays the spool, then sends these
        assert spool.size() == 0
        assert sink.stats.replayed == 4
        # req-2 was spooled and sent again: the collector counts it once.
        assert sorted(collector.events) == sorted([f"req-{i}" for i in range(6)] + ["req-unknown"])
        assert collector.events["req-unknown"].tokens_known is False
        assert collector.events["req-4"].input_tokens == 104
    finally:
        collector.close()


def test_a_wrong_token_spools_instead_of_losing_events(tmp_path: Path) -> None:
    port = _free_port()
    collector = Collector(port)
    try:
        sink = CollectorSink(
            f"http://127.0.0.1:{port}/v1/events", token="wrong", spool=tmp_path / "s.ndjson"
        )
        sink.write([_event(1)])
        assert (sink.stats.sent, sink.stats.spooled, collector.events) == (0, 1, {})
    finally:
        collector.close()


@contextmanager
def _held(db: Path, seconds: float) -> Iterator[subprocess.Popen[bytes]]:
    """Another process holding the store read-only (as `tokenplan report` does) for a while."""
    code = (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
        "print('held', flush=True); time.sleep(float(sys.argv[2]))"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(db), str(seconds)], stdout=subprocess.PIPE
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"held\n"
        try:
            yield holder
        finally:
            holder.kill()


def test_a_store_another_process_holds_spools_the_batch_and_writes_it_later(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    open_store(db_path).close()
    sink = StoreSink(db_path, lock_wait=0.2)
    with _held(db_path, 30) as holder:
        sink.write([_event(i) for i in range(3)])
        sink.write([_event(i) for i in range(3, 5)])
    assert sink.spool is not None
    assert sink.spooled == 5
    assert len(sink.spool.read()) == 5
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # Told once per hold, not once a batch: the second batch is logged below warnings.
    assert len(warned) == 1
    assert f"in use by another process (PID {holder.pid}); 3 events spooled" in warned[0]
    with open_store(db_path, mode="read") as store:
        assert store.summary().rows == 0
    sink.write([_event(i) for i in range(4, 8)])  # req-4 was spooled too: counted once
    assert sink.spool.size() == 0
    with open_store(db_path, mode="read") as store:
        s = store.summary()
        assert (s.rows, s.input_tokens) == (8, sum(100 + i for i in range(8)))


def test_a_holder_that_lets_go_within_the_wait_costs_no_spool(db_path: Path) -> None:
    open_store(db_path).close()
    sink = StoreSink(db_path, lock_wait=20)
    with _held(db_path, 0.5):
        sink.write([_event(1)])
    assert sink.spooled == 0
    with open_store(db_path, mode="read") as store:
        assert store.summary().rows == 1


_WRITER = """
import sys
from datetime import UTC, datetime
from decimal import Decimal
from tokenplan.collect.sdk import StoreSink
from tokenplan.collect.sdk.provider_calls import ParsedCall
from tokenplan.errors import StoreLocked
from tokenplan.events import UsageEvent

db, name = sys.argv[1], sys.argv[2]
sink = StoreSink(db, lock_wait=0.01)
for batch in range(15):
    sink.write([
        ParsedCall(UsageEvent(ts=datetime(2025, 6, 1, 12, batch, i, tzinfo=UTC),
                              provider="openai", model="gpt-4o", input_tokens=1,
                              output_tokens=1, request_id=f"{name}-{batch}-{i}"), [])
        for i in range(40)
    ])
print(sink.spooled)
"""


def test_app_processes_sharing_one_store_lose_no_event(db_path: Path) -> None:
    """Three processes write batches to one store while a reader keeps opening it; with a
    wait too short to queue behind each other, batches go through the shared spool."""
    open_store(db_path).close()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(db_path), f"w{n}"], stdout=subprocess.PIPE
        )
        for n in range(3)
    ]
    while any(w.poll() is None for w in writers):
        try:
            with open_store(db_path, mode="read", wait=0.01) as store:
                store.summary()
        except StoreLocked:
            pass
    spooled = [int(w.communicate()[0]) for w in writers]
    assert all(w.returncode == 0 for w in writers)
    StoreSink(db_path).write([])  # the next batch writes what the last one left waiting
    with open_store(db_path, mode="read") as store:
        assert store.summary().rows == 3 * 15 * 40
    assert sum(spooled) > 0  # the spool was exercised, not bypassed


_POSTER = """
import sys
from datetime import UTC, datetime
from tokenplan.collect.sdk import CollectorSink
from tokenplan.collect.sdk.provider_calls import ParsedCall
from tokenplan.events import UsageEvent

url, token, spool, name = sys.argv[1:5]
sink = CollectorSink(url, token=token, spool=spool, timeout=5)
for batch in range(20):
    sink.write([
        ParsedCall(UsageEvent(ts=datetime(2025, 6, 1, 12, batch, i, tzinfo=UTC),
                              provider="openai", model="gpt-4o", input_tokens=1,
                              output_tokens=1, request_id=f"{name}-{batch}-{i}"), [])
        for i in range(10)
    ])
print(sink.stats.spooled, sink.stats.replayed)
"""


def test_app_processes_sharing_one_spool_lose_no_event(tmp_path: Path) -> None:
    """Worker processes of one app often share a spool path; with the collector refusing every
    other post, they append, replay and clear it at once, and every event still arrives."""
    port = _free_port()
    collector = Collector(port, flaky=True)
    spool = tmp_path / "shared.ndjson"
    url = f"http://127.0.0.1:{port}"
    try:
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", _POSTER, url, TOKEN, str(spool), f"w{n}"],
                stdout=subprocess.PIPE,
            )
            for n in range(4)
        ]
        counts = [w.communicate(timeout=120)[0].split() for w in workers]
        assert all(w.returncode == 0 for w in workers)
        collector.flaky = False
        assert CollectorSink(url, token=TOKEN, spool=spool).replay()
        assert sum(int(spooled) for spooled, _ in counts) > 0
        assert len(collector.events) == 4 * 20 * 10
    finally:
        collector.close()


def test_spool_is_bounded_and_skips_torn_lines(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.ndjson", max_bytes=250)  # 72-byte lines: three fit
    assert spool.append([{"request_id": f"r{i}", "pad": "x" * 40} for i in range(10)]) == 3
    assert spool.dropped == 7
    with open(spool.path, "ab") as f:
        f.write(b'{"request_id": "torn')  # a crash mid-write
    assert [r["request_id"] for r in spool.read()] == ["r0", "r1", "r2"]
    assert spool.unreadable == 1


def test_a_full_batcher_never_blocks_the_caller() -> None:
    release = threading.Event()

    def slow(batch: Sequence[int]) -> None:
        release.wait(10)

    batcher = EventBatcher(slow, capacity=5, batch_size=1, flush_interval=0.01, on_full="drop_new")
    batcher.submit(0)
    time.sleep(0.1)  # the worker holds item 0 and waits in `slow`
    start = time.perf_counter()
    accepted = [batcher.submit(i) for i in range(1, 1001)]
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5  # 1,000 submits while the sink is stuck: no waiting
    assert accepted.count(True) == 5
    stats = batcher.stats()
    assert (stats.submitted, stats.dropped) == (1001, 995)
    release.set()
    assert batcher.flush(5)
    assert batcher.stats().delivered == 6
    batcher.close()


def test_drop_oldest_keeps_the_newest_items() -> None:
    got: list[int] = []
    release = threading.Event()

    def deliver(batch: Sequence[int]) -> None:
        release.wait(10)
        got.extend(batch)

    batcher = EventBatcher(deliver, capacity=3, batch_size=10, flush_interval=0.01)
    batcher.submit(0)
    time.sleep(0.1)
    for i in range(1, 8):
        batcher.submit(i)
    release.set()
    assert batcher.flush(5)
    batcher.close()
    assert got == [0, 5, 6, 7]
    assert batcher.stats().dropped == 4


def test_the_store_sink_prices_calls_by_default(db_path: Path) -> None:
    """An instrumented app's calls cost money: without a price the budgets would not see them."""
    StoreSink(db_path).write([_event(0)])  # gpt-4o: 100 in, 10 out
    with open_store(db_path, mode="read") as store:
        [(cost, computed)] = store.connection.execute(
            "SELECT cost_usd, cost_computed FROM usage"
        ).fetchall()
    assert cost == Decimal("0.00035")  # 100 x $2.50/M + 10 x $10/M
    assert computed is True
