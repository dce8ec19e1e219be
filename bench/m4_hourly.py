"""tokenplan.forecast on the 414 M4 hourly series, scored exactly as the competition did.

h=48 from the end of each training series; sMAPE (x100), MASE scaled by the in-sample lag-24
seasonal naive error, OWA against Naive2's published hourly sMAPE 18.383 and MASE 2.395, MSIS
for the 95% interval (a=0.05, scaled like MASE) and 95% / 80% coverage. The published table of
every entry is in bench/data/m4_hourly/SOURCE.md, so these figures sit in it directly.

    .venv/bin/python bench/m4_hourly.py [--series N] [--save bench/results/m4_hourly.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tokenplan.forecast import forecast

DATA = Path(__file__).resolve().parent / "data" / "m4_hourly"
HORIZON, SEASON = 48, 24
NAIVE2_SMAPE, NAIVE2_MASE = 18.383, 2.395


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


def score(frame: pd.DataFrame, fc: pd.DataFrame, actual: dict[str, np.ndarray]) -> dict[str, float]:
    """The competition's hourly scores, averaged over series."""
    smape, mase, msis, cov95, cov80 = [], [], [], [], []
    for uid, hist in frame.groupby("unique_id", sort=False):
        y = hist["y"].to_numpy()
        scale = np.mean(np.abs(y[SEASON:] - y[:-SEASON]))
        f = fc[fc["unique_id"] == uid].sort_values("ds")
        a, m = actual[uid], f["mean"].to_numpy()
        lo, hi = f["lo_95"].to_numpy(), f["hi_95"].to_numpy()
        smape.append(np.mean(200 * np.abs(a - m) / (np.abs(a) + np.abs(m))))
        mase.append(np.mean(np.abs(a - m)) / scale)
        penalty = (2 / 0.05) * ((lo - a) * (a < lo) + (a - hi) * (a > hi))
        msis.append(np.mean(hi - lo + penalty) / scale)
        cov95.append(np.mean((a >= lo) & (a <= hi)))
        cov80.append(np.mean((a >= f["lo_80"].to_numpy()) & (a <= f["hi_80"].to_numpy())))
    s, m = float(np.mean(smape)), float(np.mean(mase))
    return {
        "series": len(smape),
        "smape": s,
        "mase": m,
        "owa": 0.5 * (s / NAIVE2_SMAPE + m / NAIVE2_MASE),
        "msis": float(np.mean(msis)),
        "coverage95": float(np.mean(cov95)),
        "coverage80": float(np.mean(cov80)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, help="only the first N series (smoke run)")
    parser.add_argument("--save", type=Path, help="write the scores as JSON")
    args = parser.parse_args()
    frame, actual = load(args.series)
    start = time.perf_counter()
    result = forecast(frame, horizon=HORIZON, freq="1h", levels=(80, 95))
    seconds = time.perf_counter() - start
    scores = score(frame, result.frame, actual) | {"seconds": round(seconds, 1)}
    print(
        f"M4 hourly, {scores['series']} series, h={HORIZON}: sMAPE {scores['smape']:.3f}  "
        f"MASE {scores['mase']:.3f}  OWA {scores['owa']:.3f}  MSIS {scores['msis']:.3f}  "
        f"cov95 {scores['coverage95']:.1%}  cov80 {scores['coverage80']:.1%}  "
        f"{seconds:.0f} s"
    )
    if args.save:
        args.save.write_text(json.dumps(scores, indent=2) + "\n")


if __name__ == "__main__":
    main()
