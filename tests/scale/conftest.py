"""Real engines for the scale-out tests, and the small forecast they all run.

The panel is real: the `PANEL` busiest ServeGen clients (Alibaba Bailian production traffic,
tests/data/shared/servegen_language), hourly requests over 14 days, forecast 24 hours ahead.
Each engine starts once per test module that asks for it and stops when the module is done:
left running, a Dask cluster's worker processes kept using CPU (and showed up as children) while
the rest of the suite ran on the same pytest worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from scale_checks import HORIZON, PANEL

from tokenplan.forecast import ForecastResult, forecast

CLIENTS = (
    Path(__file__).parents[1] / "data" / "shared" / "servegen_language" / "clients_10min.csv.gz"
)


@pytest.fixture(scope="session")
def clients() -> pd.DataFrame:
    """``unique_id, ds, y``: hourly requests of the `PANEL` busiest clients."""
    raw = pd.read_csv(CLIENTS, usecols=["timestamp", "model", "client", "requests"])
    raw["ds"] = pd.to_datetime(raw["timestamp"]).dt.tz_localize(None).dt.floor("1h")
    raw["unique_id"] = raw["model"] + "/client-" + raw["client"].astype(str)
    hourly = raw.groupby(["unique_id", "ds"], as_index=False)["requests"].sum()
    busiest = hourly.groupby("unique_id")["requests"].sum().nlargest(PANEL).index
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


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def ray_runtime() -> Iterator[None]:
    """A real local Ray runtime on two CPUs, shut down at the end."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
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
