"""Shared fixtures: the real traces bundled under tests/data/shared, and a real Redis server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redis_server import INSTALL_HINT, RedisServer, redis_server_path

DATA = Path(__file__).parent / "data" / "shared"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the real public traces (each with its SOURCE.md)."""
    return DATA


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh DuckDB file path for one test."""
    return tmp_path / "tokenplan.duckdb"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free loopback port for the session (fails if not installed)."""
    if redis_server_path() is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the session's Redis server, emptied (FLUSHALL) before the test."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def metrics_world(tmp_path_factory: pytest.TempPathFactory) -> object:
    """A store, its plan and a scraped metrics collector (tests/metrics_world.py), built once."""
    from metrics_world import build_world

    world = build_world(tmp_path_factory.mktemp("metrics"))
    yield world
    world.collector.close()
    world.store.close()
