"""Call-path overhead of `tokenplan.instrument` (target: < 50 µs per call).

Two figures: (1) the hooks' own work per call (request hook, response hook, body pass-through,
close and queueing), timed in-process on real httpx2 responses; (2) end-to-end median latency
of an openai client over loopback with and without instrumentation, interleaved (loopback noise
is of the same order, so (1) is the precise one).

    PYTHONPATH=src python bench/instrument.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx2
import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "collect" / "sdk"))
import fake_provider as fp

from tokenplan.collect.sdk import Recorder, instrument
from tokenplan.collect.sdk.hooks import CallHooks


class NullSink:
    """Parses happen on the batcher thread; the sink drops them."""

    def write(self, calls: Sequence[object]) -> None:
        pass


def hook_overhead(n: int) -> float:
    """Median µs the hooks add to one non-streamed call (in-process, no network)."""
    recorder = Recorder(NullSink(), capacity=n + 10, close_at_exit=False)
    hooks = CallHooks(provider="openai", labels={}, submit=recorder.submit)
    request_hook, response_hook = hooks.sync_hooks()
    reply = fp.chat_completion()
    body = json.dumps(reply.body).encode()
    req_body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    url = "http://127.0.0.1/v1/chat/completions"
    samples = []
    for _ in range(n):
        request = httpx2.Request("POST", url, content=req_body.encode())
        response = httpx2.Response(
            200, headers=reply.headers, stream=httpx2.ByteStream(body), request=request
        )
        t0 = time.perf_counter()
        request_hook(request)
        response_hook(response)
        response.read()
        response.close()
        samples.append(time.perf_counter() - t0)
    baseline = []
    for _ in range(n):
        request = httpx2.Request("POST", url, content=req_body.encode())
        response = httpx2.Response(
            200, headers=reply.headers, stream=httpx2.ByteStream(body), request=request
        )
        t0 = time.perf_counter()
        response.read()
        response.close()
        baseline.append(time.perf_counter() - t0)
    recorder.close()
    return (statistics.median(samples) - statistics.median(baseline)) * 1e6


def end_to_end(n: int) -> tuple[float, float]:
    """Median ms per call over loopback: plain client, instrumented client (interleaved)."""
    with fp.FakeProvider() as server:
        server.queue(*[fp.chat_completion() for _ in range(2 * n)])
        recorder = Recorder(NullSink(), capacity=2 * n, close_at_exit=False)
        plain = openai.OpenAI(api_key="k", base_url=server.url + "/v1", max_retries=0)
        wrapped = instrument(
            openai.OpenAI(api_key="k", base_url=server.url + "/v1", max_retries=0),
            recorder=recorder,
        )
        times: dict[str, list[float]] = {"plain": [], "wrapped": []}
        msgs = [{"role": "user", "content": "hi"}]
        for _ in range(n):
            for name, client in (("plain", plain), ("wrapped", wrapped)):
                t0 = time.perf_counter()
                client.chat.completions.create(model="gpt-4o", messages=msgs)  # type: ignore[arg-type]
                times[name].append(time.perf_counter() - t0)
        recorder.flush()
        recorder.close()
        plain.close()
        wrapped.close()
    return statistics.median(times["plain"]) * 1e3, statistics.median(times["wrapped"]) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    print(f"hook work per call (median, in-process): {hook_overhead(args.calls * 5):.1f} µs")
    plain, wrapped = end_to_end(args.calls)
    print(
        f"loopback call, median of {args.calls}: plain {plain:.3f} ms, "
        f"instrumented {wrapped:.3f} ms, difference {(wrapped - plain) * 1e3:.0f} µs"
    )


if __name__ == "__main__":
    main()
