"""Period totals of steady series: is the band of a day's (or a month's) total as wide as the
traffic's own noise makes it, or wider?

Synthetic series with a fixed profile and independent lognormal noise (no drift, no level
change), so the spread of a period's total is known: each step's noise adds up, and nothing
moves the whole period. Two settings: four weeks of hourly buckets and the next day (h=24),
and 400 days of daily buckets and the next 30. For each it prints the 80% / 95% coverage of
the period total, the median half-width of its band over the point, the half-width that
independent noise gives (simulated), and the interval score (scaled by the true total).

    .venv/bin/python bench/steady_sums.py [--series 100]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from tokenplan.forecast import forecast

SETTINGS = (("1h", 28 * 24, 24, 24), ("1d", 400, 30, 7))  # freq, history, horizon, cycle
NOISE = 0.3  # log-space standard deviation of each bucket


def _panel(
    freq: str, n: int, h: int, cycle: int, count: int, seed: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """History of ``count`` series, their profiled future means and one drawn future each."""
    rng = np.random.default_rng(seed)
    t = np.arange(n + h)
    profile = 1 + 0.5 * np.sin(2 * np.pi * t / cycle)
    ds = pd.date_range("2026-01-01", periods=n + h, freq="h" if freq == "1h" else "D")
    frames, futures, means = [], [], []
    for i in range(count):
        level = 1000.0 * (i + 1)
        y = level * profile * np.exp(rng.normal(0, NOISE, n + h))
        frames.append(pd.DataFrame({"unique_id": f"s{i:03d}", "ds": ds[:n], "y": y[:n]}))
        futures.append(y[n:].sum())
        means.append(level * profile[n:])
    return pd.concat(frames, ignore_index=True), np.array(futures), np.array(means)


def _iid_half_width(means: np.ndarray, level: int, seed: int) -> float:
    """Median half-width (over the median total) of the total under independent noise."""
    rng = np.random.default_rng(seed)
    out = []
    for m in means:
        totals = (m * np.exp(rng.normal(0, NOISE, (4000, len(m))))).sum(axis=1)
        lo, hi = np.quantile(totals, [0.5 - level / 200, 0.5 + level / 200])
        out.append((hi - lo) / 2 / np.median(totals))
    return float(np.median(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100, help="series per setting")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    for freq, n, h, cycle in SETTINGS:
        start = time.perf_counter()
        frame, futures, means = _panel(freq, n, h, cycle, args.series, seed=0)
        result = forecast(frame, horizon=h, freq=freq, levels=(80, 95))
        line = f"{freq}, {n} buckets of history, total of the next {h}:"
        for level in (80, 95):
            hits, widths, scores = [], [], []
            for i, actual in enumerate(futures):
                got = result.sum_interval(f"s{i:03d}")
                lo, hi = got[f"lo_{level}"], got[f"hi_{level}"]
                hits.append(lo <= actual <= hi)
                widths.append((hi - lo) / 2 / got["point"])
                miss = max(lo - actual, 0.0) + max(actual - hi, 0.0)
                scores.append(((hi - lo) + 2 / (1 - level / 100) * miss) / actual)
            line += (
                f"  {level}%: coverage {np.mean(hits):.1%}, half-width {np.median(widths):.3f}"
                f" (independent noise {_iid_half_width(means, level, seed=1):.3f}),"
                f" interval score {np.mean(scores):.3f};"
            )
        print(f"{line}  {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
