"""How soon a forecast follows a level shift, on real hourly traffic given a shift of known size.

Real slices of the open hourly traces (ServeGen per client and per model, Azure 2024, NASA
1995; the 12 largest series of each; 14 days of history and the day after, one slice every 2
days: `short_history.slices`) get a level shift ``--days`` days before the
end of their history: every bucket from there on, the held-out day included, is multiplied by
the factor (x3 and x1/3 by default; a new client, a migrated workload). Each slice is forecast
by `tokenplan.forecast.forecast` (h=24, default settings), and the day's forecast total is
divided by the shifted day's actual total. Followed: within 0.8-1.25. The same slices without a
shift are the reference (their ratio is the forecast's ordinary error), and so is seasonal
naive (the last day repeated), which follows any shift in one day. The hourly bands are scored
too: how often the 80% / 95% band held the shifted day's hours, and their mean interval score
over the day's mean (`interval_score`), which a band cannot lower by being wide.

    .venv/bin/python bench/level_shifts.py [--days 1 2 3 5 7] [--factors 3 0.333]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from short_history import slices
from tokenplan.forecast import forecast

# 14 days of history: two weekly cycles before the earliest shift tried (7 days back).
_HISTORY_DAYS = 14
_FOLLOWED = (0.8, 1.25)


def shifted(
    history: pd.DataFrame, after: np.ndarray, days: int, factor: float
) -> tuple[pd.DataFrame, np.ndarray]:
    """History and next day with every bucket from ``days`` days before the end scaled."""
    y = history["y"].to_numpy(dtype=float, copy=True)
    y[len(y) - days * 24 :] *= factor
    return history.assign(y=y), after * factor


def interval_score(lo: np.ndarray, hi: np.ndarray, truth: np.ndarray, level: int) -> float:
    """Mean hourly interval score (width plus 2/alpha times any miss; Gneiting and Raftery
    2007) over the day's mean actual: lower is better, and a band cannot win by being wide."""
    alpha = 1.0 - level / 100.0
    miss = np.maximum(lo - truth, 0.0) + np.maximum(truth - hi, 0.0)
    return float(np.mean(hi - lo + 2.0 / alpha * miss) / max(float(np.mean(truth)), 1e-9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, nargs="+", default=[1, 2, 3, 5, 7])
    parser.add_argument("--factors", type=float, nargs="+", default=[3.0, 1 / 3])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    cases = slices(_HISTORY_DAYS)
    rows = []
    for name, history, after in cases:
        runs = [(1.0, 0)] + [(f, d) for f in args.factors for d in args.days]
        for factor, days in runs:
            hist, truth = shifted(history, after, days, factor) if days else (history, after)
            frame = forecast(hist, horizon=24, freq="1h", levels=(80, 95)).frame
            total = frame["mean"].sum()
            naive = hist["y"].to_numpy()[-24:].sum()
            row = {
                "dataset": name,
                "factor": factor,
                "days": days,
                "ratio": total / truth.sum(),
                "naive_ratio": naive / truth.sum(),
            }
            for level in (80, 95):
                lo, hi = frame[f"lo_{level}"].to_numpy(), frame[f"hi_{level}"].to_numpy()
                row[f"cover{level}"] = float(np.mean((truth >= lo) & (truth <= hi)))
                row[f"score{level}"] = interval_score(lo, hi, truth, level)
            rows.append(row)
    table = pd.DataFrame(rows)
    lo, hi = _FOLLOWED
    table["followed"] = table["ratio"].between(lo, hi)
    table["naive_followed"] = table["naive_ratio"].between(lo, hi)
    table["log_error"] = np.abs(np.log(table["ratio"]))
    summary = table.groupby(["factor", "days"]).agg(
        slices=("ratio", "size"),
        median_ratio=("ratio", "median"),
        worst_low=("ratio", "min"),
        worst_high=("ratio", "max"),
        followed=("followed", "mean"),
        naive_followed=("naive_followed", "mean"),
        mean_abs_log_error=("log_error", "mean"),
        cover80=("cover80", "mean"),
        cover95=("cover95", "mean"),
        score80=("score80", "mean"),
        score95=("score95", "mean"),
    )
    pd.set_option("display.width", 200)
    print(f"{len(cases)} real slices of {_HISTORY_DAYS} days; forecast day total / actual")
    print(summary.round(3).to_string())
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
