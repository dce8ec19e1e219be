"""Outages and bursts in real hourly traffic: how much they cost the next day's forecast.

Real hourly series get one disruption in their history: slices of the open traces (14 days of
history and the day after, one slice every 2 days: `short_history.slices`; only NASA 1995 is
long and steady enough), of ServeGen's hourly LLM traffic per client and per model with 7 days
of history (its trace holds two weeks), and every 8th M4 hourly series (its last 14 days before
the test period, and the test's first day). Each gets one disruption in its history, most of
them over before the forecast starts: an outage (a run of zero buckets: the collector or the
provider down), a burst (a batch job at 10x the traffic) or a dip (the traffic at 0.3x for
hours: one of several providers down, a collector shard lost; or for a day: a holiday). The
day after is left as recorded. Each slice is forecast by `tokenplan.forecast.forecast` (h=24,
default settings) and by the peers a user would pick (statsforecast's seasonal naive a day and a
week back, AutoETS, MSTL on the seasons of which it holds two cycles), all fitted on the same
disrupted history.
Three outages are still going when the history ends (its last 1, 6 or 18 hours empty: the
collector or the provider down, or hours not reported yet); the day after is the one recorded,
so these ask how well a forecast expects the traffic back.

Per disruption it prints each method's MASE on the day after (MAE over the clean history's
in-sample seasonal naive MAE, the same scale for every variant of a slice) as a geometric mean
over the slices, and how much the disruption cost it: the geometric mean of its MASE over its
own MASE on the clean history (1.00: the forecast did not notice). tokenplan's 80% / 95%
coverage and the share of slices whose forecast day total moved more than 10% from the clean
history's forecast are printed beside them. A robust forecaster's cost stays near 1 where the
peers' does not.

    .venv/bin/python bench/disruptions.py
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from accuracy_cases import DATASETS, SHARED
from one_day import _geometric_mean, _mase
from short_history import slices
from tokenplan.forecast import forecast

_HISTORY_DAYS = 14
_SHORT_DAYS = 7
_H = 24
PEERS = ("seasonal_naive_24", "seasonal_naive_168", "auto_ets", "mstl")
# A forecast day total this far from the clean history's has been moved by the disruption.
_MOVED = 0.10
_M4_EVERY = 8


def m4_slices() -> list[tuple[str, pd.DataFrame, np.ndarray]]:
    """Every `_M4_EVERY`-th M4 hourly series: 14 days of history up to the end of its training
    values, and the first day of its test values (steady ones: at least 80% non-zero)."""
    m4 = next(d for d in DATASETS if d.name == "m4_hourly")
    frame = m4.read(SHARED, "value")
    out = []
    length = _HISTORY_DAYS * 24
    for uid in frame["unique_id"].unique()[::_M4_EVERY]:
        one = frame[frame["unique_id"] == uid].reset_index(drop=True)
        end = len(one) - 48  # the test period's 48 hours follow the training values
        part = one.iloc[end - length : end + _H]
        if len(part) == length + _H and (part["y"].iloc[:length] > 0).mean() >= 0.8:
            out.append(("m4_hourly", part.iloc[:length], part["y"].iloc[length:].to_numpy()))
    return out


@dataclass(frozen=True)
class Disruption:
    """``hours`` buckets ending ``ago`` hours before the end of history, set to zero (an
    outage, ``factor`` 0) or multiplied by ``factor`` (a burst)."""

    name: str
    hours: int
    ago: int
    factor: float

    def apply(self, y: np.ndarray) -> np.ndarray:
        out = y.copy()
        end = len(out) - self.ago
        out[end - self.hours : end] *= self.factor
        return out


DISRUPTIONS = (
    Disruption("outage 6 h, ended 6 h ago", 6, 6, 0.0),
    Disruption("outage 1 h, still going", 1, 0, 0.0),
    Disruption("outage 6 h, still going", 6, 0, 0.0),
    Disruption("outage 18 h, still going", 18, 0, 0.0),
    Disruption("outage 2 days, ended 1 day ago", 48, 24, 0.0),
    Disruption("outage 2 days, ended 5 days ago", 48, 120, 0.0),
    Disruption("burst x10 for 2 h, ended 3 h ago", 2, 3, 10.0),
    Disruption("burst x10 for 2 h, ended 1 day ago", 2, 24, 10.0),
    Disruption("burst x10 for 2 h, ended 4 days ago", 2, 96, 10.0),
    Disruption("burst x10 for 8 h, ended 2 days ago", 8, 48, 10.0),
    Disruption("dip x0.3 for 6 h, ended 6 h ago", 6, 6, 0.3),
    Disruption("dip x0.3 for 1 day, ended 2 days ago", 24, 48, 0.3),
    Disruption("dip x0.3 for 6 h, still going", 6, 0, 0.3),
)


def servegen_slices() -> list[tuple[str, pd.DataFrame, np.ndarray]]:
    """ServeGen's hourly slices with `_SHORT_DAYS` days of history (its trace holds two weeks)."""
    return [
        (f"{name} ({_SHORT_DAYS} days)", history, after)
        for name, history, after in slices(_SHORT_DAYS)
        if name.startswith("servegen")
    ]


def peer_forecasts(histories: pd.DataFrame) -> pd.DataFrame:
    """The peers' next-day forecasts of every slice, indexed by ``unique_id``. MSTL takes the
    seasons of which a slice holds two cycles."""
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoETS, SeasonalNaive

    parts = []
    lengths = histories.groupby("unique_id")["y"].transform("size")
    for length, group in histories.groupby(lengths):
        models = [
            SeasonalNaive(24, alias="seasonal_naive_24"),
            SeasonalNaive(168, alias="seasonal_naive_168"),
            AutoETS(season_length=24, alias="auto_ets"),
            MSTL(season_length=[s for s in (24, 168) if 2 * s <= length], alias="mstl"),
        ]
        fitted = StatsForecast(models=models, freq="1h", n_jobs=2).forecast(df=group, h=_H)
        parts.append(fitted.reset_index(drop="unique_id" in fitted.columns))
    return pd.concat(parts, ignore_index=True).set_index("unique_id")


def score(
    cases: list[tuple[str, pd.DataFrame, np.ndarray]], disruption: Disruption | None
) -> pd.DataFrame:
    """One row per slice: each method's MASE, tokenplan's coverage and forecast day total."""
    histories = []
    for k, (_, history, _) in enumerate(cases):
        y = history["y"].to_numpy(float)
        hit = disruption.apply(y) if disruption else y
        histories.append(history.assign(unique_id=f"slice{k}", y=hit))
    peers = peer_forecasts(pd.concat(histories, ignore_index=True))
    rows = []
    for k, ((name, history, after), hit) in enumerate(zip(cases, histories, strict=True)):
        clean = history["y"].to_numpy(float)
        scale = max(float(np.mean(np.abs(clean[24:] - clean[:-24]))), 1e-9)
        frame = forecast(hit, horizon=_H, freq="1h", levels=(80, 95)).frame
        row: dict[str, object] = {
            "slice": k,
            "dataset": name,
            "tokenplan": _mase(frame["mean"].to_numpy(), after, scale),
            "total": float(frame["mean"].sum()),
        }
        for peer in PEERS:
            row[peer] = _mase(peers.loc[f"slice{k}", peer].to_numpy(float), after, scale)
        for level in (80, 95):
            lo, hi = frame[f"lo_{level}"].to_numpy(), frame[f"hi_{level}"].to_numpy()
            row[f"cov{level}"] = float(np.mean((after >= lo) & (after <= hi)))
        rows.append(row)
    return pd.DataFrame(rows).set_index("slice")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="disruptions whose name starts with this")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    cases = slices(_HISTORY_DAYS) + servegen_slices() + m4_slices()
    methods = ["tokenplan", *PEERS]
    base = score(cases, None)
    chosen = [d for d in DISRUPTIONS if d.name.startswith(args.only)]
    scored = {d.name: score(cases, d) for d in chosen}
    rows = [_summary("none (clean history)", base, base, methods)]
    rows += [_summary(d.name, scored[d.name], base, methods) for d in chosen]
    table = pd.DataFrame(rows).set_index("disruption")
    pd.set_option("display.width", 250)
    counts = dict(Counter(name for name, _, _ in cases))
    print(
        f"{len(cases)} real slices ({counts}) of {_HISTORY_DAYS} days of hourly history"
        f" ({_SHORT_DAYS} where named), the next day ahead; MASE (geometric mean over slices)"
        " and, in brackets, its ratio to the same method's MASE on the clean history"
    )
    print(table.to_string())
    for dataset in sorted({name for name, _, _ in cases}):
        rows = [_summary("none (clean history)", base, base, methods, dataset)]
        rows += [_summary(d.name, scored[d.name], base, methods, dataset) for d in chosen]
        print(f"\n{dataset}:")
        print(pd.DataFrame(rows).set_index("disruption").to_string())
    print(f"{time.perf_counter() - started:.0f} s")


def _summary(
    name: str,
    table: pd.DataFrame,
    base: pd.DataFrame,
    methods: list[str],
    dataset: str | None = None,
) -> dict[str, object]:
    """One line of the table: over every slice, or over ``dataset``'s."""
    if dataset is not None:
        keep = table["dataset"] == dataset
        table, base = table[keep], base[keep]
    row: dict[str, object] = {"disruption": name}
    for m in methods:
        cost = _geometric_mean(table[m] / base[m])
        row[m] = f"{_geometric_mean(table[m]):.3f} ({cost:.2f})"
    row["cov 80/95"] = f"{table['cov80'].mean():.1%} / {table['cov95'].mean():.1%}"
    moved = np.abs(table["total"] / base["total"] - 1) > _MOVED
    row["total moved >10%"] = f"{moved.mean():.0%}"
    return row


if __name__ == "__main__":
    main()
