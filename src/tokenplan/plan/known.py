"""Whether a usage series records its metric at all, as against recording quiet buckets."""

from __future__ import annotations

import pandas as pd

__all__ = ["records", "unrecorded"]


def records(values: pd.Series) -> bool:
    """Whether a metric's series from the store (`DuckDBStore.series`) records the metric at all.

    The store zero-fills buckets without rows and leaves a bucket whose rows do not know the
    metric unknown (NaN): tokens of a trace that counts requests only, the cost of a model
    without a price. A zero beside unknown buckets is then a quiet bucket, not a reading, so a
    series with unknown buckets and only zeros besides records nothing. Read as a reading, one
    quiet weekend made a requests-only store forecast zero tokens from that weekend on.
    """
    return not (bool(values.isna().any()) and not bool(values.fillna(0.0).ne(0.0).any()))


def unrecorded(metric: str) -> str:
    """Why nothing records ``metric``, and what to do: the one wording of that refusal."""
    if metric == "cost_usd":
        return "no model in it has a known price (see `tokenplan prices MODEL`)"
    return "the source leaves it empty; choose another --metric, e.g. requests"
