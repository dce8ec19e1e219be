"""Split forecasts made coherent with their total: the parts sum to it, no part's quantile is
above the total's (a part never exceeds the whole).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# The id of the series every split adds up to.
TOTAL = "total"


def cohere(frame: pd.DataFrame, levels: Sequence[int] = (80, 95)) -> pd.DataFrame:
    """Reconcile each dimension's parts to the ``total`` rows: sums match, quantiles stay under.

    Parts are scaled per timestamp so their means sum to the total's mean (ranges scale with
    them), then each part's quantile is capped at the total's, since a part never exceeds the
    whole. A part series never splits the total by more than the total itself.
    """
    cols = ["mean"] + [f"{side}_{lv}" for lv in levels for side in ("lo", "hi")]
    total = frame[frame["unique_id"] == TOTAL].set_index("ds")[cols]
    if total.empty:
        return frame
    out = [frame[frame["unique_id"] == TOTAL]]
    dims = frame["unique_id"].str.partition("=")[0]
    for dim in sorted(set(dims[frame["unique_id"] != TOTAL])):
        part = frame[(dims == dim) & (frame["unique_id"] != TOTAL)].copy()
        sums = part.groupby("ds")["mean"].transform("sum").to_numpy()
        tot = total.reindex(part["ds"])
        target = tot["mean"].to_numpy()
        n = part.groupby("ds")["mean"].transform("size").to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(sums > 0, target / sums, 0.0)
        for col in cols:
            part[col] = part[col].to_numpy() * scale
        # Where every part forecasts zero but the total does not, split the total evenly.
        even = (sums <= 0) & (target > 0)
        part.loc[even, "mean"] = target[even] / n[even]
        for col in cols[1:]:
            capped = np.minimum(part[col].to_numpy(), tot[col].to_numpy())
            if col.startswith("lo_"):
                capped = np.minimum(capped, part["mean"].to_numpy())
            else:
                capped = np.maximum(capped, part["mean"].to_numpy())
            part[col] = np.maximum(capped, 0.0)
        out.append(part)
    return pd.concat(out, ignore_index=True)
