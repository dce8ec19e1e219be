"""Fuzz `tokenplan.forecast` on damaged slices of the open traces and check what must always hold.

Each case takes a random slice (3 buckets to the whole trace) of one of the first five series of
every open trace (M4 aside) and damages it at random: an outage (a run of zeros), a 20x burst,
a level shift (x0.1 or x5), a scale of 1e-6 to 1e13, dropped rows, rounding, a constant, a
bucket phase off the hour (or a day starting off midnight), unknown values at the end, a second
series (ragged against the first), a total over the two, other interval levels, and a forecaster
saved to a file and loaded. It then checks, per series: ``h`` rows, finite values, ``lo >= 0``,
the interval order at every level, the first bucket one step after the last known one, and a
finite, ordered `sum_interval`; with a total, no part's sums above the total's over the buckets
both forecast. Input that `InvalidInput` refuses counts as handled (its reason is printed, to be
read); anything else that raises, or an invariant that breaks, is a failure:
printed with its damage and the input saved under bench/results/fuzz/ for a reproducer.

    .venv/bin/python bench/forecast_fuzz.py [--seed 1] [--seconds 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from accuracy_cases import DATASETS, SHARED
from tokenplan.errors import InvalidInput
from tokenplan.forecast import Forecaster, ForecastResult, forecast

RESULTS = Path(__file__).resolve().parent / "results" / "fuzz"
STEP = {"1min": "1min", "10min": "10min", "1h": "1h", "1d": "1D"}
_SERIES_PER_TRACE = 5


def traces() -> list[tuple[str, str, pd.DataFrame]]:
    """``(trace, freq, one series)`` for the first series of every open trace."""
    out = []
    for dataset in DATASETS:
        if dataset.name.startswith("m4"):
            continue
        frame = dataset.read(SHARED, dataset.metrics[0])
        for uid in frame["unique_id"].unique()[:_SERIES_PER_TRACE]:
            one = frame[frame["unique_id"] == uid].sort_values("ds").reset_index(drop=True)
            out.append((dataset.name, dataset.freq, one))
    return out


def damaged(
    one: pd.DataFrame, freq: str, rng: np.random.Generator
) -> tuple[pd.DataFrame, list[str]]:
    """A random slice of ``one`` with random damage, and what was done to it."""
    y = one["y"].to_numpy(dtype=float).copy()
    ds = one["ds"].copy()
    n = int(rng.integers(3, len(y) + 1))
    start = int(rng.integers(0, len(y) - n + 1))
    y, ds = y[start : start + n], ds.iloc[start : start + n].reset_index(drop=True)
    done = [f"slice {n}"]
    if rng.random() < 0.3:
        a = int(rng.integers(0, n))
        b = min(n, a + int(rng.integers(1, max(2, n // 3))))
        y[a:b] = 0.0
        done.append(f"outage {a}:{b}")
    if rng.random() < 0.2:
        a = int(rng.integers(0, n))
        y[a : a + 3] *= 20.0
        done.append(f"burst at {a}")
    if rng.random() < 0.2:
        a, factor = int(rng.integers(0, n)), float(rng.choice([0.1, 5.0]))
        y[a:] *= factor
        done.append(f"level x{factor} from {a}")
    if rng.random() < 0.15:
        factor = float(rng.choice([1e-6, 1e-3, 1e9, 1e13]))
        y *= factor
        done.append(f"scale {factor:g}")
    if rng.random() < 0.15:
        keep = rng.random(n) > 0.2
        keep[0] = keep[-1] = True
        y, ds = y[keep], ds[keep].reset_index(drop=True)
        done.append("rows dropped")
    if rng.random() < 0.15:
        y = np.round(y)
        done.append("rounded")
    if rng.random() < 0.1:
        y[:] = y[0]
        done.append("constant")
    if rng.random() < 0.2:
        minutes = int(rng.integers(1, 60)) if freq != "1d" else 60 * int(rng.integers(1, 24))
        ds = ds + pd.Timedelta(minutes=minutes)
        done.append(f"phase +{minutes} min")
    if rng.random() < 0.1 and len(y) > 2:
        tail = int(rng.integers(1, max(2, len(y) // 4)))
        y[-tail:] = np.nan
        done.append(f"last {tail} unknown")
    df = pd.DataFrame({"unique_id": "a", "ds": ds, "y": y})
    if rng.random() < 0.3:
        other = df.assign(unique_id="b", y=df["y"] * 0.5)
        if rng.random() < 0.5:
            cut = int(rng.integers(1, max(2, len(other) // 2)))
            other = other.iloc[:-cut] if rng.random() < 0.5 else other.iloc[cut:]
            done.append(f"second series, ragged by {cut}")
        else:
            done.append("second series")
        df = pd.concat([df, other], ignore_index=True)
    return df, done


def check(res: ForecastResult, df: pd.DataFrame, h: int, freq: str, levels: tuple) -> None:
    """Raise AssertionError naming the first invariant ``res`` breaks."""
    widest_first = sorted(levels, reverse=True)
    columns = [f"lo_{lv}" for lv in widest_first] + ["mean"]
    columns += [f"hi_{lv}" for lv in widest_first[::-1]]
    known = df[df["y"].notna()]
    step = pd.Timedelta(STEP[freq])
    for uid, rows in res.frame.groupby("unique_id"):
        assert len(rows) == h, f"{uid}: {len(rows)} rows for h={h}"
        values = rows[columns].to_numpy()
        assert np.isfinite(values).all(), f"{uid}: non-finite forecast"
        assert (values[:, 0] >= 0).all(), f"{uid}: negative lower bound"
        slack = 1e-9 * np.maximum(1.0, np.abs(values[:, 1:]))
        assert (np.diff(values, axis=1) >= -slack).all(), f"{uid}: intervals out of order"
        own = known[known["unique_id"] == uid] if uid in set(df["unique_id"]) else known
        first, last = rows["ds"].min(), own["ds"].max()
        # Phases are the series' own: compare the step count, not the wall clock of the grid.
        assert pd.Timedelta(0) < first - last <= step, f"{uid}: starts {first}, last {last}"
        total = res.sum_interval(str(uid))
        assert all(np.isfinite(v) for v in total.values()), f"{uid}: sum_interval {total}"
        for lv in widest_first:
            assert 0 <= total[f"lo_{lv}"] <= total[f"hi_{lv}"], f"{uid}: sum order {total}"
    if res.total_id is not None:
        # Over the buckets both forecast: a ragged part's own buckets start elsewhere.
        stamps = res.frame.groupby("unique_id")["ds"]
        start, end = stamps.min().max(), stamps.max().min() + step
        whole = res.sum_interval(res.total_id, start, end)
        for uid in res.paths:
            part = res.sum_interval(uid, start, end)
            above = [k for k in part if k != "buckets" and part[k] > whole[k] * (1 + 1e-9)]
            assert not above, f"{uid}: sums above the total's at {above}"


def one_case(
    df: pd.DataFrame, freq: str, rng: np.random.Generator, done: list[str], folder: Path
) -> None:
    """Forecast ``df`` with random settings (added to ``done``) and check it."""
    h = int(rng.choice([1, 2, 7, 12, 24, 36, 48, 168]))
    levels: tuple = (80, 95)
    if rng.random() < 0.3:
        levels = tuple(sorted(int(v) for v in rng.choice([50, 80, 90, 95, 99], 2, replace=False)))
    hierarchy = "total" if df["unique_id"].nunique() > 1 and rng.random() < 0.4 else None
    done += [f"h={h}", f"levels {levels}"] + ([f"hierarchy {hierarchy}"] if hierarchy else [])
    if rng.random() < 0.15:
        fitted = Forecaster(freq, h, levels, hierarchy=hierarchy).fit(df)
        path = folder / "model.json"
        fitted.save(str(path))
        res = Forecaster.load(str(path)).predict()
        done.append("saved and loaded")
    else:
        res = forecast(df, horizon=h, freq=freq, levels=levels, hierarchy=hierarchy)
    check(res, df, h, freq, levels)


def options(doc: str) -> argparse.Namespace:
    """``--seed`` and ``--seconds`` of a fuzz run; the models' warnings silenced."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=300.0)
    warnings.simplefilter("ignore")
    return parser.parse_args()


def failure_file(name: str) -> Path:
    """Where a failing input is kept for its reproducer."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS / name


def main() -> None:
    args = options(__doc__ or "")
    rng = np.random.default_rng(args.seed)
    pool = traces()
    cases = refused = failed = 0
    deadline = time.monotonic() + args.seconds
    with tempfile.TemporaryDirectory() as tmp:
        while time.monotonic() < deadline:
            name, freq, one = pool[int(rng.integers(len(pool)))]
            df, done = damaged(one, freq, rng)
            cases += 1
            try:
                one_case(df, freq, rng, done, Path(tmp))
            except InvalidInput as exc:
                refused += 1
                print(f"refused {name} {freq} [{'; '.join(done)}]: {exc}")
            except Exception as exc:
                failed += 1
                saved = failure_file(f"seed{args.seed}_case{cases}.csv")
                df.to_csv(saved, index=False)
                reason = "".join(traceback.format_exception_only(exc)).strip()
                print(f"FAILED {name} {freq} [{'; '.join(done)}]: {reason[:300]} ({saved})")
    print(
        f"{cases} cases (seed {args.seed}, {args.seconds:.0f} s): {failed} failed, "
        f"{refused} refused by InvalidInput"
    )


if __name__ == "__main__":
    main()
