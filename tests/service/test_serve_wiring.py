"""`tokenplan serve` as shipped: /metrics carries the collector, and counts what was posted."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
from app_harness import AUTH, free_port
from prometheus_client.parser import text_string_to_metric_families
from test_durability import body, serve, wait_ready


def test_serve_exposes_store_totals_on_metrics(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(AUTH["Authorization"].removeprefix("Bearer ") + "\n")
    port, log = free_port(), tmp_path / "server.log"
    proc = serve(tmp_path / "s.duckdb", port, tokens, log)
    try:
        wait_ready(port, proc, log)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            headers = {**AUTH, "Content-Type": "application/json"}
            assert client.post("/v1/events", content=body("a"), headers=headers).is_success
            scraped = client.get("/metrics", headers=AUTH)
            refused = client.get("/metrics")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert refused.status_code == 401
    samples = {
        (s.name, s.labels.get("kind")): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
        if s.name == "tokenplan_tokens_total"
    }
    # body("a"): 100 events of 1,000 input and 10 output tokens.
    assert samples[("tokenplan_tokens_total", "input")] == 100_000
    assert samples[("tokenplan_tokens_total", "output")] == 1_000
