"""Local statistical candidates from statsforecast: AutoETS, AutoTheta and MSTL.

AutoETS and AutoTheta are fitted per series on the recent history (a few of the longest
cycles) in the series' modelling space (log1p when multiplicative), once per backtest cut and
once for the final fit. MSTL is cheap, so it sees a longer history (more cycles make a steadier
seasonal estimate: on the NASA trace 8 weekly cycles gave MASE 0.63 where 4 gave 0.65-0.82),
and it is fitted twice, in usage units (``mstl``) and in log1p (``mstl_log``): neither space
wins everywhere (usage units won on NASA and ServeGen 10-min tokens, log1p on ServeGen hourly),
and the combination in `selection` is more robust with both.
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
    return ["auto_ets", "auto_theta", "mstl", "mstl_log"]


def _mstl(seasons: tuple[int, ...], alias: str) -> object:
    from statsforecast.models import MSTL, AutoETS

    # A fresh trend model for every MSTL: statsforecast 2.1.1 shares the default one.
    return MSTL(season_length=list(seasons), trend_forecaster=AutoETS(model="ZZN"), alias=alias)


def _models(seasons: tuple[int, ...], log_space: bool) -> list[object]:
    from statsforecast.models import AutoETS, AutoTheta

    primary = seasons[0] if seasons else 1
    models: list[object] = []
    if primary > _ETS_MAX_SEASON:
        models.append(AutoETS(season_length=1, model="ZZN", alias="auto_ets"))
    else:
        # Additive seasonality in log space is multiplicative in usage units.
        spec = "ZZA" if log_space and primary > 1 else "ZZZ"
        models.append(AutoETS(season_length=primary, model=spec, alias="auto_ets"))
    models.append(AutoTheta(season_length=primary, alias="auto_theta"))
    return models


def history_cap(seasons: tuple[int, ...]) -> int:
    """Recent history for AutoETS and AutoTheta: four longest cycles, at least seven short ones.

    At most 2,016 buckets (two weeks of 10-minute buckets): AutoTheta's search costs ~0.4 s
    per fit at that length.
    """
    if not seasons:
        return 1000
    return min(max(4 * seasons[-1], 7 * seasons[0]), 2016)


def mstl_history_cap(seasons: tuple[int, ...]) -> int:
    """MSTL's longer reach: eight longest cycles, at least 28 short ones, at most 4,032."""
    return min(max(8 * seasons[-1], 28 * seasons[0]), 4032)


def _frame(series: list[Series], members: list[int], cut: int, cap: int, log: bool | None):
    """Training rows for ``members`` with ``cut`` buckets held out (``log=None``: own space)."""
    frames = []
    for j in members:
        s = series[j]
        z = s.z() if log is None else (np.log1p(s.y) if log else s.y)
        z = z[: len(z) - cut][-cap:]
        frames.append(pd.DataFrame({"unique_id": j, "ds": np.arange(len(z)), "y": z.astype(float)}))
    return pd.concat(frames, ignore_index=True)


def _forecast(models: list[object], frame: pd.DataFrame, h: int, seasons, n_jobs: int):
    from statsforecast import StatsForecast
    from statsforecast.models import SeasonalNaive

    sf = StatsForecast(
        models=models,
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
        return sf.forecast(df=frame, h=h)


def run_statistical(
    series: list[Series], cuts: list[int], h: int, seasons: tuple[int, ...], n_jobs: int = 1
) -> dict[str, np.ndarray]:
    """Fit and predict every cut; returns ``{method: array(cuts, series, h)}`` (NaN if failed)."""
    names = statistical_names(seasons)
    out = {name: np.full((len(cuts), len(series), h), np.nan) for name in names}
    everyone = list(range(len(series)))
    for i, cut in enumerate(cuts):
        jobs: list[tuple[list[int], list[object], pd.DataFrame, bool | None]] = []
        for space in (True, False):
            members = [j for j, s in enumerate(series) if s.log == space]
            if members:
                frame = _frame(series, members, cut, history_cap(seasons), None)
                jobs.append((members, _models(seasons, space), frame, None))
        if seasons:
            cap = mstl_history_cap(seasons)
            for log, alias in ((False, "mstl"), (True, "mstl_log")):
                frame = _frame(series, everyone, cut, cap, log)
                jobs.append((everyone, [_mstl(seasons, alias)], frame, log))
        for members, models, frame, space_log in jobs:
            fc = _forecast(models, frame, h, seasons, n_jobs)
            for model in models:
                name = model.alias  # type: ignore[attr-defined]
                values = fc[name].to_numpy(dtype=float).reshape(len(members), h)
                for row, j in enumerate(members):
                    pred = values[row]
                    if not np.all(np.isfinite(pred)):
                        continue
                    if space_log is None:
                        out[name][i, j] = series[j].unz(pred)
                    else:
                        out[name][i, j] = np.maximum(np.expm1(pred) if space_log else pred, 0.0)
    return out
