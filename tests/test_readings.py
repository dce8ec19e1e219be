"""`readings.records`: every cell as `plain` makes it, whatever the column's dtype."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenplan.readings import plain, records


def _cell_by_cell(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {col: plain(val) for col, val in zip(frame.columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**60), max_value=2**60).map(float),
    st.sampled_from([0.0, -0.0, 2.0**53, 2.0**53 + 2, 1e300, 0.1]),
)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=12).flatmap(
        lambda n: st.tuples(
            st.lists(floats, min_size=n, max_size=n),
            st.lists(st.integers(min_value=-(2**62), max_value=2**62), min_size=n, max_size=n),
            st.lists(st.booleans(), min_size=n, max_size=n),
            st.lists(
                st.integers(min_value=0, max_value=10**9).map(
                    lambda s: pd.Timestamp("2000-01-01") + pd.Timedelta(seconds=s)
                ),
                min_size=n,
                max_size=n,
            ),
            st.lists(
                st.one_of(st.none(), st.text(max_size=5), st.decimals(allow_nan=False, places=4)),
                min_size=n,
                max_size=n,
            ),
            st.booleans(),
        )
    )
)
def test_records_match_plain_cell_by_cell(columns: tuple[Any, ...]) -> None:
    f, i, b, ts, obj, with_nat = columns
    frame = pd.DataFrame(
        {
            "f": pd.Series(f, dtype=float),
            "i": pd.Series(i, dtype="int64"),
            "b": pd.Series(b, dtype=bool),
            "ts": pd.Series(ts, dtype="datetime64[ns]"),
            "tz": pd.Series(ts, dtype="datetime64[ns]").dt.tz_localize("Asia/Shanghai"),
            "obj": pd.Series(obj, dtype=object),
        }
    )
    if with_nat and len(frame):
        frame.loc[0, "ts"] = pd.NaT
    new, old = records(frame), _cell_by_cell(frame)
    assert json.dumps(new, default=str) == json.dumps(old, default=str)
    for a, b_ in zip(new, old, strict=True):
        assert [type(v) for v in a.values()] == [type(v) for v in b_.values()]


def test_exact_decimals_and_whole_floats_stay_as_they_were() -> None:
    frame = pd.DataFrame(
        {"cost": [Decimal("1.230000000000"), None], "n": [3.0, np.nan], "big": [2.0**60, 0.5]}
    )
    assert records(frame) == [
        {"cost": "1.23", "n": 3, "big": 2.0**60},
        {"cost": None, "n": None, "big": 0.5},
    ]
