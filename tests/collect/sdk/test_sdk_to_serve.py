"""End to end over loopback: an instrumented SDK and an OpenTelemetry exporter feed a real
`tokenplan serve`, which stores (and prices) what they report, exactly once."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import fake_provider as fp
import httpx
import openai
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tokenplan.collect.sdk import CollectorSink, Recorder, instrument
from tokenplan.store import open_store

SRC = str(Path(__file__).resolve().parents[3] / "src")
TOKEN = "e2e-collector-token-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A running `tokenplan serve`: its URL, its store, and a clean stop (SIGTERM)."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, db: Path, log: Path) -> None:
        self.proc, self.url, self.db, self.log = proc, url, db, log

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        assert self.proc.returncode == 0, self.log.read_text()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Served]:
    """`tokenplan serve` on a free loopback port over a new store."""
    tokens, db, log = tmp_path / "tokens", tmp_path / "s.duckdb", tmp_path / "serve.log"
    tokens.write_text(TOKEN + "\n")
    port = _free_port()
    args = [sys.executable, "-m", "tokenplan", "serve", "--db", str(db), "--port", str(port)]
    args += ["--token-file", str(tokens), "--refresh", "3600", "--log-level", "warning"]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": SRC}, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield Served(proc, url, db, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def _stored(db: Path) -> dict[str, dict[str, Any]]:
    with open_store(db, mode="read") as store:
        rows = store.connection.sql("SELECT * FROM usage").to_arrow_table().to_pylist()
    return {row["model"]: row for row in rows}


def test_instrumented_clients_and_otel_spans_reach_the_store_through_serve(
    service: Served, tmp_path: Path
) -> None:
    url = service.url
    sink = CollectorSink(url, token=TOKEN, spool=tmp_path / "spool.ndjson", timeout=10)
    recorder = Recorder(sink)
    with fp.FakeProvider() as provider:
        provider.replies.extend([fp.chat_completion(), fp.message(), fp.chat_completion()])
        gpt = instrument(
            openai.OpenAI(api_key="sk-e2e-secret", base_url=provider.url + "/v1", max_retries=0),
            team="search",
            recorder=recorder,
        )
        claude = instrument(
            anthropic.Anthropic(api_key="sk-ant-e2e-secret", base_url=provider.url, max_retries=0),
            feature="summaries",
            recorder=recorder,
        )
        gpt.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        claude.messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
        # The provider's request id repeats: a retried call is stored once.
        gpt.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert recorder.flush(30)
        gpt.close()
        claude.close()
    recorder.close()
    assert (sink.stats.sent, sink.stats.spooled) == (3, 0)

    tracing = TracerProvider()
    tracing.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(
                endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {TOKEN}"}
            )
        )
    )
    with tracing.get_tracer("e2e").start_as_current_span("chat gemini") as span:
        span.set_attributes(
            {
                "gen_ai.provider.name": "google",
                "gen_ai.request.model": "gemini-2.5-flash",
                "gen_ai.usage.input_tokens": 4000,
                "gen_ai.usage.output_tokens": 200,
            }
        )
    tracing.shutdown()

    service.stop()  # the store has one writer: read it once the service is gone
    rows = _stored(service.db)
    assert set(rows) == {
        "gpt-4o-2024-08-06",
        "claude-sonnet-4-5-20250929",
        "gemini-2.5-flash",
    }
    gpt_row, claude_row, span_row = (
        rows["gpt-4o-2024-08-06"],
        rows["claude-sonnet-4-5-20250929"],
        rows["gemini-2.5-flash"],
    )
    assert (gpt_row["input_tokens"], gpt_row["cache_read_tokens"], gpt_row["team"]) == (
        1200,
        1024,
        "search",
    )
    # Anthropic's input excludes cache reads and writes; the store's includes them.
    assert (claude_row["input_tokens"], claude_row["feature"]) == (1112, "summaries")
    assert (span_row["input_tokens"], span_row["output_tokens"]) == (4000, 200)
    # Sent without a cost, priced by the service from list prices.
    assert all(row["cost_usd"] is not None and row["cost_usd"] > 0 for row in rows.values())
    assert "sk-e2e-secret" not in (tmp_path / "serve.log").read_text()


def test_a_refused_batch_is_logged_with_the_services_reason(
    service: Served, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A client whose clock runs a day fast: the service refuses its batch (422), and the
    client's log says why, not only "HTTP 422"."""
    from datetime import UTC, datetime, timedelta

    from tokenplan.collect.sdk.provider_calls import ParsedCall
    from tokenplan.events import UsageEvent

    sink = CollectorSink(service.url, token=TOKEN, spool=tmp_path / "spool.ndjson")
    ahead = UsageEvent(
        ts=datetime.now(UTC) + timedelta(days=1),
        provider="openai",
        model="gpt-4o",
        input_tokens=1,
        output_tokens=1,
        request_id="fast-clock",
    )
    sink.write([ParsedCall(ahead, [])])
    assert sink.stats.rejected == 1
    assert "(HTTP 422): item 0, field 'ts'" in caplog.text
    assert "after this collector's clock" in caplog.text
    assert TOKEN not in caplog.text
    service.stop()
