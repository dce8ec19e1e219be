"""Turn a tidy ``unique_id, ds, y`` frame into per-series arrays (`validate`, `to_series`):
each series on its own regular grid, in the phase of its own buckets, with no gaps; missing
buckets are filled for fitting only (they never count in scores). `Series` carries what the
repairs (`tokenplan.forecast.repairs`) found, and the tests they share.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tokenplan.errors import InvalidInput
from tokenplan.frequency import Cadence

# Kinds that skip the model zoo and get a fallback forecast.
ZEROS, CONSTANT, SHORT, REGULAR, STOPPED = "zeros", "constant", "short", "regular", "stopped"

# Fewest buckets a backtest window trains on when the series has no season to learn.
MIN_TRAIN_PLAIN = 16
# A series with more than this share of empty buckets is intermittent: its zeros are the signal
# (no outage to fill), and they are absences, not small values. Its typical bucket is empty, so
# a log-space model, or candidates ranked by absolute errors, forecast about nothing where a
# plan sums the expected buckets. It is modelled untransformed, its candidates are ranked by
# squared errors (M5's RMSSE; `selection.scores`) and combined arithmetically. bench/
# intermittent.py: the next week's total of 24 synthetic series busy 10-60% of the time, over
# the process mean, median 0.23 before, 1.01 now; the last day of ServeGen's mostly empty
# clients, over the actual, 0.07 before, 0.39 now (that day ran at about half the clients'
# previous week). bench/forecast_accuracy.py (series busy at least half the time): 0.9595 ->
# 0.9594.
INTERMITTENT = 0.2
# A Monday at midnight UTC: grids without a phase of their own start their weeks there.
_GRID_ORIGIN = pd.Timestamp("2000-01-03")


@dataclass
class Series:
    """One prepared series: ``y`` is gap-free for fitting, ``actual`` keeps NaN where unknown."""

    uid: str
    start: pd.Timestamp
    step: pd.Timedelta
    y: np.ndarray
    actual: np.ndarray
    kind: str = REGULAR
    log: bool = True
    # Too short for the variance test (fewer than three primary cycles): ``log`` is then True
    # and the local models are also fitted untransformed; the backtest decides between the two.
    log_undecided: bool = False
    # Empty more than `INTERMITTENT` of the time: untransformed, and judged by squared errors.
    intermittent: bool = False
    notes: list[str] = field(default_factory=list)
    # Short gaps in the record (`repairs._short_gaps`): the value each bucket of one would have had,
    # NaN elsewhere; None when there is none.
    gaps: np.ndarray | None = None
    # Isolated bursts (`repairs._seasonal_bursts`): the usual value of each bucket of one, NaN
    # elsewhere; None when there is none. The temporal step's sums read these as well.
    bursts: np.ndarray | None = None
    # A level shift (`repairs._rescale_level_shift`): the bucket it starts at and its log1p
    # gap, which the history before it was moved by for fitting; None when there is none.
    level_shift: tuple[int, float] | None = None

    @property
    def end(self) -> pd.Timestamp:
        """Start of the last bucket."""
        return self.start + (len(self.y) - 1) * self.step

    def judged(self) -> np.ndarray:
        """What backtests score against: the record, with the part before a level shift moved
        to the new level as the models see it (NaN where unknown). Scored on the old level,
        every window before a x10 drop erred 10x, for every candidate alike: its bands, and its
        share of a total's gap in a split, were set by a regime that had ended."""
        if self.level_shift is None:
            return self.actual
        split, gap = self.level_shift
        with np.errstate(invalid="ignore"):
            head = np.expm1(np.maximum(np.log1p(np.maximum(self.actual[:split], 0.0)) + gap, 0.0))
        head = np.where(np.isnan(self.actual[:split]), np.nan, head)
        return np.concatenate([head, self.actual[split:]])

    def z(self, values: np.ndarray | None = None) -> np.ndarray:
        """Values in this series' modelling space (log1p or identity)."""
        v = self.y if values is None else values
        return np.log1p(np.maximum(v, 0.0)) if self.log else v

    def unz(self, values: np.ndarray) -> np.ndarray:
        """Back from modelling space to usage units, never negative."""
        out = np.expm1(values) if self.log else values
        return np.maximum(out, 0.0)


def validate(df: pd.DataFrame) -> pd.DataFrame:
    """Check the columns and types of a ``unique_id, ds, y`` frame; raise `InvalidInput`."""
    if not isinstance(df, pd.DataFrame):
        raise InvalidInput("forecast input must be a pandas DataFrame with unique_id, ds, y.")
    missing = [c for c in ("unique_id", "ds", "y") if c not in df.columns]
    if missing:
        raise InvalidInput(
            f"forecast input lacks column(s) {', '.join(missing)}; "
            "pass a tidy frame with unique_id, ds and y."
        )
    out = df[["unique_id", "ds", "y"]].copy()
    out["unique_id"] = out["unique_id"].astype(str)
    try:
        ds = pd.to_datetime(out["ds"])
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"column ds has values that are not timestamps: {exc}") from exc
    if getattr(ds.dt, "tz", None) is not None:
        ds = ds.dt.tz_convert("UTC").dt.tz_localize(None)
    out["ds"] = ds
    y = pd.to_numeric(out["y"], errors="coerce").astype(float)
    bad = out["y"].notna() & y.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InvalidInput(f"column y has a non-numeric value {out['y'].iloc[row]!r} at row {row}.")
    y[~np.isfinite(y)] = np.nan
    if (y < 0).any():
        row = int(np.flatnonzero((y < 0).to_numpy())[0])
        raise InvalidInput(
            f"column y is negative ({y.iloc[row]}) at row {row} (series "
            f"{out['unique_id'].iloc[row]!r}); usage must be zero or more."
        )
    out["y"] = y
    if out["ds"].isna().any():
        raise InvalidInput("column ds has empty timestamps; drop or fill those rows.")
    return out


def to_series(df: pd.DataFrame, cadence: Cadence) -> list[Series]:
    """Put each series on a regular grid; missing buckets and NaN become gaps to fill."""
    step = pd.Timedelta(seconds=cadence.seconds)
    out: list[Series] = []
    for uid, rows, starts, sums in _bucketed(df, step):
        notes: list[str] = []
        if len(sums) < rows:
            notes.append(f"{rows - len(sums)} duplicate bucket(s) summed")
        grid = pd.date_range(pd.Timestamp(starts[0]), pd.Timestamp(starts[-1]), freq=step)
        actual = np.full(len(grid), np.nan)
        actual[(starts - starts[0]) // step.value] = sums
        known = np.flatnonzero(~np.isnan(actual))
        if len(known) == 0:
            raise InvalidInput(f"series {uid!r} has no known values; drop it or fill it with 0.")
        if known[-1] < len(grid) - 1:
            # Unknown buckets at the end are not history: the forecast starts after the last
            # known bucket, and says so (its first step then lies inside the frame's span).
            unknown = len(grid) - 1 - known[-1]
            notes.append(
                f"last {unknown} bucket(s) unknown: forecast starts after the last known one"
                f" ({grid[known[-1]]:%Y-%m-%d %H:%M})"
            )
        first = known[0]
        busy = np.flatnonzero(np.nan_to_num(actual) > 0)
        if busy.size and _not_started(actual[first : busy[0]], actual[busy[0] :], cadence):
            # Empty buckets before the first usage, far more of them than the series is ever
            # empty for later, are a series that did not exist yet (a model launched last week,
            # zero-filled back to the start of its neighbours), not a quiet spell: counted,
            # they made a steady new series "intermittent".
            notes.append(
                f"{busy[0] - first} empty bucket(s) before its first usage left out"
                f" (it starts at {grid[busy[0]]:%Y-%m-%d %H:%M})"
            )
            first = busy[0]
        actual = actual[first : known[-1] + 1]
        start = grid[first]
        n_missing = int(np.isnan(actual).sum())
        series = Series(str(uid), start, step, actual.copy(), actual, notes=notes)
        if n_missing:
            series.y = fill_gaps(actual, cadence.seasons)
            series.notes.append(f"{n_missing} missing bucket(s) filled for fitting, not scored")
        out.append(series)
    return out


def _bucketed(
    df: pd.DataFrame, step: pd.Timedelta
) -> Iterator[tuple[str, int, np.ndarray, np.ndarray]]:
    """Per series (sorted by id): its id, its row count, its buckets' starts (ns, ascending)
    and their sums.

    Each series is floored to a grid of width ``step`` in the phase most of its rows already
    share: bucketed input (days at 16:00Z, Wednesday weeks, 10-minute buckets at :03) keeps its
    own phase; scattered timestamps, with no phase that half of them share, snap to the UTC grid
    (weeks from Monday 00:00). Duplicates within a bucket are summed (same usage, split; NaN
    only where every value is). All series at once: one at a time, pandas' per-call cost made
    5,000 series of three weeks hourly take 5.5 s, 1.8 s so.
    """
    width = step.value
    codes, ids = pd.factorize(df["unique_id"], sort=True)
    stamps = df["ds"].to_numpy().astype("datetime64[ns]").astype(np.int64)
    offsets = (stamps - _GRID_ORIGIN.value) % width
    # Each series' phase: the offset most of its rows share (the smallest of equally common
    # ones), or none (0) when no offset holds half of them.
    pairs = pd.DataFrame({"code": codes, "offset": offsets})
    counts = pairs.groupby(["code", "offset"], sort=True).size().reset_index(name="n")
    # One row per series, in code order (every series has an offset).
    top = counts.sort_values(["code", "n", "offset"], ascending=[True, False, True])
    top = top.drop_duplicates("code")
    rows = np.bincount(codes, minlength=len(ids))
    phases = np.where(2 * top["n"].to_numpy() >= rows, top["offset"].to_numpy(), 0)
    snapped = stamps - (offsets - phases[codes]) % width
    values = df["y"].to_numpy(dtype=float)
    buckets = pd.DataFrame({"code": codes, "start": snapped, "y": values})
    summed = buckets.groupby(["code", "start"], sort=True)["y"].sum(min_count=1).reset_index()
    code = summed["code"].to_numpy()
    starts = summed["start"].to_numpy()
    sums = summed["y"].to_numpy(dtype=float)
    edges = np.searchsorted(code, np.arange(len(ids) + 1))
    for k, uid in enumerate(ids):
        lo, hi = edges[k], edges[k + 1]
        yield str(uid), int(rows[k]), starts[lo:hi], sums[lo:hi]


def empty_tail(values: np.ndarray) -> int:
    """Buckets at the end since the last busy one (0: the last is busy; all: none ever was)."""
    busy = np.flatnonzero(values > 0)
    return len(values) - 1 - int(busy[-1]) if busy.size else len(values)


def longest_zero_run(values: np.ndarray) -> int:
    """The most buckets in a row ``values`` was empty for (0: never)."""
    zero = np.concatenate([[False], values == 0, [False]]).astype(int)
    edges = np.flatnonzero(np.diff(zero))
    return int(np.max(edges[1::2] - edges[::2])) if edges.size else 0


def _steady_and_unlike(run: int, rest: np.ndarray) -> bool:
    """Whether ``rest`` is busy most of the time (not intermittent) and ``run`` empty buckets
    are more than twice as many as any run of zeros in it: for a sparse series a long silence
    is one more gap between its bursts (on ServeGen's intermittent clients, those silent for
    two days resumed the next day one time in nine)."""
    known = rest[~np.isnan(rest)]
    steady = known.size > 0 and float(np.mean(known == 0)) <= INTERMITTENT
    return steady and run > 2 * longest_zero_run(rest)


def _not_started(lead: np.ndarray, rest: np.ndarray, cadence: Cadence) -> bool:
    """Whether ``lead`` (the buckets before the first usage: zeros, NaN where unknown) is a
    series that did not exist yet: two blocks long at least, as a stop (`stopped_for`), and
    `_steady_and_unlike` the rest (from the first usage on). Shorter, it is as likely the
    first of its quiet nights (three days of a ServeGen client whose first night ran longer
    than the next ones: bench/short_history.py's MAE 0.972 -> 0.975 when any length counted).
    """
    return lead.size >= 2 * max(cadence.primary, 4) and _steady_and_unlike(lead.size, rest)


def stopped_for(y: np.ndarray, cadence: Cadence) -> int:
    """Buckets since a series that had usage stopped (0: it has not): its last run of zeros,
    when that run lasted two blocks (days, for hourly buckets; what a new level needs in
    `repairs._rescale_level_shift`) and the history before it was `_steady_and_unlike` it. A model
    retired, a client gone: its older traffic judges a regime that has ended, and its backtest
    windows from before the stop set its bands at its old level (up to 2.4M tokens an hour
    for a model idle for eleven days)."""
    run = empty_tail(y)
    if run < 2 * max(cadence.primary, 4):
        return 0
    return run if _steady_and_unlike(run, y[: len(y) - run]) else 0


def fill_gaps(values: np.ndarray, seasons: tuple[int, ...]) -> np.ndarray:
    """Fill NaN from the same phase of a nearby cycle, else by linear interpolation."""
    y = values.copy()
    for season in sorted(seasons, reverse=True):
        for shift in (season, -season, 2 * season, -2 * season):
            gaps = np.flatnonzero(np.isnan(y))
            if len(gaps) == 0:
                return y
            src = gaps - shift
            ok = (src >= 0) & (src < len(y))
            take = gaps[ok][~np.isnan(y[src[ok]])]
            y[take] = y[take - shift]
    gaps = np.isnan(y)
    if gaps.any():
        idx = np.arange(len(y))
        y[gaps] = np.interp(idx[gaps], idx[~gaps], y[~gaps])
    return y


def one_cycle(n: int, season: int) -> bool:
    """One cycle of the main season seen, or more, but not two: no season to fit, one to read."""
    return 1 < season <= n < 2 * season


def min_history(cadence: Cadence, horizon: int) -> int:
    """Fewest buckets for one honest backtest window: a training stretch plus ``horizon``."""
    return min_train(cadence) + horizon


def min_train(cadence: Cadence, n: int | None = None) -> int:
    """Shortest training stretch a backtest window may use: two primary cycles, at least 16.

    A series of ``n`` buckets too short for any season trains without one: 16 buckets.
    """
    if n is not None and not cadence.usable(n):
        return MIN_TRAIN_PLAIN
    return max(2 * cadence.primary, MIN_TRAIN_PLAIN)


def column_medians(values: np.ndarray) -> np.ndarray:
    """``np.nanmedian(values, axis=0)`` (NaN where a column has no value), without its cost.

    numpy's nanmedian goes through masked arrays on small inputs, a thousand times slower
    per column than this; the result is the same (the middle value, or the middle two summed
    and halved, as numpy computes it).
    """
    ordered = np.sort(values, axis=0)  # NaN last
    count = np.sum(~np.isnan(values), axis=0)
    cols = np.arange(values.shape[1])
    low = ordered[np.maximum(count - 1, 0) // 2, cols]
    high = ordered[np.minimum(count // 2, max(values.shape[0] - 1, 0)), cols]
    with np.errstate(invalid="ignore"):  # inf + -inf
        out = (low + high) / 2
    out[count == 0] = np.nan
    return out
