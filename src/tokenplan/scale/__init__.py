"""Forecasting on Dask, Ray or Spark: the same per-series work, in shards, through fugue.

    from tokenplan.forecast import forecast
    res = forecast(df, horizon=168, engine="dask")            # or "ray", "spark", a Client

`engines` parses ``--engine`` and opens (and closes) the engine session; `sharded` deals the
series to shards by a stable hash of their id and runs the same `Forecaster` on each;
`shard_rows` is what crosses the engine. Each engine is an optional extra
(``pip install 'tokenplan[dask]'``, ``[ray]``, ``[spark]``); nothing here is imported on the
local path.
"""
