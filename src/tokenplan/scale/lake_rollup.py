"""Usage series from a Parquet lake, rolled up on the engine: ``unique_id, ds, y`` per bucket.

The lake is the store's ``usage`` rows laid out as ``DIR/date=YYYY-MM-DD/provider=NAME/
*.parquet`` (`tokenplan export --parquet`). Its files are dealt to engine tasks; each task
reads only the columns it needs with pyarrow, buckets ``ts`` and sums the metric per series
and bucket, and the driver adds up those partial sums (a few rows per series and bucket per
file) and fills the grid. The answer is the store's own (`DuckDBStore.series`): the same
buckets (fixed widths from Monday 2000-01-03 UTC), series names (``total``, or the split
values joined by ``|`` with ``(none)`` for missing ones), 0 for buckets without rows, NaN
for buckets whose rows do not know the metric (and, with ``complete``, for buckets that hold
a recorded bucket its source left empty), one grid from the first bucket to the last.
Fixed widths only (minutes to weeks, in UTC); calendar months and time zones stay in DuckDB.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pyarrow as pa

from tokenplan.errors import EngineError, InvalidInput, TokenplanError
from tokenplan.events import DIMENSIONS, METRICS
from tokenplan.frequency import parse_freq
from tokenplan.scale.engines import open_engine, parse_engine
from tokenplan.store.series_sql import NONE_LABEL, TOTAL_ID

# The store's grid origin (a Monday): see tokenplan.store.series_sql, which owns the labels.
ORIGIN = np.datetime64("2000-01-03T00:00:00", "us")
# Engine tasks at most: each reads a share of the files.
_MAX_TASKS = 256
# ``source`` (provider and model) and ``empty`` (its recorded buckets that leave the metric
# empty) let the driver tell an hour the log missed from a source that never records the
# metric (`_grid`); raw events have ``source`` "" and ``empty`` 0.
PARTIAL_SCHEMA = "unique_id:str,ds_us:long,source:str,y:double,exact:str,known:long,empty:long"
_COLUMNS = ["unique_id", "ds_us", "source", "y", "exact", "known", "empty"]


def rollup_lake(
    root: str,
    metric: str,
    freq: str,
    by: Sequence[str] = (),
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    engine: object = "dask",
    engine_address: str | None = None,
    complete: bool = False,
) -> pd.DataFrame:
    """``metric`` per ``freq`` bucket and ``by`` split of the lake at ``root``, on ``engine``;
    ``complete`` as in `tokenplan.store.DuckDBStore.series`."""
    if metric not in METRICS:
        raise InvalidInput(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}.")
    unknown = [d for d in by if d not in DIMENSIONS]
    if unknown:
        raise InvalidInput(
            f"cannot split by {', '.join(unknown)}; use any of {', '.join(DIMENSIONS)}."
        )
    f = parse_freq(freq, calendar=True)
    if f.months:
        raise InvalidInput(
            f"--freq {freq}: calendar months are rolled up by DuckDB only; use days or finer "
            "on an engine, or --engine local."
        )
    files = files_by_provider(root)
    width = np.timedelta64(f.seconds * 1_000_000, "us")
    lo = _bucket(np.datetime64(_naive(since), "us"), width) if since else None
    hi = np.datetime64(_naive(until), "us") if until else None
    tasks = min(len(files), _MAX_TASKS)
    listing = pd.DataFrame(
        {
            "path": [path for path, _ in files],
            "provider": [provider for _, provider in files],
            "task": np.arange(len(files)) % max(tasks, 1),
        }
    )
    params = {
        "spec": json.dumps(
            {
                "metric": metric,
                "by": list(by),
                "width_us": f.seconds * 1_000_000,
                "since_us": None if since is None else int(_us(since)),
                "until_us": None if until is None else int(_us(until)),
            }
        )
    }
    choice = parse_engine(engine)
    partials = pd.DataFrame(columns=_COLUMNS)
    if files:
        from fugue import transform

        with open_engine(choice, engine_address) as target:
            try:
                out = transform(
                    listing,
                    _partial_sums,
                    schema=PARTIAL_SCHEMA,
                    params=params,
                    partition={"by": ["task"]},
                    engine=target,
                    as_local=True,
                )
            except TokenplanError:
                raise
            except Exception as exc:  # whatever the engine wraps a task's failure in
                text = str(exc).strip()
                raise EngineError(
                    f"the {choice.name} engine failed while reading the lake {root}: "
                    f"{text.splitlines()[0] if text else type(exc).__name__}"
                ) from exc
        partials = out if isinstance(out, pd.DataFrame) else pd.DataFrame(out.as_pandas())
    return _grid(partials, metric, width, lo, hi, complete=complete)


def files_by_provider(root: str) -> list[tuple[str, str | None]]:
    """Every data file of the lake (`tokenplan.store.lake.lake_files`) and its provider."""
    from tokenplan.store.lake import NULL_PARTITION, lake_files

    out = []
    for path in lake_files(root):
        folder = path.replace("\\", "/").rsplit("/", 2)[-2]
        value = unquote(folder.removeprefix("provider="))
        out.append((path, None if value == NULL_PARTITION else value))
    return out


def _partial_sums(listing: pd.DataFrame, spec: str) -> pd.DataFrame:
    """Runs on an engine task: per file, the metric summed per series and bucket."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    s: dict[str, Any] = json.loads(spec)
    metric, by = s["metric"], list(s["by"])
    parts = []
    for path, provider in zip(listing["path"], listing["provider"], strict=True):
        needed = {"ts", "bucket_s", "model", *_metric_columns(metric), *by} - {"provider"}
        table = pq.read_table(path, columns=sorted(needed))
        ts = table["ts"].cast("timestamp[us]", safe=False).to_numpy(zero_copy_only=False)
        stamps = ts.astype("datetime64[us]").astype(np.int64)
        keep = np.ones(len(stamps), dtype=bool)
        if s["since_us"] is not None:
            keep &= stamps >= s["since_us"]
        if s["until_us"] is not None:
            keep &= stamps < s["until_us"]
        if not keep.any():
            continue
        table = table.filter(pa.array(keep))
        width = np.timedelta64(int(s["width_us"]), "us")
        starts = _bucket(stamps[keep].astype("datetime64[us]"), width)
        # An unknown cost is an unpriced model's, not a stretch nobody recorded.
        recorded = (table["bucket_s"].to_numpy(zero_copy_only=False) > 0) & (metric != "cost_usd")
        models = pc.fill_null(table["model"].cast(pa.string()), "").to_numpy(zero_copy_only=False)
        frame = pd.DataFrame(
            {
                "ds_us": starts.astype(np.int64),
                "unique_id": _ids(table, by, provider),
                # An engine may hand a missing provider over as NA rather than None.
                "source": np.where(recorded, f"{_text(provider)}\x1f" + models.astype(object), ""),
            }
        )
        if metric == "cost_usd":
            frame["exact"] = table["cost_usd"].to_pylist()
            frame["y"] = np.nan
            frame["known"] = frame["exact"].notna().astype(np.int64)
        else:
            if metric == "total_tokens":
                split = pc.add(table["input_tokens"].cast("int64"), table["output_tokens"])
                column = pc.coalesce(split, table["unsplit_tokens"].cast("int64"))
            else:
                column = table[metric]
            frame["y"] = column.to_pandas().astype(float).to_numpy()
            frame["known"] = frame["y"].notna().astype(np.int64)
        frame["empty"] = (recorded & (frame["known"] == 0)).astype(np.int64)
        parts.append(frame)
    if not parts:
        return pd.DataFrame(columns=_COLUMNS)
    rows = pd.concat(parts, ignore_index=True)
    grouped = rows.groupby(["unique_id", "ds_us", "source"], sort=False)
    out = grouped.agg(y=("y", "sum"), known=("known", "sum"), empty=("empty", "sum")).reset_index()
    # Exact decimal sums only where the metric is money: a Python sum per group is slow.
    out["exact"] = grouped["exact"].agg(_decimal_sum).to_numpy() if metric == "cost_usd" else None
    return out[_COLUMNS]


def _grid(
    partials: pd.DataFrame,
    metric: str,
    width: np.timedelta64,
    lo: np.datetime64 | None,
    hi: np.datetime64 | None,
    *,
    complete: bool = False,
) -> pd.DataFrame:
    """Partial sums added up, on one grid of buckets for every series (missing ones are 0)."""
    if partials.empty:
        return pd.DataFrame(
            {
                "unique_id": pd.Series(dtype=str),
                "ds": pd.Series(dtype="datetime64[us]"),
                "y": pd.Series(dtype=float),
            }
        )
    grouped = partials.groupby(["unique_id", "ds_us"])
    known = grouped["known"].sum()
    if metric == "cost_usd":
        total = grouped["exact"].agg(_decimal_sum).map(lambda v: float(Decimal(v)) if v else 0.0)
    else:
        total = grouped["y"].sum()
    unknown = known == 0
    if complete:
        # A recorded bucket left empty by a source that records the metric elsewhere (in any
        # file) leaves the bucket that holds it unknown, as in the store.
        recorded = partials[partials["source"] != ""]
        knowing = set(recorded.loc[recorded["known"].astype(np.int64) > 0, "source"])
        empty = recorded["empty"].astype(np.int64) > 0
        missed = recorded[empty & recorded["source"].isin(knowing)]
        unknown |= total.index.isin(pd.MultiIndex.from_frame(missed[["unique_id", "ds_us"]]))
    y = total.where(~unknown, np.nan)
    ds = y.index.get_level_values("ds_us").to_numpy().astype("datetime64[us]")
    first = lo if lo is not None else ds.min()
    last = _bucket(hi - np.timedelta64(1, "us"), width) if hi is not None else ds.max()
    stamps = np.arange(first, last + width, width).astype("datetime64[us]")
    ids = sorted(set(y.index.get_level_values("unique_id")))
    index = pd.MultiIndex.from_product([ids, stamps.astype(np.int64)], names=["unique_id", "ds_us"])
    values = y.reindex(index)
    # A bucket with no rows is 0; one whose rows do not know the metric stays NaN.
    had_rows = known.reindex(index).notna().to_numpy()
    filled = np.where(had_rows, values.to_numpy(dtype=float), 0.0)
    return pd.DataFrame(
        {
            "unique_id": index.get_level_values("unique_id").to_numpy(dtype=object),
            "ds": index.get_level_values("ds_us").to_numpy().astype("datetime64[us]"),
            "y": filled,
        }
    )


def _ids(table: Any, by: list[str], provider: str | None) -> np.ndarray:
    """Series names as the store gives them: the split values joined by ``|``."""
    import pyarrow.compute as pc

    if not by:
        return np.full(table.num_rows, TOTAL_ID, dtype=object)
    columns = []
    for d in by:
        if d == "provider":
            value = provider if isinstance(provider, str) else NONE_LABEL  # None, or an engine's NA
            columns.append(pa.array(np.full(table.num_rows, value, dtype=object), pa.string()))
        else:
            columns.append(pc.fill_null(table[d].cast(pa.string()), NONE_LABEL))
    joined = columns[0] if len(columns) == 1 else pc.binary_join_element_wise(*columns, "|")
    return np.asarray(joined.to_numpy(zero_copy_only=False), dtype=object)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _metric_columns(metric: str) -> tuple[str, ...]:
    if metric == "total_tokens":
        return ("input_tokens", "output_tokens", "unsplit_tokens")
    return (metric,)


def _decimal_sum(values: pd.Series) -> str | None:
    """Exact sum of decimal values (as text, so it crosses any engine), None if none known."""
    known = [Decimal(str(v)) for v in values if v is not None and not pd.isna(v)]
    return str(sum(known, Decimal(0))) if known else None


def _bucket(ts: Any, width: np.timedelta64) -> Any:
    """Start of each timestamp's bucket: fixed widths counted from the store's origin."""
    offset = (ts - ORIGIN) // width
    return ORIGIN + offset * width


def _naive(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return pd.Timestamp(moment).tz_convert("UTC").tz_localize(None).to_pydatetime()


def _us(moment: datetime) -> int:
    return int(np.datetime64(_naive(moment), "us").astype(np.int64))
