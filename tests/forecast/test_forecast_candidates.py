"""Candidates never read the future, and the statistical zoo works on real data."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from forecast_frames import usage
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tokenplan.forecast import forecast
from tokenplan.forecast.baselines import seasonal_median
from tokenplan.forecast.boosting import _Design, run_boosting
from tokenplan.forecast.preparation import to_series, validate
from tokenplan.forecast.statistical import _one_series, history_cap, mstl_cap
from tokenplan.frequency import make_cadence


def test_direct_features_read_nothing_at_or_after_the_origin() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(5.0, 1.0, 1000)
    for h in (1, 24, 168):
        design = _Design(h, (24, 168))
        steps = np.arange(1, h + 1)
        x, level = design.rows(z[None], 700, steps)
        later = z.copy()
        later[700:] = 1e6  # everything from the origin on
        y, same_level = design.rows(later[None], 700, steps)
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(level, same_level)


def test_boosting_ignores_values_after_the_origin() -> None:
    cadence = make_cadence("1h")
    df = validate(usage(n=600))
    changed = df.copy()
    changed.loc[changed.index[-48:], "y"] *= 50  # the held-out stretch of cut 48
    a = run_boosting(to_series(df, cadence), [0, 48], 24, (24, 168))["lightgbm"]
    b = run_boosting(to_series(changed, cadence), [0, 48], 24, (24, 168))["lightgbm"]
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[0], b[0])


def test_short_panel_backtests_the_global_model_before_each_window() -> None:
    # Sixty hours of history per series: the earliest windows leave too little to learn from,
    # the later ones enough. Each window's model learns only from before its cut; one
    # model from the earliest cut left the candidate without a backtest, so never chosen.
    rng = np.random.default_rng(3)
    frames = [
        pd.DataFrame(
            {
                "unique_id": f"s{i}",
                "ds": pd.date_range("2024-01-01", periods=60, freq="1h"),
                "y": 100.0 + 20 * np.sin(np.arange(60) / 3 + i) + rng.normal(0, 2, 60),
            }
        )
        for i in range(5)
    ]
    df = validate(pd.concat(frames, ignore_index=True))
    cadence = make_cadence("1h")
    cuts = [0, 12, 24, 36, 48]
    out = run_boosting(to_series(df, cadence), cuts, 12, ())["lightgbm"]
    assert np.isfinite(out[:3]).all()
    assert np.isnan(out[3:]).all()  # 24 and 12 buckets before the earliest cuts: no model
    for k, cut in enumerate(cuts[1:3], start=1):
        changed = df.copy()
        last = changed.groupby("unique_id").cumcount(ascending=False) < cut
        changed.loc[last, "y"] *= 50  # the held-out stretch of this window and after it
        again = run_boosting(to_series(changed, cadence), cuts, 12, ())["lightgbm"]
        np.testing.assert_array_equal(out[k], again[k])


def test_pure_hour_of_day_series_is_learned_exactly() -> None:
    ds = pd.date_range("2024-01-01", periods=24 * 30, freq="1h")
    df = pd.DataFrame({"unique_id": "x", "ds": ds, "y": 100.0 + 10 * ds.hour})
    res = forecast(df, horizon=48, freq="1h", local_models=False)
    expected = 100.0 + 10 * res.frame["ds"].dt.hour
    assert np.abs(res.frame["mean"] - expected).max() < 1.0


def test_full_zoo_on_real_trace(shared_data: Path) -> None:
    raw = pd.read_csv(shared_data / "azure_llm_2024_conv_hourly" / "hourly.csv")
    df = pd.DataFrame(
        {
            "unique_id": raw["model"],
            "ds": pd.to_datetime(raw["timestamp"]).dt.tz_localize(None),
            "y": raw["requests"].astype(float),
        }
    )
    res = forecast(df, horizon=24, freq="1h", local_models=True)
    methods = set(res.backtest["method"])
    assert {"auto_ets", "auto_theta", "mstl", "seasonal_naive_24"} <= methods
    mean = res.frame["mean"]
    assert mean.between(0.3 * df["y"].min(), 2 * df["y"].max()).all()
    # Seasonal naive leads over the whole horizon on this trace (by windows weighted by the
    # history they fitted on); MSTL, fitted untransformed, comes next (in log space it joined
    # only on the first steps), then the seasonal median, and the note says so.
    note = res.notes["azure-conv"]
    expected = "weighted geometric mean of seasonal_naive_24, mstl, seasonal_median"
    assert f"combination ({expected})" in note


def test_ten_minute_series_uses_daily_season() -> None:
    df = usage(n=144 * 5, freq="10min")
    res = forecast(df, horizon=36, freq="10min", local_models=False)
    assert "seasons [144]" in res.notes["s"]


def test_seasonal_regression_recovers_hour_and_weekday_effects() -> None:
    from tokenplan.forecast.baselines import seasonal_regression

    t = np.arange(21 * 24 + 48)
    truth = 5.0 + np.sin(2 * np.pi * (t % 24) / 24) + 0.5 * ((t // 24) % 7 >= 5)
    noise = np.random.default_rng(0).normal(0, 0.05, len(t))
    pred = seasonal_regression((truth + noise)[:-48], (24, 168), 48)
    assert np.abs(pred - truth[-48:]).max() < 0.1


def test_seasonal_regression_needs_enough_cycles_and_ignores_the_future() -> None:
    from tokenplan.forecast.baselines import run_baselines

    cadence = make_cadence("1h")
    long, short = validate(usage(n=600)), validate(usage(n=150))
    changed = long.copy()
    changed.loc[changed.index[-48:], "y"] *= 50
    a = run_baselines(to_series(long, cadence), [0, 48], 24, (24,))["seasonal_regression"]
    b = run_baselines(to_series(changed, cadence), [0, 48], 24, (24,))["seasonal_regression"]
    np.testing.assert_array_equal(a[1], b[1])
    assert np.isfinite(a).all()
    c = run_baselines(to_series(short, cadence), [0, 48], 24, (24,))["seasonal_regression"]
    assert np.isnan(c).all()  # 6 days: left to the seasonal median


def test_short_series_backtests_local_models_with_and_without_log() -> None:
    # Twenty hours of 10-minute buckets are too short to tell whether the spread grows with
    # the level: the untransformed fits join the backtest beside the log-space ones.
    short = forecast(usage(n=120, freq="10min"), horizon=12, freq="10min")
    methods = set(short.backtest["method"])
    assert {"auto_ets", "auto_theta", "auto_ets_raw"} <= methods
    assert "auto_theta_raw" not in methods  # AutoTheta runs untransformed anyway
    assert "fitted untransformed" in short.notes["s"]
    # Three weeks of hourly data are enough for the test: one space, no doubled fits.
    long = forecast(usage(n=24 * 21), horizon=24, freq="1h")
    assert not any(m.endswith("_raw") for m in long.backtest["method"])
    assert "untransformed" not in long.notes["s"]


@pytest.mark.parametrize("seed", range(4))
def test_theta_follows_a_working_day_with_empty_nights(seed: int) -> None:
    # Traffic of a million tokens an hour from 08:00 to 20:00 and next to nothing at night: the
    # spread grows with the level, so the series is modelled in log1p space, where the nights
    # sit 14 units below the days. Fitted there, AutoTheta's forecast of the next day's total
    # ranged from 0.47x to 2.9x of it over these seeds; untransformed, within 0.92-1.16x.
    from tokenplan.forecast.statistical import run_statistical

    rng = np.random.default_rng(seed)
    n = 24 * 22
    hour = np.arange(n) % 24
    y = np.where((hour >= 8) & (hour < 20), 1e6 * np.exp(rng.normal(0, 0.3, n)), 0.0)
    y = np.where((y == 0) & (rng.random(n) < 0.3), rng.integers(1, 5000, n), y)
    ds = pd.date_range("2024-01-01", periods=n, freq="1h")
    history = validate(pd.DataFrame({"unique_id": "s", "ds": ds[:-24], "y": y[:-24]}))
    series = to_series(history, make_cadence("1h"))
    assert series[0].log
    got = run_statistical(series, [0], 24, (24,))
    ratio = got["auto_theta"][0, 0].sum() / y[-24:].sum()
    assert 0.8 < ratio < 1.25


def test_short_sparse_series_is_not_pulled_down_by_log_space() -> None:
    # A day of steady traffic with empty buckets: in log space each zero counts like a
    # collapse, and the log-space models forecast near the geometric mean (about 0.76 of the
    # median here); the untransformed fits stay near the level, and the backtest takes them.
    ratios = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        y = np.maximum(rng.normal(20, 8, 144), 0)
        y[rng.random(144) < 0.15] = 0
        ds = pd.date_range("2024-01-01", periods=144, freq="10min")
        res = forecast(pd.DataFrame({"unique_id": "s", "ds": ds, "y": y}), horizon=12, freq="10min")
        ratios.append(res.frame["mean"].mean() / np.median(y))
    assert np.mean(ratios) > 0.84


def test_seasonal_ses_follows_a_level_shift_and_keeps_the_daily_shape() -> None:
    from tokenplan.forecast.baselines import seasonal_ses

    t = np.arange(10 * 24)
    shape = np.sin(2 * np.pi * t / 24)
    z = 5.0 + shape + np.random.default_rng(0).normal(0, 0.05, len(t))
    z[-36:] += 1.0  # a day and a half ago the traffic stepped up
    pred = seasonal_ses(z, (24,), 24)
    future = 6.0 + np.sin(2 * np.pi * np.arange(len(t), len(t) + 24) / 24)
    assert np.abs(pred - future).max() < 0.25
    # The seasonal median of the same history still sits half way between the two levels.
    assert np.abs(seasonal_median(z, 24, 24) - future).mean() > 0.3


def test_seasonal_ses_shrinks_a_profile_read_off_noise() -> None:
    from tokenplan.forecast.baselines import seasonal_profile

    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1.0, 3 * 144)
    daily = 2.0 * np.sin(2 * np.pi * np.arange(3 * 144) / 144)
    # Three days of pure noise: the "profile" is mostly scatter and is shrunk toward flat.
    assert np.abs(seasonal_profile(noise, 144)).mean() < 0.2
    # A strong daily cycle under the same noise keeps most of its amplitude.
    kept = seasonal_profile(daily + noise, 144)
    amplitude = kept @ daily[:144] / (daily[:144] @ daily[:144])
    assert 0.7 < amplitude < 1.1


def test_seasonal_ses_uses_the_weekly_profile_once_two_weeks_are_seen() -> None:
    from tokenplan.forecast.baselines import seasonal_ses

    t = np.arange(3 * 168)
    z = 4.0 + 0.5 * np.sin(2 * np.pi * t / 24) + 1.0 * ((t // 24) % 7 >= 5)
    weekend_ahead = seasonal_ses(z, (24, 168), 168)
    future = np.arange(len(t), len(t) + 168)
    truth = 4.0 + 0.5 * np.sin(2 * np.pi * future / 24) + 1.0 * ((future // 24) % 7 >= 5)
    assert np.abs(weekend_ahead - truth).max() < 0.05
    # Below two weeks the daily profile is all it can read: weekends are then averaged in.
    daily_only = seasonal_ses(z[-10 * 24 :], (24, 168), 168)
    assert np.abs(daily_only - truth).max() > 0.5


def test_short_series_local_models_are_refitted_for_the_final_forecast() -> None:
    # Three days of hourly history: a model fitted before the earliest backtest cut saw only a
    # day or so, and forwarding those parameters to the whole history forecast far off (AutoETS
    # on a real trace erred five times more). Such series get a fresh fit at every cut.
    from statsforecast.models import AutoTheta

    from tokenplan.forecast.statistical import run_statistical

    cadence = make_cadence("1h")
    frame = validate(usage(n=72))
    series = to_series(frame, cadence)
    got = run_statistical(series, [0, 12, 24], 12, (24,))["auto_theta"]
    # AutoTheta runs untransformed, on values divided by their mean before the earliest cut.
    usage_values = np.expm1(series[0].z())
    scale = np.mean(usage_values[:-24])
    fresh = AutoTheta(season_length=24).fit(usage_values / scale).predict(12)["mean"]
    np.testing.assert_allclose(got[0, 0], np.maximum(fresh * scale, 0.0), rtol=1e-9)
    earlier = AutoTheta(season_length=24).fit(usage_values[:-12] / scale).predict(12)["mean"]
    np.testing.assert_allclose(got[1, 0], np.maximum(earlier * scale, 0.0), rtol=1e-9)


def test_untransformed_fits_do_not_depend_on_the_unit() -> None:
    # The same traffic counted in tokens or in thousands of tokens is the same forecast: the
    # untransformed fits see values divided by their level, where AutoTheta's optimiser
    # stopped up to 4% apart on raw values of a million.
    from tokenplan.forecast.statistical import run_statistical

    cadence = make_cadence("1h")
    small = usage(n=24 * 14, level=1000.0)
    large = small.assign(y=small["y"] * 1000.0)
    a = run_statistical(to_series(validate(small), cadence), [0, 24], 24, (24,))
    b = run_statistical(to_series(validate(large), cadence), [0, 24], 24, (24,))
    np.testing.assert_allclose(b["auto_theta"], a["auto_theta"] * 1000.0, rtol=1e-6)
    np.testing.assert_allclose(b["mstl"], a["mstl"] * 1000.0, rtol=1e-6)


@pytest.mark.parametrize("seed", range(2))
def test_untransformed_mstl_never_forecasts_below_what_it_saw(seed: int) -> None:
    # A daily swing that grows with the level (days at 7x the mean, nights at a seventh) on a
    # steady decline: the series is modelled in log space, but MSTL runs untransformed, where
    # its additive season takes as much off every night and the forecast night goes below
    # zero. The candidate is floored at the lowest value of the history its fit saw.
    from statsforecast.models import MSTL, AutoETS

    from tokenplan.forecast.statistical import _STL_JUMPS, run_statistical

    rng = np.random.default_rng(seed)
    t = np.arange(24 * 21)
    y = 1000 * np.exp(-0.004 * t + 2.0 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.1, t.size))
    ds = pd.date_range("2024-01-01", periods=t.size, freq="1h")
    series = to_series(
        validate(pd.DataFrame({"unique_id": "s", "ds": ds, "y": y})), make_cadence("1h")
    )
    assert series[0].log
    got = run_statistical(series, [0], 24, (24,))["mstl"][0, 0]
    seen = np.expm1(series[0].z())
    scale = seen.mean()
    trend = AutoETS(model="ZZN")
    model = MSTL(season_length=[24], trend_forecaster=trend, stl_kwargs=_STL_JUMPS)
    unfloored = model.fit(seen[-mstl_cap((24,)) :] / scale).predict(24)["mean"] * scale
    lowest = seen[-mstl_cap((24,)) :].min()
    assert unfloored.min() < 0 < lowest
    np.testing.assert_allclose(got, np.maximum(unfloored, lowest), rtol=1e-9)


def gmean(*values: float, weights: tuple[float, ...] | None = None) -> float:
    """The combination's mean: weighted, geometric, in log1p."""
    w = np.ones(len(values)) if weights is None else np.asarray(weights)
    return float(np.expm1(np.sum(w * np.log1p(values)) / w.sum()))


def test_combination_is_a_geometric_mean_that_a_high_member_pulls_less() -> None:
    from tokenplan.forecast.combination import COMBINATION, add_combination

    h = 4
    preds = {
        "a": np.full((1, 1, h), 100.0),
        "b": np.full((1, 1, h), 100.0),
        "c": np.full((1, 1, h), 190.0),  # within 2x of the median: a member, not an outlier
        "zero": np.zeros((1, 1, h)),
    }
    scores = {name: np.array([1.0]) for name in ("a", "b", "c")}
    scores["zero"] = np.array([10.0])  # gated out
    add_combination(preds, scores)
    combined = preds[COMBINATION][0, 0]
    np.testing.assert_allclose(combined, gmean(100, 100, 190))
    assert np.all(combined < (100 + 100 + 190) / 3)  # below the arithmetic mean
    assert np.all(combined > np.median([100, 100, 190]))  # yet every member counts
    # Members at zero (a quiet hour) stay members: log1p, not log.
    quiet = {"a": np.zeros((1, 1, h)), "b": np.full((1, 1, h), 3.0)}
    add_combination(quiet, {"a": np.array([1.0]), "b": np.array([1.0])})
    np.testing.assert_allclose(quiet[COMBINATION][0, 0], gmean(0, 3))
    assert np.all(np.isfinite(quiet[COMBINATION]))


def test_squared_errors_rank_the_rate_above_zero_on_intermittent_series() -> None:
    from tokenplan.forecast.selection import scores, window_errors

    # Empty four buckets in five: absolute errors favour forecasting zero, squared ones the
    # rate (2 a bucket), which is what the bucket sums need.
    actual = np.tile([0.0, 0.0, 0.0, 0.0, 10.0], 4)[None, None, :]  # (windows, series, h)
    zero, rate = np.zeros_like(actual), np.full_like(actual, 2.0)
    scale = np.array([1.0])
    assert scores(zero, actual, scale)[0] < scores(rate, actual, scale)[0]
    flagged = np.array([True])
    assert scores(rate, actual, scale, flagged)[0] < scores(zero, actual, scale, flagged)[0]
    np.testing.assert_allclose(scores(zero, actual, scale, flagged)[0], np.sqrt(20.0))
    per_window = window_errors(rate, actual, flagged)
    np.testing.assert_allclose(per_window, [[4.0]])
    # The combination of flagged series is arithmetic: a member at zero does not drag it.
    from tokenplan.forecast.combination import COMBINATION, add_combination

    preds = {"a": np.zeros((1, 2, 3)), "b": np.full((1, 2, 3), 8.0)}
    equal = {"a": np.ones(2), "b": np.ones(2)}
    add_combination(preds, equal, arithmetic=np.array([True, False]))
    np.testing.assert_allclose(preds[COMBINATION][0, 0], 4.0)
    np.testing.assert_allclose(preds[COMBINATION][0, 1], gmean(0, 8))


def test_windows_count_by_the_history_their_fits_had() -> None:
    from forecast_frames import usage

    from tokenplan.forecast.preparation import to_series
    from tokenplan.forecast.selection import scores, window_weights

    hourly = make_cadence("1h")
    short, long = (to_series(usage(n=n, uid=u), hourly)[0] for n, u in ((50, "a"), (100, "b")))
    np.testing.assert_array_equal(window_weights([short, long], [24, 48]), [[26, 76], [2, 52]])
    # Two windows (latest first) with history 3:1, one candidate off by 1 in each step of the
    # latest and by 3 in the earliest, the other the reverse.
    actual = np.zeros((2, 1, 4))
    late_miss = np.stack([np.full((1, 4), 3.0), np.full((1, 4), 1.0)])
    early_miss = late_miss[::-1].copy()
    weights = np.array([[3.0], [1.0]])
    scale = np.ones(1)
    assert scores(late_miss, actual, scale)[0] == scores(early_miss, actual, scale)[0] == 2.0
    np.testing.assert_allclose(scores(early_miss, actual, scale, weights=weights)[0], 1.5)
    np.testing.assert_allclose(scores(late_miss, actual, scale, weights=weights)[0], 2.5)
    # An unknown actual leaves its step out, whatever its window's weight.
    actual[0, 0, 0] = np.nan
    # (3 steps x 3 x 1 + 4 steps x 1 x 3) / (3 x 3 + 4 x 1)
    np.testing.assert_allclose(scores(early_miss, actual, scale, weights=weights)[0], 21 / 13)


def test_combination_leaves_out_a_member_far_from_the_others() -> None:
    from tokenplan.forecast.combination import COMBINATION, add_combination

    h = 6
    steady = np.full((2, 1, h), 100.0)  # (cuts, series, h)
    preds = {
        "a": steady.copy(),
        "b": steady * 1.1,
        # A trend compounding in log space: five times the others, in the final cut only.
        "c": np.concatenate([steady[:1] * 5.0, steady[1:] * 0.95]),
    }
    scores = {"a": np.array([1.0]), "b": np.array([1.0]), "c": np.array([1.0])}
    members = add_combination(preds, scores).members
    assert members == [["a", "b", "c"]]
    combined = preds[COMBINATION]
    np.testing.assert_allclose(combined[0, 0], gmean(100, 110))  # c's runaway cut: a, b only
    np.testing.assert_allclose(combined[1, 0], gmean(100, 110, 95))  # c agrees here
    # With two members there is no majority to tell which one is odd: both stay.
    two = {"a": steady.copy(), "c": preds["c"].copy()}
    add_combination(two, {"a": np.array([1.0]), "c": np.array([1.0])})
    np.testing.assert_allclose(two[COMBINATION][0, 0], gmean(100, 500))


def test_combination_weights_move_from_the_first_steps_winners_to_the_horizons() -> None:
    from tokenplan.forecast.combination import COMBINATION, add_combination, early_steps

    h = 24
    e = early_steps(h)
    preds = {
        "level": np.full((1, 1, h), 100.0),  # (cuts, series, h)
        "season": np.full((1, 1, h), 200.0),
        "other": np.full((1, 1, h), 150.0),
    }
    # Over the whole horizon "season" and "other" lead and "level" is gated out; on the first
    # steps "level" leads and "season" is gated out.
    whole = {"level": np.array([3.0]), "season": np.array([1.0]), "other": np.array([1.2])}
    first = {"level": np.array([1.0]), "season": np.array([3.0]), "other": np.array([1.2])}
    members = add_combination(preds, whole, first).members
    assert members == [["season", "other", f"level (first {e} steps)"]]
    combined = preds[COMBINATION][0, 0]
    w_level, w_other = 1.0, 1 / 1.2**2
    np.testing.assert_allclose(combined[0], gmean(100, 150, weights=(w_level, w_other)))
    w_season = 1.0
    np.testing.assert_allclose(combined[e:], gmean(200, 150, weights=(w_season, w_other)))
    assert np.all(np.diff(combined) >= 0)  # a ramp, not a jump, between the two
    # Without early scores the whole horizon takes the horizon's weights.
    again = {name: pred.copy() for name, pred in preds.items() if name != COMBINATION}
    add_combination(again, whole)
    np.testing.assert_allclose(again[COMBINATION][0, 0], combined[e])
    # A cut where the early leader failed (NaN) falls back on the horizon's members alone.
    broken = {name: pred.copy() for name, pred in preds.items() if name != COMBINATION}
    broken["level"][:] = np.nan
    broken["other"][:] = np.nan
    add_combination(broken, whole, first)
    np.testing.assert_allclose(broken[COMBINATION][0, 0], 200.0)


def test_combination_stays_finite_when_its_two_sets_disagree() -> None:
    from tokenplan.forecast.combination import COMBINATION, add_combination

    # The case that broke agreement judged over the union of both sets (ServeGen multimodal
    # clients): two members at zero, two above. Over four members the median sits halfway, so
    # the only member not "off" it was one of the first steps' set alone, and the later steps
    # had no weight left at all (a non-finite forecast).
    h = 36
    preds = {
        "naive": np.zeros((1, 1, h)),
        "seasonal_ses": np.zeros((1, 1, h)),
        "auto_ets": np.full((1, 1, h), 0.9),
        "auto_ets_raw": np.full((1, 1, h), 0.54),
    }
    whole = {
        "naive": np.array([1.05]),
        "seasonal_ses": np.array([1.01]),
        "auto_ets": np.array([1.06]),
        "auto_ets_raw": np.array([1.09]),
    }
    first = {
        "naive": np.array([1.02]),
        "seasonal_ses": np.array([1.14]),
        "auto_ets": np.array([1.24]),
        "auto_ets_raw": np.array([1.16]),
    }
    add_combination(preds, whole, first)
    assert np.all(np.isfinite(preds[COMBINATION]))


def test_first_steps_members_agree_or_not_on_the_first_steps() -> None:
    from tokenplan.forecast.combination import COMBINATION, add_combination, early_steps

    h = 24
    e = early_steps(h)
    steady = np.full((1, 1, h), 100.0)
    # "c" starts at 4x the others and falls back to them: 1.75x over the whole window (it
    # agrees there) but 4x over the first steps, where it is left out.
    jump = steady.copy()
    jump[..., :e] = 400.0
    preds = {"a": steady.copy(), "b": steady.copy(), "c": jump}
    scores = {name: np.array([1.0]) for name in preds}
    add_combination(preds, scores, scores)
    combined = preds[COMBINATION][0, 0]
    np.testing.assert_allclose(combined[0], 100.0)
    np.testing.assert_allclose(combined[e:], 100.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_weekend_seen_once_is_forecast_as_a_weekend(seed: int) -> None:
    # 13 days of hourly traffic, Sunday to Friday, weekends at 30%: the models need two weeks
    # for a weekly season, but "the same hour last week" needs one. Without it the Saturday
    # ahead was forecast at 1.05-1.08x Friday's total.
    from tokenplan.forecast.baselines import seen_once

    rng = np.random.default_rng(seed)
    ds = pd.date_range("2026-01-04", periods=13 * 24, freq="h")
    day = 1 + 0.5 * np.sin((ds.hour.to_numpy() - 6) / 24 * 2 * np.pi)
    weekend = np.where(ds.dayofweek >= 5, 0.3, 1.0)
    y = 1e5 * day * weekend * np.exp(rng.normal(0, 0.1, len(ds)))
    res = forecast(pd.DataFrame({"unique_id": "a", "ds": ds, "y": y}), horizon=24, freq="1h")
    saturday = res.frame["mean"].sum()
    assert saturday < 0.8 * y[-24:].sum()
    assert saturday > 0.5 * y[-7 * 24 : -6 * 24].sum()  # and not below last Saturday's half
    assert "season 168 seen once" in res.notes["a"]
    # A season is offered once its whole cycle lies before the earliest cut, never sooner.
    assert seen_once((24, 168), (24,), 168) == (168,)
    assert seen_once((24, 168), (24,), 167) == ()
    assert seen_once((24, 168), (24, 168), 500) == ()


def test_a_week_seen_once_moves_to_a_fresh_level_only() -> None:
    from tokenplan.forecast.baselines import seasonal_naive, seasonal_naive_once

    rng = np.random.default_rng(2)
    t = np.arange(13 * 24)
    weekly = 10.0 + 0.5 * np.sin(2 * np.pi * t / 24) - 1.2 * ((t // 24) % 7 >= 5)
    z = weekly + rng.normal(0, 0.05, len(t))

    def moved(values: np.ndarray) -> float:
        return float(
            np.mean(seasonal_naive_once(values, 168, 24, 24) - seasonal_naive(values, 168, 24))
        )

    # No change of level: last week as it was (noise aside), its weekend included.
    assert abs(moved(z)) < 0.05
    # A shift one day old, on a weekend day: last week moves by the shift (log 3 up).
    shifted = z.copy()
    shifted[-24:] += np.log(3.0)
    assert abs(moved(shifted) - np.log(3.0)) < 0.05
    # A shift a week old is in the week repeated already: moving it again overshot 3x.
    settled = z.copy()
    settled[-7 * 24 :] += np.log(3.0)
    assert abs(moved(settled)) < 0.05


def test_ensemble_selection_needs_six_whole_cycles_of_backtest() -> None:
    from tokenplan.forecast.combination import ensemble_evidence

    daily = [24 * k for k in range(1, 7)]
    assert ensemble_evidence(daily, 24, 24)  # six days held out, a day each
    assert not ensemble_evidence(daily[:4], 24, 24)  # four windows
    assert not ensemble_evidence([12, 18, 24, 30, 36, 42], 24, 24)  # overlapping windows
    assert not ensemble_evidence([12 * k for k in range(1, 7)], 12, 144)  # 2 h of 10-min buckets
    assert not ensemble_evidence([], 24, 24)


def test_ensemble_selection_hedges_and_judges_each_window_out_of_sample() -> None:
    from tokenplan.forecast.combination import COMBINATION, ROUNDS, add_combination

    rng = np.random.default_rng(3)
    cuts, n, h = 7, 1, 24  # the final forecast and six backtest windows
    truth = 100.0 * np.exp(rng.normal(0.0, 0.05, (cuts - 1, n, h)))
    # "close" is the best alone (5% high), then "high" and "higher"; "low" (20% low) ranks
    # fourth. The rule averages the three best, all high; the selection offsets them by "low".
    factors = {"close": 1.05, "high": 1.06, "higher": 1.07, "low": 0.8}
    preds = {name: np.full((cuts, n, h), 100.0 * f) for name, f in factors.items()}
    for name, f in factors.items():
        preds[name][1:] = truth * f
    ranks = {"close": 1.0, "high": 1.1, "higher": 1.2, "low": 1.4}
    scores = {name: np.array([r]) for name, r in ranks.items()}
    weights = np.ones((cuts - 1, n))
    rule = {name: pred.copy() for name, pred in preds.items()}
    assert "low" not in add_combination(rule, scores).members[0]
    combination = add_combination(preds, scores, ensemble=(truth, weights))
    assert "low" in combination.members[0]
    assert combination.selected[0]
    combined = preds[COMBINATION]

    def mae(pred: np.ndarray) -> float:
        return float(np.mean(np.abs(pred - truth)))

    assert mae(combined[1:]) < 0.5 * mae(preds["close"][1:])  # the hedge beats the best alone
    assert mae(combined[1:]) < 0.5 * mae(rule[COMBINATION][1:])  # and the rule's mean
    # Each round moves the mean by at most one vote's share: it ends within one of the truth.
    assert abs(np.log(combined[0, 0, 0] / 100.0)) <= np.log(1.05 / 0.8) / ROUNDS
    # A window is combined with weights chosen on the other windows: changing what happened
    # in it changes the final forecast's weights, not its own. (Two windows here: absolute
    # errors over six barely move for one odd window.)
    two = {name: pred[:3].copy() for name, pred in preds.items() if name != COMBINATION}
    add_combination(two, scores, ensemble=(truth[:2], weights[:2]))
    moved = truth[:2].copy()
    moved[0] *= 0.8  # the latest window's truth now matches "low" alone
    again = {name: pred[:3].copy() for name, pred in preds.items() if name != COMBINATION}
    add_combination(again, scores, ensemble=(moved, weights[:2]))
    np.testing.assert_allclose(again[COMBINATION][1], two[COMBINATION][1])
    assert again[COMBINATION][0, 0, 0] < two[COMBINATION][0, 0, 0] - 0.25


def test_ensemble_selection_keeps_the_rule_where_it_cannot_judge() -> None:
    from tokenplan.forecast.combination import COMBINATION, add_combination

    cuts, h = 4, 6
    preds = {"a": np.full((cuts, 2, h), 100.0), "b": np.full((cuts, 2, h), 120.0)}
    preds["b"][1:, 1] = np.nan  # b failed every backtest window of the second series
    truth = np.full((cuts - 1, 2, h), 110.0)
    scores = {"a": np.array([1.0, 1.0]), "b": np.array([1.0, 1.0])}
    combination = add_combination(preds, scores, ensemble=(truth, np.ones((cuts - 1, 2))))
    # The second series keeps the rule's equal weights in its final forecast, and says so (its
    # note does not claim the selection); the first is selected for.
    np.testing.assert_allclose(preds[COMBINATION][0, 1], gmean(100, 120))
    assert combination.selected.tolist() == [True, False]
    assert np.all(np.isfinite(preds[COMBINATION][0]))


@st.composite
def _ensemble_inputs(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    m = draw(st.integers(2, 5))
    w = draw(st.integers(2, 4))
    n = draw(st.integers(1, 3))
    h = draw(st.integers(1, 6))
    level = draw(st.sampled_from([1e-3, 1.0, 1e6, 1e12]))
    values = st.floats(0.0, 10.0, allow_nan=False)
    stack = level * draw(hnp.arrays(np.float64, (m, w + 1, n, h), elements=values))
    actual = level * draw(hnp.arrays(np.float64, (w, n, h), elements=values))
    often = st.sampled_from([False, False, True])
    failed = draw(hnp.arrays(np.bool_, (m, 1, n, 1), elements=often))
    stack[np.broadcast_to(failed, stack.shape)] = np.nan  # a member's fit failed
    actual[draw(hnp.arrays(np.bool_, actual.shape, elements=often))] = np.nan  # unknown buckets
    pool = ~draw(hnp.arrays(np.bool_, (m, n), elements=often))
    rule = draw(hnp.arrays(np.float64, (m, n), elements=st.floats(0.0, 1.0)))
    plain = draw(hnp.arrays(np.bool_, (n,)))
    return stack, actual, np.ones((w, n)), pool, rule, plain


@settings(max_examples=150, deadline=None)
@given(_ensemble_inputs())
def test_ensemble_weights_are_votes_for_allowed_members_or_the_rule(
    inputs: tuple[np.ndarray, ...],
) -> None:
    from tokenplan.forecast.combination import PRIOR_ROUNDS, ROUNDS, ensemble_weights

    stack, actual, window_w, pool, rule, plain = inputs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid value on any scale
        out, selected = ensemble_weights(stack, actual, window_w, pool, rule, plain)
    assert out.shape == (stack.shape[0], stack.shape[1], stack.shape[2])
    assert selected.shape == (stack.shape[2],)
    # A series not selected for keeps the rule at every cut.
    np.testing.assert_array_equal(
        out[:, :, ~selected], np.repeat(rule[:, None, ~selected], out.shape[1], axis=1)
    )
    assert np.all(np.isfinite(out))
    assert np.all(out >= 0)
    allowed = pool & ~np.isnan(stack[:, 1:]).any(axis=(1, 3))
    for j in range(stack.shape[2]):
        for c in range(stack.shape[1]):
            w = out[:, c, j]
            if np.allclose(w, rule[:, j]):
                continue  # kept the rule: too few members or windows to judge
            # Otherwise the rule's share plus one vote a round, every vote for an allowed member.
            share = PRIOR_ROUNDS * rule[:, j] / max(rule[:, j].sum(), 1e-300)
            assert w.sum() == pytest.approx(ROUNDS + share.sum())
            votes = w - share
            assert np.all(votes[~allowed[:, j]] < 1e-9)
            assert np.all(votes > -1e-9)


def test_the_note_says_when_weights_come_from_ensemble_selection() -> None:
    # Three weeks hourly at h=24: six daily windows, the selection runs; five days: it cannot.
    long = forecast(usage(n=21 * 24), horizon=24, freq="1h", levels=(80, 95))
    short = forecast(usage(n=5 * 24), horizon=24, freq="1h", levels=(80, 95))
    assert "; weights by ensemble selection)" in long.notes["s"]
    assert "ensemble selection" not in short.notes["s"]
    assert np.all(np.isfinite(long.frame["mean"]))


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.float64, (5, 7), elements=st.floats(-20, 20)),
    hnp.arrays(np.bool_, (4, 7)),
)
def test_blind_median_sits_among_its_members_and_skips_failed_ones(
    values: np.ndarray, failed: np.ndarray
) -> None:
    # Without a backtest the forecast is the per-step median of its members: never outside
    # them, and a member whose fit failed (NaN) neither counts nor leaks a NaN.
    from tokenplan.forecast.fallbacks import blind_median

    profile = values[0]
    others = [np.where(failed[i], np.nan, values[i + 1]) for i in range(4)]
    out = blind_median(profile, others)
    stack = np.vstack([profile, *others])
    assert np.isfinite(out).all()
    assert np.all(out >= np.nanmin(stack, axis=0) - 1e-9)
    assert np.all(out <= np.nanmax(stack, axis=0) + 1e-9)
    alone = failed.all(axis=0)
    assert np.allclose(out[alone], profile[alone])
    # One member far off moves nothing while the other four agree.
    agree = np.tile(profile, (4, 1))
    agree[0] = profile + 1e6
    assert np.allclose(blind_median(profile, list(agree)), profile)


def test_a_cycle_seen_once_keeps_its_shape_as_far_as_it_stands_above_the_noise() -> None:
    from tokenplan.forecast.fallbacks import cycle_shape, shape_at

    rng = np.random.default_rng(0)
    day = np.sin(2 * np.pi * np.arange(24) / 24)
    # A strong daily swing over a day and a half: kept nearly whole, in phase.
    strong = np.concatenate([day[12:], day]) * 2.0 + rng.normal(0, 0.05, 36)
    shape, kept = cycle_shape(strong, 24)
    assert kept > 0.95
    assert np.corrcoef(shape, day)[0, 1] > 0.99
    assert np.allclose(shape_at(shape, 36, 36, 60), shape)  # the next day starts in phase
    # Noise with no weekly shape over ten days: what the last week shows is mostly dropped.
    noise = rng.normal(0, 0.1, 10)
    _, kept = cycle_shape(noise, 7)
    assert kept < 0.5
    # Exactly one cycle: its two ends, a cycle apart less a bucket, measure the noise.
    shape, kept = cycle_shape(strong[-24:], 24)
    assert kept > 0.9
    assert np.allclose(shape, kept * (strong[-24:] - strong[-24:].mean()))
    # Ends far apart, as a level that moved over the day leaves them: the shape is dropped.
    drifted = strong[-24:] + np.linspace(0.0, 6.0, 24)
    _, kept = cycle_shape(drifted, 24)
    assert kept < 0.1


def test_mstl_sees_older_cycles_than_theta_and_ets() -> None:
    # Changing the week just before the other models' recent history moves MSTL's forecast
    # (its seasons are smoothed over twice as many cycles) and no other model's.
    seasons = (24,)
    n = mstl_cap(seasons) + 24
    t = np.arange(n)
    y = 100 + 30 * np.sin(2 * np.pi * t / 24) + np.random.default_rng(5).normal(0, 3, n)
    older = y.copy()
    start = n - history_cap(seasons) - 168
    older[start : start + 168] += 25 * np.sin(2 * np.pi * t[start : start + 168] / 12)
    a = _one_series(y, False, False, [0], 24, seasons)
    b = _one_series(older, False, False, [0], 24, seasons)
    for name in ("auto_ets", "auto_theta"):
        np.testing.assert_allclose(a[name], b[name], rtol=0.02)
    assert not np.allclose(a["mstl"], b["mstl"], rtol=0.02)
