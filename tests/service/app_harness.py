"""What the service tests share: a store of hourly events, the app over it, and a client."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry

from tokenplan.capacity import PlanSettings
from tokenplan.events import UsageEvent, events_to_table
from tokenplan.service.app import make_app
from tokenplan.service.auth import Tokens
from tokenplan.service.plans import PlanConfig, PlanRefresher
from tokenplan.service.settings import ServiceSettings
from tokenplan.service.sinks import DuckDBSink
from tokenplan.store import DuckDBStore, open_store

SRC = str(Path(__file__).resolve().parents[2] / "src")
TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START = datetime(2025, 3, 3, tzinfo=UTC)
HOURS = 120
# Small and fast, as the plan tests elsewhere use.
PLAN = PlanSettings(horizon_hours=24, train_days=14)
BUDGETS = (
    '[[budget]]\nname = "month"\namount = 40\nperiod = "month"\n\n'
    '[[budget]]\nname = "sonnet day"\nscope = "model"\nmatch = "claude-sonnet-4-5"\n'
    'amount = 1\nperiod = "day"\n'
)
LIMITS = (
    '[current_tier]\nanthropic = "t1"\n\n'
    '[[rate_limit]]\nprovider = "anthropic"\nfamily = "sonnet"\n'
    'models = ["claude-sonnet-4*"]\ntier = "t1"\nrank = 1\nrpm = 20\nitpm = 500_000\n\n'
    '[[rate_limit]]\nprovider = "anthropic"\nfamily = "sonnet"\n'
    'models = ["claude-sonnet-4*"]\ntier = "t2"\nrank = 2\nrpm = 4_000\nitpm = 4_000_000\n'
)


def hourly_events(hours: int = HOURS, seed: int = 5) -> list[UsageEvent]:
    """A few calls an hour on two models over ``hours``, with a daily cycle and costs."""
    rng = np.random.default_rng(seed)
    events = []
    for h in range(hours):
        usual = 4 + 3 * np.sin(2 * np.pi * (h % 24 - 6) / 24)
        for model, share in (("claude-sonnet-4-5", 1.0), ("claude-haiku-4-5", 0.5)):
            for i in range(int(rng.poisson(usual * share)) + 1):
                events.append(
                    UsageEvent(
                        ts=START + timedelta(hours=h, minutes=int(rng.integers(0, 60))),
                        provider="anthropic",
                        model=model,
                        input_tokens=int(rng.integers(500, 3000)),
                        output_tokens=int(rng.integers(50, 800)),
                        cost_usd=Decimal("0.01") * (i + 1),
                        team=("search", "chat")[i % 2],
                        request_id=f"seed-{h}-{model}-{i}",
                    )
                )
    return events


@dataclass
class StubResult:
    """What the forecast engine returns, for a stand-in forecaster."""

    frame: pd.DataFrame
    notes: list[str]


def repeat_last_day(
    frame: pd.DataFrame, horizon: int, freq: str = "1h", levels: Sequence[int] = (80, 95)
) -> StubResult:
    """A fast stand-in for the forecast engine: the last day again, with fixed ranges."""
    out = []
    for uid, part in frame.groupby("unique_id", sort=False):
        part = part.sort_values("ds")
        season = part["y"].to_numpy()[-24:]
        ds = pd.date_range(part["ds"].iloc[-1] + pd.Timedelta(freq), periods=horizon, freq=freq)
        fc = pd.DataFrame(
            {
                "unique_id": uid,
                "ds": ds,
                "mean": [float(season[i % len(season)]) for i in range(horizon)],
            }
        )
        for level, width in zip(levels, (0.1, 0.25), strict=False):
            fc[f"lo_{level}"] = fc["mean"] * (1 - width)
            fc[f"hi_{level}"] = fc["mean"] * (1 + width)
        out.append(fc)
    return StubResult(pd.concat(out, ignore_index=True), ["stand-in (tests)"])


def seeded_store(path: Path) -> Path:
    """A store file holding `hourly_events` (closed again, so other processes may open it)."""
    with open_store(path) as store:
        store.write(events_to_table(hourly_events(), source="seed"))
    return path


def event_json(i: int, **fields: Any) -> dict[str, Any]:
    """One valid event as a client posts it."""
    base = {
        "ts": "2025-03-08T01:00:00Z",
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "input_tokens": 1000 + i,
        "output_tokens": 200,
        "team": "search",
        "request_id": f"r-{i}",
    }
    return {**base, **fields}


@dataclass
class Service:
    """The app and what it runs on, for one test."""

    store: DuckDBStore
    sink: DuckDBSink
    plans: PlanRefresher
    registry: CollectorRegistry
    settings: ServiceSettings
    app: Any

    def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request through the ASGI app (in-process, no socket)."""

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(go())

    def post(self, body: Any, **kwargs: Any) -> httpx.Response:
        """POST ``body`` (JSON-encoded unless bytes) to /v1/events with the token."""
        headers = {**AUTH, "Content-Type": "application/json", **kwargs.pop("headers", {})}
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.call("POST", "/v1/events", content=content, headers=headers, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """GET ``url`` with the token."""
        return self.call("GET", url, headers={**AUTH, **kwargs.pop("headers", {})}, **kwargs)

    def rows(self) -> int:
        """Rows in the store, read as another thread would."""
        reader = self.store.reader()
        try:
            return reader.summary().rows
        finally:
            reader.close()


@contextmanager
def running(
    db: Path,
    *,
    config: PlanConfig | None = None,
    settings: ServiceSettings | None = None,
    forecaster: Any = repeat_last_day,
    **kwargs: Any,
) -> Iterator[Service]:
    """The app over the store at ``db``; its plans refresh only when a test asks.

    Plans use a fast stand-in forecaster unless ``forecaster=None`` (the real engine).
    """
    store = open_store(db)
    plans = PlanRefresher(
        store.reader, config or PlanConfig(settings=PLAN), interval=3600, forecaster=forecaster
    )
    sink = DuckDBSink(store, on_commit=[plans.data_changed])
    registry = CollectorRegistry()
    settings = settings or ServiceSettings(tokens=Tokens([TOKEN]))
    app = make_app(
        settings, sink=sink, plans=plans, registry=registry, reader=store.reader, **kwargs
    )
    try:
        yield Service(store, sink, plans, registry, settings, app)
    finally:
        plans.close()
        sink.close()
        store.close()


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_json(*args: str) -> Any:
    """Run ``tokenplan ARGS`` in this process and parse its JSON output."""
    from typer.testing import CliRunner

    from tokenplan.cli import app

    done = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert done.exit_code in (0, 1), done.output
    return json.loads(done.stdout)
