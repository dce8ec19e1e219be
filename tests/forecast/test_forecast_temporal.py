"""Temporal hierarchy: block totals move part of the way toward a forecast of block sums."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from forecast_frames import usage
from hypothesis import given
from hypothesis import strategies as st

from tokenplan.forecast import Forecaster, forecast
from tokenplan.forecast.preparation import Series
from tokenplan.forecast.repairs import _short_gaps
from tokenplan.forecast.temporal import (
    FLOOR,
    WEIGHT,
    WINDOWS,
    block_size,
    block_sums,
    nudge,
    share,
)
from tokenplan.frequency import make_cadence


def _series(values: list[float], start: str = "2024-01-01 00:03", step: str = "10min") -> Series:
    arr = np.asarray(values, dtype=float)
    return Series("s", pd.Timestamp(start), pd.Timedelta(step), arr.copy(), arr)


def test_block_sums_end_with_the_series_and_keep_its_phase() -> None:
    s = _series([float(i) for i in range(1, 35)])  # 34 buckets: the first 2 fall outside
    frame = block_sums([s], 4)
    assert len(frame) == 8
    assert frame["y"].iloc[-1] == 31 + 32 + 33 + 34
    assert frame["y"].iloc[0] == 3 + 4 + 5 + 6
    # The last block starts k - 1 buckets before the series' last bucket, on its :03 phase.
    assert frame["ds"].iloc[-1] == s.end - 3 * s.step
    assert (frame["ds"].dt.minute % 10 == 3).all()


def test_a_block_with_unknown_buckets_is_scaled_from_its_known_ones() -> None:
    values = [10.0] * 32
    values[-3] = np.nan  # one unknown bucket in the last block
    values[4:8] = [np.nan] * 4  # a wholly unknown block
    frame = block_sums([_series(values)], 4)
    assert frame["y"].iloc[-1] == pytest.approx(40.0)
    assert np.isnan(frame["y"].iloc[1])


def test_series_too_short_for_enough_blocks_are_left_out() -> None:
    assert block_sums([_series([1.0] * 31)], 4).empty
    assert len(block_sums([_series([1.0] * 32)], 4)) == 8


def test_block_size_divides_the_horizon() -> None:
    assert [block_size(h) for h in (48, 36, 9, 14, 7, 1)] == [4, 4, 3, 2, None, None]


_USAGE = st.one_of(st.just(0.0), st.floats(1e-3, 1e9))


@given(
    st.lists(_USAGE, min_size=12, max_size=12),
    st.lists(_USAGE, min_size=3, max_size=3),
)
def test_nudge_moves_each_block_total_its_share_of_the_way_and_keeps_the_shape(
    point: list[float], summed: list[float]
) -> None:
    p, target = np.array(point), np.array(summed)
    out, low, high, kept = nudge(p, target, 4, WEIGHT)
    base, moved = p.reshape(3, 4).sum(axis=1), out.reshape(3, 4).sum(axis=1)
    assert np.all(out >= 0)
    below = (base > 0) & (target < FLOOR * base)
    assert kept == below.sum()
    for b in range(3):
        if below[b]:
            # A sum forecast far below the base's total leaves the block as it was.
            np.testing.assert_array_equal(out[4 * b : 4 * b + 4], p[4 * b : 4 * b + 4])
        elif base[b] > 0:
            expected = (1 - WEIGHT) * base[b] + WEIGHT * target[b]
            assert moved[b] == pytest.approx(expected, rel=1e-9, abs=1e-6)
            # Inside the block the shape is the base forecast's.
            np.testing.assert_allclose(
                out[4 * b : 4 * b + 4] * base[b],
                p[4 * b : 4 * b + 4] * moved[b],
                rtol=1e-9,
                atol=1e-3,
            )
        else:
            assert np.all(out[4 * b : 4 * b + 4] == 0)
    assert low <= high


def test_a_forecast_says_it_was_nudged_and_moves_toward_the_sums() -> None:
    df = pd.concat([usage(n=600, seed=s, uid=f"s{s}") for s in range(3)], ignore_index=True)
    options = {"local_models": False, "lightgbm": False}
    plain = forecast(df, horizon=24, freq="1h", temporal=False, **options)
    nudged = forecast(df, horizon=24, freq="1h", **options)
    assert all("temporal hierarchy" in note for note in nudged.notes.values())
    assert not any("temporal hierarchy" in note for note in plain.notes.values())
    # The same engine on the four-hour sums, six blocks ahead, by hand.
    blocks = (
        df.assign(block=df.index % 600 // 4)
        .groupby(["unique_id", "block"], as_index=False)
        .agg(ds=("ds", "first"), y=("y", "sum"))
    )
    sums = forecast(
        blocks[["unique_id", "ds", "y"]],
        horizon=6,
        freq="4h",
        temporal=False,
        n_windows=WINDOWS,
        **options,
    )
    moved = False
    for uid in ("s0", "s1", "s2"):
        target = sums.frame[sums.frame.unique_id == uid]["mean"].to_numpy()
        before = plain.frame[plain.frame.unique_id == uid]["mean"].to_numpy().reshape(6, 4)
        after = nudged.frame[nudged.frame.unique_id == uid]["mean"].to_numpy().reshape(6, 4)
        gap = target - before.sum(axis=1)
        # Every block's total moved the same share of its way to the sums' forecast, its
        # shape inside the block kept.
        shares = (after.sum(axis=1) - before.sum(axis=1)) / gap
        assert np.all((shares > 0) & (shares < 1))
        np.testing.assert_allclose(shares, shares[0], rtol=1e-6)
        np.testing.assert_allclose(
            after / after.sum(axis=1, keepdims=True),
            before / before.sum(axis=1, keepdims=True),
            rtol=1e-9,
        )
        moved |= not np.allclose(after, before, rtol=1e-3)
    assert moved


def test_a_lull_just_before_the_end_does_not_pull_the_blocks_down() -> None:
    # Steady 10-minute traffic with seven nearly empty buckets (2% of the level) just before the
    # last one: too short for an outage and not empty (so not a gap in the record either), so
    # the base models only damp it, while the sums of the history as recorded hold two blocks
    # at a quarter of the level or less.
    rng = np.random.default_rng(3)
    n = 3 * 144
    t = np.arange(n)
    y = 1000.0 * (1 + 0.3 * np.sin(2 * np.pi * t / 144)) * np.exp(rng.normal(0, 0.05, n))
    y[-8:-1] *= 0.02
    df = pd.DataFrame(
        {"unique_id": "s", "ds": pd.date_range("2024-01-01", periods=n, freq="10min"), "y": y}
    )
    options = {"local_models": False, "lightgbm": False}
    plain = forecast(df, horizon=12, freq="10min", temporal=False, **options)
    nudged = forecast(df, horizon=12, freq="10min", **options)
    before = plain.frame["mean"].to_numpy().reshape(3, 4).sum(axis=1)
    after = nudged.frame["mean"].to_numpy().reshape(3, 4).sum(axis=1)
    assert np.all(after >= 0.95 * before)
    assert "left as they were" in nudged.notes["s"]


def test_sums_too_short_to_backtest_do_not_move_a_backtested_forecast() -> None:
    # Under an hour of minutely traffic: the buckets are backtested, their twelve 4-minute
    # sums are not, so nothing says how far to trust the sums' forecast.
    rng = np.random.default_rng(5)
    t = np.arange(48)
    y = (100 + 2 * t) * np.exp(rng.normal(0, 0.1, len(t)))
    ds = pd.date_range("2024-01-01", periods=len(t), freq="1min")
    df = pd.DataFrame({"unique_id": "s", "ds": ds, "y": y})
    plain = forecast(df, horizon=12, freq="1min", temporal=False)
    result = forecast(df, horizon=12, freq="1min")
    np.testing.assert_allclose(result.frame["mean"], plain.frame["mean"])
    assert "chose" in result.notes["s"]  # backtested, not a fallback
    assert "4-bucket sums' forecast left out: too short to backtest" in result.notes["s"]


def test_the_share_follows_the_two_backtests_and_falls_back_to_the_prior() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(0, 10, (6, 24))  # block totals of four steps: variance 400
    assert share(None, base[:, :6], 4) == WEIGHT
    assert share(base, None, 4) == WEIGHT
    good = rng.normal(0, 1, (6, 6))
    bad = rng.normal(0, 100, (6, 6))
    assert share(base, bad, 4) < WEIGHT < share(base, good, 4) < 1
    # The more windows, the less the prior holds it back.
    many = rng.normal(0, 10, (60, 24))
    assert share(many, rng.normal(0, 1, (60, 6)), 4) > share(base, good, 4)


def test_temporal_false_is_kept_in_a_saved_forecaster(tmp_path) -> None:  # type: ignore[no-untyped-def]
    df = usage(n=400)
    model = Forecaster("1h", 12, local_models=False, temporal=False).fit(df)
    path = str(tmp_path / "m.json")
    model.save(path)
    assert Forecaster.load(path).temporal is False


@given(
    st.lists(
        st.one_of(st.just(0.0), st.floats(0.0, 1e9, allow_nan=False)), min_size=3, max_size=300
    )
)
def test_short_gaps_are_inner_zeros_read_between_their_neighbours(values: list[float]) -> None:
    s = _series(values)
    _short_gaps(s, make_cadence("10min"))
    if s.gaps is None:
        return
    y = s.actual
    marked = ~np.isnan(s.gaps)
    assert (y[marked] == 0).all()
    # A run that reaches the last bucket may be what is happening now: never a gap.
    last = len(y) - 1
    while last >= 0 and y[last] == 0:
        assert not marked[last]
        last -= 1
    edges = np.flatnonzero(np.diff(np.concatenate([[0], marked.astype(int), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        lo, hi = sorted((y[start - 1], y[stop]))
        assert y[start - 1] > 0
        assert y[stop] > 0
        assert (s.gaps[start:stop] >= lo * (1 - 1e-12)).all()
        assert (s.gaps[start:stop] <= hi * (1 + 1e-12)).all()
    # The block sums read them; the history as recorded stays.
    assert (block_sums([s], 2)["y"].to_numpy() >= 0).all()
    assert (s.actual[marked] == 0).all()
