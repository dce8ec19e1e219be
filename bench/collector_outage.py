"""No event lost when the collector is down: an instrumented client keeps calling while
`tokenplan serve` is stopped for ``--down`` seconds, then restarted (target: counts equal).

An openai client, instrumented with a `CollectorSink` (bearer token, local spool), calls a
loopback server that answers like the OpenAI API at about ``--rate`` calls/s: ``--before``
seconds with the collector up, ``--down`` seconds with it stopped (SIGTERM; the sink spools),
``--after`` seconds with it back (the spool is replayed before the next batch). It prints calls
made, events stored (distinct request ids in the store) and what the sink did.

    PYTHONPATH=src python bench/collector_outage.py [--down 60] [--rate 50]
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "collect" / "sdk"))
import fake_provider as fp

from tokenplan.collect.sdk import CollectorSink, Recorder, instrument
from tokenplan.store import open_store

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(db: Path, port: int, tokens: Path, log: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "tokenplan", "serve", "--db", str(db), "--port", str(port)]
    args += ["--token-file", str(tokens), "--refresh", "3600", "--log-level", "warning"]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC)}, stdout=out, stderr=out
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the collector did not start: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the collector did not come up in 120 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=float, default=10.0)
    parser.add_argument("--down", type=float, default=60.0)
    parser.add_argument("--after", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=50.0, help="calls per second")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        token = secrets.token_urlsafe(24)
        tokens, db, log = work / "tokens", work / "s.duckdb", work / "serve.log"
        tokens.write_text(token + "\n")
        port = free_port()
        sink = CollectorSink(f"http://127.0.0.1:{port}", token=token, spool=work / "spool")
        recorder = Recorder(sink, flush_interval=0.5, close_at_exit=False)
        calls = 0
        proc = start(db, port, tokens, log)
        with fp.FakeProvider() as provider:
            client = instrument(
                openai.OpenAI(api_key="sk-bench", base_url=provider.url + "/v1", max_retries=0),
                recorder=recorder,
            )

            def call_for(seconds: float) -> None:
                nonlocal calls
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    provider.queue(fp.chat_completion(rid=f"call-{calls}"))
                    client.chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
                    )
                    calls += 1
                    time.sleep(1 / args.rate)

            call_for(args.before)
            stop(proc)
            down_from = calls
            call_for(args.down)
            spooled_while_down = sink.stats.spooled
            proc = start(db, port, tokens, log)
            call_for(args.after)
            recorder.flush(60)
            client.close()
        recorder.close()
        stop(proc)
        with open_store(db, mode="read") as store:
            stored, distinct = store.connection.execute(
                "SELECT count(*), count(DISTINCT request_id) FROM usage"
            ).fetchone()
    report = {
        "calls_made": calls,
        "calls_while_collector_down": calls - down_from,
        "collector_down_s": args.down,
        "events_spooled_while_down": spooled_while_down,
        "events_replayed": sink.stats.replayed,
        "stored_rows": stored,
        "stored_distinct_request_ids": distinct,
        "lost": calls - distinct,
        "counted_twice": stored - distinct,
    }
    print(json.dumps(report, indent=2))
    print(
        f"\ncollector down {args.down:g} s: {calls:,} calls made ({calls - down_from:,} while it "
        f"was down, {sink.stats.replayed:,} replayed from the spool); {distinct:,} stored: "
        f"{calls - distinct} lost, {stored - distinct} counted twice (target: 0 and 0)"
    )


if __name__ == "__main__":
    main()
