"""tokenplan.forecast on the 414 M4 hourly series, scored exactly as the competition did.

h=48 from the end of each training series; sMAPE (x100), MASE scaled by the in-sample lag-24
seasonal naive error, OWA against Naive2's published hourly sMAPE 18.383 and MASE 2.395, MSIS
for the 95% interval (a=0.05, scaled like MASE) and 95% / 80% coverage. The published table of
every entry is in bench/data/m4_hourly/SOURCE.md, so these figures sit in it directly.

It also scores what budgets read and M4 did not: how often the first day's total (the sum of
the first 24 test hours) falls inside its 80% / 95% band (`ForecastResult.sum_interval`, from
the sample paths), and the band's interval score (scaled like MSIS), over 414 series instead
of a few traces.

    .venv/bin/python bench/m4_hourly.py [--series N] [--save bench/results/m4_hourly.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scoring import mase_scale, owa, score_window
from tokenplan.forecast import ForecastResult, forecast

DATA = Path(__file__).resolve().parent / "data" / "m4_hourly"
HORIZON, SEASON = 48, 24


def load(n: int | None) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Training values as a tidy frame on an arbitrary hourly grid, and the test values."""
    train = pd.read_csv(DATA / "Hourly-train.csv", index_col=0)
    test = pd.read_csv(DATA / "Hourly-test.csv", index_col=0)
    ids = list(train.index[:n]) if n else list(train.index)
    parts, actual = [], {}
    for uid in ids:
        y = train.loc[uid].dropna().to_numpy(dtype=float)
        ds = pd.date_range("2020-01-01", periods=len(y), freq="h")
        parts.append(pd.DataFrame({"unique_id": uid, "ds": ds, "y": y}))
        actual[uid] = test.loc[uid].dropna().to_numpy(dtype=float)
    return pd.concat(parts, ignore_index=True), actual


def score(
    result: ForecastResult, frame: pd.DataFrame, actual: dict[str, np.ndarray]
) -> dict[str, float]:
    """The competition's hourly scores, averaged over series, and the first day's total."""
    fc = result.frame
    rows = []
    for uid, hist in frame.groupby("unique_id", sort=False):
        f = fc[fc["unique_id"] == uid].sort_values("ds")
        bounds = {lv: (f[f"lo_{lv}"].to_numpy(), f[f"hi_{lv}"].to_numpy()) for lv in (80, 95)}
        scale = mase_scale(hist["y"].to_numpy(), SEASON)
        row = score_window(actual[uid], f["mean"].to_numpy(), bounds, scale)
        day = result.sum_interval(str(uid), end=f["ds"].iloc[SEASON])
        total = float(actual[uid][:SEASON].sum())
        for lv in (80, 95):
            lo, hi = day[f"lo_{lv}"], day[f"hi_{lv}"]
            row[f"day{lv}"] = float(lo <= total <= hi)
            # Winkler's interval score over the day's MASE scale, as MSIS is per step: coverage
            # alone rewards any widening, this charges width and misses alike.
            miss = max(lo - total, 0.0) + max(total - hi, 0.0)
            row[f"day_is{lv}"] = ((hi - lo) + 2 / (1 - lv / 100) * miss) / (SEASON * scale)
        rows.append(row)
    per = pd.DataFrame(rows)
    s, m = float(per["smape"].mean()), float(per["mase"].mean())
    return {
        "series": len(per),
        "smape": s,
        "mase": m,
        "owa": owa(s, m),
        "msis": float(per["msis"].mean()),
        "coverage95": float((per["hits95"] / per["n"]).mean()),
        "coverage80": float((per["hits80"] / per["n"]).mean()),
        "day_total_coverage80": float(per["day80"].mean()),
        "day_total_coverage95": float(per["day95"].mean()),
        "day_total_interval_score80": float(per["day_is80"].mean()),
        "day_total_interval_score95": float(per["day_is95"].mean()),
    }


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the forecast's workers)."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, help="only the first N series (smoke run)")
    parser.add_argument("--save", type=Path, help="write the scores as JSON")
    args = parser.parse_args()
    frame, actual = load(args.series)
    load_before = os.getloadavg()[0]
    start, cpu = time.perf_counter(), cpu_seconds()
    result = forecast(frame, horizon=HORIZON, freq="1h", levels=(80, 95))
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu
    scores = score(result, frame, actual) | {
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "load_average": round(max(load_before, os.getloadavg()[0]), 1),
    }
    print(
        f"M4 hourly, {scores['series']} series, h={HORIZON}: sMAPE {scores['smape']:.3f}  "
        f"MASE {scores['mase']:.3f}  OWA {scores['owa']:.3f}  MSIS {scores['msis']:.3f}  "
        f"cov95 {scores['coverage95']:.1%}  cov80 {scores['coverage80']:.1%}  "
        f"first day's total cov80 {scores['day_total_coverage80']:.1%} "
        f"cov95 {scores['day_total_coverage95']:.1%} "
        f"(interval score {scores['day_total_interval_score80']:.2f} / "
        f"{scores['day_total_interval_score95']:.2f})  "
        f"{seconds:.0f} s, {cpu:.0f} CPU-s (load average {scores['load_average']})"
    )
    if args.save:
        args.save.write_text(json.dumps(scores, indent=2) + "\n")


if __name__ == "__main__":
    main()
