"""Real traffic's hard cases: outages, level shifts, bursts and a day of history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from forecast_frames import usage

from tokenplan.forecast import forecast


def _mean_next_day(history: pd.DataFrame) -> float:
    res = forecast(history, horizon=24, freq="1h", levels=(80,))
    return float(res.frame["mean"].mean())


def test_a_two_day_outage_does_not_drag_the_level_down() -> None:
    steady = usage(n=24 * 28, noise=0.1)
    outage = steady.copy()
    outage.loc[24 * 20 : 24 * 22 - 1, "y"] = 0.0  # two days of zeros, a week before the end
    base, hit = _mean_next_day(steady), _mean_next_day(outage)
    assert hit > 0.85 * base
    # The history itself stays as recorded.
    assert (outage["y"].iloc[24 * 20 : 24 * 22] == 0).all()


def test_a_level_shift_is_followed_within_two_days() -> None:
    before = usage(n=24 * 21, noise=0.1, level=1000.0)
    after = usage(n=24 * 2, noise=0.1, level=3000.0, start="2024-01-22", seed=3)
    shifted = pd.concat([before, after], ignore_index=True)
    mean = _mean_next_day(shifted)
    recent = float(after["y"].mean())
    assert 0.7 * recent < mean < 1.3 * recent


def test_a_level_that_moved_a_week_ago_is_not_moved_again() -> None:
    # The level tripled 7 days before the end. The last day against the median of all the
    # days before it (mostly the old level) once looked like a fresh 3x shift, and the week
    # already at the new level was rescaled by 3x again: the next day came out at 1.37x.
    before = usage(n=24 * 16, noise=0.1, level=1000.0, seed=1)
    after = usage(n=24 * 8, noise=0.1, level=3000.0, start="2024-01-17", seed=11)
    history, truth = pd.concat([before, after.iloc[:-24]], ignore_index=True), after.iloc[-24:]
    res = forecast(history, horizon=24, freq="1h", levels=(80,))
    assert "2024-01-23" not in res.notes["s"]
    assert 0.85 < res.frame["mean"].mean() / truth["y"].mean() < 1.15


def test_a_ten_times_burst_does_not_inflate_the_next_days() -> None:
    steady = usage(n=24 * 28, noise=0.1)
    burst = steady.copy()
    burst.loc[len(burst) - 30 : len(burst) - 29, "y"] *= 10  # a two-hour batch job
    base, hit = _mean_next_day(steady), _mean_next_day(burst)
    assert hit < 1.15 * base


def _swinging(days: int, seed: int = 0) -> pd.DataFrame:
    """Hourly traffic whose afternoons run at 6x its nights: the swing widens the local band
    that finds bursts in flat traffic too much for it to see a 10x batch job."""
    frame = usage(n=24 * days, noise=0.05, seed=seed, weekend=1.0)
    t = np.arange(len(frame))
    return frame.assign(y=1000.0 * (1 + 0.7 * np.sin(2 * np.pi * t / 24)) * frame["y"] / 1000)


def test_a_burst_over_three_hours_ago_is_not_carried_into_the_next_day() -> None:
    steady = _swinging(14)
    burst = steady.copy()
    end = len(burst) - 3
    burst.loc[end - 2 : end - 1, "y"] *= 10  # a batch job, over three hours ago
    res = forecast(burst, horizon=24, freq="1h", levels=(80,))
    base = _mean_next_day(steady)
    assert 0.9 * base < res.frame["mean"].mean() < 1.1 * base
    assert "2 bucket(s) of isolated burst(s) replaced" in res.notes["s"]
    # The history itself stays as recorded.
    assert np.allclose(burst["y"].iloc[end - 2 : end], 10 * steady["y"].iloc[end - 2 : end])


def test_a_burst_still_running_is_left_as_it_is() -> None:
    # It may be what is happening now: the forecast follows it, the notes name no burst.
    steady = _swinging(14)
    burst = steady.copy()
    burst.loc[len(burst) - 2 :, "y"] *= 10
    res = forecast(burst, horizon=24, freq="1h", levels=(80,))
    assert "isolated burst" not in res.notes["s"]
    assert res.frame["mean"].iloc[0] > 2 * _swinging(15)["y"].iloc[24 * 14]


def test_a_monday_after_a_quiet_weekend_is_not_a_burst() -> None:
    # Business traffic: weekends at a fifth of a weekday. The Monday that ends the history is
    # far above the same hours of the days before it (a weekend), but not above its own day.
    history = usage(n=24 * 15, noise=0.05, weekend=0.2)  # 2024-01-01 is a Monday
    res = forecast(history, horizon=24, freq="1h", levels=(80,))
    assert "burst" not in res.notes["s"]
    monday = history["y"].iloc[-24:].mean()
    assert res.frame["mean"].mean() > 0.7 * monday


def test_a_weekly_batch_job_is_the_series_own_not_a_burst() -> None:
    history = _swinging(21)
    sundays = history["ds"].dt.dayofweek.eq(6) & history["ds"].dt.hour.isin([2, 3])
    history.loc[sundays, "y"] *= 10
    res = forecast(history, horizon=24, freq="1h", levels=(80,))
    assert "isolated burst" not in res.notes["s"]


def test_an_ordinary_hour_among_recurring_gaps_is_not_a_burst() -> None:
    # The record is empty at 03:00 on most days (a collector's nightly restart): an ordinary
    # 03:00 is far above the median of those zeros, but it is no burst.
    history = _swinging(14)
    gaps = history["ds"].dt.hour.eq(3) & ~history["ds"].dt.day.eq(10)
    history.loc[gaps, "y"] = 0.0
    res = forecast(history, horizon=24, freq="1h", levels=(80,))
    assert "isolated burst" not in res.notes["s"]


def test_one_day_of_ten_minute_history_drops_the_season_and_says_so() -> None:
    day = usage(n=144, freq="10min", noise=0.1)
    res = forecast(day, horizon=12, freq="10min", levels=(80, 95))
    assert len(res.frame) == 12
    assert np.isfinite(res.frame[["mean", "lo_95", "hi_95"]].to_numpy()).all()
    note = res.notes["s"]
    # A day has no weekly season, nor two daily cycles to fit one from: its shape is read
    # once, and with no backtest that could see it, the forecast is the median of the day
    # repeated and the level models fitted without it.
    assert "no seasonal profile" in note
    assert "the last cycle of 144 repeated" in note
    assert "no backtest to choose among them" in note
    (why,) = res.backtest["why"]
    assert why == "a cycle seen, not two: no backtest can judge its shape"
    # The forecast starts from the level of the last hours, not the whole day's median.
    last_hours = float(day["y"].tail(24).median())
    assert abs(float(res.frame["mean"].iloc[0]) - last_hours) < 0.2 * last_hours


def _steady_days(days: int, level: float = 5000.0, seed: int = 0) -> pd.DataFrame:
    """``days`` of 10-minute buckets at a steady ``level`` with 5% noise."""
    rng = np.random.default_rng(seed)
    n = 144 * days
    ds = pd.date_range("2024-01-01", periods=n, freq="10min")
    return pd.DataFrame({"unique_id": "s", "ds": ds, "y": level * np.exp(rng.normal(0, 0.05, n))})


def _ending_empty(days: int, buckets: int) -> pd.DataFrame:
    """`_steady_days` whose last ``buckets`` are empty."""
    frame = _steady_days(days)
    frame.loc[len(frame) - buckets :, "y"] = 0.0
    return frame


def test_a_short_gap_in_the_record_does_not_pull_the_forecast_down() -> None:
    # Forty minutes of zeros an hour before the end, traffic on both sides: a gap in the
    # record (a collector restarting), too short to be an outage. Read as usage, it put the
    # 40-minute sums' last blocks at half the level, and the temporal step moved the next
    # two hours to 0.84x.
    day = _steady_days(1)
    day.loc[len(day) - 6 : len(day) - 3, "y"] = 0.0
    res = forecast(day, horizon=12, freq="10min", levels=(80,))
    assert 0.95 < res.frame["mean"].mean() / 5000.0 < 1.05
    # The history itself stays as recorded.
    assert (day["y"].iloc[-6:-2] == 0).all()


def test_an_empty_bucket_of_a_slow_count_is_usage_not_a_gap() -> None:
    # About three requests per bucket: an empty one is a quiet spell, not a missing record.
    rng = np.random.default_rng(1)
    ds = pd.date_range("2024-01-01", periods=144, freq="10min")
    y = np.maximum(rng.poisson(3.0, 144), 1).astype(float)
    y[-20] = 0.0
    res = forecast(pd.DataFrame({"unique_id": "s", "ds": ds, "y": y}), horizon=12, freq="10min")
    assert "gap" not in res.notes["s"]


def test_zeros_up_to_the_last_bucket_are_not_a_gap_between_busy_ones() -> None:
    res = forecast(_ending_empty(3, 4), horizon=12, freq="10min", levels=(80,))
    assert "between busy ones" not in res.notes["s"]


@pytest.mark.parametrize("hours", [1, 6, 20])
def test_an_outage_still_going_does_not_pull_the_next_day_down(hours: int) -> None:
    # The collector or the provider down for the last hours, or an hour not reported yet. In
    # log space a zero is far below any level: one empty last hour cut the next day's forecast
    # of steady traffic by up to 44%, six cut it to a third.
    history = usage(n=21 * 24, seed=3)
    clean = forecast(history, horizon=24, freq="1h", levels=(80,))
    hit = history.assign(
        y=np.where(np.arange(len(history)) >= len(history) - hours, 0.0, history["y"])
    )
    res = forecast(hit, horizon=24, freq="1h", levels=(80,))
    assert f"the last {hours} bucket(s) are empty amid steady traffic" in res.notes["s"]
    assert 0.85 < res.frame["mean"].sum() / clean.frame["mean"].sum() < 1.15
    assert (hit["y"].tail(hours) == 0).all()  # the history itself stays as recorded


def test_zeros_at_the_end_that_recur_every_night_are_the_series_own() -> None:
    # Three empty hours every night (a service that sleeps): the history ending in one of its
    # nights is no outage, and the night ahead stays empty.
    history = usage(n=21 * 24, seed=4)
    night = history["ds"].dt.hour < 3
    history.loc[night, "y"] = 0.0
    history = history.iloc[:-22]  # ends at 01:00, two hours into a night
    res = forecast(history, horizon=24, freq="1h", levels=(80,))
    assert "still going" not in res.notes["s"]
    assert res.frame["mean"].iloc[0] < 0.05 * res.frame["mean"].max()


def test_an_empty_last_bucket_like_many_before_it_is_usage() -> None:
    # Bursty traffic with an empty bucket now and then (Azure 2023's minutes): one more at the
    # end is the series' own, not an outage.
    history = usage(n=21 * 24, seed=5)
    rng = np.random.default_rng(5)
    empty = rng.random(len(history)) < 0.05
    empty[-1] = True
    history.loc[empty, "y"] = 0.0
    res = forecast(history, horizon=24, freq="1h", levels=(80,))
    assert "still going" not in res.notes["s"]


def test_an_empty_end_of_a_first_day_is_usage() -> None:
    # One day of 10-minute history whose last two hours are empty: with no earlier day to say
    # these hours carry traffic, it may be the series' own night (a ServeGen client quiet for
    # its last two hours stayed quiet), so the forecast starts from it instead of filling it.
    res = forecast(_ending_empty(1, 12), horizon=12, freq="10min", levels=(80,))
    assert "still going" not in res.notes["s"]
    assert res.frame["mean"].max() < 0.5 * 5000.0
    # Given the days before, with traffic at these hours, the same silence is an outage.
    three = forecast(_ending_empty(3, 12), horizon=12, freq="10min", levels=(80,))
    assert "still going" in three.notes["s"]


def test_zeros_at_the_same_time_every_day_are_the_series_own() -> None:
    # Thirty minutes of zeros at 16:40 every day (a nightly restart) recur: not a gap. One
    # more run, once, at 04:00 on the last day is.
    days = _steady_days(3)
    for d in range(3):
        days.loc[144 * d + 100 : 144 * d + 102, "y"] = 0.0
    days.loc[144 * 2 + 24 : 144 * 2 + 26, "y"] = 0.0
    res = forecast(days, horizon=12, freq="10min", levels=(80,))
    assert "3 empty bucket(s) between busy ones read as a gap" in res.notes["s"]


def test_exactly_one_day_of_hourly_history_carries_the_day_shape_on() -> None:
    # Twenty-four hours, six ahead: backtested without its season (the only backtest one day
    # allows) the forecast was a flat line, at 3x seasonal naive's error on M4 hourly. Read
    # once, the day's shape carries on with the level of now.
    rng = np.random.default_rng(5)
    t = np.arange(30)
    y = 1000.0 * (1.5 + np.sin(2 * np.pi * t / 24)) * np.exp(rng.normal(0, 0.03, len(t)))
    ds = pd.date_range("2024-01-01", periods=len(t), freq="1h")
    history = pd.DataFrame({"unique_id": "s", "ds": ds[:24], "y": y[:24]})
    res = forecast(history, horizon=6, freq="1h", levels=(80,))
    mean = res.frame["mean"].to_numpy()
    assert np.abs(mean / y[24:] - 1).max() < 0.15
    assert np.ptp(mean) > 0.5 * np.ptp(y[24:])
    assert "no backtest to choose among them" in res.notes["s"]


@pytest.mark.parametrize("days", [7, 8, 9])
def test_a_week_of_daily_totals_or_a_little_more_gets_bands_with_width(days: int) -> None:
    # A cycle and a bucket has one pair of buckets a cycle apart, too few for the band, and
    # the level's moves within the cycle a week ahead number one: centred, that one was no
    # spread at all, and the bands were points.
    rng = np.random.default_rng(days)
    ds = pd.date_range("2024-01-01", periods=days, freq="1D")
    y = 5e6 * np.exp(rng.normal(0, 0.2, days))
    res = forecast(pd.DataFrame({"unique_id": "s", "ds": ds, "y": y}), horizon=7, freq="1d")
    frame = res.frame
    assert (frame["hi_80"] - frame["lo_80"] > 0.05 * frame["mean"]).all()


def test_a_short_history_reads_its_residuals_beside_the_level() -> None:
    # One day of steady 10-minute traffic with four empty buckets (a collector dropping a
    # report now and then). Its band comes from the level's moves within the day: in log1p
    # a move to an empty bucket of a series of thousands is -8.5 and widened the band's tails
    # by as much; beside the level (log(y + level)) it is log(1/2).
    from tokenplan.forecast.fallbacks import fallback
    from tokenplan.forecast.preparation import to_series, validate
    from tokenplan.forecast.repairs import classify
    from tokenplan.frequency import make_cadence

    day = _steady_days(1)
    day.loc[[20, 55, 90, 125], "y"] = 0.0
    cadence = make_cadence("10min")
    (series,) = to_series(validate(day), cadence)
    classify(series, cadence, 12)
    _, errors, note, space = fallback(series, 12, cadence)
    assert "the last cycle of 144 repeated" in note
    assert 4000 < space < 6000  # the recent level
    assert errors.min() > -1.0
    # Two days, a day ahead: the profile's residuals, widened, in the same space (in log1p
    # the empty buckets' were -17).
    two = _steady_days(2)
    two.loc[[50, 200], "y"] = 0.0
    (series,) = to_series(validate(two), cadence)
    classify(series, cadence, 144)
    _, errors, note, space = fallback(series, 144, cadence)
    assert "median profile of the last 2 cycles" in note
    assert 4000 < space < 6000
    assert errors.min() > -3.0
