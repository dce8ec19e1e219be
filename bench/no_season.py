"""Short histories with no season a model can use: tokenplan against the peers a user would pick.

A day or less of 10-minute buckets holds no whole daily cycle twice, so every model forecasts
without a season. Two sources:

- the open traces' 10-minute series (ServeGen per client and per model, language and
  multimodal; the 8 largest of each), cut into 72, 108 and 144 buckets of history (12, 18 and
  24 hours) and the next 12 and 36, one slice every two days and six hours, each forecast on
  its own as a user with that one series would (at most 60 slices per row, evenly spread);
- the 414 M4 hourly series read as 10-minute buckets (the last 72, 108 or 144 values before
  their final 48, then the next 12 or 36), forecast as one panel: their daily cycle is 24
  buckets, which no model is told, so a global model that learns it from the series' lags
  shows what a panel can add where a single series cannot.

Per row it prints each method's MASE (MAE over the history's in-sample naive MAE) as a
geometric mean over the slices or series, and tokenplan's ratio to the best peer (naive,
AutoETS, AutoTheta from statsforecast, chosen in hindsight per row), then the geometric mean
and worst of the ratios.

    .venv/bin/python bench/no_season.py
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from accuracy_cases import DATASETS, SHARED
from one_day import PEERS as DAY_PEERS
from one_day import _geometric_mean, _mase, naive_scale, peer_forecasts
from short_history import trace_slices
from tokenplan.forecast import forecast

FREQ = "10min"
TRACE_ROWS = [(length, h) for length in (72, 108, 144) for h in (12, 36)]
M4_ROWS = [(72, 12), (108, 36), (144, 36)]
_EVERY = 2 * 144 + 36
_LARGEST = 8
_MAX_SLICES = 60
_M4_HELD_OUT = 48
PEERS = DAY_PEERS[:3]  # without the day before: no history here holds a whole day


def trace_cases(length: int, h: int) -> list[tuple[pd.DataFrame, np.ndarray]]:
    """``(history, the next h actuals)`` of up to `_MAX_SLICES` trace slices."""
    kept = trace_slices(FREQ, length, h, _EVERY, largest=_LARGEST)
    if len(kept) > _MAX_SLICES:
        kept = [kept[i] for i in np.linspace(0, len(kept) - 1, _MAX_SLICES).astype(int)]
    out = []
    for k, (name, part) in enumerate(kept):
        history = part.iloc[:length][["ds", "y"]].copy()
        history.insert(0, "unique_id", f"{name}|{k}")
        out.append((history, part["y"].to_numpy(float)[length:]))
    return out


def m4_cases(length: int, h: int) -> list[tuple[pd.DataFrame, np.ndarray]]:
    """``(history, the next h actuals)`` of every M4 hourly series, read as 10-minute buckets."""
    m4 = next(d for d in DATASETS if d.name == "m4_hourly").read(SHARED, "value")
    stamps = pd.date_range("2024-01-01", periods=length, freq=FREQ)
    out = []
    for uid, part in m4.groupby("unique_id", sort=True):
        y = part["y"].to_numpy(float)
        end = len(y) - _M4_HELD_OUT
        if end < length:
            continue
        history = pd.DataFrame({"unique_id": uid, "ds": stamps, "y": y[end - length : end]})
        out.append((history, y[end : end + h]))
    return out


def score(cases: list[tuple[pd.DataFrame, np.ndarray]], h: int, panel: bool) -> pd.DataFrame:
    """One row per series: each method's MASE. ``panel``: one tokenplan call for them all."""
    histories = pd.concat([history for history, _ in cases], ignore_index=True)
    peers = peer_forecasts(histories, h, day=False).set_index("unique_id")
    ours: dict[str, np.ndarray] = {}
    if panel:
        frame = forecast(histories, horizon=h, freq=FREQ, levels=(80, 95)).frame
        ours = {str(u): g["mean"].to_numpy() for u, g in frame.groupby("unique_id")}
    rows = []
    for history, actual in cases:
        uid = str(history["unique_id"].iloc[0])
        if not panel:
            ours[uid] = (
                forecast(history, horizon=h, freq=FREQ, levels=(80, 95)).frame["mean"].to_numpy()
            )
        scale = naive_scale(history["y"].to_numpy(float))
        row = {"tokenplan": _mase(ours[uid], actual, scale)}
        for peer in PEERS:
            row[peer] = _mase(peers.loc[uid, peer].to_numpy(float), actual, scale)
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    ratios: list[float] = []
    print("MASE (over the in-sample naive MAE), geometric mean; ratio: tokenplan / best peer")
    rows = [("traces", length, h, False) for length, h in TRACE_ROWS]
    rows += [("m4 as 10 min", length, h, True) for length, h in M4_ROWS]
    for source, length, h, panel in rows:
        cases = m4_cases(length, h) if panel else trace_cases(length, h)
        table = score(cases, h, panel)
        means = {m: _geometric_mean(table[m]) for m in table.columns}
        best = min(PEERS, key=lambda m: means[m])
        ratio = means["tokenplan"] / means[best]
        ratios.append(ratio)
        print(
            f"{source:>12} {length:>3} buckets h={h:<3} {len(table):>4} series: "
            + ", ".join(f"{m} {means[m]:.3f}" for m in table.columns)
            + f"; ratio {ratio:.3f} ({best})",
            flush=True,
        )
    worst = max(ratios)
    print(
        f"ratio over {len(ratios)} rows: geometric mean {_geometric_mean(ratios):.3f},"
        f" worst {worst:.3f}; {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
