"""Forecasting for usage series: frames in, frames out.

    from tokenplan.forecast import forecast, backtest, Forecaster, ForecastResult
    res = forecast(df, horizon=168, freq="1h", levels=(80, 95), hierarchy=None)

``df`` is tidy (``unique_id``, ``ds`` naive UTC, ``y`` >= 0). Per series, candidates (seasonal
naive, seasonal median, a re-levelled profile, seasonally adjusted exponential smoothing,
AutoETS, and AutoTheta and MSTL (both always on untransformed values) from statsforecast, a global
LightGBM) are scored by rolling-origin backtest; the forecast is the weighted geometric
mean of the three best (arithmetic, and ranked by squared errors, for intermittent series),
ranked by a score shrunk toward the panel, unless one candidate clearly dominates (see
`tokenplan.forecast.combination` and `tokenplan.forecast.selection`). Its intervals are
calibrated by conformal prediction on its backtest errors (for log-space series in
``log(y + c)``, ``c`` the recent level; see `tokenplan.forecast.conformal`), widened to the
recent windows' errors where those are larger and for few windows, and never above three
times the series' recorded peak.
``res.frame`` holds ``unique_id, ds, mean, lo_<L>, hi_<L>``; ``res.notes`` says what was
chosen or which fallback was used; ``res.sum_interval`` and ``res.prob_sum_above`` answer
"how much over a period, and how likely above a limit".
``hierarchy="total"`` adds a coherent total (see `tokenplan.forecast.hierarchy`).
``engine="dask"`` (or ``"ray"``, ``"spark"``, a Dask ``Client``, a ``SparkSession``) runs the
same work in shards of about 500 series on that engine (see `tokenplan.scale`).

Heavy libraries (statsforecast, mlforecast, lightgbm) load only when a fit needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenplan.forecast.engine import Forecaster, backtest, forecast
    from tokenplan.forecast.result import ForecastResult

__all__ = ["ForecastResult", "Forecaster", "backtest", "forecast"]


def __getattr__(name: str) -> Any:
    if name in ("Forecaster", "backtest", "forecast"):
        from tokenplan.forecast import engine

        return getattr(engine, name)
    if name == "ForecastResult":
        from tokenplan.forecast.result import ForecastResult

        return ForecastResult
    raise AttributeError(f"module 'tokenplan.forecast' has no attribute {name!r}")
