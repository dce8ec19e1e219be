"""The forecast on a real Dask LocalCluster (two worker processes) agrees with the local one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scale_checks import HALF, HORIZON, PANEL, assert_identical
from typer.testing import CliRunner

from tokenplan.cli import app, main
from tokenplan.forecast import Forecaster, ForecastResult, forecast
from tokenplan.scale.shard_rows import shard_count, to_engine_input
from tokenplan.scale.sharded import SHARD_PARTITION


def test_dask_forecast_is_the_local_one(
    dask_client: object, clients: pd.DataFrame, local_result: ForecastResult
) -> None:
    forecaster = Forecaster(horizon=HORIZON, engine=dask_client)
    result = forecaster.fit(clients).predict()
    assert_identical(result, local_result)
    assert forecaster.metadata["engine"] == f"the dask engine, one shard of all {PANEL} series"
    # Period totals from the joint paths work as locally (capacity and budgets use them).
    uid = "m-small/client-5"
    assert result.sum_interval(uid) == local_result.sum_interval(uid)


def test_an_intermittent_clients_sums_on_dask_are_the_local_ones(dask_client: object) -> None:
    # Its sums are bootstrapped from its history, which crosses the engine as bytes.
    rng = np.random.default_rng(0)
    y = np.where(rng.random(24 * 21) < 0.3, rng.lognormal(10, 1, 24 * 21), 0.0)
    ds = pd.date_range("2024-01-01", periods=len(y), freq="1h")
    frame = pd.DataFrame({"unique_id": "quiet", "ds": ds, "y": y})
    local = forecast(frame, horizon=HORIZON, local_models=False)
    result = forecast(frame, horizon=HORIZON, local_models=False, engine=dask_client)
    assert local.paths["quiet"].history is not None
    assert_identical(result, local)
    assert result.sum_interval("quiet") == local.sum_interval("quiet")


def test_dask_total_is_fitted_on_the_driver_and_parts_reconciled(
    dask_client: object, clients: pd.DataFrame, local_total: ForecastResult
) -> None:
    result = forecast(clients, horizon=HORIZON, hierarchy="total", engine=dask_client)
    assert_identical(result, local_total)
    assert "fitted on the driver" in result.notes["total"]
    parts = result.frame[result.frame["unique_id"] != "total"].groupby("ds")["mean"].sum()
    total = result.frame[result.frame["unique_id"] == "total"].set_index("ds")["mean"]
    assert (parts - total).abs().max() <= 1e-6 * total.max()


def test_dask_runs_several_shards_on_both_workers(
    dask_client: object, clients: pd.DataFrame, local_result: ForecastResult
) -> None:
    result = forecast(clients, horizon=HORIZON, engine=dask_client, shard_size=HALF)
    assert set(result.chosen) == set(local_result.chosen)
    assert len(result.frame) == len(local_result.frame)
    assert "2 shard(s)" in next(iter(result.notes.values()))
    ratio = result.frame["mean"].sum() / local_result.frame["mean"].sum()
    assert abs(ratio - 1) < 0.05


def test_dask_gets_one_partition_per_shard(dask_client: object, clients: pd.DataFrame) -> None:
    """Shards are dealt one per task: no worker is handed a bundle while the other idles."""
    from fugue import PartitionSpec
    from fugue_dask import DaskExecutionEngine

    engine = DaskExecutionEngine(dask_client)
    rows = to_engine_input(clients, shard_count(clients["unique_id"].nunique(), 2))
    parts = engine.repartition(engine.to_df(rows), PartitionSpec(SHARD_PARTITION)).native
    per_partition = parts.map_partitions(
        lambda d: pd.Series([d["shard"].nunique()]), meta=(None, "int64")
    ).compute()
    assert parts.npartitions == rows["shard"].nunique() > 1
    assert per_partition.tolist() == [1] * parts.npartitions
    # The hash dealing it replaces bundled shards into the input's partitions.
    hashed = engine.repartition(engine.to_df(rows), PartitionSpec(by=["shard"])).native
    assert hashed.npartitions < rows["shard"].nunique()


def test_cli_forecast_on_a_dask_scheduler_address_writes_the_local_csv(
    dask_client: object, clients: pd.DataFrame, tmp_path: Path
) -> None:
    usage = clients.rename(columns={"ds": "timestamp", "y": "requests"})
    usage["timestamp"] = usage["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    # One client per model column: the CLI forecasts the total and each model.
    usage = usage.assign(model=usage.pop("unique_id"))
    source = tmp_path / "usage.csv"
    usage.to_csv(source, index=False)
    address = dask_client.scheduler.address  # type: ignore[attr-defined]
    runner = CliRunner()
    outputs = {}
    for name, extra in (("local", []), ("dask", ["--engine", "dask", "--engine-address", address])):
        out = tmp_path / f"{name}.csv"
        args = ["forecast", "--input", str(source), "--metric", "requests", "--by", "model"]
        got = runner.invoke(app, [*args, "--horizon", str(HORIZON), "--out", str(out), *extra])
        assert got.exit_code == 0, got.output
        outputs[name] = out.read_text()
    assert outputs["dask"] == outputs["local"]


def test_cli_forecast_from_a_parquet_lake_rolls_up_on_dask(
    dask_client: object, clients: pd.DataFrame, tmp_path: Path
) -> None:
    usage = clients.rename(columns={"ds": "timestamp", "y": "requests"})
    usage["timestamp"] = usage["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    usage = usage.assign(model=usage.pop("unique_id"))
    usage.to_csv(tmp_path / "usage.csv", index=False)
    store, lake = str(tmp_path / "store.duckdb"), f"parquet:{tmp_path / 'lake'}"
    runner = CliRunner()
    for args in (
        ["import", str(tmp_path / "usage.csv"), "--db", store],
        ["export", "--parquet", str(tmp_path / "lake"), "--db", store],
    ):
        got = runner.invoke(app, args)
        assert got.exit_code == 0, got.output
    address = dask_client.scheduler.address  # type: ignore[attr-defined]
    outputs = {}
    for name, extra in (("local", []), ("dask", ["--engine", "dask", "--engine-address", address])):
        out = tmp_path / f"{name}.csv"
        args = ["forecast", "--db", lake, "--metric", "requests", "--by", "model"]
        got = runner.invoke(app, [*args, "--horizon", str(HORIZON), "--out", str(out), *extra])
        assert got.exit_code == 0, got.output
        outputs[name] = out.read_text()
    assert outputs["dask"] == outputs["local"]


def test_cli_names_a_bad_engine_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = str(tmp_path / "never-read.duckdb")
    for args, message in (
        (["forecast", "--engine", "hadoop"], "use one of local, dask, ray, spark"),
        (["backtest", "--engine-address", "tcp://x:1"], "--engine-address needs --engine dask"),
    ):
        with pytest.raises(SystemExit) as info:
            main([*args, "--db", db])
        assert info.value.code == 2
        assert message in capsys.readouterr().err
    assert not Path(db).exists()
