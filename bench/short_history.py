"""Interval coverage on short histories: a few days of real hourly traffic, the next day ahead.

The open traces' hourly datasets (ServeGen per client and per model, Azure 2024, NASA 1995; the
12 largest series of each) are cut into slices of ``--days`` days of history and the day after
it, one every two days. Slices with unknown buckets, or fewer than 80% non-zero hours, are left
out. Each slice is forecast by `tokenplan.forecast.forecast` (h=24, default settings) and
scored on the held-out day: 80% and 95% coverage of the hourly bands (with their mean interval
score over the history's mean hour) and of the day's total (the band of
`ForecastResult.sum_interval`, read off the sample paths the plan's budgets use, with its
interval score over the history's mean day), and MAE relative to seasonal naive (the
last day repeated), as a geometric mean of the slices' ratios per dataset and pooled. A
backtest on three days has one window; this is where intervals have the least to stand on.

    .venv/bin/python bench/short_history.py [--days 3]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from accuracy_cases import DATASETS, SHARED
from tokenplan.forecast import forecast

_PREFIXES = ("servegen_language", "azure_2024", "nasa")
_LARGEST = 12


def trace_slices(
    freq: str,
    length: int,
    h: int,
    every: int,
    prefixes: tuple[str, ...] = ("",),
    largest: int = _LARGEST,
) -> list[tuple[str, pd.DataFrame]]:
    """``(dataset, slice)``: ``length`` buckets of history and the ``h`` after them, one slice
    every ``every`` buckets of the ``largest`` series of each ``freq`` dataset whose name starts
    with one of ``prefixes``; kept when the history is at least 80% non-zero and no value of
    the slice is unknown."""
    out = []
    for dataset in DATASETS:
        if dataset.freq != freq or not dataset.name.startswith(prefixes):
            continue
        frame = dataset.read(SHARED, dataset.metrics[0])
        sizes = frame.groupby("unique_id")["y"].sum().sort_values(ascending=False)
        for uid in sizes.index[:largest]:
            one = frame[frame["unique_id"] == uid].sort_values("ds").reset_index(drop=True)
            for start in range(0, len(one) - length - h + 1, every):
                part = one.iloc[start : start + length + h]
                steady = (part["y"].iloc[:length] > 0).mean() >= 0.8
                if steady and not part["y"].isna().any():
                    out.append((dataset.name, part))
    return out


def hourly_slices(length: int, h: int, every: int) -> list[tuple[str, pd.DataFrame]]:
    """`trace_slices` of the hourly traces (ServeGen, Azure 2024, NASA), in hours."""
    return trace_slices("1h", length, h, every, _PREFIXES)


def slices(days: int) -> list[tuple[str, pd.DataFrame, np.ndarray]]:
    """``(dataset, history, next day's actuals)`` for every slice kept."""
    length = days * 24
    return [
        (name, part.iloc[:length], part["y"].iloc[length:].to_numpy())
        for name, part in hourly_slices(length, 24, 48)
    ]


def _geometric_mean(values: pd.Series) -> float:
    return float(np.exp(np.log(values.to_numpy(float)).mean()))


def _interval_score(lo: float, hi: float, actual: float, level: int) -> float:
    """Winkler's interval score: the width, plus 2 / alpha times how far the actual fell out."""
    miss = max(lo - actual, 0.0) + max(actual - hi, 0.0)
    return (hi - lo) + 2 / (1 - level / 100) * miss


def _hourly_score(frame: pd.DataFrame, after: np.ndarray, level: int) -> float:
    """The hourly bands' mean interval score (MSIS's numerator, per hour)."""
    lo, hi = frame[f"lo_{level}"].to_numpy(), frame[f"hi_{level}"].to_numpy()
    miss = np.maximum(lo - after, 0.0) + np.maximum(after - hi, 0.0)
    return float(np.mean((hi - lo) + 2 / (1 - level / 100) * miss))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3, help="days of hourly history per slice")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    rows = []
    for name, history, after in slices(args.days):
        result = forecast(history, horizon=24, freq="1h", levels=(80, 95))
        frame = result.frame
        day = result.sum_interval(str(history["unique_id"].iloc[0]))
        total = float(after.sum())
        usual = max(float(history["y"].sum()) / args.days, 1e-9)
        naive = history["y"].to_numpy()[-24:]
        hour = usual / 24
        rows.append(
            {
                "dataset": name,
                "cov80": np.mean((after >= frame["lo_80"]) & (after <= frame["hi_80"])),
                "cov95": np.mean((after >= frame["lo_95"]) & (after <= frame["hi_95"])),
                "is80": _hourly_score(frame, after, 80) / hour,
                "is95": _hourly_score(frame, after, 95) / hour,
                "day80": day["lo_80"] <= total <= day["hi_80"],
                "day95": day["lo_95"] <= total <= day["hi_95"],
                # Coverage alone rewards any widening; the interval score charges width too.
                # Over the history's mean day (not the actual: a near-empty day would swamp it).
                "day_is80": _interval_score(day["lo_80"], day["hi_80"], total, 80) / usual,
                "day_is95": _interval_score(day["lo_95"], day["hi_95"], total, 95) / usual,
                "mae_vs_seasonal_naive": max(
                    float(np.mean(np.abs(after - frame["mean"])))
                    / max(float(np.mean(np.abs(after - naive))), 1e-9),
                    1e-3,
                ),
            }
        )
    table = pd.DataFrame(rows)
    per = table.groupby("dataset").agg(
        slices=("cov80", "size"),
        cov80=("cov80", "mean"),
        cov95=("cov95", "mean"),
        day80=("day80", "mean"),
        day95=("day95", "mean"),
        # The same statistic as the pooled line below, so the two can be read together.
        mae_vs_seasonal_naive=("mae_vs_seasonal_naive", _geometric_mean),
    )
    print(f"{args.days} days of hourly history -> the next 24 hours, default settings")
    print(per.round(3).to_string())
    print(
        f"pooled over {len(table)} slices: 80% coverage {table['cov80'].mean():.1%}, "
        f"95% coverage {table['cov95'].mean():.1%} (interval score over the mean hour "
        f"{table['is80'].mean():.3f} / {table['is95'].mean():.3f}); the day's total: 80% coverage "
        f"{table['day80'].mean():.1%}, 95% coverage {table['day95'].mean():.1%} "
        f"(interval score over the mean day {table['day_is80'].mean():.3f} / "
        f"{table['day_is95'].mean():.3f}); "
        "MAE / seasonal naive's: geometric mean "
        f"{_geometric_mean(table['mae_vs_seasonal_naive']):.3f};"
        f" {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
