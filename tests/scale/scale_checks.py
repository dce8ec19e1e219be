"""What the scale-out tests compare: engine results against the local engine's.

A module of its own, not conftest: every test folder has a conftest, and a bare
``from conftest import`` takes whichever was imported first in the session.
"""

from __future__ import annotations

import pandas as pd

from tokenplan.forecast import ForecastResult

HORIZON = 24
# The busiest clients the engines forecast, and a shard size that splits them in two: six
# series keep every path (one shard, several shards, a total) at a third less fitting than ten.
PANEL = 6
HALF = PANEL // 2


def assert_agrees(result: ForecastResult, local: ForecastResult) -> None:
    """Same series and buckets; means within 1%; chosen-method coverage within one point."""
    got = result.frame.set_index(["unique_id", "ds"]).sort_index()
    want = local.frame.set_index(["unique_id", "ds"]).sort_index()
    assert got.index.equals(want.index)
    means = got["mean"].groupby(level=0).sum() / want["mean"].groupby(level=0).sum()
    assert (means - 1).abs().max() <= 0.01, means
    for column in ("coverage_80", "coverage_95"):
        mine = result.backtest.loc[result.backtest["chosen"], column].mean()
        theirs = local.backtest.loc[local.backtest["chosen"], column].mean()
        assert abs(mine - theirs) <= 0.01, (column, mine, theirs)


def assert_identical(result: ForecastResult, local: ForecastResult) -> None:
    """One shard is the local engine's work: the same numbers, bit for bit."""
    assert_agrees(result, local)
    pd.testing.assert_frame_equal(result.frame, local.frame)
    pd.testing.assert_frame_equal(result.backtest, local.backtest)
    assert result.chosen == local.chosen
    assert set(result.paths) == set(local.paths)
    for uid, path in local.paths.items():
        assert (result.paths[uid].point == path.point).all()
        assert result.paths[uid].errors.tobytes() == path.errors.tobytes()
        assert result.paths[uid].common_prior == path.common_prior
        history = result.paths[uid].history
        if path.history is None:
            assert history is None
        else:
            assert history is not None
            assert history.tobytes() == path.history.tobytes()
    # The same reasoning, and where the work ran.
    for uid, note in local.notes.items():
        assert result.notes[uid].split(";")[0] == note.split(";")[0]
        assert "fitted on " in result.notes[uid]
