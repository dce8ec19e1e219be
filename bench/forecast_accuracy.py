"""Accuracy of tokenplan.forecast against the peers a user would pick instead, on open data.

Cases are (dataset, frequency, metric, horizon): the 414 M4 hourly series (h=48, the
competition's test set and scoring), ServeGen per client and per model (10 min and hourly),
Azure 2024 hourly, NASA 1995 hourly and daily, Azure 2023 and Mooncake minutely (see
bench/accuracy_cases.py for the data and the history rule that picks series). On each rolling
origin tokenplan is called once with all the case's series, through the public API
(``forecast(frame, horizon=h, freq=..., levels=(80, 95))``), and every peer in
bench/accuracy_peers.py is fitted on the same training part. Origins step back from the end by
the dataset's longest horizon (up to 3; M4 has 1), so shorter horizons score the first steps.

Per case and method: mean MASE and sMAPE over series x origins, mean MSIS (95%), pooled 80% /
95% coverage; MASE and MSIS are scaled by the in-sample seasonal naive MAE at the daily season
(lag 1 where the history holds under two days). The ratio is tokenplan's MASE over the best
peer's, the best chosen in hindsight per case; the summary gives their geometric mean and the
worst, and coverage pooled over the non-M4 cases and over M4.

    .venv/bin/python bench/forecast_accuracy.py [--quick] [--only REGEX] [--max-series N]
        [--extra] [--no-prophet | --prophet-everywhere] [--cache DIR | --no-cache] [--out DIR]

A full run writes bench/results/forecast_accuracy.csv (long: case, method, metrics) and
forecast_accuracy.md (the README's table); ``--quick`` / ``--only`` write only with ``--out``.
Peer forecasts are cached (default bench/results/cache/), so a rerun refits only tokenplan.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from accuracy_cases import DATASETS, EXTRA_DATASETS, SHARED, Dataset, Plan, make_plan
from accuracy_peers import LEVELS, Peer, PeerCache, filled, prophet_peer, statsforecast_peers
from accuracy_report import summarize, write_results
from scoring import mase_scale, score_window
from tokenplan.forecast import forecast

RESULTS = Path(__file__).resolve().parent / "results"
QUICK_CAP, QUICK_M4 = 5, 60


@dataclass
class Run:
    """Everything one bench run measured."""

    scores: list[dict[str, object]] = field(default_factory=list)
    fits: list[dict[str, object]] = field(default_factory=list)
    failures: list[dict[str, object]] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    prophet_cases: list[str] = field(default_factory=list)


def split(frame: pd.DataFrame, back: int, h: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training part (all but the last ``back`` buckets) and the ``h`` buckets after it."""
    from_end = frame.groupby("unique_id").cumcount(ascending=False)
    train = frame[from_end >= back].reset_index(drop=True)
    test = frame[(from_end < back) & (from_end >= back - h)].reset_index(drop=True)
    return train, test


def score(
    case: str, method: str, back: int, pred: pd.DataFrame, test: pd.DataFrame, h: int, scales: dict
) -> list[dict[str, object]]:
    """One row per series: the window's scores; NaN forecasts (missing rows) raise."""
    test = test.groupby("unique_id", sort=True).head(h)
    keys = pd.MultiIndex.from_frame(test[["unique_id", "ds"]])
    p = pred.set_index(["unique_id", "ds"]).reindex(keys)
    if p["mean"].isna().any():
        missing = p.index[p["mean"].isna()][0]
        raise ValueError(f"{method} gave no forecast for {missing}")
    rows = []
    for i, uid in enumerate(test["unique_id"].to_numpy()[::h]):
        sl = slice(i * h, (i + 1) * h)
        bounds = {lv: (p[f"lo_{lv}"].to_numpy()[sl], p[f"hi_{lv}"].to_numpy()[sl]) for lv in LEVELS}
        window = score_window(
            test["y"].to_numpy()[sl], p["mean"].to_numpy()[sl], bounds, scales[uid]
        )
        if window["n"] > 0:
            rows.append({"case": case, "method": method, "origin": back, "uid": uid} | window)
    return rows


def reproducer(train: pd.DataFrame, case: str, back: int, h: int, freq: str) -> str:
    """Save the failing input and return the one command that reproduces the failure."""
    folder = RESULTS / "failures"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{re.sub(r'[^A-Za-z0-9]+', '_', case)}_origin{back}.csv"
    train.to_csv(path, index=False)
    return (
        f'PYTHONPATH=src python -c "import pandas as pd; from tokenplan.forecast import forecast; '
        f"forecast(pd.read_csv('{path.relative_to(RESULTS.parents[1])}', parse_dates=['ds']), "
        f"horizon={h}, freq='{freq}', levels=(80, 95))\""
    )


def run_plan(plan: Plan, peers: list[Peer], cache: PeerCache, run: Run) -> None:
    """Fit the peers once per origin at the longest horizon, tokenplan once per case and origin."""
    freq, h_max = plan.dataset.freq, max(plan.horizons)
    for back in plan.backs:
        train, test = split(plan.frame, back, h_max)
        scales = {
            uid: mase_scale(g.to_numpy(), plan.primary)
            for uid, g in train.groupby("unique_id")["y"]
        }
        peer_train = filled(train)
        preds: dict[str, pd.DataFrame] = {}
        for peer in peers:
            key = f"{plan.dataset.name}/{freq}/{plan.metric}"
            try:
                preds[peer.name], seconds, cached = cache.forecast(peer, peer_train, h_max, freq)
            except Exception as exc:
                run.failures.append(
                    {"case": key, "origin": back, "method": peer.name, "error": repr(exc)}
                )
                continue
            run.fits.append(
                {
                    "key": key,
                    "method": peer.name,
                    "origin": back,
                    "seconds": seconds,
                    "cached": cached,
                }
            )
        for h in plan.horizons:
            case = plan.case(h)
            start = time.perf_counter()
            try:
                ours = forecast(train, horizon=h, freq=freq, levels=LEVELS).frame
                rows = score(case, "tokenplan", back, ours, test, h, scales)
            except Exception as exc:
                run.failures.append(
                    {
                        "case": case,
                        "origin": back,
                        "method": "tokenplan",
                        "error": "".join(traceback.format_exception_only(exc)).strip(),
                        "reproducer": reproducer(train, case, back, h, freq),
                    }
                )
                print(f"  tokenplan FAILED on {case} origin -{back}: {exc!r}", flush=True)
                continue
            seconds = time.perf_counter() - start
            run.fits.append(
                {
                    "key": case,
                    "method": "tokenplan",
                    "origin": back,
                    "seconds": seconds,
                    "cached": False,
                }
            )
            run.scores += rows
            for name, pred in preds.items():
                try:
                    run.scores += score(case, name, back, pred, test, h, scales)
                except ValueError as exc:
                    run.failures.append(
                        {"case": case, "origin": back, "method": name, "error": str(exc)}
                    )
        print(
            f"  {plan.dataset.name}/{freq}/{plan.metric} origin -{back}: done "
            f"({len(plan.frame['unique_id'].unique())} series)",
            flush=True,
        )


def plans(args: argparse.Namespace) -> list[Plan]:
    """The cases this run scores, after --only and --quick."""
    out = []
    pattern = re.compile(args.only) if args.only else None
    for dataset in DATASETS + (EXTRA_DATASETS if args.extra else ()):
        origins = 1 if args.quick else dataset.origins
        cap = QUICK_CAP if args.quick else args.max_series or dataset.cap
        for metric in dataset.metrics:
            names = [f"{dataset.name}/{dataset.freq}/{metric}/h{h}" for h in dataset.horizons]
            if pattern and not any(pattern.search(n) for n in names):
                continue
            frame = _read(dataset, metric, args)
            plan = make_plan(dataset, metric, frame, origins, cap)
            if pattern:
                plan.horizons = tuple(h for h in plan.horizons if pattern.search(plan.case(h)))
            out.append(plan)
    return out


def _read(dataset: Dataset, metric: str, args: argparse.Namespace) -> pd.DataFrame:
    frame = dataset.read(args.data, metric)
    if args.quick and dataset.name == "m4_hourly":
        frame = frame[frame["unique_id"].isin(frame["unique_id"].unique()[:QUICK_M4])]
    return frame


def describe(plan: Plan) -> str:
    """One line: what the history rule kept and dropped, the origins and seasons."""
    c = plan.counts
    dropped = ", ".join(
        f"{c[k]} {label}"
        for k, label in (
            ("short", "too short"),
            ("mostly_zero", "mostly zero"),
            ("flat", "flat"),
            ("over_cap", "over the cap"),
        )
        if c.get(k)
    )
    head = f"{plan.dataset.name}/{plan.dataset.freq}/{plan.metric}"
    if not plan.horizons:
        return f"{head}: skipped h={plan.skipped_horizons} (not enough history for the rule)"
    skipped = f"; h={plan.skipped_horizons} skipped (history)" if plan.skipped_horizons else ""
    return (
        f"{head}: {c['kept']} of {c['candidates']} series kept"
        + (f" ({dropped})" if dropped else "")
        + f"; origins -{', -'.join(map(str, plan.backs))}; seasons {list(plan.seasons)}, "
        f"MASE lag {plan.primary}{skipped}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED, help="folder of the shared traces")
    parser.add_argument(
        "--quick", action="store_true", help=f"1 origin, {QUICK_CAP} clients, {QUICK_M4} M4 series"
    )
    parser.add_argument("--only", help="only cases whose name matches this regex")
    parser.add_argument(
        "--max-series", type=int, help="per-client cases: the N largest (default 20; 8 at 10 min)"
    )
    parser.add_argument(
        "--extra",
        action="store_true",
        help="also M4 a week ahead, hourly and as daily totals, and the traces at other widths",
    )
    parser.add_argument("--no-prophet", action="store_true")
    parser.add_argument(
        "--prophet-everywhere", action="store_true", help="Prophet on M4 and per-client too"
    )
    parser.add_argument("--cache", type=Path, default=RESULTS / "cache")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--out", type=Path, help="write the CSV and markdown here")
    args = parser.parse_args()
    out = args.out or (None if args.quick or args.only else RESULTS)

    started = time.perf_counter()
    cache = PeerCache(None if args.no_cache else args.cache)
    prophet = None if args.no_prophet else prophet_peer()
    run = Run()
    for plan in plans(args):
        print(describe(plan), flush=True)
        run.plans.append(plan)
        if not plan.horizons or plan.frame.empty:
            continue
        peers = statsforecast_peers(plan.seasons, plan.primary)
        if prophet and (plan.dataset.prophet or args.prophet_everywhere):
            peers.append(prophet)
            run.prophet_cases += [plan.case(h) for h in plan.horizons]
        run_plan(plan, peers, cache, run)
    wall = time.perf_counter() - started

    pd.set_option("display.width", 220)
    summary = summarize(run, wall, _prophet_note(args, prophet is not None, run))
    print(summary.text)
    if out is not None and not summary.table.empty:
        command = "bench/forecast_accuracy.py " + " ".join(sys.argv[1:])
        write_results(summary, out, command.strip(), [describe(p) for p in run.plans])
        print(f"wrote {out / 'forecast_accuracy.csv'} and {out / 'forecast_accuracy.md'}")


def _prophet_note(args: argparse.Namespace, installed: bool, run: Run) -> str:
    if args.no_prophet:
        return "Prophet: left out (--no-prophet)"
    if not installed:
        return "Prophet: not installed (pip install prophet==1.5.0, the bench extra), left out"
    where = "every case" if args.prophet_everywhere else "the trace cases"
    skipped = "" if args.prophet_everywhere else "; skipped on M4 and per-client cases"
    return (
        f"Prophet: run on {where} ({len(run.prophet_cases)} cases){skipped} (--prophet-everywhere)"
    )


if __name__ == "__main__":
    main()
