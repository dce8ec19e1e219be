"""How soon a surge is reported, and how often clean traffic raises a spike, by `tokenplan spikes`.

Every trace is replayed bucket by bucket: at each newest bucket `find_anomalies` (what
`tokenplan spikes`, the report, the service and `tokenplan alert` call) scans the last 24
buckets, as a cron job or the service's refresh would.

- **False alarms**: spikes found on the clean trace, counted once per run (by its start), per
  1,000 buckets replayed. A spike here is not always false (a real batch job is one), so this
  is an upper bound on the noise.
- **Surges**: the newest bucket's total multiplied by F (a runaway job), at every replayed
  bucket; the share of them reported in that very bucket.

Compared: runs of ``k`` = 2 buckets above the band only (``surge`` off), and with a single
bucket that reaches ``surge`` times the same-hour usual reported at once.

Data: ServeGen (language and multimodal, per model, hourly and 10-minute; the 20 busiest
language clients hourly, each its own store), NASA's 1995 log hourly, Azure's 2024
conversation trace hourly, and the M4 hourly series (every 10th) for breadth.

    .venv/bin/python bench/spike_alerts.py [--quick] [--detail]

The first scan has eight days of history, so traces of eight days or less (ServeGen multimodal,
Azure 2024) give none. `bench/results/spike_alerts.txt` is the `--detail` run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tokenplan.plan.spikes import find_anomalies

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "tests" / "data" / "shared"
M4 = ROOT / "bench" / "data" / "m4_hourly"
RECENT = 24
SURGES = (float("inf"), 3.0, 5.0, 10.0)
FACTORS = (3.0, 5.0, 10.0, 47.0)


def _tidy(raw: pd.DataFrame, part: str, value: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "unique_id": raw[part].astype(str),
            "ds": pd.to_datetime(raw["timestamp"]).dt.tz_localize(None),
            "y": pd.to_numeric(raw[value], errors="coerce").astype(float),
        }
    )


def traces(quick: bool) -> dict[str, pd.DataFrame]:
    """Name -> ``unique_id, ds, y`` (the parts of one store's total)."""
    out: dict[str, pd.DataFrame] = {}
    for name in ("servegen_language", "servegen_mm_image"):
        for width in ("hourly", "10min"):
            raw = pd.read_csv(SHARED / name / f"{width}.csv")
            out[f"{name} {width}"] = _tidy(raw, "model", "requests")
    raw = pd.read_csv(SHARED / "nasa_http_1995_proxy" / "hourly.csv")
    out["nasa hourly"] = _tidy(raw, "model", "requests")
    raw = pd.read_csv(SHARED / "azure_llm_2024_conv_hourly" / "hourly.csv")
    out["azure 2024 hourly"] = _tidy(raw, "model", "requests")
    clients = pd.read_csv(SHARED / "servegen_language" / "clients_10min.csv.gz")
    clients["ts"] = pd.to_datetime(clients["timestamp"]).dt.floor("h")
    hourly = clients.groupby(["client", "ts"], as_index=False)["requests"].sum()
    busiest = hourly.groupby("client")["requests"].sum().nlargest(5 if quick else 20).index
    for client in busiest:
        one = hourly[hourly["client"] == client]
        grid = pd.date_range(hourly["ts"].min(), hourly["ts"].max(), freq="h")
        y = one.set_index("ts")["requests"].reindex(grid, fill_value=0).astype(float)
        out[f"servegen client {client}"] = pd.DataFrame(
            {"unique_id": "all", "ds": grid.tz_localize(None), "y": y.to_numpy()}
        )
    m4 = pd.read_csv(M4 / "Hourly-train.csv", index_col=0)
    for k, (uid, row) in enumerate(m4.iterrows()):
        if k % (25 if quick else 10):
            continue
        y = row.dropna().to_numpy(float)
        ds = pd.date_range("2000-01-03", periods=len(y), freq="h")
        out[f"m4 {uid}"] = pd.DataFrame({"unique_id": "all", "ds": ds, "y": y})
    return out


def replay(frame: pd.DataFrame, stride: int) -> dict[str, object]:
    """False alarms and surges found in their own bucket, per ``surge`` setting."""
    stamps = np.sort(frame["ds"].unique())
    step = stamps[1] - stamps[0]
    per_day = int(pd.Timedelta(days=1) / pd.Timedelta(step))
    first = max(8 * per_day, 2 * RECENT)  # a week of history before the first scan
    starts: dict[float, set[pd.Timestamp]] = {s: set() for s in SURGES}
    caught: dict[tuple[float, float], int] = {(s, f): 0 for s in SURGES for f in FACTORS}
    scans = 0
    for t in range(first, len(stamps), stride):
        now = stamps[t]
        seen = frame[frame["ds"] <= now]
        newest = seen["ds"] == now
        scans += 1
        for surge in SURGES:
            for a in find_anomalies(seen, recent=RECENT, surge=surge, metric="requests"):
                if a.kind == "spike":
                    starts[surge].add(a.start)
            for factor in FACTORS:
                hit = seen.assign(y=seen["y"].where(~newest, seen["y"] * factor))
                found = find_anomalies(hit, recent=RECENT, surge=surge, metric="requests")
                if any(a.kind == "spike" and a.end > now for a in found):
                    caught[(surge, factor)] += 1
    return {"scans": scans, "buckets": scans * stride, "starts": starts, "caught": caught}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer series and scans")
    parser.add_argument("--detail", action="store_true", help="spikes per series, too")
    args = parser.parse_args()
    began = time.perf_counter()
    rows = []
    for name, frame in traces(args.quick).items():
        stride = (12 if args.quick else 6) if not name.startswith("m4") else 48
        got = replay(frame, stride)
        group = "M4 hourly" if name.startswith("m4") else "LLM traces"
        rows.append({"group": group, "name": name, **got})
    for group in ("LLM traces", "M4 hourly"):
        part = [r for r in rows if r["group"] == group]
        if not part:
            continue
        buckets = sum(int(r["buckets"]) for r in part)  # type: ignore[call-overload]
        scans = sum(int(r["scans"]) for r in part)  # type: ignore[call-overload]
        print(f"\n{group}: {len(part)} series, {buckets:,} buckets replayed, {scans:,} scans")
        print("surge rule        false spikes / 1,000 buckets   surge reported in its own bucket")
        print(
            "                                                 "
            + "  ".join(f"x{f:g}" for f in FACTORS)
        )
        for surge in SURGES:
            false = sum(len(r["starts"][surge]) for r in part)  # type: ignore[index]
            rate = [
                sum(r["caught"][(surge, f)] for r in part) / scans  # type: ignore[index]
                for f in FACTORS
            ]
            label = "off (k=2 only)" if surge == float("inf") else f">= {surge:g}x usual"
            print(
                f"{label:<17} {1000 * false / buckets:>28.2f}   "
                + "  ".join(f"{r:>4.0%}" for r in rate)
            )
    if args.detail:
        print("\nspikes on the clean series, per setting (" + ", ".join(map(_label, SURGES)) + ")")
        for r in rows:
            counts = " / ".join(str(len(r["starts"][s])) for s in SURGES)  # type: ignore[index]
            print(f"  {r['name']:<40} {r['buckets']:>6,} buckets  {counts}")
    print(f"\n{time.perf_counter() - began:.0f} s", file=sys.stderr)


def _label(surge: float) -> str:
    return "k = 2 only" if surge == float("inf") else f"{surge:g}x"


if __name__ == "__main__":
    main()
