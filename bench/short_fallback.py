"""Point forecasts and bands on histories too short to backtest, against the peers a user would fit.

A series needs a training stretch (two primary cycles, at least 16 buckets) plus the horizon
before tokenplan can backtest it; below that it gets a fallback (`tokenplan.forecast.fallbacks`).
This bench cuts histories of that length from three sources and forecasts the buckets after
them, with tokenplan (default settings, all slices in one call) and with statsforecast's
seasonal naive, naive, AutoETS, AutoTheta and MSTL (MSTL from two cycles) on the same slices:

- ``m4h``: the 414 M4 hourly series, 36 / 48 / 60 hours of history, the next 24 hours, five
  origins 100 hours apart;
- ``m4h168``: the same series, 72 / 120 / 192 hours, the next week, three origins 200 apart;
- ``m4d``: the M4 hourly series as daily totals (bench/accuracy_cases.py), 10 / 14 / 17 / 21
  days, the next 7 days, four origins 3 days apart;
- ``trace``: the open traces' hourly series (ServeGen per client and per model, Azure 2024,
  NASA 1995; the 12 largest of each, slices with at least 80% non-zero hours, as in
  bench/short_history.py), 36 / 48 / 60 hours, the next day, one slice every two days;
- ``trace168``: the same traces, 72 / 120 hours, the next week, one slice every day.

Per set and history length it prints each method's MAE over the slice's in-sample seasonal
naive MAE (lag one cycle; lag 1 under a cycle and a bucket), as a geometric mean over slices,
and tokenplan's 80% / 95% coverage with their mean interval score on the same scale. The last
line has the geometric mean over every slice.

    .venv/bin/python bench/short_fallback.py [--quick]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from accuracy_cases import SHARED, _m4, _m4_daily
from short_history import hourly_slices
from tokenplan.forecast import forecast


def m4_slices(frame: pd.DataFrame, length: int, h: int, backs: list[int]) -> pd.DataFrame:
    """``length`` history buckets plus ``h`` held out, ending ``back`` buckets before the end."""
    parts = []
    for uid, one in frame.groupby("unique_id", sort=False):
        n = len(one)
        for back in backs:
            end = n - back
            if end - length >= 0 and end + h <= n:
                part = one.iloc[end - length : end + h].copy()
                part["unique_id"] = f"{uid}@{back}"
                parts.append(part)
    return pd.concat(parts, ignore_index=True)


def trace_slices(length: int, h: int, every: int) -> pd.DataFrame:
    """`short_history.hourly_slices` as one frame, each slice a series of its own."""
    parts = []
    for i, (name, part) in enumerate(hourly_slices(length, h, every)):
        part = part.copy()
        part["unique_id"] = f"{name}|{i}"
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def peers(train: pd.DataFrame, h: int, freq: str, season: int, length: int) -> pd.DataFrame:
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoETS, AutoTheta, Naive, SeasonalNaive

    models: list[object] = [
        SeasonalNaive(season_length=season),
        Naive(),
        AutoETS(season_length=season),
        AutoTheta(season_length=season),
    ]
    if length >= 2 * season:
        models.append(MSTL(season_length=[season], trend_forecaster=AutoETS(model="ZZN")))
    sf = StatsForecast(models=models, freq=freq, n_jobs=2)
    return sf.forecast(df=train, h=h).set_index("unique_id")


def score(
    slices: pd.DataFrame, name: str, length: int, h: int, freq: str, pandas_freq: str, season: int
) -> list[dict[str, object]]:
    """One row per slice: each method's MAE and tokenplan's coverage, over the slice's scale."""
    position = slices.groupby("unique_id").cumcount()
    train = slices[position < length][["unique_id", "ds", "y"]]
    held = slices[position >= length]
    ours = forecast(train, horizon=h, freq=freq, levels=(80, 95)).frame.set_index("unique_id")
    theirs = peers(train, h, pandas_freq, season, length)
    methods = [c for c in theirs.columns if c != "ds"]
    rows = []
    for uid, after in held.groupby("unique_id", sort=False):
        y = train.loc[train["unique_id"] == uid, "y"].to_numpy(float)
        lag = season if length > season else 1
        scale = float(np.mean(np.abs(y[lag:] - y[:-lag])))
        if not scale > 0:
            continue
        actual = after["y"].to_numpy(float)
        mine = ours.loc[uid]
        row: dict[str, object] = {"set": name, "history": length, "h": h}
        row["tokenplan"] = np.mean(np.abs(mine["mean"].to_numpy() - actual)) / scale
        for m in methods:
            row[m] = np.mean(np.abs(theirs.loc[uid, m].to_numpy() - actual)) / scale
        for level in (80, 95):
            lo, hi = mine[f"lo_{level}"].to_numpy(), mine[f"hi_{level}"].to_numpy()
            miss = np.maximum(lo - actual, 0.0) + np.maximum(actual - hi, 0.0)
            row[f"cov{level}"] = np.mean((actual >= lo) & (actual <= hi))
            row[f"is{level}"] = np.mean(hi - lo + 2 / (1 - level / 100) * miss) / scale
        rows.append(row)
    return rows


def _geometric_mean(values: pd.Series) -> float:
    known = values.dropna().to_numpy(float)
    return float(np.exp(np.log(np.maximum(known, 1e-3)).mean())) if known.size else np.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every fourth M4 series only")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    hourly, daily = _m4(SHARED, "value"), _m4_daily(SHARED, "value")
    if args.quick:
        keep = hourly["unique_id"].unique()[::4]
        hourly, daily = hourly[hourly["unique_id"].isin(keep)], daily[daily["unique_id"].isin(keep)]
    rows: list[dict[str, object]] = []
    for length in (36, 48, 60):
        cut = m4_slices(hourly, length, 24, [24 + 100 * k for k in range(5)])
        rows += score(cut, "m4h", length, 24, "1h", "h", 24)
    for length in (72, 120, 192):
        cut = m4_slices(hourly, length, 168, [168 + 200 * k for k in range(3)])
        rows += score(cut, "m4h168", length, 168, "1h", "h", 24)
    for length in (10, 14, 17, 21):
        cut = m4_slices(daily, length, 7, [7 + 3 * k for k in range(4)])
        rows += score(cut, "m4d", length, 7, "1d", "D", 7)
    for length in (36, 48, 60):
        rows += score(trace_slices(length, 24, 48), "trace", length, 24, "1h", "h", 24)
    for length in (72, 120):
        rows += score(trace_slices(length, 168, 24), "trace168", length, 168, "1h", "h", 24)
    report(rows, started)


def report(rows: list[dict[str, object]], started: float) -> None:
    """Print the per-row table of `score`'s rows and the line over every slice."""
    table = pd.DataFrame(rows)
    methods = [c for c in table.columns if c not in ("set", "history", "h")]
    errors = [m for m in methods if not m.startswith(("cov", "is"))]
    keys = ["set", "history", "h"]
    summary = table.groupby(keys, sort=False)[errors].agg(_geometric_mean)
    bands = table.groupby(keys, sort=False)[["cov80", "cov95", "is80", "is95"]].mean()
    summary.insert(0, "slices", table.groupby(keys, sort=False).size())
    pd.set_option("display.width", 200)
    print("MAE over the in-sample seasonal naive MAE (geometric mean over slices); tokenplan's")
    print("bands: coverage and mean interval score on the same scale")
    print(summary.join(bands).round(3).to_string())
    overall = ", ".join(f"{m} {_geometric_mean(table[m]):.3f}" for m in errors)
    print(
        f"all {len(table)} slices: {overall}; tokenplan coverage "
        f"{table['cov80'].mean():.1%} / {table['cov95'].mean():.1%}, interval score "
        f"{table['is80'].mean():.2f} / {table['is95'].mean():.2f};"
        f" {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
