"""One backtest group judged on its own (`verdict.judge`): what the choice, its note and the
backtest rows say, from candidates whose errors are known by construction."""

from __future__ import annotations

import numpy as np
from forecast_frames import usage

from tokenplan.forecast.combination import COMBINATION
from tokenplan.forecast.preparation import Series, to_series, validate
from tokenplan.forecast.repairs import classify
from tokenplan.forecast.selection import DOMINANCE, actual_windows
from tokenplan.forecast.verdict import judge
from tokenplan.frequency import make_cadence

H = 24
CUTS = [24, 48, 72, 96, 120, 144]  # six day-ahead windows, the last day first


def _group(seed: int) -> tuple[list[Series], np.ndarray]:
    cadence = make_cadence("1h")
    frame = usage(n=24 * 21, seed=seed)
    members = to_series(validate(frame), cadence)
    for s in members:
        classify(s, cadence, H)
    actual = actual_windows(members, CUTS, H)  # (W, n, h)
    return members, actual


def _candidate(actual: np.ndarray, factor: float) -> np.ndarray:
    """Forecasts off the actuals by ``factor`` in every window, and a final forecast."""
    windows = actual * factor
    return np.concatenate([windows[:1], windows])  # (1 + W, n, h)


def test_a_candidate_that_forecast_nothing_gets_no_row_and_one_row_per_series_is_chosen() -> None:
    members, actual = _group(seed=1)
    preds = {
        "close": _candidate(actual, 1.05),
        "far": _candidate(actual, 2.0),
        "nothing": np.full((1 + len(CUTS), len(members), H), np.nan),
    }
    v = judge(preds, members, CUTS, make_cadence("1h"))
    rows = [row for name, row in v.rows(0, members[0].uid)]
    methods = {row["method"] for row in rows}
    assert "nothing" not in methods
    assert {"close", "far"} <= methods
    assert sum(bool(row["chosen"]) for row in rows) == 1
    chosen = next(row for row in rows if row["chosen"])
    assert chosen["method"] == v.chosen[0]
    # Never clearly worse than the best single candidate in its own backtest.
    best = min(float(row["mase"]) for row in rows if row["method"] != COMBINATION)
    assert float(chosen["mase"]) <= best / DOMINANCE
    assert v.describe(0, members[0], (24,)).startswith(f"chose {v.chosen[0]}")


def test_a_candidate_missing_early_windows_is_judged_on_the_rest_and_the_note_says_so() -> None:
    members, actual = _group(seed=2)
    late = _candidate(actual, 1.05)
    late[-2:] = np.nan  # the two earliest windows (the largest cuts): no forecast there
    preds = {"late": late, "far": _candidate(actual, 2.0)}
    v = judge(preds, members, CUTS, make_cadence("1h"))
    # Every candidate is scored without those two windows, so "late" keeps a score...
    assert np.isnan(v.scored[-2:, 0]).all()
    assert not np.isnan(v.scored[:-2, 0]).all()
    assert np.isfinite(v.mase["late"][0])
    note = v.describe(0, members[0], (24,))
    assert "every candidate judged without the 2 window(s) that late could not forecast" in note


def test_a_candidate_missing_most_windows_has_no_score_and_its_row_says_why() -> None:
    members, actual = _group(seed=3)
    rare = _candidate(actual, 1.05)
    rare[2:] = np.nan  # only the final forecast and the latest window
    preds = {"rare": rare, "far": _candidate(actual, 2.0), "near": _candidate(actual, 1.2)}
    v = judge(preds, members, CUTS, make_cadence("1h"))
    rows = dict(v.rows(0, members[0].uid))
    assert np.isnan(rows["rare"]["mase"])
    assert rows["rare"]["why"].startswith("forecast only 1 of 6 backtest window(s)")
    assert not rows["rare"]["chosen"]
    assert rows["far"]["why"] == ""
