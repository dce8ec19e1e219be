"""`tokenplan serve --redis URL`: collectors write to Redis, one server drains it into the store.

Real processes over loopback: a draining server (the store's one writer) and a collector-only
server (`--no-drain`, no store) share one real Redis; what either acknowledges reaches the
store once, retries across collectors included.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis
from app_harness import AUTH, SRC, TOKEN, free_port
from prometheus_client.parser import text_string_to_metric_families
from test_durability import BATCH, body, wait_ready

from tokenplan.store import open_store

HEADERS = {**AUTH, "Content-Type": "application/json"}


def serve(port: int, tokens: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "tokenplan", "serve", "--port", str(port)]
    args += ["--token-file", str(tokens), "--refresh", "3600", "--log-level", "warning", *extra]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": SRC}
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()


def stored_requests(client: httpx.Client) -> float:
    reply = client.get("/v1/usage", params={"metric": "requests", "freq": "1d"}, headers=AUTH)
    reply.raise_for_status()
    return sum(row["requests"] for row in reply.json()["rows"])


def test_two_collectors_share_redis_and_the_store_counts_each_event_once(
    tmp_path: Path, redis_url: str
) -> None:
    url = redis_url.rsplit("/", 1)[0] + "/7"  # a database of its own on the session's server
    redis.Redis.from_url(url).flushdb()
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    db, log = tmp_path / "s.duckdb", tmp_path / "server.log"
    drain_port, collect_port = free_port(), free_port()
    drainer = serve(drain_port, tokens, log, "--redis", url, "--db", str(db))
    collector = serve(collect_port, tokens, log, "--redis", url, "--no-drain")
    try:
        wait_ready(drain_port, drainer, log)
        wait_ready(collect_port, collector, log)
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{drain_port}", timeout=30) as main,
            httpx.Client(base_url=f"http://127.0.0.1:{collect_port}", timeout=30) as other,
        ):
            first = main.post("/v1/events", content=body("a"), headers=HEADERS).json()
            second = other.post("/v1/events", content=body("b"), headers=HEADERS).json()
            # A client retrying batch "a" through the other collector: known by request_id.
            retry = other.post("/v1/events", content=body("a"), headers=HEADERS).json()
            deadline = time.monotonic() + 60
            while stored_requests(main) < 2 * BATCH and time.monotonic() < deadline:
                time.sleep(0.2)
            drained = stored_requests(main)
            no_plan = other.get("/v1/plan", headers=AUTH)
            no_usage = other.get("/v1/usage", headers=AUTH)
            process = other.get("/metrics", headers=AUTH)
    finally:
        stop(collector)
        stop(drainer)
    assert first == second == {"accepted": BATCH, "duplicates": 0}
    assert retry == {"accepted": 0, "duplicates": BATCH}
    assert drained == 2 * BATCH
    assert no_plan.status_code == no_usage.status_code == 503
    assert "only collects events" in no_plan.json()["error"]
    names = {f.name for f in text_string_to_metric_families(process.text)}
    assert "process_cpu_seconds" in names
    assert drainer.returncode == collector.returncode == 0, log.read_text()
    with open_store(db, mode="read") as store:
        rows = store.connection.execute(
            "SELECT count(*), count(DISTINCT request_id) FROM usage"
        ).fetchone()
    assert rows == (2 * BATCH, 2 * BATCH)
    # The stream was acknowledged after the commit, and trimmed: nothing left to drain twice.
    client = redis.Redis.from_url(url)
    pending = client.xpending("tokenplan:events", "tokenplan-drain")
    assert pending["pending"] == 0


def test_serve_no_drain_without_redis_is_refused(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    reply = subprocess.run(
        [sys.executable, "-m", "tokenplan", "serve", "--no-drain", "--token-file", str(tokens)],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert reply.returncode == 2
    assert "--no-drain" in reply.stderr
    assert "--redis URL" in reply.stderr
