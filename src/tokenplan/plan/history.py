"""The plan's history, read from the store once: on the store's bucket grid, which metric the
source records, whether it knows costs, and the total and split series stacked in one frame.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from tokenplan.plan.known import records
from tokenplan.plan.model_forecasts import OTHER
from tokenplan.timestamps import iso_utc

if TYPE_CHECKING:
    from tokenplan.capacity import PlanSettings
    from tokenplan.store.queries import UsageQueries

# The store's bucket grid starts here (a Monday at midnight UTC); plan buckets follow it.
GRID_ORIGIN = pd.Timestamp("2000-01-03")


def grid_phase(start: Any, width: int) -> pd.Timedelta:
    """How far buckets of ``width`` seconds that began at ``start`` sit after the store's grid."""
    if start is None:
        return pd.Timedelta(0)
    return (naive_utc(start) - GRID_ORIGIN) % pd.Timedelta(seconds=width)


def reaches(last_row: Any, width_s: int | None, open_since: Any = None) -> pd.Timestamp:
    """How far the data reaches (naive UTC): its last row's start plus that row's width; raw
    events are moments, so the bucket holding the last one is covered only up to it. The
    newest bucket, stored by a provider pull while still open (``open_since``,
    `DuckDBStore.open_since`), is not reached: its numbers are still growing. An open bucket
    with data after it is left alone: it waits for the next pull, and must not pull the plan
    back to it."""
    last = naive_utc(last_row)
    reach = last + max(pd.Timedelta(seconds=width_s or 0), pd.Timedelta(microseconds=1))
    if open_since is None or naive_utc(open_since) < last:
        return reach
    return min(reach, naive_utc(open_since))


def partly_covered(start: Any) -> str:
    """What the plan and `tokenplan forecast` say of a last bucket the data covers in part."""
    return (
        f"the data covers only part of the bucket from {iso_utc(start)}: it is forecast, "
        "not read as history"
    )


def naive_utc(value: Any) -> pd.Timestamp:
    """A timestamp as naive UTC (the store's convention)."""
    stamp = pd.Timestamp(value)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def token_metric(
    queries: UsageQueries, since: datetime, until: datetime, freq: str, notes: list[str]
) -> str:
    """Total tokens, unless the source does not know them (some traces only count requests)."""
    total = queries.series("total_tokens", freq, (), since, until)
    if records(total["y"]):
        return "total_tokens"
    notes.append("The usage has no token counts, so the plan forecasts requests instead.")
    return "requests"


def has_costs(queries: UsageQueries, since: datetime, until: datetime) -> bool:
    return records(queries.series("cost_usd", "1d", (), since, until)["y"])


def frames(
    queries: UsageQueries,
    metric: str,
    since: datetime,
    until: datetime,
    settings: PlanSettings,
    notes: list[str],
) -> pd.DataFrame:
    """``total`` and one series per value of each dimension, stacked in one tidy frame."""
    parts = [queries.series(metric, settings.freq, (), since, until)]
    for dim in settings.dimensions:
        # Pooled in the store: 5,000 models arrive as max_series series, not 5,000.
        frame = queries.series(metric, settings.freq, (dim,), since, until, top=settings.max_series)
        if frame.empty or set(frame["unique_id"]) == {"(none)"}:
            continue
        parts.append(pool(frame, dim, settings.max_series))
    out = pd.concat(parts, ignore_index=True)
    if out["y"].isna().any() and metric != "cost_usd":
        notes.append(
            f"Some hours do not say their {metric}; charts show them as zero, the forecasts"
            " leave them unknown (filled for fitting, not scored)."
        )
    elif out["y"].isna().any():
        notes.append(f"Some hours do not say their {metric}; they count as zero.")
    out["y"] = out["y"].astype(float)
    return out


def pool(frame: pd.DataFrame, dim: str, max_series: int) -> pd.DataFrame:
    """Keep the biggest series of a dimension and pool the rest as ``(other)``."""
    sizes = frame.groupby("unique_id")["y"].sum().sort_values(ascending=False)
    keep = set(sizes.index[: max_series - 1]) if len(sizes) > max_series else set(sizes.index)
    frame = frame.assign(unique_id=frame["unique_id"].where(frame["unique_id"].isin(keep), OTHER))
    pooled = frame.groupby(["unique_id", "ds"])["y"].sum(min_count=1).reset_index()
    pooled["unique_id"] = f"{dim}=" + pooled["unique_id"]
    return pooled
