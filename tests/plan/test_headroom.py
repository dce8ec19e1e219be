"""Rate limits, PTU arithmetic and headroom numbers computed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tokenplan.errors import ConfigError
from tokenplan.plan.headroom import (
    HIT_PROBABILITY,
    PeakRatio,
    learn_peak_ratio,
    peak_minutes,
    plan_headroom,
    size_ptu,
)
from tokenplan.plan.limits import LimitsConfig, RateLimit, load_limits, ptu_units

SHARED = Path(__file__).resolve().parents[1] / "data" / "shared"


@pytest.mark.parametrize(
    ("inp", "out", "per", "ratio", "minimum", "inc", "expected"),
    [
        # (10,000 + 1,000 x 4) / 2,500 = 5.6 → 6 → below the minimum → 15.
        (10_000, 1_000, 2_500, 4, 15, 5, 15),
        # (60,000 + 2,000 x 4) / 2,500 = 27.2 → 28 → 15 + ceil(13/5) x 5 = 30.
        (60_000, 2_000, 2_500, 4, 15, 5, 30),
        # Exactly on an increment: (75,000 + 0) / 2,500 = 30 → 30.
        (75_000, 0, 2_500, 4, 15, 5, 30),
        # Regional gpt-4o: minimum 50, increment 50; 130 → 150.
        (300_000, 6_250, 2_500, 4, 50, 50, 150),
        # gpt-5 weighs output 8x: (4,750 x 10 + 1,000 x 8) / 4,750 = 11.7 → 12 → 15.
        (47_500, 1_000, 4_750, 8, 15, 5, 15),
    ],
)
def test_ptu_units(
    inp: float, out: float, per: int, ratio: float, minimum: int, inc: int, expected: int
) -> None:
    assert (
        ptu_units(
            inp, out, input_tpm_per_ptu=per, output_ratio=ratio, minimum=minimum, increment=inc
        )
        == expected
    )


def test_shipped_example_loads_and_says_cache_reads_do_not_count() -> None:
    config = load_limits()
    sonnet = config.tiers("anthropic", "claude-sonnet-4.x")
    assert [t.tier for t in sonnet] == ["tier-1", "tier-2", "tier-3", "tier-4"]
    assert sonnet[0].matches("claude-sonnet-4-5-20250929")
    # A relay's vendor/model name counts against that vendor's limits, and only that vendor's.
    assert sonnet[0].matches("anthropic/claude-sonnet-4-5-20250929")
    assert not sonnet[0].matches("bedrock/claude-sonnet-4-5-20250929")
    assert not sonnet[0].matches("anthropic/")
    assert config.unlimited(["openai/gpt-4o", "azure/gpt-4o"]) == ["azure/gpt-4o"]
    assert not sonnet[0].cache_reads_count
    assert config.current_tier["anthropic"] == "tier-2"
    assert {p.model for p in config.ptu} >= {"gpt-4o", "gpt-4.1"}


def test_bad_limits_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "limits.toml"
    bad.write_text('[[rate_limit]]\nprovider = "x"\nfamily = "y"\ntier = "t"\nrpm = -5\n')
    with pytest.raises(ConfigError, match="rpm"):
        load_limits(bad)


def test_peak_ratio_learned_from_real_minutes() -> None:
    raw = pd.read_csv(SHARED / "azure_llm_2023" / "minutely.csv")
    frame = pd.DataFrame(
        {"ds": pd.to_datetime(raw["timestamp"]).dt.tz_localize(None), "y": raw["requests"]}
    )
    ratio = learn_peak_ratio(frame)
    assert ratio.learned
    # Only the 18:00 hour has 30+ minutes (45); its busiest minute over its mean minute.
    hour = frame[frame["ds"].dt.hour == 18].groupby("ds")["y"].sum()
    assert ratio.samples[0] == pytest.approx(hour.max() / hour.mean())
    # Fewer than 24 hours seen: the conservative default stays in the mix, and says so.
    assert max(ratio.samples) == 4.0
    assert "default" in ratio.source
    assert not learn_peak_ratio(None).learned


def _flat(mean_per_hour: float, hours: int = 48, model: str = "claude-sonnet-4-5") -> pd.DataFrame:
    ds = pd.date_range("2025-01-01", periods=hours, freq="h")
    # hi = mean: no forecast uncertainty, so the numbers below are exact.
    return pd.DataFrame(
        {
            "unique_id": model,
            "ds": ds,
            "mean": mean_per_hour,
            "hi_80": mean_per_hour,
            "hi_95": mean_per_hour,
        }
    )


def test_headroom_numbers_by_hand() -> None:
    limit = RateLimit(
        provider="anthropic",
        family="sonnet",
        models=("claude-sonnet-4*",),
        tier="t1",
        rank=1,
        rpm=1_000,
        itpm=100_000,
    )
    big = RateLimit(
        provider="anthropic",
        family="sonnet",
        models=("claude-sonnet-4*",),
        tier="t2",
        rank=2,
        rpm=5_000,
        itpm=500_000,
    )
    config = LimitsConfig((limit, big), current_tier={"anthropic": "t1"})
    ratio = PeakRatio((2.0,), "test")
    forecasts = {
        # 30,000 requests/h = 500/min; busiest minute 2x → 1,000/min: exactly at the RPM limit.
        "requests": _flat(30_000),
        # 3.6M input tokens/h = 60,000/min, 25% cached and not counted → 45,000; 2x → 90,000.
        "input_tokens": _flat(3_600_000),
    }
    rows = plan_headroom(
        forecasts, config, {"requests": ratio, "input_tokens": ratio}, cache_read_share=0.25
    )
    by_kind = {r.kind: r for r in rows}
    assert set(by_kind) == {"rpm", "itpm"}
    assert all(r.tier == "t1" for r in rows)
    assert by_kind["rpm"].p99_peak == pytest.approx(1_000)
    assert by_kind["rpm"].headroom == pytest.approx(0)
    assert by_kind["itpm"].p99_peak == pytest.approx(90_000)
    assert by_kind["itpm"].headroom_share == pytest.approx(0.1)
    assert by_kind["itpm"].first_risk_at is None
    assert by_kind["rpm"].holding_tier == "t1"
    # 10% more traffic: the RPM limit is hit from the first hour, and t2 is needed.
    forecasts["requests"] = _flat(33_000)
    rows = plan_headroom(
        forecasts, config, {"requests": ratio, "input_tokens": ratio}, cache_read_share=0.25
    )
    rpm = next(r for r in rows if r.kind == "rpm")
    assert rpm.p_hit_max == 1.0
    assert rpm.first_risk_at == pd.Timestamp("2025-01-01 00:00")
    assert rpm.holding_tier == "t2"


def test_first_risk_time_follows_growth_and_uncertainty() -> None:
    f = _flat(30_000, hours=24)
    f["mean"] = [30_000 + 1_000 * i for i in range(24)]
    f["hi_95"] = f["mean"] * 1.3
    f["hi_80"] = f["mean"] * 1.15
    out = peak_minutes(f, PeakRatio((2.0,), "test"), limit=1_500)
    # Mean busiest minute crosses 1,500 when mean = 45,000/h (hour 15); with uncertainty the
    # 5% chance comes earlier.
    first = int((out["p_hit"] > 0.05).to_numpy().argmax())
    assert 5 < first < 15
    assert out["p_hit"].is_monotonic_increasing


def test_a_row_that_warns_says_from_when() -> None:
    # No hour alone has a 5% chance of the busiest minute over the limit, but a week of them
    # has: the row warns, and its first risk is when the running chance passes 5%.
    limit = RateLimit(
        provider="anthropic", family="sonnet", models=("claude-*",), tier="t1", rank=1, rpm=1_210
    )
    week = _flat(30_000, hours=168)
    week["hi_80"], week["hi_95"] = 33_000.0, 36_000.0
    ratio = PeakRatio((2.0,), "test")
    [row] = plan_headroom({"requests": week}, LimitsConfig((limit,)), {"requests": ratio})
    hourly = peak_minutes(week, ratio, limit=1_210)["p_hit"]
    assert hourly.max() < HIT_PROBABILITY
    assert row.p_hit_max > HIT_PROBABILITY
    assert row.severity in ("warning", "critical")
    assert row.first_risk_at is not None
    running = 1 - (1 - hourly).cumprod()
    first = week["ds"].iloc[int((running > HIT_PROBABILITY).to_numpy().argmax())]
    assert row.first_risk_at == first
    assert running.iloc[-1] == pytest.approx(row.p_hit_max, abs=1e-9)


def test_ptu_sizing_from_forecast() -> None:
    config = load_limits()
    ratio = PeakRatio((1.5,), "test")
    # gpt-4o: 1.2M input/h = 20,000/min x 1.5 = 30,000; 120k output/h = 2,000 x 1.5 = 3,000.
    forecasts = {
        "input_tokens": _flat(1_200_000, model="gpt-4o"),
        "output_tokens": _flat(120_000, model="gpt-4o"),
    }
    sized = {
        p.model: p
        for p in size_ptu(forecasts, config, {"input_tokens": ratio, "output_tokens": ratio})
    }
    # (30,000 + 3,000 x 4) / 2,500 = 16.8 → 17 → 15 + 5 = 20.
    assert sized["gpt-4o"].units == 20
    assert "gpt-4o-mini" not in sized


def test_window_p99_and_p_hit_describe_the_same_event() -> None:
    from tokenplan.plan.headroom import PeakRatio, window_peak

    ds = pd.date_range("2025-01-06", periods=168, freq="1h")
    mean = 6000 + 3000 * np.sin(np.arange(168) * 2 * np.pi / 24)
    frame = pd.DataFrame({"unique_id": "m", "ds": ds, "mean": mean, "hi_80": mean * 1.3})
    ratio = PeakRatio((1.2, 1.5, 2.0, 3.0), "test")
    p99, _ = window_peak(frame, ratio)
    # A limit just under the window's p99 is hit with more than 1% chance, just over it less.
    _, p_under = window_peak(frame, ratio, limit=p99 * 0.98)
    _, p_over = window_peak(frame, ratio, limit=p99 * 1.02)
    assert p_under is not None
    assert p_over is not None
    assert p_under > 0.01 > p_over
    # Far above the p99, P(hit) is not "7.8%": it is ~0.
    _, far = window_peak(frame, ratio, limit=p99 * 2.69)
    assert far == pytest.approx(0.0, abs=1e-3)


def test_limits_name_their_source_and_models_without_one(tmp_path: Path) -> None:
    from tokenplan.plan.limits import resolve_limits

    shipped = resolve_limits(None, env={})
    assert "shipped example" in shipped.source
    assert shipped.unlimited(["no-such-model-xyz"]) == ["no-such-model-xyz"]
    own = tmp_path / "limits.toml"
    own.write_text("")
    assert resolve_limits(None, env={"TOKENPLAN_LIMITS": str(own)}).source == str(own)
    assert resolve_limits(own, env={}).rate_limits == ()
    # A variable set long ago that names a file gone since: the error says where it came from.
    with pytest.raises(ConfigError, match=r"does not exist \(the path is TOKENPLAN_LIMITS's\)"):
        resolve_limits(None, env={"TOKENPLAN_LIMITS": str(tmp_path / "gone.toml")})


def _ten_minute_hours(hours: int) -> pd.DataFrame:
    # Each hour: five quiet 10-minute buckets of 10 and one busy one of 40 (mean 15, peak 40).
    ds = pd.date_range("2025-01-06", periods=hours * 6, freq="10min")
    y = np.where(np.arange(len(ds)) % 6 == 3, 40.0, 10.0)
    return pd.DataFrame({"ds": ds, "y": y})


def test_ten_minute_data_measures_the_busiest_ten_minutes_and_infers_the_minute() -> None:
    ratio = learn_peak_ratio(_ten_minute_hours(48), bucket_s=600)
    inside = 4.0 ** (np.log(10) / np.log(60))  # the 4x hour-to-minute default, scaled to 10 min
    assert inside == pytest.approx(2.18, abs=0.01)
    assert len(ratio.samples) == 48
    assert ratio.samples == pytest.approx([40 / 15 * inside] * 48)
    assert ratio.learned
    assert ratio.source.startswith("inferred from 10-minute data")
    assert "learned from 48 hour(s)" in ratio.source
    # Told minutes but given 10-minute buckets: read at their own width, not as minutes.
    assert learn_peak_ratio(_ten_minute_hours(48)).samples == ratio.samples


def test_hourly_data_says_the_busiest_minute_is_inferred_and_how() -> None:
    hourly = pd.DataFrame({"ds": pd.date_range("2025-01-06", periods=72, freq="h"), "y": 60.0})
    for ratio in (learn_peak_ratio(None, bucket_s=3600), learn_peak_ratio(hourly)):
        assert ratio.samples == (4.0,)
        assert not ratio.learned
        assert ratio.source.startswith("inferred from hourly data")
        assert "4x the hour's mean minute" in ratio.source
        assert "import minute-level usage" in ratio.source


def test_the_holding_tier_holds_the_same_p99_its_rows_show() -> None:
    # Two days of uncertain hours: each hour's own p99 is under 1,150 RPM, but the p99 of the
    # busiest minute over all 48 hours is above it. t1 must not be said to hold that p99.
    f = _flat(30_000)
    f["hi_80"] = f["mean"] * 1.1
    ratio = PeakRatio((2.0,), "test")
    per_hour = float(peak_minutes(f, ratio)["p99_peak"].max())
    tiers = tuple(
        RateLimit(
            provider="anthropic",
            family="sonnet",
            models=("claude-sonnet-4*",),
            tier=name,
            rank=rank,
            rpm=rpm,
        )
        for name, rank, rpm in (("t1", 1, round(per_hour) + 1), ("t2", 2, 2_000))
    )
    rows = plan_headroom({"requests": f}, LimitsConfig(tiers), {"requests": ratio})
    by_tier = {r.tier: r for r in rows}
    assert by_tier["t1"].p99_peak > by_tier["t1"].limit > per_hour
    assert by_tier["t1"].headroom < 0
    assert by_tier["t1"].p_hit_max > 0.01
    assert {r.holding_tier for r in rows} == {"t2"}


def test_check_lists_every_model_and_names_the_limits_source() -> None:
    from tokenplan.plan.headroom import check_headroom

    limit = RateLimit(
        provider="anthropic",
        family="sonnet",
        models=("claude-sonnet-4*",),
        tier="t1",
        rank=1,
        rpm=10_000,
    )
    forecasts = {
        "requests": pd.concat([_flat(600), _flat(600, model="gpt-4o"), _flat(6, model="o3")])
    }
    ratio = PeakRatio((2.0,), "learned from 30 hour(s) of minute data")
    check = check_headroom(
        forecasts, LimitsConfig((limit,), source="team.toml"), {"requests": ratio}
    )
    assert check.models == ("claude-sonnet-4-5", "gpt-4o", "o3")
    assert check.unlimited == ("gpt-4o", "o3")
    assert check.notes[0] == "limits from team.toml"
    assert "requests: busiest minute learned from 30 hour(s) of minute data" in check.notes
    assert "no rate limit configured in team.toml for gpt-4o, o3; add one to check it" in (
        check.notes
    )
    assert [r.severity for r in check.rows] == ["ok"]
