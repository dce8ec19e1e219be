"""Backtest `tokenplan.plan.project` against the straight-line projection on the shared traces.

For every complete day and week of each real trace in tests/data/shared, project the period
total from 1/4, 1/2, 3/4 of each day and 2/7, 4/7, 6/7 of each week (traces shorter than a day,
azure_llm_2023 and mooncake_conversation, hold no complete period and are not scored), with
limits at several levels of the actual totals, and print: mean absolute error (ours vs
so_far / elapsed × length), Brier score of p_over_limit vs the straight line's yes/no,
interval coverage and a reliability table.

    .venv/bin/python bench/project_calibration.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tokenplan.plan.periods import period_bounds
from tokenplan.plan.projection import project

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "shared"
# (directory, file, time zone whose midnight the trace's days follow)
TRACES = [
    ("servegen_language", "hourly.csv", "Asia/Shanghai"),
    ("servegen_mm_image", "hourly.csv", "Asia/Shanghai"),
    ("azure_llm_2024_conv_hourly", "hourly.csv", "UTC"),
    ("nasa_http_1995_proxy", "hourly.csv", "America/New_York"),
]
METRICS = ("requests", "total_tokens")
# The origins issue 9 fixes: 1/4, 1/2, 3/4 of days and 2/7, 4/7, 6/7 of weeks.
POINTS = {"day": np.array([1, 2, 3]) / 4, "week": np.array([2, 4, 6]) / 7}
LIMIT_LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)
LIMIT_SCALES = (0.8, 0.95, 1.05, 1.25)


@dataclass
class Case:
    trace: str
    metric: str
    period: str
    elapsed: float
    actual: float
    ours: float
    line: float
    lo80: float
    hi80: float
    lo95: float
    hi95: float
    limits: list[float]
    past: int
    p: list[float]
    line_yes: list[float]


def load(directory: str, file: str, metric: str) -> pd.DataFrame | None:
    """The trace summed over models as ``ds, y`` (None when it lacks the metric)."""
    raw = pd.read_csv(DATA / directory / file)
    if metric == "total_tokens":
        if raw["input_tokens"].isna().all():
            return None
        raw[metric] = raw["input_tokens"] + raw["output_tokens"]
    frame = raw.groupby("timestamp", as_index=False)[metric].sum(min_count=1)
    ds = pd.to_datetime(frame["timestamp"], utc=True).dt.tz_localize(None)
    return pd.DataFrame({"ds": ds, "y": frame[metric].astype(float)})


def run_trace(name: str, file: str, tz: str, metric: str, period: str, quick: bool) -> list[Case]:
    """Backtest one trace, metric and period at every complete period."""
    frame = load(name, file, metric)
    if frame is None:
        return []
    step = frame["ds"].diff().min()
    first, last = frame["ds"].min(), frame["ds"].max() + step
    starts = []
    cursor = period_bounds(first, period, tz)[0]
    while True:
        s, e = period_bounds(cursor, period, tz)
        if e.tz_localize(None) > last:
            break
        if s.tz_localize(None) >= first:
            starts.append((s.tz_localize(None), e.tz_localize(None)))
        cursor = e
    if not starts:
        return []
    # Periods with unknown buckets (outages, missing logs) have no true total: leave them out.
    inside = [frame.loc[(frame.ds >= s) & (frame.ds < e), "y"] for s, e in starts]
    starts = [se for se, y in zip(starts, inside, strict=True) if y.notna().all() and y.sum() > 0]
    totals = [float(y.sum()) for y in inside if y.notna().all() and y.sum() > 0]
    mean_total = float(np.mean(totals))
    limits = sorted(
        {float(np.quantile(totals, q)) for q in LIMIT_LEVELS}
        | {mean_total * k for k in LIMIT_SCALES}
    )
    points = POINTS[period][::2] if quick else POINTS[period]
    cases = []
    for (s, e), actual in zip(starts, totals, strict=True):
        length = (e - s) / step
        for frac in points:
            as_of = s + step * (int(length * frac) - 1)
            if as_of < first:
                continue
            # Honest by construction: the method is handed nothing after the origin.
            seen = frame[frame["ds"] <= as_of]
            p0 = project(seen, period=period, as_of=as_of, tz=tz, freq="1h")
            elapsed = (as_of + step - s) / (e - s)
            line = p0.so_far / elapsed
            cases.append(
                Case(
                    name,
                    metric,
                    period,
                    elapsed,
                    actual,
                    p0.projected,
                    line,
                    p0.lo_80,
                    p0.hi_80,
                    p0.lo_95,
                    p0.hi_95,
                    limits,
                    p0.past_periods,
                    [p0.p_over(x) for x in limits],
                    [float(line > x) for x in limits],
                )
            )
    return cases


def report(cases: list[Case]) -> None:
    """Print MAE, Brier and coverage per trace x metric x period, pooled, and reliability."""
    df = pd.DataFrame([c.__dict__ for c in cases])
    df["err_ours"] = (df.ours - df.actual).abs()
    df["err_line"] = (df.line - df.actual).abs()
    df["rel_ours"] = df.err_ours / df.actual
    df["rel_line"] = df.err_line / df.actual
    df["in80"] = (df.actual >= df.lo80) & (df.actual <= df.hi80)
    df["in95"] = (df.actual >= df.lo95) & (df.actual <= df.hi95)
    over = [
        np.array([float(a > x) for x in lim]) for a, lim in zip(df.actual, df.limits, strict=True)
    ]
    df["brier_ours"] = [np.mean((np.asarray(p) - o) ** 2) for p, o in zip(df.p, over, strict=True)]
    df["brier_line"] = [
        np.mean((np.asarray(y) - o) ** 2) for y, o in zip(df.line_yes, over, strict=True)
    ]
    print("\n== Per trace x metric x period: MAE ours / straight line, Brier, coverage ==")
    table = df.groupby(["trace", "metric", "period"]).agg(
        n=("actual", "size"),
        mae_ours=("err_ours", "mean"),
        mae_line=("err_line", "mean"),
        brier_ours=("brier_ours", "mean"),
        brier_line=("brier_line", "mean"),
        cover80=("in80", "mean"),
        cover95=("in95", "mean"),
    )
    table.insert(3, "ratio", table.mae_ours / table.mae_line)
    shown = table.drop(columns=["mae_ours", "mae_line"])
    with pd.option_context(
        "display.width", 250, "display.max_columns", 20, "display.float_format", "{:,.3f}".format
    ):
        print(shown)
    ratio = table.ratio
    print(
        f"\nMAE ratio ours/line over {len(ratio)} rows: geometric mean "
        f"{float(np.exp(np.log(ratio).mean())):.3f}, worst {ratio.max():.3f} "
        f"({', '.join(' '.join(i) for i in ratio[ratio == ratio.max()].index)}), "
        f"rows <= 0.8: {int((ratio <= 0.8).sum())}/{len(ratio)}"
    )
    # The unit is the trace: every origin of its days and weeks, both metrics, as
    # relative errors so that tokens do not swamp requests.
    per_trace = df.groupby("trace").agg(
        n=("actual", "size"),
        past=("past", "median"),
        ours=("rel_ours", "mean"),
        line=("rel_line", "mean"),
    )
    per_trace["ratio"] = per_trace.ours / per_trace.line
    print("\nPer trace (relative MAE, every origin and metric):")
    for trace, r in per_trace.iterrows():
        print(
            f"  {trace:28s} n={int(r.n):4d}  median past periods {r.past:4.1f}  "
            f"ours {r.ours:.4f}  line {r.line:.4f}  ratio {r.ratio:.3f}"
        )
    print(
        f"pooled: n={len(df)}  relative MAE ours {df.rel_ours.mean():.4f}  straight line "
        f"{df.rel_line.mean():.4f}  ratio {df.rel_ours.mean() / df.rel_line.mean():.3f}"
    )
    print(f"pooled coverage: 80% range {df.in80.mean():.3f}, 95% range {df.in95.mean():.3f}")
    by_past = df.groupby(np.minimum(df.past, 8)).agg(n=("in80", "size"), c80=("in80", "mean"))
    cells = [
        f"{k}{'+' if k == 8 else ''}: {r.c80:.2f} (n={int(r.n)})" for k, r in by_past.iterrows()
    ]
    print("80% coverage by past periods seen: " + ", ".join(cells))
    p = np.concatenate(df.p.to_list())
    yes = np.concatenate(df.line_yes.to_list())
    actual_over = np.concatenate(over)
    print(
        f"pooled Brier of p_over_limit: ours {np.mean((p - actual_over) ** 2):.4f}, straight "
        f"line yes/no {np.mean((yes - actual_over) ** 2):.4f} (n={len(p)} period-limit pairs, "
        f"base rate {actual_over.mean():.3f}); rows where ours is lower: "
        f"{int((table.brier_ours < table.brier_line).sum())}/{len(table)}"
    )
    print("\n== Reliability: predicted p_over_limit bins vs observed overrun frequency ==")
    bins = np.array([0, 0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98, 1.0001])
    idx = np.digitize(p, bins) - 1
    print(f"{'bin':>13} {'n':>6} {'mean p':>8} {'observed':>9}")
    for b in range(len(bins) - 1):
        m = idx == b
        if m.any():
            print(
                f"[{bins[b]:.2f}, {min(bins[b + 1], 1):.2f}) {m.sum():6d} {p[m].mean():8.3f} "
                f"{actual_over[m].mean():9.3f}"
            )


def main(argv: list[str] | None = None) -> int:
    """Run the backtest and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first and last as-of point only")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    cases: list[Case] = []
    for name, file, tz in TRACES:
        for metric in METRICS:
            for period in ("day", "week"):
                cases += run_trace(name, file, tz, metric, period, args.quick)
    report(cases)
    print(
        f"\n{len(cases)} projections x {len(LIMIT_LEVELS) + len(LIMIT_SCALES)} limits in "
        f"{time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
