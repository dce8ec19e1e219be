"""Snapshot what the forecaster says on eleven varied panels, and compare with a saved snapshot.

For changes that must not move a forecast (a refactor, a speed-up): save a snapshot before,
compare after. Each panel's forecast frame, backtest table, notes, chosen methods and the
sums of three series over the horizon (`sum_interval`, read off the sample paths) must be
equal, not close. The panels cover the forecaster's paths: NASA hourly a day and a week ahead,
NASA as days from 16:00Z, ServeGen per model at 10 minutes with a total (`hierarchy`), one day
and a day and a half of 10-minute buckets (one cycle, one to two), 36 and 60 hours hourly
(fallbacks), ServeGen per model hourly, ServeGen's hourly clients (intermittent ones among
them), and 230 synthetic series with outages, level shifts, bursts and mostly empty ones (the
baselines and coverage computed in the worker processes). About four minutes on two cores.

    .venv/bin/python bench/forecast_snapshot.py --save /tmp/before
    .venv/bin/python bench/forecast_snapshot.py --compare /tmp/before

Frames are stored as Parquet and the rest as JSON (never pickle: a snapshot is a file like any
other). Exit 0 when every panel matches, 1 and the differing panels named when not.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tokenplan.forecast import forecast

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "shared"


def _tidy(path: str, metric: str, by: str | None = None) -> pd.DataFrame:
    f = pd.read_csv(DATA / path, parse_dates=["timestamp"])
    f["ds"] = f["timestamp"].dt.tz_convert(None)
    if metric == "total_tokens":
        f["total_tokens"] = f["input_tokens"] + f["output_tokens"]
    f["unique_id"] = f[by] if by else "total"
    grouped = f.groupby(["unique_id", "ds"], as_index=False)[metric].sum()
    return grouped.rename(columns={metric: "y"})


def _clients() -> pd.DataFrame:
    c = pd.read_csv(DATA / "servegen_language" / "clients_10min.csv.gz")
    c["ds"] = pd.to_datetime(c["timestamp"], utc=True).dt.tz_convert(None).dt.floor("1h")
    out = c.groupby(["client", "ds"], as_index=False)["requests"].sum()
    out = out.rename(columns={"client": "unique_id", "requests": "y"})
    return out.assign(unique_id=out["unique_id"].astype(str))


def _synthetic() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    ds = pd.date_range("2024-01-01", periods=24 * 20, freq="1h")
    t = np.arange(len(ds))
    frames = []
    for i in range(230):
        y = rng.lognormal(5, 1) * (1 + 0.5 * np.sin(t * 2 * np.pi / 24))
        y = y * rng.lognormal(0, 0.2, len(ds))
        if i % 7 == 0:
            y[300:348] = 0  # a two-day outage
        if i % 11 == 0:
            y[400:] *= 5  # a level shift
        if i % 13 == 0:
            y[200:202] *= 10  # a burst
        if i % 17 == 0:
            y[rng.random(len(ds)) < 0.5] = 0  # mostly empty
        frames.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": np.round(y)}))
    return pd.concat(frames, ignore_index=True)


def panels() -> dict[str, Callable[[], object]]:
    """Each panel's name and how to forecast it."""
    nasa = _tidy("nasa_http_1995_proxy/hourly.csv", "requests")
    daily = nasa.assign(
        ds=(nasa["ds"] - pd.Timedelta(hours=16)).dt.floor("D") + pd.Timedelta(hours=16)
    )
    daily = daily.groupby(["unique_id", "ds"], as_index=False)["y"].sum()
    models = _tidy("servegen_language/10min.csv", "total_tokens", by="model")
    first = models["ds"].min()
    hourly = _tidy("servegen_language/hourly.csv", "requests", by="model")
    start = hourly["ds"].min()

    def run(frame: pd.DataFrame, h: int, freq: str, **kw: object) -> Callable[[], object]:
        return lambda: forecast(frame, horizon=h, freq=freq, levels=(80, 95), **kw)

    return {
        "nasa_h24": run(nasa, 24, "1h"),
        "nasa_h168": run(nasa, 168, "1h"),
        "nasa_days_16z": run(daily, 7, "1d"),
        "models_10min_total": run(models, 36, "10min", hierarchy="total"),
        "one_day_10min": run(models[models["ds"] < first + pd.Timedelta(days=1)], 12, "10min"),
        "day_and_half_10min": run(
            models[models["ds"] < first + pd.Timedelta(hours=36)], 12, "10min"
        ),
        "hours_36": run(hourly[hourly["ds"] < start + pd.Timedelta(hours=36)], 24, "1h"),
        "hours_60": run(hourly[hourly["ds"] < start + pd.Timedelta(hours=60)], 24, "1h"),
        "models_hourly": run(hourly, 24, "1h"),
        "clients_hourly": run(_clients(), 24, "1h"),
        "synthetic_230": run(_synthetic(), 48, "1h"),
    }


def take(result: object) -> dict[str, object]:
    """What a panel's forecast says, in plain values."""
    notes = dict(result.notes)  # type: ignore[attr-defined]
    sums = {str(u): result.sum_interval(u) for u in list(notes)[:3]}  # type: ignore[attr-defined]
    return {
        "frame": result.frame,  # type: ignore[attr-defined]
        "backtest": result.backtest,  # type: ignore[attr-defined]
        "said": {
            "notes": {str(k): v for k, v in notes.items()},
            "chosen": {str(k): v for k, v in dict(result.chosen).items()},  # type: ignore[attr-defined]
            "sums": {u: {k: float(v) for k, v in s.items()} for u, s in sums.items()},
        },
    }


def save(got: dict[str, object], where: Path) -> None:
    where.mkdir(parents=True, exist_ok=True)
    got["frame"].to_parquet(where / "frame.parquet")  # type: ignore[attr-defined]
    got["backtest"].to_parquet(where / "backtest.parquet")  # type: ignore[attr-defined]
    (where / "said.json").write_text(json.dumps(got["said"], indent=1, sort_keys=True))


def same(got: dict[str, object], where: Path) -> list[str]:
    """What differs from the snapshot in ``where`` (nothing: an empty list)."""
    out = []
    for part in ("frame", "backtest"):
        saved = pd.read_parquet(where / f"{part}.parquet")
        if not saved.equals(got[part]):  # type: ignore[arg-type]
            out.append(part)
    said = json.loads((where / "said.json").read_text())
    # Through JSON as the saved one went, so a float compares as written.
    now = json.loads(json.dumps(got["said"], sort_keys=True))
    out += [key for key in ("notes", "chosen", "sums") if said[key] != now[key]]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--save", type=Path, help="directory to write the snapshot to")
    mode.add_argument("--compare", type=Path, help="directory of a saved snapshot")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    differ = []
    todo = panels()
    for name, run in todo.items():
        got = take(run())
        if args.save:
            save(got, args.save / name)
            print(f"{name}: saved")
        else:
            parts = same(got, args.compare / name)
            differ += [name] if parts else []
            print(f"{name}: {'differs in ' + ', '.join(parts) if parts else 'the same'}")
    if args.compare:
        print(f"{len(differ)} of {len(todo)} panel(s) differ" + (f": {differ}" if differ else ""))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
