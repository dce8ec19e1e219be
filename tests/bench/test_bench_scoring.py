"""bench/scoring.py on hand-computed windows and M4's published seasonal naive row."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "scoring.py"
_SPEC = importlib.util.spec_from_file_location("bench_scoring", _PATH)
assert _SPEC is not None
assert _SPEC.loader is not None
scoring = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(scoring)


def test_mase_scale_is_the_seasonal_naive_mae_and_skips_gaps() -> None:
    assert scoring.mase_scale(np.array([1, 2, 3, 4, 5, 6.0]), 2) == pytest.approx(2.0)
    assert scoring.mase_scale(np.array([1, np.nan, 3, 5.0]), 1) == pytest.approx(2.0)
    assert np.isnan(scoring.mase_scale(np.array([1.0, 2.0]), 2))


def test_window_scores_match_a_hand_computed_example() -> None:
    actual = np.array([4.0, 0.0, np.nan, 10.0])
    mean = np.array([2.0, 0.0, 5.0, 10.0])
    bounds = {
        80: (np.array([4.5, 0, 0, 9]), np.array([5.0, 0, 0, 11])),
        95: (np.array([3.0, 0, 0, 11]), np.array([5.0, 1, 9, 12])),
    }
    got = scoring.score_window(actual, mean, bounds, scale=2.0)
    assert got["n"] == 3  # the NaN actual is not scored
    assert got["mase"] == pytest.approx((2 / 3) / 2)
    assert got["smape"] == pytest.approx((200 * 2 / 6 + 0 + 0) / 3)  # 0/0 counts as 0
    # widths 2, 1, 1 and a miss 1 below the 95% interval, charged 2 / 0.05 = 40 per unit
    assert got["msis"] == pytest.approx((2 + 1 + 1 + 40) / 3 / 2)
    # at 80%: widths 0.5, 0, 2 and a miss 0.5 below, charged 2 / 0.2 = 10 per unit
    assert got["is80"] == pytest.approx((0.5 + 0 + 2 + 5) / 3 / 2)
    assert got["hits95"] == 2
    assert got["hits80"] == 2


def test_owa_reproduces_m4_hourly_seasonal_naive() -> None:
    # M4's published hourly row for seasonal naive: sMAPE 13.912, MASE 1.193, OWA 0.627.
    assert scoring.owa(13.912, 1.193) == pytest.approx(0.627, abs=5e-4)
