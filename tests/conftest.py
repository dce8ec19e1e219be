"""Shared fixtures: paths to the real traces bundled under tests/data/shared."""

from __future__ import annotations

from pathlib import Path

import pytest

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
def metrics_world(tmp_path_factory: pytest.TempPathFactory) -> object:
    """A store, its plan and a scraped metrics collector (tests/metrics_world.py), built once."""
    from metrics_world import build_world

    world = build_world(tmp_path_factory.mktemp("metrics"))
    yield world
    world.collector.close()
    world.store.close()
