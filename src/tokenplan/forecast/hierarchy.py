"""Coherent splits: the parts' forecasts add up to the total's.

Shape of the argument: ``hierarchy="total"`` (any id not already in the frame) asks for one
extra series with that id, the bucket-wise sum of every input series, forecast alongside them.
Bottom series absent in a bucket count as zero there.

Method: MinTrace with a diagonal covariance of backtest errors (``wls_var`` in
hierarchicalforecast; Wickramasuriya, Athanasopoulos & Hyndman 2019). For a two-level tree it
has a closed form: the gap ``d = total - sum(parts)`` is shared out to the parts in proportion
to their error variance ``v_i``, ``part_i += v_i / (v_total + sum v) * d``, and the total
becomes the sum of the parts. Parts that would go negative are pinned at zero and the gap is
shared among the rest, so the result stays coherent and non-negative.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tokenplan.errors import InvalidInput


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


def reconcile(
    total: np.ndarray, parts: np.ndarray, v_total: float, v_parts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reconciled ``(total (h,), parts (k, h))`` from base forecasts and error variances."""
    v_total = float(v_total) if np.isfinite(v_total) and v_total > 0 else 1e-12
    v = np.where(np.isfinite(v_parts) & (v_parts > 0), v_parts, 1e-12).astype(float)
    out = parts.astype(float).copy()
    for step in range(out.shape[1]):
        free = np.ones(len(v), dtype=bool)
        base = parts[:, step].astype(float)
        for _ in range(len(v)):
            fixed = ~free
            gap = total[step] - base[free].sum()
            share = v[free] / (v_total + v[free].sum())
            trial = np.zeros(len(v))
            trial[free] = base[free] + share * gap
            trial[fixed] = 0.0
            negative = free & (trial < 0)
            if not negative.any():
                break
            free &= ~negative
        out[:, step] = np.maximum(trial, 0.0)
    return out.sum(axis=0), out
