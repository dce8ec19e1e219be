"""Intervals are calibrated: coverage on held-out data with known noise lands near nominal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from forecast_frames import usage

from tokenplan.errors import ModelFileError
from tokenplan.forecast import Forecaster, forecast
from tokenplan.forecast.conformal import (
    bounds,
    mirrored_bounds,
    reference_errors,
    small_sample_widening,
    step_scales,
    sum_widening,
)
from tokenplan.forecast.paths import (
    COMMON_PRIOR,
    common_prior,
    dependence,
    path_scales,
    path_tail_df,
    sample_errors,
)
from tokenplan.forecast.persistence import _digest

SERVEGEN = (
    Path(__file__).resolve().parents[1] / "data" / "shared" / "servegen_language" / "hourly.csv"
)


def test_backtest_coverage_of_chosen_is_near_nominal() -> None:
    df = pd.concat([usage(n=840, seed=s, uid=f"s{s}") for s in range(4)], ignore_index=True)
    res = forecast(df, horizon=24, freq="1h", local_models=False)
    chosen = res.backtest[res.backtest["chosen"]]
    assert chosen["coverage_80"].between(0.70, 0.90).all()
    assert chosen["coverage_95"].between(0.88, 0.995).all()


def test_out_of_sample_coverage_on_fresh_data() -> None:
    hits80, hits95, total = 0, 0, 0
    for seed in range(6):
        full = usage(n=840 + 24, seed=100 + seed)
        train, test = full.iloc[:-24], full.iloc[-24:]
        frame = forecast(train, horizon=24, freq="1h", local_models=False).frame
        y = test["y"].to_numpy()
        hits80 += int(((y >= frame["lo_80"]) & (y <= frame["hi_80"])).sum())
        hits95 += int(((y >= frame["lo_95"]) & (y <= frame["hi_95"])).sum())
        total += len(y)
    # 144 correlated points: a loose band (bench/m4_hourly.py measures 80.1% on 19,872).
    assert 0.68 <= hits80 / total <= 0.94
    assert 0.86 <= hits95 / total <= 1.0


def test_interval_width_tracks_noise() -> None:
    quiet = forecast(usage(n=600, noise=0.05), horizon=24, freq="1h", local_models=False).frame
    loud = forecast(usage(n=600, noise=0.4), horizon=24, freq="1h", local_models=False).frame

    def rel_width(frame: pd.DataFrame) -> float:
        return float(np.median((frame["hi_80"] - frame["lo_80"]) / frame["mean"]))

    assert rel_width(loud) > 3 * rel_width(quiet)


def test_sum_interval_covers_period_totals() -> None:
    inside, runs = 0, 8
    for seed in range(runs):
        full = usage(n=672 + 48, seed=200 + seed)
        train, test = full.iloc[:-48], full.iloc[-48:]
        res = forecast(train, horizon=48, freq="1h", local_models=False)
        window = res.sum_interval("s", levels=(95,))
        inside += window["lo_95"] <= test["y"].sum() <= window["hi_95"]
        assert window["lo_95"] < window["point"] < window["hi_95"]
    assert inside >= runs - 2
    p = res.prob_sum_above("s", 0.0)
    assert p == 1.0


def test_the_common_share_prior_is_read_off_a_long_enough_history() -> None:
    rng = np.random.default_rng(5)
    t = np.arange(28 * 24)
    cycle = np.log1p(1000 * (1 + 0.5 * np.sin(2 * np.pi * t / 24)))
    steady = cycle + rng.normal(0, 0.3, len(t))
    # The same noise on days that each move as a block (a level that wanders day to day).
    days = np.repeat(rng.normal(0, 0.4, 28), 24)
    blocks = steady + days
    assert common_prior(steady, 24, 24) < 0.15
    assert common_prior(blocks, 24, 24) > 0.4
    # Too few seasonal naive windows (five days) to judge: the fixed prior.
    assert common_prior(blocks[-5 * 24 :], 24, 24) == COMMON_PRIOR


def test_a_steady_series_day_total_is_not_wider_than_its_noise_makes_it() -> None:
    # Independent noise on a fixed profile: nothing moves a whole day, so the day's total
    # spreads by about +-9% at 80% (bench/steady_sums.py); the fixed prior made it +-18%.
    widths = []
    for seed in range(4):
        frame = usage(n=28 * 24, noise=0.3, seed=300 + seed, weekend=1.0)
        res = forecast(frame, horizon=24, freq="1h", local_models=False)
        day = res.sum_interval("s", levels=(80,))
        widths.append((day["hi_80"] - day["lo_80"]) / 2 / day["point"])
        assert res.paths["s"].common_prior < 0.15
    assert 0.05 < np.median(widths) < 0.14


def test_dependence_survives_outliers() -> None:
    # Each window errs by a shared level (+-0.3) plus small noise; a few huge residuals (as
    # near-empty hours of a bursty series give in log space) must not hide that.
    rng = np.random.default_rng(0)
    errors = rng.normal(0, 0.3, (6, 1))[:, [0] * 168] + rng.normal(0, 0.1, (6, 168))
    errors[rng.random(errors.shape) < 0.02] = 9.0
    common, _rho = dependence(errors)
    assert common > 0.3


def test_sample_paths_are_centred_on_the_point() -> None:
    errors = np.random.default_rng(1).normal(-0.3, 0.2, (4, 48))  # biased backtest
    paths = sample_errors(errors, 4000)
    assert np.abs(np.median(paths, axis=0)).max() < 0.05


def test_heavy_tailed_path_scales_fatten_a_sums_outer_band_only() -> None:
    # Each window errs by a shared level plus noise: a day's total is mostly that level.
    rng = np.random.default_rng(2)
    errors = rng.normal(0, 0.3, (6, 1))[:, [0] * 24] + rng.normal(0, 0.1, (6, 24))
    gaussian = sample_errors(errors, 20_000).sum(axis=1)
    heavy = sample_errors(errors, 20_000, tail_df=path_tail_df(6)).sum(axis=1)

    def reach(sums: np.ndarray, level: float) -> float:
        lo, hi = np.quantile(sums, [0.5 - level / 2, 0.5 + level / 2])
        return float(hi - lo)

    assert abs(reach(heavy, 0.8) / reach(gaussian, 0.8) - 1) < 0.05  # the body stays
    assert reach(heavy, 0.95) / reach(gaussian, 0.95) > 1.08  # the tails grow
    assert abs(np.median(heavy)) < 0.05 * reach(heavy, 0.8)  # still centred on the point
    # Infinite degrees of freedom draw exactly the Gaussian copula's paths.
    assert np.array_equal(
        sample_errors(errors, 500, tail_df=float("inf")), sample_errors(errors, 500)
    )
    assert [path_tail_df(k) for k in (0, 3, 4, 6, 12)] == [3, 3, 3, 5, 11]
    # The factor is cut at its 99.5% quantile: a log-space error hundreds of times over would
    # overflow exp().
    factors = path_scales(200_000, 3.0, np.random.default_rng(0))
    assert 5.0 < factors.max() < 5.07
    assert np.mean(factors >= factors.max()) == pytest.approx(0.005, abs=0.001)


def test_daily_sums_keep_the_point_inside_their_band() -> None:
    # The demo case: ServeGen hourly total tokens by model, a week ahead. Each day's 80% band
    # used to put the point forecast at one edge (uncentred backtest bias, and a dependence
    # estimate wiped out by a few huge log residuals).
    raw = pd.read_csv(SERVEGEN)
    df = pd.DataFrame(
        {
            "unique_id": raw["model"],
            "ds": pd.to_datetime(raw["timestamp"]).dt.tz_localize(None),
            "y": raw["input_tokens"] + raw["output_tokens"],
        }
    )
    res = forecast(df, horizon=168, freq="1h", hierarchy="total", local_models=False)
    start = res.frame["ds"].min().normalize() + pd.Timedelta(days=1)
    for uid in ("m-small", "m-large", "total"):
        for day in range(6):
            a = start + pd.Timedelta(days=day)
            band = res.sum_interval(uid, a, a + pd.Timedelta(days=1), levels=(80,))
            share = (band["point"] - band["lo_80"]) / (band["hi_80"] - band["lo_80"])
            # Not at an edge. Bands are in log space, so where the backtest erred widely a
            # day's sum skews upwards and the point (a sum of step medians) sits low in its
            # band, though well inside it.
            # m-small's hourly log errors are heavy-tailed (sd ~2), so its day sums skew most:
            # 0.036 of the band with the backtest-weighted combination, 0.05+ with the old median.
            assert 0.03 < share < 0.9, (uid, day, band)


def test_short_backtests_get_mirrored_outer_bands_and_long_ones_do_not() -> None:
    # Ten days of hourly data at h=48: six windows 28 h apart, three of them independent.
    short = usage(n=10 * 24, seed=7)
    res = forecast(short, horizon=48, freq="1h", local_models=False)
    note = res.notes["s"]
    assert "3 non-overlapping backtest window(s)" in note
    assert "mirror image" in note
    f = res.frame
    z = res.paths["s"].to_model  # the space the bands were read in
    up = z(f["hi_95"]) - z(f["mean"])
    down = z(f["mean"]) - z(f["lo_95"])
    # The mirror gives each side the errors of either: neither side of the 95% band is a
    # fraction of the other's, as a backtest that erred one way would leave it.
    inner = f["lo_95"] > 0  # where the lower band is not held at zero
    assert inner.any()
    assert (np.minimum(up, down)[inner] >= 0.5 * np.maximum(up, down)[inner]).all()
    long = usage(n=840, seed=7)
    res = forecast(long, horizon=24, freq="1h", local_models=False)
    assert "non-overlapping" not in res.notes["s"]


def test_mirrored_bounds_give_both_sides_the_errors_of_either() -> None:
    # A backtest that only saw the series rise: every error positive.
    errors = np.random.default_rng(5).uniform(0.1, 1.0, (2, 3, 12))
    plain = bounds(errors, (80.0, 95.0))
    mirrored = mirrored_bounds(errors, (80.0, 95.0))
    for level in (80.0, 95.0):
        lo, hi = mirrored[level]
        assert np.all(plain[level][0] == 0.0)  # no room below the point at all
        # As far below as above, up to one order statistic (conformal ranks round outward).
        assert np.all(-lo >= 0.85 * hi)
        assert np.all(-lo <= hi / 0.85)
        assert np.all(lo < -0.1)
    np.testing.assert_allclose(mirrored[95.0][0], -mirrored[95.0][1])
    assert np.all(mirrored[80.0][1] <= mirrored[95.0][1])
    # Errors already symmetric: the mirror adds nothing new.
    even = np.concatenate([errors, -errors], axis=1)
    np.testing.assert_allclose(
        mirrored_bounds(even, (95.0,))[95.0][1], bounds(even, (95.0,))[95.0][1]
    )


def test_a_backtest_that_saw_one_regime_widens_every_band_to_its_mirror(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two days of a client ramping up, then the next twelve hours: every backtest window
    # erred the same way (the series rose faster than forecast).
    t = np.arange(60)
    y = 200.0 * np.exp(0.03 * t) * (1 + 0.3 * np.sin(2 * np.pi * t / 24))
    y *= np.exp(np.random.default_rng(6).normal(0, 0.05, len(t)))
    frame = pd.DataFrame(
        {"unique_id": "s", "ds": pd.date_range("2024-01-01", periods=len(t), freq="h"), "y": y}
    )
    mirrored = forecast(frame, horizon=12, freq="1h", local_models=False)
    mirror_note = "every band at least what its errors and their mirror image give"
    assert mirror_note in mirrored.notes["s"]
    import tokenplan.forecast.assembly as assembly

    def no_mirror(
        errors: np.ndarray, levels: tuple[float, ...]
    ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        zero = np.zeros(errors.shape[::2])  # (n, h): no offset
        return {level: (zero, zero) for level in levels}

    monkeypatch.setattr(assembly, "mirrored_bounds", no_mirror)
    plain = forecast(frame, horizon=12, freq="1h", local_models=False)
    a, b = mirrored.frame, plain.frame
    np.testing.assert_allclose(a["mean"], b["mean"])
    for level in ("80", "95"):
        assert (a[f"lo_{level}"] <= b[f"lo_{level}"] + 1e-9).all()
        assert (a[f"hi_{level}"] >= b[f"hi_{level}"] - 1e-9).all()
        # Below the point, the side the backtest never erred on, the plain band had no
        # room; mirrored, it reaches below as the errors reached above.
        assert (b[f"lo_{level}"] >= 0.99 * b["mean"]).all()
        assert (a[f"lo_{level}"] < 0.9 * a["mean"]).all()
    assert (a["lo_95"] < 0.7 * a["mean"]).all()


def test_a_series_too_short_to_backtest_mirrors_only_its_outer_band(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A day and a half of a rising client, a day ahead: no backtest window at all, so its
    # bands are its profile's errors, already widened for want of a backtest. Only the outer
    # band takes the mirror image; the 80% band is the profile's.
    t = np.arange(36)
    y = 100.0 + 4.0 * t + 30 * np.sin(2 * np.pi * t / 24)
    frame = pd.DataFrame(
        {"unique_id": "s", "ds": pd.date_range("2024-01-01", periods=len(t), freq="h"), "y": y}
    )
    mirrored = forecast(frame, horizon=24, freq="1h")
    import tokenplan.forecast.assembly as assembly

    def no_mirror(
        errors: np.ndarray, levels: tuple[float, ...]
    ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        zero = np.zeros(errors.shape[::2])
        return {level: (zero, zero) for level in levels}

    monkeypatch.setattr(assembly, "mirrored_bounds", no_mirror)
    plain = forecast(frame, horizon=24, freq="1h")
    assert set(mirrored.backtest["method"]) == {"fallback"}
    for col in ("mean", "lo_80", "hi_80"):
        np.testing.assert_allclose(mirrored.frame[col], plain.frame[col])
    assert (mirrored.frame["lo_95"] <= plain.frame["lo_95"] + 1e-9).all()
    assert (mirrored.frame["lo_95"] < plain.frame["lo_95"] - 1e-9).any()


def test_reference_errors_are_seasonal_naive_out_of_sample() -> None:
    z = np.arange(10 * 24, dtype=float)  # a ramp: seasonal naive errs by one cycle's rise
    out = reference_errors(z, h=24, season=24, count=3)
    assert out.shape == (3, 24)
    assert np.allclose(out, 24.0)
    # 36 steps at season 24: steps past the first cycle repeat the cycle before the origin.
    deep = reference_errors(z, h=36, season=24, count=9)
    assert len(deep) == (len(z) - 48) // 36
    assert np.allclose(deep[:, :24], 24.0)
    assert np.allclose(deep[:, 24:], 48.0)
    # No season: naive from the origin, so the error grows with the step.
    assert np.allclose(reference_errors(z, h=4, season=1, count=1), [[1.0, 2.0, 3.0, 4.0]])


def test_a_three_day_history_borrows_seasonal_naive_windows_for_its_bands() -> None:
    # Three days hourly at h=24: one backtest window (day 3 from days 1-2), and here a calm
    # one. The drop from day 1 to day 2, which that window cannot show, reaches the bands
    # through seasonal naive's earlier window (log width 0.15 without it, 0.55 with it).
    rng = np.random.default_rng(3)
    t = np.arange(72)
    level = np.repeat([1600.0, 1000.0, 1000.0], 24)
    y = level * (1 + 0.5 * np.sin(2 * np.pi * t / 24)) * np.exp(rng.normal(0, 0.05, 72))
    frame = pd.DataFrame(
        {"unique_id": "s", "ds": pd.date_range("2024-01-01", periods=72, freq="h"), "y": y}
    )
    res = forecast(frame, horizon=24, freq="1h")
    width = (np.log1p(res.frame["hi_80"]) - np.log1p(res.frame["lo_80"])).mean()
    assert width > 0.4
    assert "seasonal naive's latest 2 window(s)" in res.notes["s"]


def test_borrowed_windows_do_not_give_a_good_model_seasonal_naives_bands() -> None:
    # Five weeks of daily totals growing 4% a week: the chosen model follows the growth,
    # seasonal naive (last week) misses it every day. Its windows still join the pool (two
    # of the model's own cannot show how errors move), but at the geometric mean of the two
    # sizes: taken as they were, the 80% band's half width was 0.91x seasonal naive's error.
    rng = np.random.default_rng(5)
    t = np.arange(35)
    y = (1000 + 40 * t) * (1 + 0.3 * np.sin(2 * np.pi * t / 7)) * np.exp(rng.normal(0, 0.02, 35))
    frame = pd.DataFrame(
        {"unique_id": "s", "ds": pd.date_range("2024-01-01", periods=35, freq="D"), "y": y}
    )
    res = forecast(frame, horizon=7, freq="1d")
    assert "bands also from seasonal naive's latest" in res.notes["s"]
    half = ((res.frame["hi_80"] - res.frame["lo_80"]) / 2 / res.frame["mean"]).mean()
    naive_error = np.mean(np.abs(np.log(y[7:] / y[:-7])))
    assert 0.3 * naive_error < half < 0.7 * naive_error


def test_bands_from_few_independent_windows_are_widened_as_student_t_would() -> None:
    factors = [small_sample_widening(k) for k in range(1, 8)]
    assert factors[0] == factors[1] == factors[2] > factors[3] > factors[4] > 1.0
    assert factors[5] == factors[6] == 1.0  # six windows and more: as calibrated on M4
    assert abs(factors[2] - 1.278) < 1e-3


def test_sums_from_few_windows_are_widened_more_than_steps() -> None:
    # A day's total errs by one number per window: three windows are three draws of it.
    factors = [sum_widening(k) for k in range(1, 8)]
    assert factors[0] == factors[1] == factors[2] > factors[3] > factors[4] > 1.0
    assert factors[5] == factors[6] == 1.0
    assert all(sum_widening(k) > small_sample_widening(k) for k in (3, 4, 5))


def test_a_short_historys_day_total_gets_the_wider_band_around_the_same_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tokenplan.forecast.calibration as calibration

    # Without the paths' heavy-tailed factor, whose wide draws floor more steps at zero and
    # so bend the linear scaling this checks.
    monkeypatch.setattr(calibration, "path_tail_df", lambda windows: float("inf"))
    frame = usage(n=72, seed=4)
    widened = forecast(frame, horizon=24, freq="1h", local_models=False)
    monkeypatch.setattr(calibration, "sum_widening", lambda windows: 1.0)
    plain = forecast(frame, horizon=24, freq="1h", local_models=False)
    np.testing.assert_allclose(plain.frame["mean"], widened.frame["mean"])
    wide, narrow = widened.sum_interval("s"), plain.sum_interval("s")
    assert wide["point"] == pytest.approx(narrow["point"])
    for level in ("80", "95"):
        assert wide[f"lo_{level}"] <= narrow[f"lo_{level}"] <= wide["point"]
        assert wide[f"hi_{level}"] >= narrow[f"hi_{level}"] >= wide["point"]
    # Scaled about the point: the upper distance grows by the factor (paths floored at zero
    # can only shorten the lower one).
    ratio = (wide["hi_95"] - wide["point"]) / (narrow["hi_95"] - narrow["point"])
    assert ratio == pytest.approx(sum_widening(3), rel=0.02)
    # The probability of exceeding a level is read off the same widened paths.
    assert widened.prob_sum_above("s", narrow["hi_95"]) > plain.prob_sum_above("s", narrow["hi_95"])


def test_three_days_of_hourly_history_get_wider_bands_than_their_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Three days hourly, h=24: one backtest window and two seasonal naive windows before it,
    # three independent draws of a day's error; the step bands are widened as Student t says.
    frame = usage(n=72, seed=4)
    widened = forecast(frame, horizon=24, freq="1h", local_models=False)
    assert "bands x1.28 (sums x1.79) for 3 independent window(s) (Student t)" in widened.notes["s"]
    import tokenplan.forecast.calibration as calibration

    monkeypatch.setattr(calibration, "small_sample_widening", lambda windows: 1.0)
    plain = forecast(frame, horizon=24, freq="1h", local_models=False)
    np.testing.assert_allclose(plain.frame["mean"], widened.frame["mean"])
    z = widened.paths["s"].to_model  # the space the bands were read in
    for res in (plain, widened):
        assert (res.frame["lo_95"] <= res.frame["lo_80"]).all()

    def width(res: object) -> np.ndarray:
        f = res.frame  # type: ignore[attr-defined]
        return np.asarray(z(f["hi_80"]) - z(f["mean"]))

    np.testing.assert_allclose(width(widened), 1.278 * width(plain), rtol=2e-3)


def test_the_common_share_prior_round_trips_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    fitted = Forecaster("1h", 24, (80, 95), local_models=False).fit(usage(n=28 * 24, noise=0.3))
    path = tmp_path / "f.json"
    fitted.save(str(path))
    loaded = Forecaster.load(str(path)).predict()
    prior = fitted.predict().paths["s"].common_prior
    assert prior != COMMON_PRIOR
    assert loaded.paths["s"].common_prior == prior
    assert loaded.sum_interval("s") == fitted.predict().sum_interval("s")
    doc = json.loads(path.read_text())
    doc["body"]["result"]["paths"]["s"]["common_prior"] = 1.5
    doc["digest"] = _digest(doc["body"], None)
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match="bad common_prior"):
        Forecaster.load(str(path))


def _volatile_month(calm_days: int, seed: int) -> pd.DataFrame:
    """A month of hourly traffic with heavy noise, its last ``calm_days`` on the bare profile."""
    rng = np.random.default_rng(seed)
    hours = np.arange(30 * 24)
    profile = 1000 * (1.5 + np.sin(2 * np.pi * hours / 24))
    y = profile * np.exp(rng.normal(0.0, 0.35, hours.size))
    if calm_days:
        y[-calm_days * 24 :] = profile[-calm_days * 24 :]
    ds = pd.date_range("2026-01-01", periods=hours.size, freq="h")
    return pd.DataFrame({"unique_id": "s", "ds": ds, "y": y})


@pytest.mark.parametrize("seed", [0, 3])
def test_two_calm_days_do_not_shrink_what_a_volatile_month_erred(seed: int) -> None:
    # Bands come from the errors the backtest windows made, not from a reading of the last two
    # days' volatility against each window's (normalised conformal, dropped 2026-12-05: that
    # reading is noise, and every interval score paid for it). The two calm windows still pull
    # the band in a little; the rescale took it to 0.34-0.54 of the volatile series' band.
    widths = []
    for calm in (0, 2):
        f = forecast(_volatile_month(calm, seed), horizon=24, freq="1h", local_models=False).frame
        widths.append(float(np.mean(np.log(f["hi_80"]) - np.log(f["lo_80"]))))
    assert widths[1] > 0.6 * widths[0], widths


def test_step_scales_follow_errors_that_grow_along_the_horizon() -> None:
    rng = np.random.default_rng(3)
    steps = np.arange(1, 13)
    walk = rng.standard_normal((1, 200, 12)) * np.sqrt(steps)  # a random walk's spread
    flat = rng.standard_normal((1, 200, 12))
    shrinking = rng.standard_normal((1, 200, 12)) / steps
    grows = step_scales(walk)[0]
    assert grows[-1] / grows[0] == pytest.approx(np.sqrt(12), rel=0.15)
    assert np.all(np.diff(grows) > 0)
    assert step_scales(flat)[0] == pytest.approx(np.ones(12), abs=0.15)
    # Errors that shrink along the horizon are a few windows' chance: no step narrows.
    assert step_scales(shrinking)[0] == pytest.approx(np.ones(12))


def test_a_pool_spanning_the_horizon_still_widens_along_it() -> None:
    # Six windows of twelve steps pool the whole horizon for every step; the bands must still
    # be narrow at the first step and wide at the last when the errors grow as a random walk's.
    rng = np.random.default_rng(5)
    errors = np.cumsum(rng.standard_normal((1, 6, 12)), axis=2)
    lo, hi = bounds(errors, (80.0,))[80.0]
    width = hi[0] - lo[0]
    assert width[-1] > 2.0 * width[0]


def test_one_day_of_a_wandering_series_gets_bands_that_widen_with_the_step() -> None:
    rng = np.random.default_rng(11)
    level = 1000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.05, 144)))
    y = level * np.exp(rng.normal(0.0, 0.02, 144))
    ds = pd.date_range("2026-03-02", periods=144, freq="10min")
    frame = pd.DataFrame({"unique_id": "new-client", "ds": ds, "y": y})
    out = forecast(frame, horizon=12, freq="10min", levels=(80,)).frame
    width = (out["hi_80"] - out["lo_80"]).to_numpy()
    assert width[-1] > 1.8 * width[0]
