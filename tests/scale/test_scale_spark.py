"""The forecast on a real local Spark session (``local[2]``) agrees with the local one."""

from __future__ import annotations

import pandas as pd
from scale_checks import HORIZON, assert_identical

from tokenplan.forecast import ForecastResult, forecast


def test_spark_forecast_is_the_local_one(
    spark: object, clients: pd.DataFrame, local_result: ForecastResult
) -> None:
    result = forecast(clients, horizon=HORIZON, engine=spark)
    assert_identical(result, local_result)
    assert "the spark engine" in result.notes["m-small/client-5"]


def test_spark_by_name_uses_the_active_session(
    spark: object, clients: pd.DataFrame, local_total: ForecastResult
) -> None:
    result = forecast(clients, horizon=HORIZON, hierarchy="total", engine="spark")
    assert_identical(result, local_total)
    assert not spark.sparkContext._jsc.sc().isStopped()  # type: ignore[attr-defined]
