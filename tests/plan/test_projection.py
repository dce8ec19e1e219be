"""`project` and `tokenplan project`: the JSON contract, invariants and calibration on real data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tokenplan.cli import main
from tokenplan.errors import InvalidInput
from tokenplan.plan.periods import period_bounds
from tokenplan.plan.projection import project

SHARED = Path(__file__).resolve().parents[1] / "data" / "shared"
KEYS = [
    "period_start",
    "period_end",
    "so_far",
    "projected",
    "lo_80",
    "hi_80",
    "lo_95",
    "hi_95",
    "p_over_limit",
    "breach_at",
]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOKENPLAN_DB": str(cwd / "unused.duckdb")}
    return subprocess.run(
        [sys.executable, "-m", "tokenplan", "project", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


def _load(name: str, metric: str = "requests") -> pd.DataFrame:
    raw = pd.read_csv(SHARED / name / "hourly.csv")
    frame = raw.groupby("timestamp", as_index=False)[metric].sum(min_count=1)
    return pd.DataFrame(
        {
            "ds": pd.to_datetime(frame["timestamp"]).dt.tz_localize(None),
            "y": frame[metric].astype(float),
        }
    )


def test_cli_json_contract(tmp_path: Path) -> None:
    trace = SHARED / "azure_llm_2024_conv_hourly" / "hourly.csv"
    out = _cli(
        "--input",
        str(trace),
        "--metric",
        "requests",
        "--period",
        "day",
        "--limit",
        "4500000",
        "--as-of",
        "2024-05-15T11:00:00Z",
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert list(result) == KEYS
    assert result["period_start"] == "2024-05-15T00:00:00Z"
    assert result["period_end"] == "2024-05-16T00:00:00Z"
    raw = pd.read_csv(trace)
    # Buckets 00:00 .. 11:00 inclusive are "up to --as-of".
    assert result["so_far"] == int(raw["requests"][72:84].sum())
    assert (
        result["lo_95"]
        <= result["lo_80"]
        <= result["projected"]
        <= result["hi_80"]
        <= result["hi_95"]
    )
    assert 0 <= result["p_over_limit"] <= 1
    assert result["so_far"] <= result["lo_95"]
    # The actual day was 4.45M: the 95% range should hold it.
    actual = raw["requests"][72:96].sum()
    assert result["lo_95"] <= actual <= result["hi_95"]


def test_cli_default_as_of_and_tz(tmp_path: Path) -> None:
    trace = SHARED / "servegen_language" / "hourly.csv"
    out = _cli(
        "--input",
        str(trace),
        "--metric",
        "total_tokens",
        "--period",
        "week",
        "--limit",
        "1e12",
        "--tz",
        "Asia/Shanghai",
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    # The last bucket (15:00Z on 16 Jan = 23:00 on Sunday in Shanghai) ends the week: no rest.
    assert result["period_start"] == "2000-01-09T16:00:00Z"
    assert result["projected"] == result["so_far"] == result["hi_95"]
    assert result["p_over_limit"] == 0
    assert result["breach_at"] is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--period", "fortnight"], "period"),
        (["--tz", "Nowhere/Land"], "time zone"),
        (["--as-of", "soon"], "as-of"),
        (["--metric", "joules"], "metric"),
        (["--limit", "lots"], "limit"),
        (["--input", "missing.csv"], "missing.csv"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    needle: str,
) -> None:
    base = {
        "--input": str(SHARED / "azure_llm_2024_conv_hourly" / "hourly.csv"),
        "--metric": "requests",
        "--period": "day",
        "--limit": "100",
        "--format": "json",
    }
    for key, value in zip(args[::2], args[1::2], strict=True):
        base[key] = value
    # In-process (the subprocess path is covered above): main() is what the script runs.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["project", *[x for kv in base.items() for x in kv]])
    out = capsys.readouterr()
    assert exit_info.value.code == 2
    assert out.out == ""
    assert needle in out.err


def test_as_of_before_data_and_unknown_metric_values() -> None:
    frame = _load("azure_llm_2024_conv_hourly")
    with pytest.raises(InvalidInput, match="before the first"):
        project(frame, period="day", as_of="2020-01-01T00:00Z")
    with pytest.raises(InvalidInput, match="no known values"):
        project(frame.assign(y=np.nan), period="day")


def test_breach_time_in_the_data_and_on_the_mean_path() -> None:
    ds = pd.date_range("2025-01-01", periods=24 * 10 + 6, freq="h")
    frame = pd.DataFrame({"ds": ds, "y": 10.0})
    # 60 spent by 06:00 on day 11; 45 was crossed half-way through the 04:00 bucket.
    done = project(frame, period="day", limit=45)
    assert done.p_over_limit == 1.0
    assert done.breach_at == pd.Timestamp("2025-01-11 04:30", tz="UTC")
    # Flat 10/h: 240 by midnight; a limit of 200 is expected at 20:00.
    ahead = project(frame, period="day", limit=200)
    assert ahead.projected == pytest.approx(240, rel=0.01)
    assert ahead.breach_at == pd.Timestamp("2025-01-11 20:00", tz="UTC")
    assert ahead.p_over_limit is not None
    assert ahead.p_over_limit > 0.95


def _calibration_cases(
    name: str, tz: str, period: str, fractions: list[float]
) -> tuple[list[float], list[float], list[tuple[float, float]], list[float], list[float]]:
    frame = _load(name)
    step = pd.Timedelta(hours=1)
    first, last = frame["ds"].min(), frame["ds"].max() + step
    cursor = period_bounds(first, period, tz)[0]
    errors, line_errors, intervals, actuals, briers = [], [], [], [], []
    while True:
        start, end = (t.tz_localize(None) for t in period_bounds(cursor, period, tz))
        cursor = end.tz_localize("UTC")
        if end > last:
            break
        inside = frame[(frame.ds >= start) & (frame.ds < end)]["y"]
        if start < first or inside.isna().any():
            continue
        actual = float(inside.sum())
        n = int((end - start) / step)
        for frac in fractions:
            k = max(int(n * frac), 1)
            as_of = start + step * (k - 1)
            # Only the data up to the origin is handed in: nothing later can leak.
            p = project(frame[frame.ds <= as_of], period=period, as_of=as_of, tz=tz)
            errors.append(abs(p.projected - actual))
            line_errors.append(abs(p.so_far / k * n - actual))
            intervals.append((p.lo_80, p.hi_80))
            actuals.append(actual)
            for limit in (actual * 0.9, actual * 1.1):
                briers.append((p.p_over(limit) - float(actual > limit)) ** 2)
    return errors, line_errors, intervals, actuals, briers


def test_calibration_on_a_real_trace() -> None:
    """On ServeGen's days (bench/project_calibration.py scores every trace): the 80% range
    holds most actual totals, the error is well under the straight line's and the Brier score
    beats a coin."""
    errors, line, intervals, actuals, brier = _calibration_cases(
        "servegen_language", "Asia/Shanghai", "day", [0.25, 0.75]
    )
    inside = [lo <= a <= hi for (lo, hi), a in zip(intervals, actuals, strict=True)]
    assert len(errors) >= 24
    assert 0.6 <= np.mean(inside) <= 0.97
    assert np.sum(errors) < 0.8 * np.sum(line)
    assert np.mean(brier) < 0.2


def test_p_overrun_agrees_with_the_projected_range(shared_data: Path) -> None:
    from tokenplan.plan.projection import project as run

    raw = pd.read_csv(shared_data / "servegen_language" / "hourly.csv")
    f = raw.groupby("timestamp", as_index=False)["requests"].sum()
    ds = pd.to_datetime(f["timestamp"], utc=True).dt.tz_localize(None)
    frame = pd.DataFrame({"ds": ds, "y": f["requests"].astype(float)})
    for i in range(30, len(frame), 23):
        for period in ("day", "week"):
            p = run(frame, period=period, as_of=frame["ds"].iloc[i])
            assert p.p_over(p.projected * 0.99) > 0.5
            assert p.p_over(p.projected * 1.01) < 0.5
            assert p.p_over(p.lo_80) == pytest.approx(0.9, abs=0.03)
            assert p.p_over(p.so_far * 0.999) == 1.0  # already spent


def _steady(days: int, level: float = 10.0, noise: float = 0.03, seed: int = 0) -> pd.DataFrame:
    """Hourly usage with a daily shape (quiet nights) and a little noise."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2025-01-01", periods=24 * days, freq="h")
    shape = 1 + 0.5 * np.sin(2 * np.pi * (ds.hour.to_numpy() - 8) / 24)
    return pd.DataFrame({"ds": ds, "y": level * shape * rng.lognormal(0, noise, len(ds))})


def test_a_burst_moves_the_month_by_its_cost_not_a_multiple() -> None:
    # Two quiet months, then ten days of March; a 3-hour burst on 3 March costs 20x an hour.
    frame = _steady(31 + 28 + 10)
    burst = frame["ds"].between("2025-03-03 10:00", "2025-03-03 12:00")
    cost = float(frame.loc[burst, "y"].sum()) * 19
    bursty = frame.assign(y=frame["y"].where(~burst, frame["y"] * 20))
    calm = project(frame, period="month")
    hit = project(bursty, period="month")
    assert hit.so_far - calm.so_far == pytest.approx(cost)  # spent so far is exact
    # The straight line would add the burst 3.1 times (31 days / 10 elapsed); ours about once.
    assert hit.projected - calm.projected == pytest.approx(cost, rel=0.15)
    assert hit.weights == pytest.approx(calm.weights, abs=0.05)


def test_p_overrun_is_above_one_half_exactly_when_the_median_is_over_the_limit() -> None:
    frame = _steady(40, noise=0.3, seed=3)
    for as_of in ("2025-02-03 05:00", "2025-02-06 17:00"):
        for period in ("day", "week", "month"):
            p = project(frame, period=period, as_of=as_of)
            assert p.lo_95 < p.projected < p.hi_95  # a real range, not a point
            for k in (0.9, 0.99, 0.999, 1.001, 1.01, 1.1):
                chance = p.p_over(p.projected * k)
                assert (chance > 0.5) == (k < 1), (period, as_of, k, chance)
            assert p.p_over(p.projected) == pytest.approx(0.5, abs=1e-6)
            assert p.p_over(p.lo_80) == pytest.approx(0.9, abs=1e-6)
            assert p.p_over(p.hi_95) == pytest.approx(0.025, abs=1e-6)
    # The JSON field is the same reading of the same distribution.
    limited = project(frame, period="month", as_of=as_of, limit=p.hi_80)
    assert limited.p_over_limit == pytest.approx(p.p_over(p.hi_80))
    assert limited.projected == p.projected


def test_p_overrun_is_one_once_spent_and_the_breach_is_dated_from_the_data() -> None:
    frame = _steady(20)
    p = project(frame, period="month", as_of="2025-01-20 11:00")
    limit = p.so_far * 0.5
    spent = project(frame, period="month", as_of="2025-01-20 11:00", limit=limit)
    assert spent.p_over_limit == 1.0
    assert spent.breach_at is not None
    # The running total from 1 January passed half of what is spent by the 20th on the 10th.
    assert spent.breach_at.strftime("%Y-%m-%d") == "2025-01-10"
    assert spent.crossed_at(limit) == spent.breach_at
    assert spent.crossed_at(p.so_far * 2) is None


def test_a_steady_series_gets_a_narrow_range_around_the_straight_line() -> None:
    frame = _steady(60, noise=0.02)
    for as_of in ("2025-02-26 23:00", "2025-02-20 23:00"):
        p = project(frame, period="week", as_of=as_of)
        elapsed = pd.Timestamp(as_of) + pd.Timedelta(hours=1) - p.period_start.tz_localize(None)
        line = p.so_far / (elapsed / pd.Timedelta(days=7))
        assert p.lo_80 <= line <= p.hi_80
        assert (p.hi_80 - p.lo_80) / p.projected < 0.1


def test_ranges_are_ordered_on_a_real_trace(shared_data: Path) -> None:
    frame = _load("azure_llm_2024_conv_hourly")
    for i in range(5, len(frame), 17):
        for period in ("day", "week"):
            p = project(frame, period=period, as_of=frame["ds"].iloc[i])
            assert p.so_far <= p.lo_95 <= p.lo_80 <= p.projected <= p.hi_80 <= p.hi_95
            assert sum(p.weights.values()) == pytest.approx(1.0)


def test_a_forecast_covering_the_rest_is_used_and_one_that_does_not_is_not() -> None:
    from tokenplan.forecast import forecast

    frame = _steady(21)
    as_of = pd.Timestamp("2025-01-15 11:00")  # a Wednesday
    seen = frame[frame["ds"] <= as_of].assign(unique_id="total")
    fc = forecast(seen, horizon=48, freq="1h", local_models=False, lightgbm=False)
    used = project(frame, period="day", as_of=as_of, forecast=fc)
    assert "the plan's" in used.method
    assert used.candidates["engine"] == pytest.approx(float(fc.frame["mean"][:12].sum()))
    # A forecast made an hour earlier does not start right after as-of: the engine runs here.
    early = forecast(seen.iloc[:-1], horizon=48, freq="1h", local_models=False, lightgbm=False)
    assert "the plan's" not in project(frame, period="day", as_of=as_of, forecast=early).method
    # Nor does one too short for the rest of the week.
    assert "the plan's" not in project(frame, period="week", as_of=as_of, forecast=fc).method


def test_a_bias_seen_on_few_past_periods_is_mostly_discounted() -> None:
    """Past periods that all came in 20% above the forecast move today's projection up by a
    share that grows with how many there are: a ramp seen on two days is not a trend."""
    from tokenplan.plan.stacking import Past, stack

    def shift(periods: int) -> float:
        past = [Past({"a": 100.0, "b": 100.0}, 120.0, 1.0) for _ in range(periods)]
        fit = stack({"a": 100.0, "b": 100.0}, past, eps=1.0, prior_sd=0.1)
        return fit.remaining.median / 100.0 - 1.0

    assert shift(0) == pytest.approx(0.0, abs=1e-9)
    assert 0.0 < shift(2) < 0.05 < shift(8) < 0.2


def test_a_series_that_stopped_is_projected_at_its_spend() -> None:
    # Steady for seven weeks, then nothing for four days: a model retired mid-month. The past
    # periods, all before the stop, weighed the straight line and the usual share of the month
    # so far: 4,789 projected on 4,320 spent, the 80% range (4,680-4,922) above the spend.
    frame = _steady(53)
    frame.loc[frame["ds"] >= "2025-02-19", "y"] = 0.0
    p = project(frame, period="month", as_of="2025-02-22 23:00", limit=1e9)
    assert p.projected == p.lo_95 == p.hi_95 == p.so_far > 0
    assert p.p_over_limit == 0.0
    assert p.method.startswith("stopped, no usage since 2025-02-19 00:00")
    # Still over the limit once the spend is.
    assert project(frame, period="month", as_of="2025-02-22 23:00", limit=1.0).p_over_limit == 1.0


def test_an_outage_still_going_does_not_pull_the_month_down() -> None:
    # Spend of about $2 an hour, the last six hours empty: the collector down. Counted as spent
    # at nothing, they took the last day's level, and the month's projected rest with it, 8%
    # below the clean history's.
    frame = _steady(31 + 10, level=2.0)
    clean = project(frame, period="month", as_of="2025-02-10 23:00", limit=1e9)
    frame.loc[frame["ds"] >= "2025-02-10 18:00", "y"] = 0.0
    hit = project(frame, period="month", as_of="2025-02-10 23:00", limit=1e9)
    assert hit.so_far < clean.so_far  # what was spent stays as it was
    rest_clean, rest_hit = clean.projected - clean.so_far, hit.projected - hit.so_far
    assert 0.97 < rest_hit / rest_clean < 1.03
