"""Daily totals from hourly data with hours the log missed: what a day with a hole costs.

NASA's 1995 trace (tests/data/shared/nasa_http_1995_proxy) leaves 3.4 days of hours empty
(no log) and a few partly logged. Summed into days, as `tokenplan forecast --freq 1d` does
through the store, a day holding such an hour is unknown (`DuckDBStore.series`), so the
forecast fills it for fitting and does not score it; summed from the known hours alone, the
same days read as a deep dip. For days that start at midnight in several time zones (UTC,
Asia/Shanghai: 16:00Z, America/New_York, Europe/Berlin), this prints the MASE of a week ahead
(three origins, a week apart; scaled by the complete days' weekly seasonal naive MAE), the
80% coverage and the 80% band's mean width over the forecast, both ways.

    .venv/bin/python bench/unknown_hours.py
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from scoring import mase_scale
from tokenplan.collect import import_file
from tokenplan.forecast import forecast
from tokenplan.store import DuckDBStore

HOURLY = Path(__file__).resolve().parents[1] / "tests/data/shared/nasa_http_1995_proxy/hourly.csv"
ZONES = ("UTC", "Asia/Shanghai", "America/New_York", "Europe/Berlin")
BACKS = (7, 14, 21)


def _known_hours_summed(zone: str) -> tuple[pd.Series, pd.Series]:
    """Local days as the sum of their known hours (a missed hour counted as nothing), and
    whether the file's rows cover the whole day (its first and last days do not)."""
    raw = pd.read_csv(HOURLY, parse_dates=["timestamp"]).set_index("timestamp")["requests"]
    days = raw.tz_convert(zone).resample("D")
    return days.sum(min_count=1), days.size() >= 23  # a day of a clock change has 23 or 25


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


def main() -> None:
    start = time.perf_counter()
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        store = DuckDBStore(Path(folder) / "nasa.duckdb")
        import_file(store, HOURLY)
        for zone in ZONES:
            stored = store.series("requests", "1d", tz=None if zone == "UTC" else zone)
            summed, whole = _known_hours_summed(zone)
            stamps = summed.index[whole.to_numpy()].tz_convert("UTC").tz_localize(None)
            days = stored.set_index("ds")["y"].reindex(stamps)
            summed = pd.Series(summed[whole.to_numpy()].to_numpy(), index=stamps)
            rows[(zone, "store: a day with a missed hour unknown")] = _score(days, days)
            rows[(zone, "known hours summed")] = _score(summed, days)
        store.close()
    table = pd.DataFrame(rows, index=["MASE", "cov80", "width80"]).T
    print(table.round(3).to_string())
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main()
