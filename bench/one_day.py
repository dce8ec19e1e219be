"""One day of 10-minute history: tokenplan against the peers a user would pick, slice by slice.

A new client, a model released this morning, a collector started yesterday: one day of
10-minute buckets (144) is all there is, and it holds no whole daily cycle to learn from twice.
The open traces' 10-minute datasets (ServeGen per client and per model, language and
multimodal; the 8 largest series of each) are cut into slices of one day of history and the
next six hours, one slice every two days and six hours. Slices with unknown buckets, or fewer
than 80% non-zero buckets in the history, are left out. Each slice is forecast on its own, as
a user with that one series would, with default settings at h=12 (two hours) and h=36 (six);
the peers are fitted on the same slices (statsforecast: naive, AutoETS, AutoTheta, and
seasonal naive on the day before, the only season one day shows).

Per horizon it prints each method's MASE (MAE over the history's in-sample naive MAE: one day
has no seasonal scale) as a geometric mean over the slices, per dataset and pooled, the ratio
of tokenplan's to the best peer's (chosen in hindsight), and tokenplan's 80% / 95% coverage and
MSIS (the interval score over the same scale, at 95%).

    .venv/bin/python bench/one_day.py
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from short_history import trace_slices
from tokenplan.forecast import forecast

DAY = 144
HORIZONS = (12, 36)
_LARGEST = 8
_EVERY = 2 * DAY + 36
PEERS = ("naive", "auto_ets", "auto_theta", "seasonal_naive_144")


def one_day_slices() -> list[tuple[str, pd.DataFrame, np.ndarray]]:
    """``(dataset, one day of history, the next max(HORIZONS) actuals)`` for every slice kept."""
    out = []
    for name, part in trace_slices("10min", DAY, max(HORIZONS), _EVERY, largest=_LARGEST):
        history = part.iloc[:DAY][["unique_id", "ds", "y"]].copy()
        history["unique_id"] = f"{name}|{part['unique_id'].iloc[0]}|{part.index[0]}"
        out.append((name, history, part["y"].iloc[DAY:].to_numpy()))
    return out


def peer_forecasts(histories: pd.DataFrame, h: int, day: bool = True) -> pd.DataFrame:
    """The peers' forecasts of every slice, ``unique_id, ds`` and one column per peer
    (`PEERS`; without the day before when not ``day``: histories under a day have none)."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta, Naive, SeasonalNaive

    models = [Naive(), AutoETS(season_length=1), AutoTheta(season_length=1), SeasonalNaive(DAY)]
    names = ["Naive", "AutoETS", "AutoTheta", "SeasonalNaive"]
    count = len(models) if day else len(models) - 1
    fitted = StatsForecast(models=models[:count], freq="10min", n_jobs=2).forecast(
        df=histories, h=h
    )
    return fitted.reset_index(drop="unique_id" in fitted.columns).rename(
        columns=dict(zip(names[:count], PEERS[:count], strict=True))
    )


def naive_scale(history: np.ndarray) -> float:
    """The history's in-sample naive MAE (the MASE scale when no season is seen twice)."""
    return max(float(np.mean(np.abs(np.diff(history)))), 1e-9)


def _mase(pred: np.ndarray, actual: np.ndarray, scale: float) -> float:
    return max(float(np.mean(np.abs(pred - actual))) / scale, 1e-3)


def _msis(lo: np.ndarray, hi: np.ndarray, actual: np.ndarray, scale: float) -> float:
    miss = np.maximum(lo - actual, 0.0) + np.maximum(actual - hi, 0.0)
    return float(np.mean((hi - lo) + 2 / 0.05 * miss)) / scale


def _geometric_mean(values: pd.Series | list[float]) -> float:
    return float(np.exp(np.log(np.asarray(values, dtype=float)).mean()))


def score(h: int, kept: list[tuple[str, pd.DataFrame, np.ndarray]]) -> pd.DataFrame:
    """One row per slice: each method's MASE, tokenplan's coverage and MSIS."""
    peers = peer_forecasts(pd.concat([history for _, history, _ in kept]), h)
    peers = peers.set_index("unique_id")
    rows = []
    for name, history, after in kept:
        uid = str(history["unique_id"].iloc[0])
        actual = after[:h]
        scale = naive_scale(history["y"].to_numpy(float))
        frame = forecast(history, horizon=h, freq="10min", levels=(80, 95)).frame
        row: dict[str, object] = {"dataset": name, "tokenplan": _mase(frame["mean"], actual, scale)}
        for peer in PEERS:
            row[peer] = _mase(peers.loc[uid, peer].to_numpy(float), actual, scale)
        for level in (80, 95):
            lo, hi = frame[f"lo_{level}"].to_numpy(), frame[f"hi_{level}"].to_numpy()
            row[f"cov{level}"] = float(np.mean((actual >= lo) & (actual <= hi)))
        row["msis"] = _msis(frame["lo_95"].to_numpy(), frame["hi_95"].to_numpy(), actual, scale)
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    warnings.simplefilter("ignore")
    kept = one_day_slices()
    print(f"one day of 10-minute history ({DAY} buckets), {len(kept)} slices, default settings")
    for h in HORIZONS:
        started = time.perf_counter()
        table = score(h, kept)
        methods = ["tokenplan", *PEERS]
        per = table.groupby("dataset")[methods].agg(_geometric_mean)
        per.insert(0, "slices", table.groupby("dataset").size())
        pooled = {m: _geometric_mean(table[m]) for m in methods}
        best = min(PEERS, key=lambda m: pooled[m])
        print(f"\nh={h}: MASE (over the in-sample naive MAE), geometric mean over slices")
        print(per.round(3).to_string())
        print(
            "pooled: "
            + ", ".join(f"{m} {pooled[m]:.3f}" for m in methods)
            + f"; tokenplan / best peer ({best}) {pooled['tokenplan'] / pooled[best]:.3f};"
            f" tokenplan coverage 80% {table['cov80'].mean():.1%}, 95% {table['cov95'].mean():.1%},"
            f" MSIS {_geometric_mean(table['msis']):.2f} (geometric mean);"
            f" {time.perf_counter() - started:.0f} s"
        )


if __name__ == "__main__":
    main()
