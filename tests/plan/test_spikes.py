"""Spikes and drops injected into a real trace are found and attributed; clean data is quiet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tokenplan.plan.spikes import SURGE, find_anomalies

TRACE = Path(__file__).resolve().parents[1] / "data" / "shared" / "servegen_language" / "hourly.csv"


@pytest.fixture(scope="module")
def requests() -> pd.DataFrame:
    raw = pd.read_csv(TRACE)
    return pd.DataFrame(
        {
            "unique_id": raw["model"],
            "ds": pd.to_datetime(raw["timestamp"]).dt.tz_localize(None),
            "y": raw["requests"].astype(float),
        }
    )


def _window(frame: pd.DataFrame, hours_before_end: int, length: int) -> pd.Series:
    start = frame["ds"].max() - pd.Timedelta(hours=hours_before_end)
    return (frame["ds"] >= start) & (frame["ds"] < start + pd.Timedelta(hours=length))


def test_clean_trace_raises_nothing(requests: pd.DataFrame) -> None:
    assert find_anomalies(requests, recent=24, metric="requests") == []


def test_injected_spike_is_found_sized_and_attributed(requests: pd.DataFrame) -> None:
    spiked = requests.copy()
    hit = _window(spiked, 10, 3) & (spiked["unique_id"] == "m-large")
    spiked.loc[hit, "y"] *= 12
    found = find_anomalies(spiked, recent=24, metric="requests", tz="Asia/Shanghai")
    assert [a.kind for a in found] == ["spike"]
    spike = found[0]
    assert spike.start == spiked.loc[hit, "ds"].min()
    assert spike.buckets == 3
    assert spike.culprit == "m-large"
    assert spike.culprit_share == pytest.approx(1.0, abs=0.05)
    # The size is against the same hour's usual total, in the zone given for the label.
    assert spike.peak_ratio > 2
    assert f"{spike.peak_ratio:,.1f}x the usual for {spike.phase_label}" in spike.message


def test_a_runaway_job_is_reported_in_its_first_bucket(requests: pd.DataFrame) -> None:
    # The 47x surge at 3 a.m.: one bucket is enough, not k in a row, while it happens.
    newest = requests["ds"] == requests["ds"].max()
    surged = requests.copy()
    surged.loc[newest & (surged["unique_id"] == "m-small"), "y"] *= 47
    found = find_anomalies(surged, recent=24, metric="requests")
    assert [a.kind for a in found] == ["spike"]
    assert found[0].buckets == 1
    assert found[0].ongoing
    assert found[0].severity == "critical"
    assert found[0].culprit == "m-small"
    # A bucket well above its band but under `SURGE` times the usual waits for a second one.
    mild = requests.copy()
    mild.loc[newest & (mild["unique_id"] == "m-small"), "y"] *= 3
    [above] = find_anomalies(mild, recent=24, metric="requests", surge=2.0)
    assert 2.0 < above.peak_ratio < SURGE
    assert find_anomalies(mild, recent=24, metric="requests") == []


def test_injected_drop_is_found_and_attributed(requests: pd.DataFrame) -> None:
    dropped = requests.copy()
    # m-small (most of the requests) goes down for 3 hours; m-large carries on.
    hit = _window(dropped, 5, 3) & (dropped["unique_id"] == "m-small")
    dropped.loc[hit, "y"] = 0.0
    found = find_anomalies(dropped, recent=24, metric="requests")
    assert [a.kind for a in found] == ["drop"]
    drop = found[0]
    assert drop.buckets == 3
    assert drop.culprit == "m-small"
    assert drop.actual < 0.3 * drop.expected
    assert "outage" in drop.message


def test_forecast_band_is_used_when_given(requests: pd.DataFrame) -> None:
    total = requests.groupby("ds", as_index=False)["y"].sum()
    recent = total.tail(24)
    # A band that every recent bucket is far above: all 24 buckets are one spike run.
    band = pd.DataFrame({"ds": recent["ds"], "lo_99": 0.0, "hi_99": 1.0})
    found = find_anomalies(requests, recent=24, band=band, min_ratio=0.0)
    assert len(found) == 1
    assert found[0].buckets == 24
