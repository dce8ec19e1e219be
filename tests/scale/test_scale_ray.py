"""The forecast on a real local Ray runtime (two CPUs) agrees with the local one."""

from __future__ import annotations

import pandas as pd
import pytest
from scale_checks import HORIZON, PANEL, assert_identical

from tokenplan.forecast import ForecastResult, forecast

# Ray Data 2.60 sets its own deprecated attributes (`use_push_based_shuffle`, `use_polars`)
# when it copies its DataContext for a shuffle, and its __setattr__ warns
# (ray/data/context.py); nothing a caller can change.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


def test_ray_forecast_is_the_local_one(
    ray_runtime: None, clients: pd.DataFrame, local_total: ForecastResult
) -> None:
    # "ray" uses the runtime already started (and leaves it running).
    result = forecast(clients, horizon=HORIZON, hierarchy="total", engine="ray")
    assert_identical(result, local_total)
    assert f"the ray engine, one shard of all {PANEL} series" in result.notes["m-small/client-5"]
    import ray

    assert ray.is_initialized()
