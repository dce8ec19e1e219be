"""bench/accuracy_report.py: the bootstrap interval of each case's ratio to its best peer."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import accuracy_report


def _scores(case: str, ours: list[float], peer: list[float]) -> pd.DataFrame:
    rows = []
    for i, (a, b) in enumerate(zip(ours, peer, strict=True)):
        rows.append({"case": case, "method": "tokenplan", "uid": f"s{i}", "origin": 24, "mase": a})
        rows.append({"case": case, "method": "naive", "uid": f"s{i}", "origin": 24, "mase": b})
    return pd.DataFrame(rows)


def test_windows_that_agree_give_a_tight_interval_and_mixed_ones_a_wide_one() -> None:
    steady = _scores("steady", [1.2, 2.4, 0.6, 1.8], [1.0, 2.0, 0.5, 1.5])
    mixed = _scores("mixed", [0.5, 3.0, 0.6, 2.0], [1.0, 1.0, 1.2, 1.0])
    best = pd.Series({"steady": "naive", "mixed": "naive"})
    draws = accuracy_report.bootstrap_ratios(pd.concat([steady, mixed]), best)
    assert set(draws) == {"steady", "mixed"}
    assert len(draws["steady"]) == accuracy_report.RESAMPLES
    np.testing.assert_allclose(draws["steady"], 1.2)
    lo, hi = accuracy_report._interval(draws["mixed"])
    point = (0.5 + 3.0 + 0.6 + 2.0) / 4 / ((1.0 + 1.0 + 1.2 + 1.0) / 4)
    assert lo < point < hi
    assert hi - lo > 0.5


def test_the_peer_is_the_one_named_not_the_best_of_each_draw() -> None:
    # A second peer better on half the windows: re-chosen per draw, the least of two noisy
    # means would lean every ratio upward; against the named peer the draws centre on the point.
    rng = np.random.default_rng(3)
    peer = rng.uniform(0.5, 1.5, 40)
    other = np.where(np.arange(40) % 2 == 0, peer * 0.6, peer * 1.6)
    frame = _scores("c", list(peer), list(peer))
    extra = frame[frame["method"] == "naive"].assign(method="auto_ets", mase=other)
    draws = accuracy_report.bootstrap_ratios(pd.concat([frame, extra]), pd.Series({"c": "naive"}))
    np.testing.assert_allclose(draws["c"], 1.0)


def test_a_case_of_one_window_shows_no_interval() -> None:
    cases = pd.DataFrame(
        {
            "series": [1, 2],
            "origins": [1, 3],
            "tokenplan_mase": [1.0, 1.0],
            "best_peer": ["naive", "naive"],
            "best_peer_mase": [1.0, 1.0],
            "ratio": [1.0, 1.0],
            "ratio_lo90": [1.0, 0.8],
            "ratio_hi90": [1.0, 1.3],
            "msis": [5.0, 5.0],
            "best_msis": [5.0, 5.0],
            "cov80": [0.8, 0.8],
            "cov95": [0.95, 0.95],
        },
        index=pd.Index(["one", "six"], name="case"),
    )
    table = accuracy_report._markdown(cases)
    assert "| one | 1 × 1 | 1.000 | naive (1.000) | 1.000 (one window) |" in table
    assert "1.000 (0.80-1.30)" in table


@pytest.mark.parametrize("ratios", [[1.2, 0.9, 1.0], [0.8]])
def test_the_geometric_line_names_the_worst_case_and_the_count_above_the_target(
    ratios: list[float],
) -> None:
    index = [f"case{i}" for i in range(len(ratios))]
    draws = {
        case: np.full(accuracy_report.RESAMPLES, r) for case, r in zip(index, ratios, strict=True)
    }
    line = accuracy_report._geometric_line("cases", pd.Series(ratios, index=index), draws)
    geo = float(np.exp(np.mean(np.log(ratios))))
    assert f"geometric mean {geo:.3f} (90% bootstrap interval {geo:.3f}-{geo:.3f})" in line
    above = sum(r > 1.10 for r in ratios)
    assert f"{above} case(s) above 1.10" in line
    assert f"worst {max(ratios):.3f} (case{int(np.argmax(ratios))})" in line
