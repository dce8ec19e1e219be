"""Histories of one to two cycles: no season to fit, one cycle to read.

A series seen for one cycle of its main season or more but less than two has no season to
fit; from 16 buckets plus the horizon it could still be backtested by the candidates that need
none. This bench cuts such histories from M4 hourly (24, 40 and 44 hours, five origins 100
hours apart), the open traces' hourly series (bench/short_history.py's slices) and their
10-minute series (144, 200 and 260 buckets, the 8 largest of each dataset), forecasts 12 / 24
hours (hourly; and 6 from 24) or 12 / 36 buckets (10 minutes) ahead with tokenplan (default
settings, all slices of a row in one call) and fits the peers on the same slices
(bench/short_fallback.py's `score`: MAE over the slice's in-sample seasonal naive MAE,
geometric mean; tokenplan's 80% / 95% coverage and mean interval score on the same scale).

    .venv/bin/python bench/one_cycle.py [--quick]
"""

from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd

from accuracy_cases import SHARED, _m4
from short_fallback import m4_slices, report, score
from short_fallback import trace_slices as hourly_trace_slices
from short_history import trace_slices

_LARGEST_10MIN = 8


def ten_minute_slices(length: int, h: int) -> pd.DataFrame:
    """The 10-minute traces cut into ``length`` buckets and the ``h`` after, one every two
    days and six hours, each slice a series of its own."""
    parts = []
    for i, (name, part) in enumerate(
        trace_slices("10min", length, h, 2 * 144 + 36, largest=_LARGEST_10MIN)
    ):
        part = part[["ds", "y"]].copy()
        part["unique_id"] = f"{name}|{i}"
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every fourth M4 series only")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    hourly = _m4(SHARED, "value")
    if args.quick:
        hourly = hourly[hourly["unique_id"].isin(hourly["unique_id"].unique()[::4])]
    rows: list[dict[str, object]] = []
    for length in (24, 40, 44):
        # Six hours from one day: the horizon an hourly day could be backtested for.
        for h in (6, 12, 24) if length == 24 else (12, 24):
            cut = m4_slices(hourly, length, h, [24 + 100 * k for k in range(5)])
            rows += score(cut, "m4h", length, h, "1h", "h", 24)
            rows += score(hourly_trace_slices(length, h, 48), "trace", length, h, "1h", "h", 24)
    for length in (144, 200, 260):
        for h in (12, 36):
            rows += score(ten_minute_slices(length, h), "trace10", length, h, "10min", "10min", 144)
    report(rows, started)


if __name__ == "__main__":
    main()
