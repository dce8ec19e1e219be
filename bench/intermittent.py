"""Intermittent usage: does a forecast total follow the rate, and does its band hold?

Sets of series that are empty more often than not, which `bench/forecast_accuracy.py` leaves
out (it scores series busy at least half the time):

- synthetic: 24 hourly series of four weeks, busy 10-60% of hours (more by day), with lognormal
  sizes around 200k tokens; the next week (h=168) is forecast and its total compared with the
  process mean (known) and with what happened;
- real: ServeGen's per-client hourly tokens (`tests/data/shared/servegen_language/`), the
  clients empty in at least half of their hours; the last day (h=24) is forecast from the rest;
- real, bands (`--bands`, about 6 minutes more): every ServeGen client the forecaster calls
  intermittent (over 20% of its hours empty), tokens and requests, each of its last three days
  forecast a day ahead from the hours before it.

Printed per set: the forecast total over the actual (or the process mean), as a median over the
series and as a ratio of sums; how often the 80% / 95% band of the total
(`ForecastResult.sum_interval`) held the actual total; and the band's mean interval score
(width plus 2/alpha times any miss, Gneiting and Raftery 2007) over the series' mean total per
horizon, which a band cannot improve by being wide.

    .venv/bin/python bench/intermittent.py [--bands]
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd

from accuracy_cases import DATASETS, SHARED
from tokenplan.forecast import forecast
from tokenplan.forecast.preparation import INTERMITTENT  # the forecaster's own rule

_SYNTHETIC = 24
_WEEKS = 4
_SIZE = 2e5


def synthetic() -> list[tuple[pd.DataFrame, np.ndarray, float]]:
    """History, the next week's actual values and the process mean of its total, per series."""
    rng = np.random.default_rng(7)
    out = []
    n, h = 24 * 7 * _WEEKS, 168
    hours = np.arange(n + h) % 24
    shape = 1 + 0.8 * np.sin(2 * np.pi * (hours - 8) / 24)
    for _ in range(_SYNTHETIC):
        busy = rng.uniform(0.1, 0.6) * shape / shape.mean()
        sizes = np.exp(rng.normal(np.log(_SIZE), 1.0, n + h))
        y = np.where(rng.random(n + h) < busy, sizes, 0.0)
        mean_total = float((np.clip(busy, 0, 1) * _SIZE * np.exp(0.5))[n:].sum())
        ds = pd.date_range("2024-01-01", periods=n, freq="1h")
        out.append((pd.DataFrame({"unique_id": "s", "ds": ds, "y": y[:n]}), y[n:], mean_total))
    return out


def _clients(metric: str) -> list[tuple[pd.DataFrame, np.ndarray]]:
    """Every ServeGen client's hourly ``metric`` from its first request on, frame and values."""
    dataset = next(d for d in DATASETS if d.name == "servegen_language_clients" and d.freq == "1h")
    out = []
    for _, part in dataset.read(SHARED, metric).groupby("unique_id"):
        y = np.nan_to_num(part["y"].to_numpy())
        busy = np.flatnonzero(y > 0)
        if len(busy):
            out.append((part.iloc[busy[0] :], y[busy[0] :]))
    return out


def real() -> list[tuple[pd.DataFrame, np.ndarray]]:
    """History and the last day of every mostly-empty ServeGen client with a week of history."""
    out = []
    for part, y in _clients("total_tokens"):
        history, after = part.iloc[:-24], y[-24:]
        if len(history) < 24 * 6 or after.sum() <= 0:
            continue
        if np.mean(history["y"].to_numpy() > 0) >= 0.5:
            continue
        out.append((history.assign(unique_id="s"), after))
    return out


def flagged(days_back: int = 3) -> list[tuple[pd.DataFrame, np.ndarray]]:
    """History and next day of each of the last ``days_back`` days of every flagged client."""
    out = []
    for metric in ("total_tokens", "requests"):
        for part, y in _clients(metric):
            for back in range(1, days_back + 1):
                cut = len(y) - 24 * back
                if cut < 24 * 6 or np.mean(y[:cut] == 0) <= INTERMITTENT:
                    continue
                out.append((part.iloc[:cut].assign(unique_id="s"), y[cut : cut + 24]))
    return out


def interval_score(lo: float, hi: float, actual: float, level: float) -> float:
    """Width plus 2/alpha times the miss: lower is better, and a wide band pays for its width."""
    alpha = 1.0 - level / 100.0
    return hi - lo + 2.0 / alpha * (max(lo - actual, 0.0) + max(actual - hi, 0.0))


def score(name: str, h: int, cases: list[tuple[pd.DataFrame, np.ndarray, float]]) -> None:
    rows = []
    for history, after, reference in cases:
        result = forecast(history, horizon=h, freq="1h", levels=(80, 95))
        got = result.sum_interval("s")
        actual = float(after.sum())
        scale = max(float(np.nan_to_num(history["y"].to_numpy()).mean()) * h, 1.0)
        row = {"point": got["point"], "reference": reference}
        for level in (80, 95):
            lo, hi = got[f"lo_{level}"], got[f"hi_{level}"]
            row[f"in{level}"] = lo <= actual <= hi
            row[f"is{level}"] = interval_score(lo, hi, actual, level) / scale
        rows.append(row)
    table = pd.DataFrame(rows)
    ratio = table["point"] / table["reference"]
    print(
        f"{name}: {len(table)} series; forecast total / reference: median {ratio.median():.2f},"
        f" ratio of sums {table['point'].sum() / table['reference'].sum():.2f}; the total's"
        f" 80% band held the actual {table['in80'].mean():.0%}, 95% {table['in95'].mean():.0%};"
        f" interval score over the mean total, mean 80% {table['is80'].mean():.2f},"
        f" 95% {table['is95'].mean():.2f}"
    )


def main() -> None:
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    score(
        "synthetic, next week (reference: the process mean)",
        168,
        [(history, after, mean) for history, after, mean in synthetic()],
    )
    score(
        "ServeGen clients empty most hours, last day (reference: the actual)",
        24,
        [(history, after, float(after.sum())) for history, after in real()],
    )
    if "--bands" in sys.argv[1:]:
        score(
            "ServeGen clients over 20% empty, tokens and requests, each of the last 3 days",
            24,
            [(history, after, float(after.sum())) for history, after in flagged()],
        )
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
