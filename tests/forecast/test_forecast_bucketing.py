"""All series put on their grids at once (`preparation._bucketed`) exactly as one at a time."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenplan.forecast.preparation import _GRID_ORIGIN, _bucketed

STEPS = [pd.Timedelta(minutes=10), pd.Timedelta(hours=1), pd.Timedelta(days=1)]


def _one_at_a_time(df: pd.DataFrame, step: pd.Timedelta) -> list[tuple[str, int, list, list]]:
    # The per-series way it was done before (snap to the phase most rows share, then sum).
    width = step.value
    out = []
    for uid, part in df.groupby("unique_id", sort=True):
        ds = part["ds"]
        offsets = (ds - _GRID_ORIGIN).to_numpy().astype("timedelta64[ns]").astype(np.int64) % width
        phases, counts = np.unique(offsets, return_counts=True)
        phase = int(phases[np.argmax(counts)]) if 2 * counts.max() >= len(ds) else 0
        shift = pd.to_timedelta((offsets - phase) % width, unit="ns")
        snapped = pd.Series(ds.to_numpy() - shift.to_numpy(), index=ds.index)
        grouped = pd.Series(part["y"].to_numpy(), index=snapped).groupby(level=0).sum(min_count=1)
        starts = grouped.index.to_numpy().astype("datetime64[ns]").astype(np.int64)
        out.append((str(uid), len(part), starts.tolist(), grouped.to_numpy().tolist()))
    return out


@settings(max_examples=80, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.integers(min_value=0, max_value=60 * 24 * 20),  # minutes from the start
            st.one_of(st.none(), st.floats(min_value=0, max_value=1e9)),
        ),
        min_size=1,
        max_size=60,
    ),
    step=st.sampled_from(STEPS),
    phase=st.integers(min_value=0, max_value=59),
)
def test_bucketing_all_series_at_once_matches_one_at_a_time(
    rows: list[tuple[str, int, float | None]], step: pd.Timedelta, phase: int
) -> None:
    start = pd.Timestamp("2024-03-01 16:00") + pd.Timedelta(minutes=phase)
    df = pd.DataFrame(
        {
            "unique_id": [r[0] for r in rows],
            "ds": [start + pd.Timedelta(minutes=r[1]) for r in rows],
            "y": [np.nan if r[2] is None else r[2] for r in rows],
        }
    )
    got = [(uid, n, starts.tolist(), sums.tolist()) for uid, n, starts, sums in _bucketed(df, step)]
    want = _one_at_a_time(df, step)
    assert [g[:3] for g in got] == [w[:3] for w in want]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.array(g[3]), np.array(w[3]))  # NaN where all were


def test_days_from_16z_keep_their_phase_and_duplicates_are_summed() -> None:
    ds = pd.to_datetime(["2024-01-01 16:00", "2024-01-02 16:00", "2024-01-02 16:00"])
    df = pd.DataFrame({"unique_id": "x", "ds": ds, "y": [1.0, 2.0, 3.0]})
    [(uid, n, starts, sums)] = list(_bucketed(df, pd.Timedelta(days=1)))
    assert (uid, n) == ("x", 3)
    assert list(pd.to_datetime(starts)) == list(ds[:2])
    assert sums.tolist() == [1.0, 5.0]
