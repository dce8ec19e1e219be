"""``/metrics`` over real loopback HTTP (prometheus-client's own server), scraped while writing.

The service's FastAPI route is the lead's wiring; this proves the collector behind it over a
real socket, in both formats, from the server's threads while another thread writes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from metrics_world import FixedPlans, World, samples, usage_events
from tokenplan.events import events_to_table
from tokenplan.service.metrics import register_metrics
from tokenplan.store import open_store
from tokenplan.store.queries import queries_for


@contextmanager
def serving(registry: CollectorRegistry) -> Iterator[str]:
    """prometheus-client's HTTP server for ``registry`` on a free 127.0.0.1 port."""
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_metrics_over_http_are_the_collectors(metrics_world: World) -> None:
    with serving(metrics_world.registry) as url:
        plain = httpx.get(url, timeout=30)
        open_metrics = httpx.get(
            url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}, timeout=30
        )
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    for name in ("tokenplan_tokens_total", "tokenplan_forecast_tokens", "tokenplan_plan_ready"):
        assert samples(plain.text, name) == metrics_world.samples(name)
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in text_string_to_metric_families(open_metrics.text)}
    assert families["tokenplan_tokens"].type == "counter"
    assert families["tokenplan_budget_overrun_probability"].type == "gauge"


def test_scrapes_from_server_threads_while_a_writer_writes(tmp_path: Path) -> None:
    store = open_store(tmp_path / "busy.duckdb")
    registry = CollectorRegistry()
    register_metrics(registry, totals=queries_for(store), plans=FixedPlans(None))
    events = usage_events(days=2, seed=3)
    batches = [events[i : i + 50] for i in range(0, len(events), 50)]
    done = threading.Event()

    def write() -> None:
        try:
            for batch in batches:
                store.write(events_to_table(batch))
        finally:
            done.set()

    seen: list[float] = []
    writer = threading.Thread(target=write)
    with serving(registry) as url, httpx.Client(timeout=30) as client:
        writer.start()
        while not done.is_set() or len(seen) < 3:
            reply = client.get(url)
            assert reply.status_code == 200, reply.text
            seen.append(sum(samples(reply.text, "tokenplan_tokens_total").values()))
        writer.join(30)
        final = sum(samples(client.get(url).text, "tokenplan_tokens_total").values())
    store.close()
    assert seen == sorted(seen)  # counters never went down
    written = sum(e.input_tokens + e.output_tokens + e.cache_read_tokens for e in events)
    assert final == written
