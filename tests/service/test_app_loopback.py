"""The service once over real loopback HTTP: uvicorn on 127.0.0.1, a real client, real logs."""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from app_harness import AUTH, TOKEN, event_json, free_port, running


def test_over_loopback_http(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    with caplog.at_level(logging.INFO), running(tmp_path / "s.duckdb") as service:
        server = uvicorn.Server(
            uvicorn.Config(
                service.app, host="127.0.0.1", port=port, log_level="info", log_config=None
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.started
            base = f"http://127.0.0.1:{port}"
            ndjson = "\n".join(json.dumps(event_json(i)) for i in range(20)).encode()
            headers = {
                **AUTH,
                "Content-Type": "application/x-ndjson",
                "Content-Encoding": "gzip",
            }
            with httpx.Client(base_url=base, timeout=30) as client:
                posted = client.post("/v1/events", content=gzip.compress(ndjson), headers=headers)
                retried = client.post("/v1/events", content=gzip.compress(ndjson), headers=headers)
                usage = client.get("/v1/usage", params={"freq": "1d"}, headers=AUTH)
                refused = client.get("/v1/usage", headers={"Authorization": "Bearer nope"})
                health = client.get("/healthz")
        finally:
            server.should_exit = True
            thread.join(30)
    assert posted.json() == {"accepted": 20, "duplicates": 0}
    assert retried.json() == {"accepted": 0, "duplicates": 20}
    assert usage.json()["rows"] == [
        {"series": "total", "timestamp": "2025-03-08T00:00:00Z", "total_tokens": 20 * 1200 + 190}
    ]
    assert refused.status_code == 401
    assert health.json()["status"] == "ok"
    # uvicorn's access log saw every request, and never the token.
    assert '"POST /v1/events HTTP/1.1" 200' in caplog.text
    assert TOKEN not in caplog.text
