"""The newest bucket of live data, still filling: read as history, or forecast?

A service or a cron job that plans at 21:05 holds five minutes of the 21:00 hour. Read as
history, that hour looks like a collapse; the plan (and `tokenplan forecast`) leave it out and
forecast it instead. This measures what each choice costs on the next day.

At each origin the series' next bucket is kept as history at a share f of its true value
(f = 0.1 and 0.5: six and thirty minutes into an hour), or left out and forecast (``drop``, what
tokenplan does); ``whole`` keeps it whole (what waiting for the hour to end would give). Every
variant is scored by MASE (scaled by the in-sample seasonal naive at lag 24) on the 24 hours
after that bucket, through the public API (``forecast(frame, horizon=, freq="1h")``).

Data: every 10th M4 hourly series, ServeGen's language models hourly and its 10 busiest
language clients hourly, NASA's 1995 log hourly; three origins a day apart.

    .venv/bin/python bench/bucket_under_way.py [--quick]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from accuracy_cases import DATASETS, SHARED
from scoring import mase_scale
from tokenplan.forecast import forecast

H = 24
CASES = {
    "m4_hourly",
    "servegen_language_models",
    "servegen_language_clients",
    "nasa_http_1995",
}
SHARES = (0.1, 0.5)


def series(name: str, frame: pd.DataFrame, quick: bool) -> pd.DataFrame:
    """The series of a dataset this bench scores."""
    ids = sorted(frame["unique_id"].unique())
    if name == "m4_hourly":
        ids = ids[:: 40 if quick else 10]
    elif name.endswith("clients"):
        sizes = frame.groupby("unique_id")["y"].sum().sort_values(ascending=False)
        ids = list(sizes.index[: 3 if quick else 10])
    return frame[frame["unique_id"].isin(ids)]


def means(history: pd.DataFrame, horizon: int) -> dict[str, np.ndarray]:
    fc = forecast(history, horizon=horizon, freq="1h", levels=(80, 95)).frame
    return {str(uid): g["mean"].to_numpy() for uid, g in fc.groupby("unique_id")}


def score_origin(frame: pd.DataFrame, back: int) -> list[dict[str, object]]:
    """Every variant at the origin ``back`` buckets before each series' end."""
    parts, newest, truth = [], {}, {}
    for uid, g in frame.groupby("unique_id"):
        g = g.sort_values("ds").reset_index(drop=True)
        p = len(g) - back
        if p < 24 * 8:
            continue  # a week and a day of history at least
        parts.append(g.iloc[:p])
        newest[str(uid)] = g.iloc[p]
        truth[str(uid)] = g["y"].to_numpy()[p + 1 : p + 1 + H]
    if not parts:
        return []
    history = pd.concat(parts, ignore_index=True)
    variants: dict[str, dict[str, np.ndarray]] = {}
    for share in (*SHARES, 1.0):
        filling = pd.DataFrame(
            [
                {"unique_id": uid, "ds": row["ds"], "y": row["y"] * share}
                for uid, row in newest.items()
            ]
        )
        name = "whole" if share == 1.0 else f"f={share:g}"
        variants[name] = means(pd.concat([history, filling], ignore_index=True), H)
    variants["drop"] = {uid: m[1:] for uid, m in means(history, H + 1).items()}
    rows: list[dict[str, object]] = []
    for uid in newest:
        scale = mase_scale(history.loc[history["unique_id"].astype(str) == uid, "y"].to_numpy(), 24)
        for name, fc in variants.items():
            rows.append(
                {"variant": name, "mase": float(np.mean(np.abs(fc[uid] - truth[uid])) / scale)}
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer series and one origin")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    table = []
    for dataset in DATASETS:
        if dataset.name not in CASES or dataset.freq != "1h":
            continue
        frame = series(dataset.name, dataset.read(SHARED, dataset.metrics[0]), args.quick)
        rows = []
        for back in (25,) if args.quick else (25, 49, 73):
            rows += score_origin(frame, back)
        if rows:
            scores = pd.DataFrame(rows).groupby("variant")["mase"].mean()
            table.append(scores.rename(f"{dataset.name} ({len(rows) // 4} windows)"))
    result = pd.DataFrame(table)[["drop", *(f"f={s:g}" for s in SHARES), "whole"]]
    print("mean MASE of the next 24 hours, by how the newest bucket is read")
    print(result.round(3).to_string())
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
