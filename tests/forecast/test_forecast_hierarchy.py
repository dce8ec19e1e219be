"""Splits add up: parts and total are forecast together and reconciled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenplan.errors import InvalidInput
from tokenplan.forecast import forecast
from tokenplan.forecast.hierarchy import reconcile


def test_parts_sum_to_total(panel: pd.DataFrame) -> None:
    res = forecast(panel, horizon=24, freq="1h", hierarchy="total", local_models=False)
    frame = res.frame.pivot(index="ds", columns="unique_id", values="mean")
    assert set(frame.columns) == {"m0", "m1", "m2", "total"}
    assert np.allclose(frame[["m0", "m1", "m2"]].sum(axis=1), frame["total"], rtol=1e-9)
    assert "reconciled" in res.notes["total"]


def test_total_id_clash_is_refused(panel: pd.DataFrame) -> None:
    with pytest.raises(InvalidInput, match="already a series"):
        forecast(panel, horizon=4, freq="1h", hierarchy="m0", local_models=False)


@settings(max_examples=60, deadline=None)
@given(
    total=st.lists(st.floats(0, 1e6), min_size=3, max_size=3),
    parts=st.lists(st.lists(st.floats(0, 1e6), min_size=3, max_size=3), min_size=1, max_size=4),
    variances=st.lists(st.floats(1e-6, 1e6), min_size=5, max_size=5),
)
def test_reconcile_is_coherent_and_non_negative(
    total: list[float], parts: list[list[float]], variances: list[float]
) -> None:
    t, p = reconcile(
        np.array(total), np.array(parts), variances[0], np.array(variances[1 : 1 + len(parts)])
    )
    assert (p >= 0).all()
    assert np.allclose(p.sum(axis=0), t)


def test_reconcile_trusts_the_more_accurate_side() -> None:
    t, p = reconcile(np.array([100.0]), np.array([[30.0], [30.0]]), 1e-6, np.array([1.0, 1.0]))
    assert t[0] == pytest.approx(100.0, rel=1e-4)
    assert p[0, 0] == pytest.approx(50.0, rel=1e-4)
