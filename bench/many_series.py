"""Scale of dimensions (issue 13): a store with thousands of series, timed through the CLI.

    python bench/many_series.py [--series 5000] [--days 21] [--dimension model] [--keep DIR]

Builds a usage series CSV with ``--series`` values of one dimension (models by default, each
also tagged with one of 40 teams), hourly over ``--days`` days, with realistic sparsity: sizes
follow a Zipf law, a few series run every hour and most appear in a few hours a week. Imports
it, then times ``tokenplan report`` and ``tokenplan forecast --by DIM`` as subprocesses.
Targets: report <= 120 s, forecast --by <= 120 s. CPU seconds include worker processes; on a
shared machine the wall time also depends on the load average printed first.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

TEAMS = 40


def make_usage(series: int, days: int, dimension: str, seed: int = 13) -> pd.DataFrame:
    """A usage series CSV frame: one row per hour and active series, Zipf-sized, sparse."""
    rng = np.random.default_rng(seed)
    hours = pd.date_range("2025-06-02", periods=days * 24, freq="h")
    rank = np.arange(1, series + 1)
    share = 1.0 / rank**1.1
    share /= share.sum()
    # Arrivals per hour scale with size: the biggest series are busy every hour, the long
    # tail shows up a few hours a week.
    rate = share * series * 2.0
    hour = hours.hour.to_numpy()
    weekday = hours.weekday.to_numpy()
    daily = 0.35 + 0.65 * np.exp(-(((hour - 14) / 4.5) ** 2))
    weekly = np.where(weekday >= 5, 0.45, 1.0)
    shape = daily * weekly
    p_active = -np.expm1(-rate[:, None] * shape[None, :])
    active = rng.random((series, len(hours))) < p_active
    s_idx, h_idx = np.nonzero(active)
    # About a million requests a day in all, split by size.
    per_hour = 1e6 / 24 * share[s_idx] * shape[h_idx] / shape.mean()
    requests = 1 + rng.poisson(per_hour / p_active[s_idx, h_idx])
    inputs = (requests * rng.lognormal(7.2, 0.5, len(s_idx))).astype(np.int64)
    outputs = (requests * rng.lognormal(5.5, 0.5, len(s_idx))).astype(np.int64)
    names = np.char.add(f"{dimension}-", rank.astype(str))
    frame = pd.DataFrame(
        {
            "timestamp": hours[h_idx].strftime("%Y-%m-%dT%H:%M:%SZ"),
            dimension: names[s_idx],
            "requests": requests,
            "input_tokens": inputs,
            "output_tokens": outputs,
            "cost_usd": np.round((inputs * 3 + outputs * 15) / 1e6, 6),
        }
    )
    if dimension == "model":
        frame["team"] = np.char.add("team-", (s_idx % TEAMS).astype(str))
    else:
        frame["model"] = np.char.add("model-", (s_idx % TEAMS).astype(str))
    return frame.sort_values("timestamp", kind="stable")


def _tokenplan(*args: str) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall seconds, CPU seconds (the command and its worker processes) and the result."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "tokenplan", *args], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode != 0:
        raise SystemExit(f"tokenplan {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return seconds, cpu, out


def main() -> None:
    """Build the store, then time report and forecast --by as the user runs them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=5000)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--dimension", choices=("model", "team"), default="model")
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--skip", nargs="*", default=[], choices=("report", "forecast"))
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="tokenplan-many-"))
    work.mkdir(parents=True, exist_ok=True)
    csv = work / f"usage_{args.series}_{args.dimension}.csv"
    db = work / f"many_{args.series}_{args.dimension}.duckdb"
    if not db.exists():
        frame = make_usage(args.series, args.days, args.dimension)
        frame.to_csv(csv, index=False)
        seconds, _, _ = _tokenplan("import", str(csv), "--db", str(db))
        active = frame.groupby(args.dimension).size()
        print(
            f"store: {args.series:,} {args.dimension}s, {args.days} days hourly, "
            f"{len(frame):,} rows ({len(frame) / (args.series * args.days * 24):.1%} of the "
            f"grid; median series active {int(active.median())} h), imported in {seconds:.1f} s"
        )
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'command':<52} {'wall s':>8} {'CPU s':>8}")
    if "report" not in args.skip:
        html = work / "report.html"
        seconds, cpu, _ = _tokenplan(
            "report", "--db", str(db), "--out", str(html), "--json", str(work / "report.json")
        )
        fans = len(json.loads((work / "report.json").read_text())["fans"]["items"])
        label = "tokenplan report --json report.json"
        print(f"{label:<52} {seconds:>8.1f} {cpu:>8.1f}  ({fans} fans)")
    if "forecast" not in args.skip:
        out = work / "forecast.csv"
        command = ("forecast", "--by", args.dimension, "--horizon", "168", "--out", str(out))
        seconds, cpu, _ = _tokenplan(*command, "--db", str(db))
        series = pd.read_csv(out, usecols=["series"])["series"].nunique()
        label = f"tokenplan forecast --by {args.dimension} --horizon 168"
        print(f"{label:<52} {seconds:>8.1f} {cpu:>8.1f}  ({series:,} series written)")
    print(f"files in {work}")


if __name__ == "__main__":
    main()
