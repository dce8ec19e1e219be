"""Series to shards, and a shard's fitted panel to rows and back (what crosses the engine).

A shard is a set of whole series chosen by a stable hash of ``unique_id`` (CRC-32, the same on
every machine and Python run, unlike ``hash()``). What a shard returns is one row per series
holding exactly what the driver needs to assemble the forecast as the local engine would: the
point forecast and calibration errors as raw float64 bytes (bit-exact), the modelling space,
the note, the chosen method, the variance for reconciliation and the backtest rows as JSON.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tokenplan.forecast.assembly import Fitted
from tokenplan.forecast.engine import PanelFit

# What the engine ships to the shards: timestamps as int64 nanoseconds, so no engine's
# session time zone or microsecond timestamps can move a bucket.
INPUT_SCHEMA = "unique_id:str,ds_ns:long,y:double,row:long,shard:int"
OUTPUT_SCHEMA = (
    "unique_id:str,end_ns:long,step_ns:long,point:bytes,errors:bytes,windows:int,"
    "log:bool,note:str,method:str,variance:double,independent:int,widening:double,"
    "path_widening:double,ceiling:double,shift:double,tail_df:double,"
    "history:bytes,season:int,common_prior:double,backtest:str"
)


@dataclass(frozen=True)
class Placement:
    """A series' id, last bucket and bucket width: all the driver needs of its history."""

    uid: str
    end: pd.Timestamp
    step: pd.Timedelta


def shard_count(n_series: int, shard_size: int) -> int:
    """Shards for ``n_series``: each holds about ``shard_size`` or more (all in one if fewer)."""
    return max(1, n_series // shard_size)


def shard_of(ids: pd.Series, shards: int) -> np.ndarray:
    """Shard number of each id: CRC-32 of its UTF-8 bytes modulo ``shards``."""
    codes = {uid: zlib.crc32(uid.encode("utf-8")) % shards for uid in pd.unique(ids)}
    return ids.map(codes).to_numpy(dtype=np.int32)


def to_engine_input(data: pd.DataFrame, shards: int) -> pd.DataFrame:
    """A validated ``unique_id, ds, y`` frame as `INPUT_SCHEMA` rows with their shard."""
    return pd.DataFrame(
        {
            "unique_id": data["unique_id"].astype(str).to_numpy(),
            "ds_ns": data["ds"].to_numpy(dtype="datetime64[ns]").astype(np.int64),
            "y": data["y"].to_numpy(dtype=float),
            "row": np.arange(len(data), dtype=np.int64),
            "shard": shard_of(data["unique_id"].astype(str), shards),
        }
    )


def from_engine_input(rows: pd.DataFrame) -> pd.DataFrame:
    """`INPUT_SCHEMA` rows back to the validated frame, in the driver's row order."""
    rows = rows.sort_values("row", kind="stable")
    return pd.DataFrame(
        {
            "unique_id": rows["unique_id"].astype(str).to_numpy(),
            "ds": rows["ds_ns"].to_numpy(dtype=np.int64).astype("datetime64[ns]"),
            "y": rows["y"].to_numpy(dtype=float),
        }
    )


def encode(panel: PanelFit, note: str = "") -> pd.DataFrame:
    """One `OUTPUT_SCHEMA` row per series; ``note`` is appended to each series' note."""
    by_uid: dict[str, list[dict[str, object]]] = {}
    for row in panel.rows:
        by_uid.setdefault(str(row["unique_id"]), []).append(row)
    records = []
    for s in panel.series:
        f = panel.fitted[s.uid]
        errors = np.ascontiguousarray(f.errors, dtype=np.float64)
        records.append(
            {
                "unique_id": s.uid,
                "end_ns": int(s.end.value),
                "step_ns": int(s.step.value),
                "point": np.ascontiguousarray(f.point, dtype=np.float64).tobytes(),
                "errors": errors.tobytes(),
                "windows": int(errors.shape[0]),
                "log": bool(f.log),
                "note": f.note + note,
                "method": f.method,
                "variance": float(f.variance),
                "independent": int(f.independent),
                "widening": float(f.widening),
                "path_widening": float(f.path_widening),
                "ceiling": float(f.ceiling),
                "shift": float(f.shift),
                "tail_df": float(f.tail_df),
                # Empty bytes: no bootstrap history (a series that is not intermittent).
                "history": b""
                if f.history is None
                else np.ascontiguousarray(f.history, dtype=np.float64).tobytes(),
                "season": int(f.season),
                "common_prior": float(f.common_prior),
                # Python's JSON floats round-trip exactly (shortest repr; inf as Infinity).
                "backtest": json.dumps(by_uid.get(s.uid, [])),
            }
        )
    return pd.DataFrame.from_records(records, columns=_OUTPUT_COLUMNS)


_OUTPUT_COLUMNS = [part.split(":")[0] for part in OUTPUT_SCHEMA.split(",")]


def decode(rows: pd.DataFrame) -> PanelFit:
    """`OUTPUT_SCHEMA` rows (any order) back to a panel, series sorted by id as locally."""
    panel = PanelFit()
    ordered = rows.sort_values("unique_id", kind="stable")
    for r in ordered.to_dict("records"):
        uid = str(r["unique_id"])
        point = np.frombuffer(bytes(r["point"]), dtype=np.float64).copy()
        errors = np.frombuffer(bytes(r["errors"]), dtype=np.float64).copy()
        panel.series.append(
            Placement(uid, pd.Timestamp(int(r["end_ns"])), pd.Timedelta(int(r["step_ns"])))
        )
        panel.fitted[uid] = Fitted(
            point=point,
            errors=errors.reshape(int(r["windows"]), len(point)),
            log=bool(r["log"]),
            note=str(r["note"]),
            method=str(r["method"]),
            variance=float(r["variance"]),
            independent=int(r["independent"]),
            widening=float(r["widening"]),
            path_widening=float(r["path_widening"]),
            ceiling=float(r["ceiling"]),
            shift=float(r["shift"]),
            tail_df=float(r["tail_df"]),
            history=np.frombuffer(bytes(r["history"]), dtype=np.float64).copy()
            if r["history"]
            else None,
            season=int(r["season"]),
            common_prior=float(r["common_prior"]),
        )
        panel.rows += json.loads(str(r["backtest"]))
    return panel
