"""Per-model forecasts of requests and tokens, for rate-limit headroom and costed advice.

Beyond ``max_model_series`` models, the store pools the smallest into one ``(other)`` series
(`model_frames`); the biggest are forecast one by one and the pool's forecast is shared out by
each pooled model's use over the last ``history_days`` (`model_forecasts`), so headroom and
advice still see every model and the parts still sum to the pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tokenplan.errors import TokenplanError

if TYPE_CHECKING:
    from tokenplan.capacity import Forecaster, PlanSettings
    from tokenplan.store.queries import UsageQueries

# The series the store pools a dimension's smallest values into.
OTHER = "(other)"
# Per-model metrics that rate-limit headroom and costed advice need.
MODEL_METRICS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens")


def model_frames(
    queries: UsageQueries, since: datetime, until: datetime, settings: PlanSettings
) -> dict[str, pd.DataFrame]:
    """Requests and token counts per model (metric → ``unique_id, ds, y``), where recorded."""
    out = {}
    for metric in MODEL_METRICS:
        # Pooled in the store: the biggest models one by one, the rest as ``(other)``.
        top = settings.max_model_series
        frame = queries.series(metric, settings.freq, ("model",), since, until, top=top)
        if frame.empty or not frame["y"].fillna(0).any():
            continue
        out[metric] = frame.assign(y=frame["y"].astype(float))
    return out


def model_forecasts(
    frames: Mapping[str, pd.DataFrame],
    queries: UsageQueries,
    fn: Forecaster,
    settings: PlanSettings,
    notes: list[str],
) -> dict[str, pd.DataFrame] | str:
    """Per-model forecasts of requests and tokens (metric → frame), or why not.

    Beyond ``max_model_series`` models, the biggest are forecast one by one and the rest as one
    pool, shared out by each model's use over the last ``history_days`` (top-down), so
    headroom and advice still see every model and the parts still sum to the pool.
    """
    out: dict[str, pd.DataFrame] = {}
    pooled_models = 0
    for metric, frame in frames.items():
        shares = _tail_shares(queries, metric, frame, settings)
        pooled_models = max(pooled_models, len(shares))
        try:
            result = fn(
                frame, horizon=settings.horizon_hours, freq=settings.freq, levels=settings.levels
            ).frame
        except (TokenplanError, ValueError) as exc:
            # One failed section must not cost the reader the rest of the plan.
            return f"the per-model {metric.replace('_', ' ')} forecast failed: {exc}"
        result = result.assign(ds=pd.to_datetime(result["ds"]))
        out[metric] = _share_out(result, shares)
    if not out:
        return "the usage has no requests or token counts per model"
    if pooled_models:
        notes.append(
            f"per-model forecasts (headroom, advice): the {settings.max_model_series - 1} "
            f"biggest models are forecast one by one; the other {pooled_models:,} share one "
            f"pooled forecast in proportion to their last {settings.history_days} days."
        )
    return out


def _tail_shares(
    queries: UsageQueries, metric: str, frame: pd.DataFrame, settings: PlanSettings
) -> pd.Series:
    """Each pooled model's share of the ``(other)`` series (empty when nothing was pooled).

    Shares come from the last ``history_days`` (the whole window when the pool was idle
    then), so a model that went quiet is not given a slice of the future.
    """
    if OTHER not in set(frame["unique_id"]):
        return pd.Series(dtype=float)
    kept = set(frame["unique_id"]) - {OTHER}
    end = frame["ds"].max() + pd.Timedelta(settings.freq)
    start = frame["ds"].min()
    recent = max(end - pd.Timedelta(days=settings.history_days), start)
    for since in (recent, start):
        sums = queries.totals(metric, "model", since.to_pydatetime(), end.to_pydatetime())
        sums = sums[~sums.index.isin(kept)]
        if sums.sum() > 0:
            return sums[sums > 0] / sums.sum()
    return pd.Series(dtype=float)


def _share_out(result: pd.DataFrame, shares: pd.Series) -> pd.DataFrame:
    """Split the ``(other)`` forecast into its models by ``shares`` (means and quantiles)."""
    if shares.empty:
        return result
    pool = result[result["unique_id"] == OTHER]
    values = [
        c
        for c in result.columns
        if c not in ("unique_id", "ds") and pd.api.types.is_numeric_dtype(result[c])
    ]
    n, k = len(pool), len(shares)
    parts: dict[str, Any] = {
        "unique_id": np.repeat(shares.index.to_numpy(dtype=object), n),
        "ds": np.tile(pool["ds"].to_numpy(), k),
    }
    weight = np.repeat(shares.to_numpy(float), n)
    for col in values:
        parts[col] = np.tile(pool[col].to_numpy(float), k) * weight
    split = pd.DataFrame(parts)
    return pd.concat([result[result["unique_id"] != OTHER], split], ignore_index=True)
