"""Local statistical candidates from statsforecast: AutoETS, AutoTheta and MSTL.

They are fitted per series on the recent history (a few of the longest cycles) in the series'
modelling space (log1p when multiplicative), once per backtest cut and once for the final fit.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd

from tokenplan.forecast.preparation import Series

# AutoETS in statsforecast fits no seasonal state above 24 (it silently drops it).
_ETS_MAX_SEASON = 24


def statistical_names(seasons: tuple[int, ...]) -> list[str]:
    """The candidates this module offers for the given usable seasons."""
    if not seasons:
        return ["auto_ets", "auto_theta"]
    # Above 24 AutoETS runs without a seasonal state: still a useful recent-level candidate
    # for short horizons on fine buckets.
    return ["auto_ets", "auto_theta", "mstl"]


def _models(seasons: tuple[int, ...], log_space: bool) -> list[object]:
    from statsforecast.models import MSTL, AutoETS, AutoTheta

    primary = seasons[0] if seasons else 1
    models: list[object] = []
    if primary > _ETS_MAX_SEASON:
        models.append(AutoETS(season_length=1, model="ZZN", alias="auto_ets"))
    else:
        # Additive seasonality in log space is multiplicative in usage units.
        spec = "ZZA" if log_space and primary > 1 else "ZZZ"
        models.append(AutoETS(season_length=primary, model=spec, alias="auto_ets"))
    models.append(AutoTheta(season_length=primary, alias="auto_theta"))
    if seasons:
        # A fresh trend model for every MSTL: statsforecast 2.1.1 shares the default one.
        models.append(
            MSTL(
                season_length=list(seasons),
                trend_forecaster=AutoETS(model="ZZN"),
                alias="mstl",
            )
        )
    return models


def history_cap(seasons: tuple[int, ...]) -> int:
    """How much recent history local models see: four longest cycles, at least 14 short ones."""
    if not seasons:
        return 1000
    return max(4 * seasons[-1], 14 * seasons[0])


def run_statistical(
    series: list[Series], cuts: list[int], h: int, seasons: tuple[int, ...], n_jobs: int = 1
) -> dict[str, np.ndarray]:
    """Fit and predict every cut; returns ``{method: array(cuts, series, h)}`` (NaN if failed)."""
    from statsforecast import StatsForecast
    from statsforecast.models import SeasonalNaive

    names = statistical_names(seasons)
    out = {name: np.full((len(cuts), len(series), h), np.nan) for name in names}
    cap = history_cap(seasons)
    for space in (True, False):
        members = [j for j, s in enumerate(series) if s.log == space]
        if not members:
            continue
        for i, cut in enumerate(cuts):
            frames = []
            for j in members:
                z = series[j].z()
                z = z[: len(z) - cut][-cap:]
                frames.append(
                    pd.DataFrame({"unique_id": j, "ds": np.arange(len(z)), "y": z.astype(float)})
                )
            frame = pd.concat(frames, ignore_index=True)
            sf = StatsForecast(
                models=_models(seasons, space),
                freq=1,
                n_jobs=n_jobs,
                fallback_model=SeasonalNaive(season_length=seasons[0] if seasons else 1),
            )
            with warnings.catch_warnings():
                # ETS and Theta searches hit overflow and divide warnings on flat stretches;
                # the search moves on, and failed fits fall back to seasonal naive.
                warnings.simplefilter("ignore", RuntimeWarning)
                warnings.simplefilter("ignore", UserWarning)
                os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
                fc = sf.forecast(df=frame, h=h)
            for name in names:
                values = fc[name].to_numpy(dtype=float).reshape(len(members), h)
                for row, j in enumerate(members):
                    pred = values[row]
                    if np.all(np.isfinite(pred)):
                        out[name][i, j] = series[j].unz(pred)
    return out
