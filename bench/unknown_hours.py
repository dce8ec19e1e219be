"""Daily totals from hourly data with hours the log missed: what a day with a hole costs.

NASA's 1995 trace (tests/data/shared/nasa_http_1995_proxy) leaves 3.4 days of hours empty
(no log) and a few partly logged. `tokenplan forecast --freq 1d` reads the store's complete
series (`DuckDBStore.series(..., complete=True)`), where a day holding such an hour is unknown,
so the forecast fills it for fitting and does not score it; the recorded series (what
`tokenplan usage` shows, and what the forecast read before 2026-12-07) sums the known hours,
and those days read as a deep dip. For days that start at midnight in several time zones (UTC,
Asia/Shanghai: 16:00Z, America/New_York, Europe/Berlin), this prints the MASE of a week ahead
(three origins, a week apart; scaled by the complete days' weekly seasonal naive MAE), the
80% coverage and the 80% band's mean width over the forecast, both ways.

The capacity plan (report, service) forecasts the hourly series itself; it read the missed
hours as zero until 2026-12-07 and leaves them unknown now. The second table scores NASA's
hours a day ahead (six origins) and a week ahead (three) both ways.

A user may hand over the days themselves, summed by another tool: a daily file that holds the
missed hours' days as recorded sums (zeros and deep dips, which the file cannot tell from
traffic). The third table forecasts such a file (the recorded days, UTC and Asia/Shanghai)
against the peers a user would pick instead, fitted on the same file and origins: MASE, MSIS
and coverage, scored on the complete days.

    .venv/bin/python bench/unknown_hours.py
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from accuracy_peers import filled, statsforecast_peers
from scoring import mase_scale, score_window
from tokenplan.collect import import_file
from tokenplan.forecast import forecast
from tokenplan.store import DuckDBStore

HOURLY = Path(__file__).resolve().parents[1] / "tests/data/shared/nasa_http_1995_proxy/hourly.csv"
ZONES = ("UTC", "Asia/Shanghai", "America/New_York", "Europe/Berlin")
BACKS = (7, 14, 21)


def _whole_days(zone: str) -> pd.DatetimeIndex:
    """Starts (naive UTC) of the local days the file's rows cover whole (not its first and
    last)."""
    raw = pd.read_csv(HOURLY, parse_dates=["timestamp"]).set_index("timestamp")["requests"]
    size = raw.tz_convert(zone).resample("D").size()
    whole = size.index[(size >= 23).to_numpy()]  # a day of a clock change has 23 or 25 hours
    return whole.tz_convert("UTC").tz_localize(None)


def _read(store: DuckDBStore, zone: str, *, complete: bool) -> pd.Series:
    """The store's daily requests in ``zone`` over the days the file covers whole."""
    local = None if zone == "UTC" else zone
    frame = store.series("requests", "1d", tz=local, complete=complete)
    return frame.set_index("ds")["y"].reindex(_whole_days(zone))


def _score(days: pd.Series, truth: pd.Series) -> tuple[float, float, float]:
    """MASE, 80% coverage and the 80% band's width over the mean, over `BACKS`."""
    frame = pd.DataFrame({"unique_id": "nasa", "ds": days.index, "y": days.to_numpy()})
    errors, inside, width = [], [], []
    for back in BACKS:
        train, test = frame.iloc[:-back], truth.to_numpy()[-back:][:7]
        fc = forecast(train, horizon=7, freq="1d", levels=(80,)).frame
        scale = mase_scale(truth.to_numpy()[:-back], 7)
        errors.append(float(np.mean(np.abs(test - fc["mean"].to_numpy()))) / scale)
        inside.append(float(np.mean((test >= fc["lo_80"]) & (test <= fc["hi_80"]))))
        width.append(float(np.mean((fc["hi_80"] - fc["lo_80"]) / fc["mean"])))
    return float(np.mean(errors)), float(np.mean(inside)), float(np.mean(width))


def _against_peers(days: pd.Series, truth: pd.Series) -> dict[str, tuple[float, ...]]:
    """MASE, MSIS, 80% and 95% coverage of tokenplan and each peer, all fitted on ``days``."""
    frame = pd.DataFrame({"unique_id": "nasa", "ds": days.index, "y": days.to_numpy()})
    scores: dict[str, list[dict[str, float]]] = {}
    for back in BACKS:
        train, test = frame.iloc[:-back], truth.to_numpy()[-back:][:7]
        scale = mase_scale(truth.to_numpy()[:-back], 7)
        fits = {"tokenplan": forecast(train, horizon=7, freq="1d", levels=(80, 95)).frame}
        for peer in statsforecast_peers((7,), 7):
            fits[peer.name] = peer.fit(filled(train), 7, "1d")
        for name, fc in fits.items():
            bounds = {lv: (fc[f"lo_{lv}"].to_numpy(), fc[f"hi_{lv}"].to_numpy()) for lv in (80, 95)}
            scores.setdefault(name, []).append(
                score_window(test, fc["mean"].to_numpy(), bounds, scale)
            )
    out = {}
    for name, windows in scores.items():
        n = sum(w["n"] for w in windows)
        out[name] = (
            float(np.mean([w["mase"] for w in windows])),
            float(np.mean([w["msis"] for w in windows])),
            sum(w["hits80"] for w in windows) / n,
            sum(w["hits95"] for w in windows) / n,
        )
    return out


def _hours(store: DuckDBStore) -> pd.DataFrame:
    """MASE and 80% coverage of NASA's hours, missed hours unknown and read as zero."""
    frame = store.series("requests", "1h")
    truth = frame["y"].to_numpy()
    rows = {}
    for h, backs in ((24, (24, 48, 72, 168, 336, 504)), (168, (168, 336, 504))):
        for how, y in (("unknown (now)", truth), ("zero (the plan before)", np.nan_to_num(truth))):
            errors, inside = [], []
            for back in backs:
                train = frame.iloc[:-back].assign(y=y[:-back])
                actual = truth[-back:][:h]
                fc = forecast(train, horizon=h, freq="1h", levels=(80,)).frame
                scale = mase_scale(truth[:-back], 24)
                errors.append(float(np.nanmean(np.abs(actual - fc["mean"].to_numpy()))) / scale)
                inside.append(float(np.nanmean((actual >= fc["lo_80"]) & (actual <= fc["hi_80"]))))
            rows[(f"h={h}", how)] = (float(np.mean(errors)), float(np.mean(inside)))
    return pd.DataFrame(rows, index=["MASE", "cov80"]).T


def main() -> None:
    start = time.perf_counter()
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        store = DuckDBStore(Path(folder) / "nasa.duckdb")
        import_file(store, HOURLY)
        for zone in ZONES:
            complete = _read(store, zone, complete=True)
            rows[(zone, "complete (forecast)")] = _score(complete, complete)
            rows[(zone, "recorded (usage)")] = _score(_read(store, zone, complete=False), complete)
        peers = {}
        for zone in ("UTC", "Asia/Shanghai"):
            file = _read(store, zone, complete=False)
            for name, row in _against_peers(file, _read(store, zone, complete=True)).items():
                peers[(zone, name)] = row
        hours = _hours(store)
        store.close()
    table = pd.DataFrame(rows, index=["MASE", "cov80", "width80"]).T
    print(table.round(3).to_string())
    print(hours.round(3).to_string())
    print(pd.DataFrame(peers, index=["MASE", "MSIS", "cov80", "cov95"]).T.round(3).to_string())
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main()
