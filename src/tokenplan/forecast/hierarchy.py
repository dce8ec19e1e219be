"""Coherent splits: the parts' forecasts add up to the total's.

Shape of the argument: ``hierarchy="total"`` (any id not already in the frame) asks for one
extra series with that id, the bucket-wise sum of every input series, forecast alongside them.
Bottom series absent in a bucket count as zero there.

Method: the total is forecast on its own, exactly as it would be without a split, so asking
for ``--by model`` or ``--by team`` never changes it. The parts are then reconciled to it: the
gap ``d = total - sum(parts)`` is shared out in proportion to each part's backtest error
variance ``v_i`` (MinTrace ``wls_var`` with the total held fixed; Wickramasuriya,
Athanasopoulos & Hyndman 2019), ``part_i += v_i / sum v * d``; parts that would go negative are
pinned at zero and the rest share the gap. Each part's point and quantiles are capped at the
total's at the same level, since a part can never exceed the total.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tokenplan.errors import InvalidInput

if TYPE_CHECKING:
    from tokenplan.forecast.assembly import Fitted, Placed


def add_total(df: pd.DataFrame, total_id: str) -> pd.DataFrame:
    """Append the bucket-wise sum of all series as ``total_id``."""
    if total_id in set(df["unique_id"]):
        raise InvalidInput(
            f"hierarchy total id {total_id!r} is already a series in the input; "
            "pass only the parts, or choose another total id."
        )
    total = df.groupby("ds", as_index=False)["y"].sum(min_count=1)
    total.insert(0, "unique_id", total_id)
    parts: list[pd.DataFrame] = [df, total[["unique_id", "ds", "y"]]]  # type: ignore[list-item]
    return pd.concat(parts, ignore_index=True)


def total_of(df: pd.DataFrame, total_id: str) -> pd.DataFrame:
    """Only the bucket-wise sum of all series, as ``total_id`` (what `add_total` appends)."""
    with_total = add_total(df, total_id)
    return with_total[with_total["unique_id"] == total_id]


def reconcile_to_total(total: np.ndarray, parts: np.ndarray, v_parts: np.ndarray) -> np.ndarray:
    """Parts ``(k, h)`` moved so they sum to the fixed ``total (h,)``, none below zero.

    The gap is shared in proportion to each part's backtest error variance (the MinTrace
    ``wls_var`` share with the total held fixed); parts that would go negative are pinned at
    zero and the rest share the gap. When every part is zero, the total is split evenly.
    """
    v = np.where(np.isfinite(v_parts) & (v_parts > 0), v_parts, 1e-12).astype(float)
    out = np.maximum(parts.astype(float), 0.0)
    for step in range(out.shape[1]):
        free = np.ones(len(v), dtype=bool)
        base = out[:, step].copy()
        trial = base
        for _ in range(len(v)):
            gap = total[step] - base[free].sum()
            trial = np.zeros(len(v))
            trial[free] = base[free] + v[free] / v[free].sum() * gap
            negative = free & (trial < 0)
            if not negative.any():
                break
            free &= ~negative
        out[:, step] = np.maximum(trial, 0.0)
    return out


def cap_parts(frame: pd.DataFrame, total_id: str, levels: tuple[float, ...]) -> pd.DataFrame:
    """No part's point or quantile above the total's at the same level and bucket (a part <=
    the total).

    Reconciled parts are below the total's point already; a part whose history stops before
    the total's (not reconciled) may not be, and capping its quantiles alone left its band
    below its point (a quiet hour of the total, a busy one of the part). Capping every column
    keeps each row in order: the minimum of two ordered rows is ordered.
    """
    from tokenplan.forecast.result import level_name

    columns = ["mean"] + [f"{side}_{level_name(x)}" for x in levels for side in ("lo", "hi")]
    total = frame.loc[frame["unique_id"] == total_id, ["ds", *columns]].set_index("ds")
    parts = frame["unique_id"] != total_id
    caps = total.reindex(frame.loc[parts, "ds"]).to_numpy()
    values = frame.loc[parts, columns].to_numpy()
    out = frame.copy()
    out.loc[parts, columns] = np.where(np.isnan(caps), values, np.minimum(values, caps))
    return out


def reconcile_parts(series: Sequence[Placed], fitted: dict[str, Fitted], total_id: str) -> None:
    """Move the fitted parts' point forecasts (in place) to sum to the total's, each taking a
    share of the gap by its backtest error variance; their notes say so."""
    end = next(s.end for s in series if s.uid == total_id)
    # Parts whose history stops before the total's forecast other buckets; they are
    # capped by the total's quantiles in `cap_parts` but not shared its mean.
    parts = [s.uid for s in series if s.uid != total_id and s.end == end]
    # A part with no error variance (stopped, or all zeros) keeps its forecast: a share of
    # the gap in proportion to nothing is a rounding error of about 1e-24.
    moving = [u for u in parts if fitted[u].variance > 0]
    parts = moving or parts
    if not parts:
        return
    point_parts = reconcile_to_total(
        fitted[total_id].point,
        np.stack([fitted[u].point for u in parts]),
        np.array([fitted[u].variance for u in parts]),
    )
    fitted[total_id].note += "; the parts are reconciled to it"
    for uid, point in zip(parts, point_parts, strict=True):
        fitted[uid].point = point
        how = "gap shared by backtest error variance"
        fitted[uid].note += f"; reconciled to sum to {total_id!r} ({how})"
