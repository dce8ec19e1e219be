"""Other engines read the lake's layout directly: pyarrow datasets, Dask and Spark."""

from __future__ import annotations

import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from lake_data import ODD_PROVIDER, build_store
from tokenplan.store import open_store
from tokenplan.store.lake import export_lake, hive_partitioning


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A lake of the test store, and what the store says of it."""
    root = tmp_path_factory.mktemp("lake-engines")
    with open_store(build_store(root / "usage.duckdb"), mode="read") as store:
        export_lake(store, str(root / "lake"))
        rows, tokens, cost, no_provider = store.connection.execute(
            "SELECT count(*), sum(input_tokens)::BIGINT, sum(cost_usd), "
            "count(*) FILTER (WHERE provider IS NULL) FROM usage"
        ).fetchall()[0]
    expected = {"rows": rows, "tokens": tokens, "cost": cost, "no_provider": no_provider}
    return root / "lake", expected


def test_pyarrow_reads_the_hive_partitions(lake: tuple[Path, dict[str, Any]]) -> None:
    root, expected = lake
    assert ds.dataset(root, partitioning="hive").count_rows() == expected["rows"]
    table = ds.dataset(root, format="parquet", partitioning=hive_partitioning()).to_table()
    assert table.num_rows == expected["rows"]
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert pa.compute.sum(table.column("input_tokens")).as_py() == expected["tokens"]
    assert pa.compute.sum(table.column("cost_usd")).as_py() == expected["cost"]
    providers = table.column("provider").to_pylist()
    assert providers.count(None) == expected["no_provider"]
    assert ODD_PROVIDER in providers


def test_dask_reads_the_folder(lake: tuple[Path, dict[str, Any]]) -> None:
    import dask.dataframe as dd

    root, expected = lake
    assert len(dd.read_parquet(str(root))) == expected["rows"]
    # Dask cannot infer the type of an all-NULL provider partition on its own.
    frame = dd.read_parquet(str(root), dataset={"partitioning": hive_partitioning()})
    assert {"date", "provider", "ts", "input_tokens"} <= set(frame.columns)
    assert len(frame) == expected["rows"]
    assert int(frame["input_tokens"].sum().compute()) == expected["tokens"]
    assert int(frame["provider"].isna().sum().compute()) == expected["no_provider"]


def test_spark_reads_the_folder(lake: tuple[Path, dict[str, Any]]) -> None:
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F  # noqa: N812 (Spark's own convention)

    root, expected = lake
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("tokenplan-lake-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    try:
        frame = spark.read.parquet(str(root))
        types = dict(frame.dtypes)
        assert (types["date"], types["provider"], types["ts"]) == ("date", "string", "timestamp")
        assert types["cost_usd"] == "decimal(38,12)"
        row = frame.agg(
            F.count("*"),
            F.sum("input_tokens"),
            F.sum("cost_usd"),
            F.sum(F.col("provider").isNull().cast("int")),
            F.sum((F.col("provider") == ODD_PROVIDER).cast("int")),
        ).collect()[0]
    finally:
        spark.stop()
    assert row[0] == expected["rows"]
    assert row[1] == expected["tokens"]
    assert Decimal(row[2]) == expected["cost"]
    assert row[3] == expected["no_provider"]
    assert row[4] > 0
