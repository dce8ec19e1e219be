"""Each log-space series' calibration space ``log(y + c)`` is chosen by its own backtest.

`choose_shares` scores every held-out window with the bands the other windows give in each
candidate space and keeps the one with the lower interval score: errors that scale with the
level (multiplicative) favour a small ``c``, errors of one size at every level (additive)
favour a large one, where the space is nearly linear.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenplan.forecast import Forecaster
from tokenplan.forecast.conformal import SHIFT_SHARE, SHIFT_SHARES, choose_shares

LEVELS = (80.0, 95.0)


def _panel(noise: str, windows: int = 6, n: int = 40, h: int = 24) -> tuple[np.ndarray, ...]:
    """Backtest actuals and forecasts ``(n, W, h)`` over a daily profile from 20 to 2,000."""
    rng = np.random.default_rng(7)
    profile = 20.0 * 100.0 ** (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(h) / h))
    pred = np.broadcast_to(profile, (n, windows, h)).copy()
    if noise == "multiplicative":
        actual = pred * np.exp(rng.normal(0.0, 0.25, pred.shape))
    else:
        actual = np.maximum(pred + rng.normal(0.0, 150.0, pred.shape), 0.0)
    level = pred.mean(axis=(1, 2))
    return actual, pred, np.outer(level, SHIFT_SHARES)


def test_errors_that_scale_with_the_level_keep_a_small_shift() -> None:
    actual, pred, options = _panel("multiplicative")
    chosen = np.asarray(SHIFT_SHARES)[choose_shares(actual, pred, options, LEVELS)]
    assert np.mean(chosen <= SHIFT_SHARE) > 0.9


def test_errors_of_one_size_at_every_level_move_toward_linear() -> None:
    actual, pred, options = _panel("additive")
    chosen = np.asarray(SHIFT_SHARES)[choose_shares(actual, pred, options, LEVELS)]
    assert np.mean(chosen > SHIFT_SHARE) > 0.9


def test_too_few_windows_or_no_levels_keep_the_default() -> None:
    default = SHIFT_SHARES.index(SHIFT_SHARE)
    actual, pred, options = _panel("additive", windows=2)
    assert np.all(choose_shares(actual, pred, options, LEVELS) == default)
    actual, pred, options = _panel("additive")
    assert np.all(choose_shares(actual, pred, options, ()) == default)


def test_missing_actuals_do_not_break_the_choice() -> None:
    actual, pred, options = _panel("additive")
    actual[:, 0, :] = np.nan  # a window whose actuals are all unknown
    actual[:5] = np.nan  # series with nothing known at all keep the default
    chosen = choose_shares(actual, pred, options, LEVELS)
    assert np.all(chosen[:5] == SHIFT_SHARES.index(SHIFT_SHARE))
    assert np.mean(np.asarray(SHIFT_SHARES)[chosen[5:]] > SHIFT_SHARE) > 0.9


def test_the_fitted_shift_is_one_of_the_candidates_and_is_said() -> None:
    # Hourly tokens whose errors are additive: one spread of +-150 at every level of a daily
    # swing from ~10 to ~2,000, so a log space with a small shift over-widens the peaks.
    rng = np.random.default_rng(3)
    ds = pd.date_range("2026-01-01", periods=24 * 21, freq="1h")
    profile = 10.0 * 200.0 ** (0.5 - 0.5 * np.cos(2 * np.pi * np.asarray(ds.hour) / 24))
    y = np.maximum(profile + rng.normal(0.0, 150.0, ds.size), 0.0)
    frame = pd.DataFrame({"unique_id": "tokens", "ds": ds, "y": y})
    result = Forecaster("1h", 24, (80, 95), local_models=False).fit(frame).predict()
    model = result.paths["tokens"]
    level = float(np.mean(y[-48:]))
    shares = [share for share in SHIFT_SHARES if np.isclose(model.shift, max(1.0, share * level))]
    assert model.log
    assert len(shares) == 1
    assert shares[0] > SHIFT_SHARE
    assert f"{shares[0]:g}x the recent level: the lowest backtest interval score" in str(
        result.notes["tokens"]
    )


@settings(max_examples=60, deadline=None)
@given(
    windows=st.integers(1, 6),
    h=st.integers(1, 12),
    scale=st.sampled_from([1e-3, 1.0, 1e4, 1e12]),
    zero_share=st.floats(0.0, 1.0),
    missing_share=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_any_backtest_gives_one_valid_choice_per_series(
    windows: int, h: int, scale: float, zero_share: float, missing_share: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    n = 5
    pred = scale * rng.lognormal(0.0, 2.0, (n, windows, h))
    actual = scale * rng.lognormal(0.0, 2.0, (n, windows, h))
    actual[rng.random(actual.shape) < zero_share] = 0.0
    pred[rng.random(pred.shape) < zero_share] = 0.0
    actual[rng.random(actual.shape) < missing_share] = np.nan
    level = np.nansum(actual, axis=(1, 2)) / actual[0].size
    options = np.maximum(1.0, np.outer(level, SHIFT_SHARES))
    chosen = choose_shares(actual, pred, options, LEVELS)
    assert chosen.shape == (n,)
    assert np.all((chosen >= 0) & (chosen < len(SHIFT_SHARES)))
    if windows < 3:
        assert np.all(chosen == SHIFT_SHARES.index(SHIFT_SHARE))
