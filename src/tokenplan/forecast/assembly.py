"""A panel's fitted series made into its forecast: bands at every level, the sample-path
models, the notes and the backtest table (`assemble`), from each series' `Fitted`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from tokenplan.errors import ForecastError
from tokenplan.forecast import selection as bt
from tokenplan.forecast.conformal import TAIL_WINDOWS, adaptive_bounds, mirrored_bounds
from tokenplan.forecast.paths import COMMON_PRIOR
from tokenplan.forecast.result import (
    ForecastResult,
    PathModel,
    from_calibration,
    level_name,
    to_calibration,
)


@dataclass
class Fitted:
    """One series' chosen forecast and calibration errors, before intervals are drawn."""

    point: np.ndarray  # usage units, (h,)
    errors: np.ndarray  # modelling space, (W, h)
    log: bool
    note: str
    method: str
    variance: float  # mean squared backtest error, usage units (for reconciliation)
    independent: int  # non-overlapping backtest windows behind ``errors`` (0: no backtest)
    # Factor on the step bands' offsets for a pool read off few windows (`small_sample_widening`).
    widening: float = 1.0
    # Factor on the sample paths' distance from the point path, in usage units (`sum_widening`):
    # log-space errors scaled instead, heavy-tailed, skewed a day's sum until its point sat at
    # the band's lower edge.
    path_widening: float = 1.0
    # No band or sample path goes above this, usage units (`selection.ceiling`): in log1p a
    # bursty series' errors reached +-17, which put 95% bands at 10^15 beside a peak of 10^8.
    ceiling: float = float("inf")
    # Log-space errors are in log(y + shift) (`conformal.log_shift`, `choose_shares`); 1 is log1p.
    shift: float = 1.0
    # Degrees of freedom of the sample paths' common scale (`paths.path_tail_df`).
    tail_df: float = float("inf")
    # The prior of the paths' common share (`paths.common_prior`).
    common_prior: float = COMMON_PRIOR
    # Intermittent series: the recent history sample paths are bootstrapped from, in blocks of
    # ``season`` buckets (`bootstrap.bootstrap_paths`); None: paths from ``errors``.
    history: np.ndarray | None = None
    season: int = 1


class Placed(Protocol):
    """Where a series sits in time: its id, last bucket and bucket width."""

    @property
    def uid(self) -> str: ...
    @property
    def end(self) -> pd.Timestamp: ...
    @property
    def step(self) -> pd.Timedelta: ...


def assemble(
    series: Sequence[Placed],
    fitted: dict[str, Fitted],
    rows: list[dict[str, object]],
    *,
    horizon: int,
    levels: tuple[float, ...],
    freq: str,
    total_id: str | None = None,
    backtest_coverage: bool = True,
) -> ForecastResult:
    """The forecast frame with every level's band, the sample-path models, the notes and the
    backtest table, from each series' `Fitted`."""
    h = horizon
    paths: dict[str, PathModel] = {}
    point = np.stack([fitted[s.uid].point for s in series])  # (n, h), usage units
    log = np.array([fitted[s.uid].log for s in series])
    shift = np.array([fitted[s.uid].shift for s in series])[:, None]
    point_z = to_calibration(point, log[:, None], shift)
    bands = {level: (np.empty((len(series), h)), np.empty((len(series), h))) for level in levels}
    few = np.array([fitted[s.uid].independent < TAIL_WINDOWS for s in series])
    # Every band of a few-window series reaches at least `mirrored_bounds` (zero offsets,
    # no effect, elsewhere); applied after the widening, which it already holds. A series
    # too short to backtest (no window) has the widest band mirrored only: its errors are
    # its profile's, already widened for want of a backtest (`fallbacks`), and mirrored
    # at every level they took bench/short_fallback.py's 80% band from 86.0% to 90.2% and
    # its interval score from 9.39 to 10.38.
    inner_too = np.array([fitted[s.uid].independent > 0 for s in series])[:, None]
    widest = max(levels, default=None)
    mirror = {level: (np.zeros((len(series), h)), np.zeros((len(series), h))) for level in levels}
    # Bounds for all series at once, in groups of equal residual shape.
    by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for j, s in enumerate(series):
        by_shape[fitted[s.uid].errors.shape].append(j)
    for members in by_shape.values():
        errors = np.stack([fitted[series[j].uid].errors for j in members])
        for level, (lo_off, hi_off) in adaptive_bounds(errors, levels).items():
            bands[level][0][members] = lo_off
            bands[level][1][members] = hi_off
        short = few[members]
        if short.any():
            picked = np.asarray(members)[short]
            for level, (lo_off, hi_off) in mirrored_bounds(errors[short], levels).items():
                mirror[level][0][picked], mirror[level][1][picked] = lo_off, hi_off
    widening = np.array([fitted[s.uid].widening for s in series])[:, None]
    for level, (lo_off, hi_off) in bands.items():
        bands[level] = (lo_off * widening, hi_off * widening)
    for level, (lo_off, hi_off) in bands.items():
        mirror_lo, mirror_hi = mirror[level]
        if level != widest:
            mirror_lo, mirror_hi = mirror_lo * inner_too, mirror_hi * inner_too
        bands[level] = (np.minimum(lo_off, mirror_lo), np.maximum(hi_off, mirror_hi))
    frame = pd.DataFrame(
        {
            "unique_id": np.repeat(np.array([s.uid for s in series], dtype=object), h),
            "ds": horizon_stamps(series, h).ravel(),
            "mean": point.ravel(),
        }
    )
    ceiling = np.maximum(np.array([fitted[s.uid].ceiling for s in series])[:, None], point)
    inner_lo, inner_hi = point, point
    for level in levels:  # ascending, so wider levels nest around narrower ones
        lo_off, hi_off = bands[level]
        lo = np.minimum(_to_usage(point_z + lo_off, log, shift), inner_lo)
        raw_hi = _to_usage(point_z + hi_off, log, shift)
        hi = np.maximum(np.minimum(raw_hi, ceiling), inner_hi)
        frame[f"lo_{level_name(level)}"] = lo.ravel()
        frame[f"hi_{level_name(level)}"] = hi.ravel()
        inner_lo, inner_hi = lo, hi
    if levels:  # the widest level's raw upper band, left by the loop
        _note_ceiling(series, fitted, raw_hi > ceiling)
    for j, s in enumerate(series):
        f = fitted[s.uid]
        paths[s.uid] = PathModel(
            point=point_z[j],
            log=f.log,
            errors=f.errors,
            widening=f.path_widening,
            ceiling=f.ceiling,
            shift=f.shift,
            tail_df=f.tail_df,
            common_prior=f.common_prior,
            history=f.history,
            season=f.season,
        )
    columns = ["unique_id", "ds", "mean"]
    for level in levels:
        columns += [f"lo_{level_name(level)}", f"hi_{level_name(level)}"]
    if not np.all(np.isfinite(frame[columns[2:]].to_numpy())):
        raise ForecastError("a forecast came out non-finite; please report this with the input.")
    table = pd.DataFrame(rows)
    counted = levels if backtest_coverage else ()
    covered = [f"coverage_{level_name(x)}" for x in counted]
    for col in ("mase", "smape", *covered):
        if col not in table:
            table[col] = np.nan
    if "why" not in table:
        table["why"] = ""
    order = ["unique_id", "method", "mase", "smape", *covered, "chosen", "why"]
    table = table[order].sort_values(["unique_id", "mase"], kind="stable", ignore_index=True)
    return ForecastResult(
        frame=frame,
        notes={s.uid: fitted[s.uid].note for s in series},
        chosen={s.uid: fitted[s.uid].method for s in series},
        backtest=table,
        levels=levels,
        horizon=h,
        freq=freq,
        paths=paths,
        total_id=total_id,
    )


def _note_ceiling(series: Sequence[Placed], fitted: dict[str, Fitted], capped: np.ndarray) -> None:
    """Say where the widest band was cut at the series' ceiling, and at how many steps."""
    for j, s in enumerate(series):
        steps = int(capped[j].sum())
        if steps:
            fitted[s.uid].note += (
                f"; upper bands cut at {bt.RUNAWAY:g}x the recorded peak"
                f" ({fitted[s.uid].ceiling / bt.RUNAWAY:.6g}) at {steps} step(s)"
            )


def _to_usage(z: np.ndarray, log: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Rows of ``z`` (one per series) back to usage units; ``log`` says which rows are logs,
    ``shift`` (one per row) their offset."""
    out = np.maximum(z, 0.0)
    # Only the log rows: exp of a linear-space row may overflow.
    out[log] = from_calibration(z[log], True, np.broadcast_to(shift, z.shape)[log])
    return out


def horizon_stamps(series: Sequence[Placed], h: int) -> np.ndarray:
    """``(n, h)`` bucket starts of each series' forecast: one step after its last bucket on."""
    end = np.array([s.end.value for s in series], dtype=np.int64)
    step = np.array([s.step.value for s in series], dtype=np.int64)
    stamps = end[:, None] + step[:, None] * np.arange(1, h + 1)[None, :]
    return stamps.astype("datetime64[ns]")
