"""An acknowledged event survives SIGKILL: `tokenplan serve` killed mid-load, restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from app_harness import SRC, TOKEN, free_port

from tokenplan.store import open_store

CLIENTS = 4
BATCH = 100


def serve(db: Path, port: int, tokens: Path, log: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "tokenplan", "serve", "--db", str(db), "--port", str(port)]
    args += ["--token-file", str(tokens), "--refresh", "3600", "--log-level", "warning"]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": SRC}
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"the server did not come up: {log.read_text()}")


def body(batch: str) -> bytes:
    return json.dumps(
        [
            {
                "ts": "2025-03-08T01:00:00Z",
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "input_tokens": 1000,
                "output_tokens": 10,
                "request_id": f"{batch}-{i}",
            }
            for i in range(BATCH)
        ]
    ).encode()


def post(client: httpx.Client, batch: str) -> dict[str, int]:
    response = client.post(
        "/v1/events",
        content=body(batch),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    response.raise_for_status()
    return dict(response.json())


def test_acknowledged_events_survive_sigkill_and_retries_count_once(tmp_path: Path) -> None:
    db, port, log = tmp_path / "s.duckdb", free_port(), tmp_path / "server.log"
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    acked: set[str] = set()
    sent: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def client(index: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            n = 0
            while not stop.is_set():
                batch = f"c{index}-{n}"
                n += 1
                with lock:
                    sent.add(batch)
                try:
                    post(http, batch)
                except httpx.TransportError:
                    return  # the server is gone; what was not acknowledged is retried below
                with lock:
                    acked.add(batch)

    proc = serve(db, port, tokens, log)
    try:
        wait_ready(port, proc, log)
        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        # Mid-load: requests are in flight, some committed but not yet answered.
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
    for t in threads:
        t.join(30)
    assert len(acked) >= 20
    unanswered = sent - acked

    proc = serve(db, port, tokens, log)
    try:
        wait_ready(port, proc, log)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            # Clients retry what got no answer, and one whose answer they lost.
            retried = [post(http, batch) for batch in sorted(unanswered)]
            again = post(http, sorted(acked)[0])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert again == {"accepted": 0, "duplicates": BATCH}
    assert sum(r["accepted"] + r["duplicates"] for r in retried) == len(unanswered) * BATCH

    with open_store(db, mode="read") as store:
        counts = dict(
            store.connection.execute(
                "SELECT request_id, count(*) FROM usage GROUP BY request_id"
            ).fetchall()
        )
    expected = {f"{batch}-{i}" for batch in sent for i in range(BATCH)}
    acknowledged = {f"{batch}-{i}" for batch in acked for i in range(BATCH)}
    assert acknowledged <= counts.keys()  # nothing acknowledged was lost
    assert set(counts) == expected  # nothing appeared that was not sent
    assert set(counts.values()) == {1}  # nothing counted twice


def test_commits_are_fsynced() -> None:
    # DuckDB writes each commit to its WAL and fsyncs it before COMMIT returns unless
    # fsync_mode is NONE; the sink's durability rests on that default.
    with open_store(":memory:") as store:
        mode = store.connection.execute("SELECT current_setting('fsync_mode')").fetchone()
    assert mode == ("STANDARD",)
    assert os.name == "posix"
