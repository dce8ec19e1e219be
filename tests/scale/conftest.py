"""Real engines for the scale-out tests, and the small forecast they all run.

The panel is real: the ten busiest ServeGen clients (Alibaba Bailian production traffic,
tests/data/shared/servegen_language), hourly requests over 14 days, forecast 24 hours ahead.
Each engine starts once per session, only when a test of its module asks for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tokenplan.forecast import ForecastResult, forecast

CLIENTS = (
    Path(__file__).parents[1] / "data" / "shared" / "servegen_language" / "clients_10min.csv.gz"
)
HORIZON = 24


@pytest.fixture(scope="session")
def clients() -> pd.DataFrame:
    """``unique_id, ds, y``: hourly requests of the ten busiest clients."""
    raw = pd.read_csv(CLIENTS, usecols=["timestamp", "model", "client", "requests"])
    raw["ds"] = pd.to_datetime(raw["timestamp"]).dt.tz_localize(None).dt.floor("1h")
    raw["unique_id"] = raw["model"] + "/client-" + raw["client"].astype(str)
    hourly = raw.groupby(["unique_id", "ds"], as_index=False)["requests"].sum()
    busiest = hourly.groupby("unique_id")["requests"].sum().nlargest(10).index
    out = hourly[hourly["unique_id"].isin(busiest)].rename(columns={"requests": "y"})
    return out.reset_index(drop=True)


@pytest.fixture(scope="session")
def local_result(clients: pd.DataFrame) -> ForecastResult:
    """The local engine's forecast, what every engine must agree with."""
    return forecast(clients, horizon=HORIZON)


@pytest.fixture(scope="session")
def local_total(clients: pd.DataFrame) -> ForecastResult:
    """The local engine's forecast with a coherent total."""
    return forecast(clients, horizon=HORIZON, hierarchy="total")


@pytest.fixture(scope="session")
def dask_client() -> Iterator[object]:
    """A real Dask LocalCluster: two single-threaded worker processes."""
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            # No dashboard, and the scheduler's HTTP server on a free port, not 8787.
            dashboard_address=":0",
            scheduler_kwargs={"dashboard": False},
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def ray_runtime() -> Iterator[None]:
    """A real local Ray runtime on two CPUs, shut down at the end."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """A real local Spark session (``local[2]``, no UI, nothing downloaded)."""
    from tokenplan.scale.engines import spark_session

    session = spark_session("local[2]")
    # Two cores: a shuffle into 200 partitions is 200 tiny tasks for a few shards.
    session.conf.set("spark.sql.shuffle.partitions", "2")
    try:
        yield session
    finally:
        session.stop()


def assert_agrees(result: ForecastResult, local: ForecastResult) -> None:
    """Same series and buckets; means within 1%; chosen-method coverage within one point."""
    got = result.frame.set_index(["unique_id", "ds"]).sort_index()
    want = local.frame.set_index(["unique_id", "ds"]).sort_index()
    assert got.index.equals(want.index)
    means = got["mean"].groupby(level=0).sum() / want["mean"].groupby(level=0).sum()
    assert (means - 1).abs().max() <= 0.01, means
    for column in ("coverage_80", "coverage_95"):
        mine = result.backtest.loc[result.backtest["chosen"], column].mean()
        theirs = local.backtest.loc[local.backtest["chosen"], column].mean()
        assert abs(mine - theirs) <= 0.01, (column, mine, theirs)


def assert_identical(result: ForecastResult, local: ForecastResult) -> None:
    """One shard is the local engine's work: the same numbers, bit for bit."""
    assert_agrees(result, local)
    pd.testing.assert_frame_equal(result.frame, local.frame)
    pd.testing.assert_frame_equal(result.backtest, local.backtest)
    assert result.chosen == local.chosen
    assert set(result.paths) == set(local.paths)
    for uid, path in local.paths.items():
        assert (result.paths[uid].point == path.point).all()
        assert result.paths[uid].errors.tobytes() == path.errors.tobytes()
    # The same reasoning, and where the work ran.
    for uid, note in local.notes.items():
        assert result.notes[uid].split(";")[0] == note.split(";")[0]
        assert "fitted on " in result.notes[uid]
