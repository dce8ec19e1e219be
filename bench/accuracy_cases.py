"""The benchmark's datasets, their rolling origins, and the rule that picks series to score.

Every series is a tidy ``unique_id, ds, y`` frame on a regular grid ending at the trace's last
bucket (M4: each series ends at its own test set). Origins count buckets back from that end, so
one origin means the same cut for every series of a dataset.

History rule (per dataset and metric, at the earliest origin): a series is kept when its
training part (from its first non-zero bucket for per-client series) holds at least
``max(2 x daily season, 2 x h) + h`` buckets and two cycles of every season fitted, at least
half of those buckets are non-zero, and its MASE scale is positive at every origin. Per-client
datasets then keep their ``cap`` largest series by training volume (20; 8 at 10 minutes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scoring import mase_scale

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "tests" / "data" / "shared"
M4 = ROOT / "bench" / "data" / "m4_hourly"

# Candidate seasons per frequency, shortest (the "daily" one that scales MASE) first.
SEASONS = {
    "1min": (60, 1440),
    "10min": (144, 1008),
    "20min": (72, 504),
    "30min": (48, 336),
    "1h": (24, 168),
    "2h": (12, 84),
    "3h": (8, 56),
    "6h": (4, 28),
    "1d": (7,),
}
PANDAS_FREQ = {
    "1min": "min",
    "10min": "10min",
    "20min": "20min",
    "30min": "30min",
    "1h": "h",
    "2h": "2h",
    "3h": "3h",
    "6h": "6h",
    "1d": "D",
}


@dataclass(frozen=True)
class Dataset:
    """One trace at one frequency: the series it yields per metric and the horizons scored."""

    name: str
    freq: str
    horizons: tuple[int, ...]
    metrics: tuple[str, ...]
    read: Callable[[Path, str], pd.DataFrame]
    per_client: bool = False
    origins: int = 3
    prophet: bool = True
    cap: int = 20


@dataclass
class Plan:
    """A dataset and metric after the history rule: kept series, seasons, origins, horizons."""

    dataset: Dataset
    metric: str
    frame: pd.DataFrame
    seasons: tuple[int, ...]
    primary: int
    backs: list[int]
    horizons: tuple[int, ...]
    skipped_horizons: tuple[int, ...]
    counts: dict[str, int] = field(default_factory=dict)

    def case(self, h: int) -> str:
        """The case name ``dataset/freq/metric/hH``."""
        return f"{self.dataset.name}/{self.dataset.freq}/{self.metric}/h{h}"


# ---- readers ---------------------------------------------------------------------------------


def _metric(raw: pd.DataFrame, metric: str) -> pd.Series:
    if metric == "total_tokens":
        return raw["input_tokens"] + raw["output_tokens"]
    return raw[metric].astype(float)


def _on_grid(frame: pd.DataFrame, freq: str) -> pd.DataFrame:
    """Every series on the trace's whole grid: absent rows are zero usage, NaN stays unknown."""
    keys = ["ds", "unique_id"]
    wide = frame.groupby(keys)["y"].sum(min_count=1).unstack()
    present = frame.groupby(keys).size().unstack()
    grid = pd.date_range(frame["ds"].min(), frame["ds"].max(), freq=PANDAS_FREQ[freq])
    wide = wide.reindex(grid).where(present.reindex(grid).notna(), 0.0)
    wide.index.name = "ds"
    tidy = wide.reset_index().melt(id_vars="ds", var_name="unique_id", value_name="y")
    return tidy[["unique_id", "ds", "y"]].sort_values(["unique_id", "ds"], ignore_index=True)


def _usage(path: str, freq: str) -> Callable[[Path, str], pd.DataFrame]:
    """A reader of a usage series CSV (one series per ``model``), its rows summed into
    ``freq`` buckets (floored, so a bucket keeps the trace's own grid; at the file's own width
    each bucket is one row)."""

    def read(data: Path, metric: str) -> pd.DataFrame:
        raw = pd.read_csv(data / path)
        ds = pd.to_datetime(raw["timestamp"]).dt.tz_localize(None).dt.floor(PANDAS_FREQ[freq])
        frame = pd.DataFrame({"unique_id": raw["model"], "ds": ds, "y": _metric(raw, metric)})
        frame = frame.groupby(["unique_id", "ds"], as_index=False)["y"].sum(min_count=1)
        return _on_grid(frame, freq)

    return read


def _clients(path: str, freq: str) -> Callable[[Path, str], pd.DataFrame]:
    """A reader of ServeGen's per-client 10-minute rows, summed to ``freq`` (hours keep 16:00Z)."""

    def read(data: Path, metric: str) -> pd.DataFrame:
        raw = pd.read_csv(data / path)
        ds = pd.to_datetime(raw["timestamp"]).dt.tz_localize(None).dt.floor(PANDAS_FREQ[freq])
        uid = raw["model"] + ":" + raw["client"].astype(str)
        frame = pd.DataFrame({"unique_id": uid, "ds": ds, "y": _metric(raw, metric)})
        frame = frame.groupby(["unique_id", "ds"], as_index=False)["y"].sum()
        return _on_grid(frame, freq)

    return read


def _nasa_daily(data: Path, metric: str) -> pd.DataFrame:
    """NASA requests per EDT day (from 04:00Z); NaN when an hour is unknown or <99% was logged."""
    raw = pd.read_csv(data / "nasa_http_1995_proxy" / "hourly.csv")
    ds = pd.to_datetime(raw["timestamp"]).dt.tz_localize(None)
    day = (ds - pd.Timedelta(hours=4)).dt.floor("D") + pd.Timedelta(hours=4)
    grouped = raw.groupby(day)
    complete = grouped[metric].count() == 24
    logged = grouped["seconds_covered"].sum() >= 0.99 * 86_400
    y = grouped[metric].sum().where(complete & logged)
    return pd.DataFrame({"unique_id": "nasa-ksc-www", "ds": y.index, "y": y.to_numpy()})


def _m4(data: Path, metric: str) -> pd.DataFrame:
    """The 414 M4 hourly series, training then test values, on an hourly grid from 2020-01-01."""
    train = pd.read_csv(M4 / "Hourly-train.csv", index_col=0)
    test = pd.read_csv(M4 / "Hourly-test.csv", index_col=0)
    parts = []
    for uid in train.index:
        y = np.concatenate([train.loc[uid].dropna(), test.loc[uid].dropna()]).astype(float)
        ds = pd.date_range("2020-01-01", periods=len(y), freq="h")
        parts.append(pd.DataFrame({"unique_id": uid, "ds": ds, "y": y}))
    return pd.concat(parts, ignore_index=True)


def _m4_daily(data: Path, metric: str) -> pd.DataFrame:
    """The 414 M4 hourly series summed over whole days (24 buckets back from the last one)."""
    hourly = _m4(data, metric)
    parts = []
    for uid, part in hourly.groupby("unique_id", sort=False):
        y = part["y"].to_numpy()
        days = len(y) // 24
        sums = y[len(y) - days * 24 :].reshape(days, 24).sum(axis=1)
        ds = pd.date_range("2020-01-01", periods=days, freq="D")
        parts.append(pd.DataFrame({"unique_id": uid, "ds": ds, "y": sums}))
    return pd.concat(parts, ignore_index=True)


TOKENS = ("requests", "total_tokens")
DATASETS = (
    Dataset("m4_hourly", "1h", (48,), ("value",), _m4, origins=1, prophet=False),
    Dataset(
        "servegen_language_clients",
        "10min",
        (12, 36),
        TOKENS,
        _clients("servegen_language/clients_10min.csv.gz", "10min"),
        per_client=True,
        prophet=False,
        # The engine fits its local models per series and window: ~6 s per series and call at
        # 10 minutes (2,000 buckets), so 8 clients x 2 origins keep the bench near 20 minutes.
        origins=2,
        cap=8,
    ),
    Dataset(
        "servegen_language_clients",
        "1h",
        (24, 168),
        TOKENS,
        _clients("servegen_language/clients_10min.csv.gz", "1h"),
        per_client=True,
        prophet=False,
    ),
    Dataset(
        "servegen_mm_image_clients",
        "10min",
        (12, 36),
        TOKENS,
        _clients("servegen_mm_image/clients_10min.csv.gz", "10min"),
        per_client=True,
        prophet=False,
    ),
    Dataset(
        "servegen_mm_image_clients",
        "1h",
        (24,),
        TOKENS,
        _clients("servegen_mm_image/clients_10min.csv.gz", "1h"),
        per_client=True,
        prophet=False,
    ),
    Dataset(
        "servegen_language_models",
        "10min",
        (12, 36),
        TOKENS,
        _usage("servegen_language/10min.csv", "10min"),
    ),
    Dataset(
        "servegen_language_models",
        "1h",
        (24, 168),
        TOKENS,
        _usage("servegen_language/hourly.csv", "1h"),
    ),
    Dataset(
        "servegen_mm_image_model",
        "10min",
        (12, 36),
        TOKENS,
        _usage("servegen_mm_image/10min.csv", "10min"),
    ),
    Dataset(
        "azure_2024_conv",
        "1h",
        (24,),
        ("requests",),
        _usage("azure_llm_2024_conv_hourly/hourly.csv", "1h"),
    ),
    Dataset(
        "nasa_http_1995",
        "1h",
        (24, 168),
        ("requests",),
        _usage("nasa_http_1995_proxy/hourly.csv", "1h"),
    ),
    Dataset("nasa_http_1995", "1d", (7,), ("requests",), _nasa_daily),
    Dataset("azure_2023", "1min", (12,), TOKENS, _usage("azure_llm_2023/minutely.csv", "1min")),
    Dataset(
        "mooncake_conversation",
        "1min",
        (12,),
        TOKENS,
        _usage("mooncake_conversation/minutely.csv", "1min"),
    ),
)


# ---- the history rule ------------------------------------------------------------------------


def min_train(h: int, primary: int, longest: int = 1) -> int:
    """Fewest training buckets a series needs for horizon ``h`` (see the module docstring)."""
    return max(2 * primary + h, 3 * h, 2 * longest)


def _daily(freq: str, n_train: int) -> int:
    first = SEASONS[freq][0]
    return first if n_train >= 2 * first else 1


def make_plan(dataset: Dataset, metric: str, frame: pd.DataFrame, origins: int, cap: int) -> Plan:
    """Apply the history rule: which horizons, origins, seasons and series this case scores."""
    n = int(frame.groupby("unique_id").size().max())
    horizons = tuple(
        h for h in dataset.horizons if n - h >= min_train(h, _daily(dataset.freq, n - h))
    )
    skipped = tuple(h for h in dataset.horizons if h not in horizons)
    plan = Plan(dataset, metric, frame.iloc[:0], (), 1, [], horizons, skipped)
    if not horizons:
        return plan
    h_max = max(horizons)
    need = min_train(h_max, _daily(dataset.freq, n - h_max))
    plan.backs = [h_max * (k + 1) for k in range(origins) if n - h_max * (k + 1) >= need]
    shortest = n - plan.backs[-1]
    plan.seasons = tuple(s for s in SEASONS[dataset.freq] if shortest >= 2 * s)
    plan.primary = (
        plan.seasons[0] if plan.seasons and plan.seasons[0] == SEASONS[dataset.freq][0] else 1
    )
    need = min_train(h_max, plan.primary, max(plan.seasons, default=1))
    plan.frame, plan.counts = _select(dataset, frame, plan, need, cap)
    return plan


def _select(
    dataset: Dataset, frame: pd.DataFrame, plan: Plan, need: int, cap: int
) -> tuple[pd.DataFrame, dict[str, int]]:
    counts = {"candidates": 0, "short": 0, "mostly_zero": 0, "flat": 0, "over_cap": 0}
    kept: list[tuple[float, pd.DataFrame]] = []
    for _, part in frame.groupby("unique_id", sort=True):
        counts["candidates"] += 1
        y = part["y"].to_numpy()
        if dataset.per_client:
            nonzero = np.flatnonzero(np.nan_to_num(y) > 0)
            start = nonzero[0] if len(nonzero) else len(y)
            part, y = part.iloc[start:], y[start:]
        train = y[: len(y) - plan.backs[-1]]
        known = train[np.isfinite(train)]
        if len(train) < need:
            counts["short"] += 1
        elif np.mean(known > 0) < 0.5:
            counts["mostly_zero"] += 1
        elif not all(mase_scale(y[: len(y) - b], plan.primary) > 0 for b in plan.backs):
            counts["flat"] += 1
        else:
            kept.append((float(np.nansum(train)), part))
    if dataset.per_client and len(kept) > cap:
        kept.sort(key=lambda item: -item[0])
        counts["over_cap"] = len(kept) - cap
        kept = kept[:cap]
    counts["kept"] = len(kept)
    parts = [part for _, part in kept]
    out = pd.concat(parts, ignore_index=True) if parts else frame.iloc[:0]
    return out, counts


# Horizons the trace cases barely cover, on M4's breadth (``--extra``; not in the README's table):
# a week ahead on hourly data (the trace cases have one such series, NASA) and a week of daily
# totals (one, NASA daily). M4 hourly's training and test values together, the last week held out.
EXTRA_DATASETS = (
    Dataset("m4x_hourly_week", "1h", (168,), ("value",), _m4, origins=1, prophet=False),
    Dataset("m4x_daily", "1d", (7,), ("value",), _m4_daily, prophet=False),
    # Bucket widths the main cases do not have: the same traces summed into wider buckets,
    # eight hours and a day ahead (a day and a week for NASA).
    Dataset(
        "servegen_language_models",
        "20min",
        (24, 72),
        TOKENS,
        _usage("servegen_language/10min.csv", "20min"),
        prophet=False,
    ),
    Dataset(
        "servegen_language_models",
        "30min",
        (16, 48),
        TOKENS,
        _usage("servegen_language/10min.csv", "30min"),
        prophet=False,
    ),
    Dataset(
        "servegen_language_models",
        "2h",
        (12,),
        TOKENS,
        _usage("servegen_language/hourly.csv", "2h"),
        prophet=False,
    ),
    Dataset(
        "servegen_language_clients",
        "30min",
        (16, 48),
        TOKENS,
        _clients("servegen_language/clients_10min.csv.gz", "30min"),
        per_client=True,
        prophet=False,
        origins=2,
        cap=8,
    ),
    *(
        Dataset(
            "nasa_http_1995",
            freq,
            horizons,
            ("requests",),
            _usage("nasa_http_1995_proxy/hourly.csv", freq),
            prophet=False,
        )
        for freq, horizons in (("2h", (12, 84)), ("3h", (8, 56)), ("6h", (4, 28)))
    ),
)
