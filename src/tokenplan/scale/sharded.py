"""The forecaster run in shards on Dask, Ray or Spark through fugue, assembled on the driver.

Series are dealt to shards by a stable hash of their id (`shard_rows`), about
``shard_size`` (default 500) series per shard, all of them in one shard when there are
fewer. fugue's ``transform`` runs the same `Forecaster.fit_panel` on every shard as the local
engine runs on the whole panel (same candidates, backtest, choice and calibration), with one
thread per shard and statsforecast's models in-process, so each engine worker is one core.
The global LightGBM model therefore trains per shard, on that shard's series, and each
candidate's panel-level backtest score (which steadies the per-series ranking) is pooled per
shard too: with one shard the result is the local engine's, bit for bit; with several it
differs within the tolerance `tests/scale` checks. With a hierarchy the total is fitted on
the driver, and the parts are reconciled to it and capped there, as locally.
"""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any

import pandas as pd

from tokenplan.errors import EngineError, TokenplanError
from tokenplan.forecast.engine import Forecaster, PanelFit
from tokenplan.forecast.hierarchy import total_of
from tokenplan.forecast.result import ForecastResult
from tokenplan.scale.engines import EngineChoice, open_engine, parse_engine
from tokenplan.scale.shard_rows import (
    OUTPUT_SCHEMA,
    decode,
    encode,
    from_engine_input,
    shard_count,
    to_engine_input,
)

if TYPE_CHECKING:
    from collections.abc import Mapping


# "even": one engine partition per shard, so the scheduler hands shards to idle workers one
# at a time. fugue's default hashes shards into the input's partitions, several to each: 20
# shards on 2 Dask workers went 12 and 8, and one worker sat idle for the last ~20 minutes.
SHARD_PARTITION = {"by": ["shard"], "algo": "even"}


def run_sharded(forecaster: Forecaster, data: pd.DataFrame) -> tuple[ForecastResult, str]:
    """Fit a validated frame in shards on ``forecaster.engine``; the result and where it ran."""
    choice = parse_engine(forecaster.engine)
    total = None
    if forecaster.hierarchy is not None:
        # Before any engine starts: a clash of the total's id with a series fails fast.
        total = total_of(data, str(forecaster.hierarchy))
    n_series = int(data["unique_id"].nunique())
    shards = shard_count(n_series, forecaster.shard_size)
    where = (
        f"the {choice.name} engine, {shards} shard(s) of about {n_series // shards} series"
        if shards > 1
        else f"the {choice.name} engine, one shard of all {n_series} series"
    )
    note = f"; fitted on {where}" + (
        " (the global LightGBM model and the panel scores per shard)" if shards > 1 else ""
    )
    with open_engine(choice, forecaster.engine_address) as engine:
        panel = fit_shards(forecaster, data, shards, engine, choice, note)
    if total is not None:
        # One series: fitted here, with every core this process has, while nothing else runs.
        total_panel = forecaster.fit_panel(total)
        total_panel.fitted[str(forecaster.hierarchy)].note += "; fitted on the driver"
        panel.add(total_panel)
    return forecaster.finish(panel), where


def fit_shards(
    forecaster: Forecaster,
    data: pd.DataFrame,
    shards: int,
    engine: Any,
    choice: EngineChoice,
    note: str = "",
) -> PanelFit:
    """Every shard's `PanelFit` from the engine, merged (series in id order, as locally)."""
    from fugue import transform

    params = {"config": json.dumps(_shard_config(forecaster)), "note": note}
    try:
        with warnings.catch_warnings():
            # The series go from the driver to the workers once, inside Dask's task graph;
            # Dask warns of that above 10 MB. They have to travel either way.
            warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
            out = transform(
                to_engine_input(data, shards),
                _fit_shard,
                schema=OUTPUT_SCHEMA,
                params=params,
                partition=SHARD_PARTITION,
                engine=engine,
                as_local=True,
            )
    except TokenplanError:
        raise
    except Exception as exc:  # whatever the engine wraps a worker's failure in
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineError(
            f"the {choice.name} engine failed while forecasting {shards} shard(s): {first}"
        ) from exc
    return decode(_as_pandas(out))


def _shard_config(forecaster: Forecaster) -> dict[str, object]:
    """The forecaster's settings for a shard: no hierarchy, one thread, never an engine."""
    config = forecaster.config()
    config["hierarchy"] = None
    config["threads"] = 1
    return config


def _fit_shard(df: pd.DataFrame, config: str, note: str) -> pd.DataFrame:
    """Runs on an engine worker: fit one shard's series, return `OUTPUT_SCHEMA` rows."""
    settings: Mapping[str, Any] = json.loads(config)
    forecaster = Forecaster(
        str(settings["freq"]),
        int(settings["horizon"]),
        tuple(settings["levels"]),
        local_models=settings["local_models"],
        lightgbm=bool(settings["lightgbm"]),
        n_windows=settings["n_windows"],
        threads=1,
        temporal=bool(settings.get("temporal", True)),
        backtest_coverage=bool(settings.get("backtest_coverage", True)),
    )
    return encode(forecaster.fit_panel(from_engine_input(df)), note)


def _as_pandas(out: Any) -> pd.DataFrame:
    if isinstance(out, pd.DataFrame):
        return out
    return pd.DataFrame(out.as_pandas())
