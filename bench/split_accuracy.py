"""What a split costs the parts: each part forecast alone, and as a part of ``--by`` (a total).

With a split (``tokenplan forecast --by model``, ``hierarchy="total"``) the total is forecast
exactly as without one, so asking for a split never changes it, and the parts are reconciled
to it: the gap between the total and the sum of the parts is shared out in proportion to each
part's backtest error variance (`tokenplan.forecast.hierarchy`). Where the total's own forecast
is worse than the sum of the parts' forecasts, the parts inherit its error.

On the open traces' cases with more than one series (bench/accuracy_cases.py: ServeGen per
client and per model, Azure 2023's two services), with the same origins and history rule as
bench/forecast_accuracy.py, this prints per case the parts' MASE forecast alone and within the
split (mean over parts and origins) with their ratio, the parts' 80% / 95% coverage both ways,
and the total's MASE forecast on its own against the sum of the parts' own forecasts (its
bottom-up alternative, which the split does not use). The last lines give the geometric means.

    .venv/bin/python bench/split_accuracy.py [--only REGEX]
"""

from __future__ import annotations

import argparse
import re
import time
import warnings

import numpy as np
import pandas as pd

from accuracy_cases import DATASETS, SHARED, Plan, make_plan
from forecast_accuracy import split
from scoring import mase_scale
from tokenplan.forecast import forecast

TOTAL = "__total__"
LEVELS = (80, 95)


def _inside(actual: np.ndarray, part: pd.DataFrame, level: int) -> float:
    lo, hi = part[f"lo_{level}"].to_numpy(), part[f"hi_{level}"].to_numpy()
    return float(np.mean((actual >= lo) & (actual <= hi)))


def _case(plan: Plan, h: int) -> dict[str, float]:
    """Scores of one case over its origins: parts alone and in the split, the total both ways."""
    alone: list[tuple[float, float, float]] = []
    within: list[tuple[float, float, float]] = []
    total_own: list[float] = []
    total_sum: list[float] = []
    for back in plan.backs:
        train, test = split(plan.frame, back, max(plan.horizons))
        flat = forecast(train, horizon=h, freq=plan.dataset.freq, levels=LEVELS).frame
        joint = forecast(
            train, horizon=h, freq=plan.dataset.freq, levels=LEVELS, hierarchy=TOTAL
        ).frame
        for uid, history in train.groupby("unique_id"):
            actual = test.loc[test["unique_id"] == uid, "y"].to_numpy()[:h]
            scale = mase_scale(history["y"].to_numpy(), plan.primary)
            for frame, into in ((flat, alone), (joint, within)):
                part = frame[frame["unique_id"] == uid]
                error = float(np.mean(np.abs(actual - part["mean"].to_numpy()))) / scale
                into.append((error, _inside(actual, part, 80), _inside(actual, part, 95)))
        actual_total = test.groupby("ds")["y"].sum().to_numpy()[:h]
        scale = mase_scale(train.groupby("ds")["y"].sum().to_numpy(), plan.primary)
        own = joint.loc[joint["unique_id"] == TOTAL, "mean"].to_numpy()
        summed = flat.groupby("ds")["mean"].sum().to_numpy()
        total_own.append(float(np.mean(np.abs(actual_total - own))) / scale)
        total_sum.append(float(np.mean(np.abs(actual_total - summed))) / scale)
    a, w = np.array(alone), np.array(within)
    return {
        "parts": len(plan.frame["unique_id"].unique()),
        "origins": len(plan.backs),
        "alone": a[:, 0].mean(),
        "split": w[:, 0].mean(),
        "ratio": w[:, 0].mean() / a[:, 0].mean(),
        "cov80 alone": a[:, 1].mean(),
        "cov80 split": w[:, 1].mean(),
        "cov95 alone": a[:, 2].mean(),
        "cov95 split": w[:, 2].mean(),
        "total own": float(np.mean(total_own)),
        "total bottom-up": float(np.mean(total_sum)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="only cases whose name matches this regex")
    args = parser.parse_args()
    pattern = re.compile(args.only) if args.only else None
    rows = {}
    start = time.perf_counter()
    for dataset in DATASETS:
        for metric in dataset.metrics:
            names = [f"{dataset.name}/{dataset.freq}/{metric}/h{h}" for h in dataset.horizons]
            if pattern and not any(pattern.search(n) for n in names):
                continue
            frame = dataset.read(SHARED, metric)
            plan = make_plan(dataset, metric, frame, dataset.origins, dataset.cap)
            if plan.frame["unique_id"].nunique() < 2 or dataset.name.startswith("m4"):
                continue  # one series has no split; M4's series are unrelated
            for h in plan.horizons:
                if pattern and not pattern.search(plan.case(h)):
                    continue
                rows[plan.case(h)] = _case(plan, h)
                print(f"  {plan.case(h)} done", flush=True)
    table = pd.DataFrame(rows).T
    with pd.option_context("display.width", 220, "display.max_columns", 20):
        print(table.round(3).to_string())
    ratio = np.exp(np.mean(np.log(table["ratio"].astype(float))))
    own = table["total own"].astype(float) / table["total bottom-up"].astype(float)
    print(
        f"parts within the split over alone, geometric mean over {len(table)} cases: {ratio:.3f}"
        f" (worst {table['ratio'].max():.3f}, {table['ratio'].astype(float).idxmax()});"
        f" the total's own MASE over the bottom-up sum's: {np.exp(np.mean(np.log(own))):.3f}"
        f" ({int((own > 1).sum())} of {len(own)} cases above 1);"
        f" {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main()
