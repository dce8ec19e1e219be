"""Local statistical candidates from statsforecast: AutoETS, AutoTheta and MSTL, on every series.

Each model is fitted once per series, at the earliest backtest cut, and then applied with its
``forward`` method to the history before every later cut and to the whole history: the
parameters come only from data before each origin (the backtest stays honest) while the
states follow the newest data. Refitting at every cut cost about seven times as much (the 414
M4 hourly series took over ten minutes on two cores), which is why local models used to be
skipped on large panels. AutoETS runs in the series' modelling space (log1p when its spread
grows with its level); AutoTheta and MSTL always run on the untransformed values
(`UNTRANSFORMED`), MSTL's forecast floored at the lowest value its fit saw (`floor_mstl`). All
see recent history only (a few of the longest cycles; MSTL twice as many, `mstl_cap`). Series are
spread over worker processes when there are many of them, started before the rest of the
panel's work (baselines, LightGBM) so that both cores stay busy.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, TypeVar

import numpy as np

from tokenplan.forecast.preparation import Series

T = TypeVar("T")

# AutoETS in statsforecast fits no seasonal state above 24 (it silently drops it).
_ETS_MAX_SEASON = 24
# Below this many series, worker processes cost more than they save.
_MIN_SERIES_PER_WORKER = 8
# Series go to the workers in chunks: several per worker, at most `_MAX_CHUNK` series each, so
# no worker is left idle for long while another finishes a big last chunk.
_CHUNKS_PER_WORKER = 8
_MAX_CHUNK = 16
_STL_JUMPS = {"trend_jump": 10, "low_pass_jump": 10}
# A model fitted before the earliest cut is forwarded to the later ones only when that fit saw
# this many primary cycles (or `_FORWARD_MIN_POINTS` buckets without a season); on less, its
# parameters are a guess from a day or two, so the model is refitted at every cut.
_FORWARD_MIN_CYCLES = 8
_FORWARD_MIN_POINTS = 200
# Name suffix of a model fitted without the log transform on a series that otherwise uses it.
RAW = "_raw"
# Fitted on untransformed values even where the series is modelled in log1p space, and mapped
# back to it. In log1p space an empty bucket of a series of millions of tokens sits 14 units
# below its neighbours, and Theta's drift compounds into growth the traffic never had (on
# ServeGen's per-client hourly tokens its log1p-space fit scored MASE 18, untransformed 1.1).
# Judged on the whole benchmark (bench/forecast_accuracy.py: geometric mean of the MASE ratio
# to the best peer over the 29 cases / the 28 trace cases, worst case; M4 hourly MASE / sMAPE;
# bench/short_history.py MAE over seasonal naive's on 3 / 5 / 7 days): both Theta and MSTL in
# log1p space 0.976 / 0.987 / 1.289, 0.800 / 8.62, 0.979 / 1.030 / 1.023; Theta untransformed
# (as here) 0.971 / 0.982 / 1.227, 0.798 / 8.62, 0.977 / 1.031 / 1.025; MSTL untransformed as well
# 0.966 / 0.976 / 1.216, but 0.799 / 8.80 and 0.985 / 1.036 / 1.033: additive seasonality
# forecasts near-zero nights lower, and on a few days of history it loses. Both spaces side by
# side: 0.976 / 0.986 / 1.289 and M4 0.808 (more candidates, a noisier choice); both in
# log(y + the recent level): 0.984 / 0.995 / 1.250. MSTL joined Theta on 2026-12-05, its
# troughs floored (`floor_mstl`), judged against the engine of then (a geometric combination,
# ensemble selection; MSTL was the strongest peer on the traces): 29 cases 0.9500 -> 0.9445,
# trace cases 0.9599 -> 0.9542, worst 1.199 -> 1.198; M4 0.780 -> 0.781, sMAPE 8.51 -> 8.62 (8.79
# without the floor); bench/short_history.py 0.978 / 1.000 / 1.011 -> 0.981 / 1.002 / 1.017;
# bench/level_shifts.py's mean error over its 11 rows 0.178 -> 0.174.
UNTRANSFORMED = frozenset({"auto_theta", "mstl"})


def statistical_names(seasons: tuple[int, ...]) -> list[str]:
    """The candidates this module offers for the given usable seasons."""
    if not seasons:
        return ["auto_ets", "auto_theta"]
    return ["auto_ets", "auto_theta", "mstl"]


def history_cap(seasons: tuple[int, ...]) -> int:
    """Recent history the models see: four longest cycles, at least seven short ones.

    At most 2,016 buckets (two weeks of 10-minute buckets): AutoTheta's search and MSTL's
    decomposition grow with length, and older cycles add little to a local model.
    """
    if not seasons:
        return 1000
    return min(max(4 * seasons[-1], 7 * seasons[0]), 2016)


def mstl_cap(seasons: tuple[int, ...]) -> int:
    """Recent history MSTL sees: twice `history_cap` (eight weekly cycles of hourly buckets),
    at most 4,032 buckets.

    Its seasons are smoothed over the cycles it sees, so more cycles give steadier ones, while
    AutoTheta's drift and AutoETS's level follow recent history best. Each model alone on every
    trace case's series, twice the history over the cap (geometric mean of the MASE ratio over
    the cases, worst): MSTL 0.965, worst 1.029; AutoTheta 1.036, worst 1.528; AutoETS 0.999.
    Judged on the whole benchmark: bench/forecast_accuracy.py trace cases 0.9442 -> 0.9424 (29
    cases 0.9350 -> 0.9331, worst 1.179 as before; MSIS ratio 1.062 -> 1.065); M4 hourly MASE
    0.781 -> 0.776, sMAPE 8.58 -> 8.56, MSIS 6.08 -> 6.04; bench/level_shifts.py mean error
    0.1745 -> 0.1734; bench/short_history.py unchanged. The gain is the weekly season's: with
    the daily season's cycles doubled only (14 days hourly, the weekly cycle kept at four) the
    trace cases stayed at 0.9442. It costs time where the history is long: bench/forecast_speed.py
    (90 days) 173.5 s -> 228.0 s; M4 (at most 960 hours) 129 s, 138 s before.
    """
    return min(2 * history_cap(seasons), 4032)


def _models(seasons: tuple[int, ...], log_space: bool) -> list[object]:
    from statsforecast.models import MSTL, AutoETS, AutoTheta

    primary = seasons[0] if seasons else 1
    models: list[object] = []
    # In log space errors are additive: multiplicative-error models there doubled the ETS
    # searches (AutoETS's was half of all statistical fitting time) for no accuracy
    # (bench/forecast_accuracy.py geometric-mean ratio 1.135 with them, 1.132 without, MSTL's
    # trend included; M4 hourly MASE 0.866, 0.865).
    error = "A" if log_space else "Z"
    if primary > _ETS_MAX_SEASON:
        # Above 24 AutoETS runs without a seasonal state: still a useful recent-level
        # candidate for short horizons on fine buckets.
        models.append(AutoETS(season_length=1, model=f"{error}ZN", alias="auto_ets"))
    else:
        # Additive seasonality in log space is multiplicative in usage units.
        spec = "AZA" if log_space and primary > 1 else f"{error}ZZ"
        models.append(AutoETS(season_length=primary, model=spec, alias="auto_ets"))
    models.append(AutoTheta(season_length=primary, alias="auto_theta"))
    if seasons:
        # A fresh trend model for every MSTL: statsforecast 2.1.1 shares the default one. The
        # loess jumps (statsmodels' default is 1: every point) make the decomposition seven
        # times faster and move the forecast by about 0.1% of the level.
        models.append(
            MSTL(
                season_length=list(seasons),
                trend_forecaster=AutoETS(model=f"{error}ZN"),
                stl_kwargs=_STL_JUMPS,
                alias="mstl",
            )
        )
    return models


def _one_series(
    z: np.ndarray, log: bool, undecided: bool, cuts: list[int], h: int, seasons: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """Fit each model before the earliest cut, forward it to every cut (modelling space).

    `UNTRANSFORMED` models are fitted on usage values and mapped back to log1p space. A series
    too short for the variance test (``undecided``, always in log space) also gets the other
    models fitted on its untransformed values (``<name>_raw``): on a day or two of history a
    trend or a burst in log space compounds, and which space forecasts better is then the
    backtest's call, not a default's.
    """
    names = set(statistical_names(seasons))
    if not log:
        return _fitted(z, False, cuts, h, seasons, names)
    out = _fitted(z, True, cuts, h, seasons, names - UNTRANSFORMED)
    usage = np.expm1(z)
    raw = _fitted(usage, False, cuts, h, seasons, names & UNTRANSFORMED)
    if "mstl" in raw:
        raw["mstl"] = floor_mstl(raw["mstl"], usage, cuts, seasons)
    if undecided:
        raw |= _fitted(usage, False, cuts, h, seasons, names - UNTRANSFORMED, RAW)
    return out | {name: np.log1p(np.maximum(pred, 0.0)) for name, pred in raw.items()}


def floor_mstl(
    preds: np.ndarray, usage: np.ndarray, cuts: list[int], seasons: tuple[int, ...]
) -> np.ndarray:
    """Untransformed MSTL forecasts ``(cuts, h)`` raised to the lowest value of the history
    each one starts from (its last `history_cap` buckets before the cut).

    Fitted to a series whose daily swing grows with its level (the one kind modelled in log
    space), an additive season takes the same amount off every night, and the forecast night of
    a series on a downward drift lands below anything recorded, toward zero. In a geometric
    combination a member near zero pulls hardest: on M4 hourly, whose deep-night series lost
    most, sMAPE went 8.51 -> 8.79 without this floor and -> 8.62 with it.
    """
    cap = mstl_cap(seasons)
    seen = [usage[: max(len(usage) - cut, 0)][-cap:] for cut in cuts]
    lowest = np.array([float(np.min(v)) if v.size else 0.0 for v in seen])
    return np.maximum(preds, lowest[:, None])


def _fitted(
    z: np.ndarray,
    log: bool,
    cuts: list[int],
    h: int,
    seasons: tuple[int, ...],
    names: set[str],
    suffix: str = "",
) -> dict[str, np.ndarray]:
    """``{alias + suffix: array(cuts, h)}`` of the models named in ``names``."""
    out: dict[str, np.ndarray] = {}
    earliest = max(cuts)
    scale = 1.0
    if not log:
        # Values are fitted divided by their mean level before the earliest cut, so the fit
        # does not depend on the unit: on raw values of a million AutoTheta's optimiser took
        # three times as long and stopped up to 4% away.
        seen = z[: len(z) - earliest]
        level = float(np.mean(np.abs(seen))) if seen.size else 0.0
        scale = level if np.isfinite(level) and level > 0 else 1.0
        z = z / scale
    primary = seasons[0] if seasons else 1
    forward = len(z) - earliest >= max(_FORWARD_MIN_CYCLES * primary, _FORWARD_MIN_POINTS)
    for model in _models(seasons, log):
        if model.alias not in names:  # type: ignore[attr-defined]
            continue
        name = model.alias + suffix  # type: ignore[attr-defined]
        cap = mstl_cap(seasons) if model.alias == "mstl" else history_cap(seasons)  # type: ignore[attr-defined]
        preds = np.full((len(cuts), h), np.nan)
        try:
            if forward:
                model.fit(z[: len(z) - earliest][-cap:])  # type: ignore[attr-defined]
            for i, cut in enumerate(cuts):
                history = z[: len(z) - cut][-cap:]
                if not forward:
                    model.fit(history)  # type: ignore[attr-defined]
                if not forward or cut == earliest:  # forward would redo the fit's work
                    preds[i] = model.predict(h)["mean"]  # type: ignore[attr-defined]
                else:
                    preds[i] = model.forward(history, h)["mean"]  # type: ignore[attr-defined]
        except Exception:  # a model that cannot fit a series is left out of it
            preds[:] = np.nan
        out[name] = preds * scale
    return out


def _chunk(
    items: list[tuple[np.ndarray, bool, bool]], cuts: list[int], h: int, seasons: tuple[int, ...]
) -> list[dict[str, np.ndarray]]:
    os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
    with warnings.catch_warnings():
        # ETS and Theta searches hit overflow and divide warnings on flat stretches; the
        # search moves on, and a failed fit leaves the candidate out for that series.
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return [_one_series(z, log, u, cuts, h, seasons) for z, log, u in items]


class StatisticalRun:
    """The local models of one panel, started on creation and collected by `result`.

    With enough series they run in ``n_jobs`` worker processes, so the caller can do other
    work (the global model) while they fit; ``workers`` says how many run in the background
    (0: the models are fitted in this process when `result` is called). Close it (or use it
    as a context manager) to stop workers whose result is no longer wanted.
    """

    def __init__(
        self,
        series: list[Series],
        cuts: list[int],
        h: int,
        seasons: tuple[int, ...],
        n_jobs: int = 1,
        pool: SharedPool | None = None,
    ) -> None:
        self._series = series
        self._args = (cuts, h, seasons)
        # Intermittent series (more than a fifth of their buckets empty) get no local models:
        # AutoETS, AutoTheta and MSTL assume a continuous level and fit the empty buckets as
        # one; the seasonal baselines and the global model forecast the rate. Judged on the
        # whole benchmark (bench/forecast_accuracy.py trace cases 0.9484 -> 0.9442, worst 1.204
        # -> 1.179; bench/intermittent.py ratio of sums 1.02 / 1.39 -> 1.00 / 1.34) and
        # faster: 300 sparse series of three weeks, a week ahead, 50.6 s -> 18.9 s.
        self._fit = [j for j, s in enumerate(series) if not s.intermittent]
        self._items = [(series[j].z(), series[j].log, series[j].log_undecided) for j in self._fit]
        self.workers = min(n_jobs, len(self._items) // _MIN_SERIES_PER_WORKER)
        self._pool: ProcessPoolExecutor | None = None
        # A pool shared with other runs (`SharedPool`) is not this run's to shut down.
        self._owned = pool is None
        self._futures: list[Future[list[dict[str, np.ndarray]]]] = []
        if self.workers > 1:
            # Small chunks keep both workers busy to the end (the last chunk is the tail).
            per = -(-len(self._items) // (_CHUNKS_PER_WORKER * self.workers))
            size = max(1, min(per, _MAX_CHUNK))
            self._pool = (
                ProcessPoolExecutor(self.workers, mp_context=get_context("fork"))
                if pool is None
                else pool.get()
            )
            submit = self._pool.submit if pool is None else pool.submit
            self._futures = [
                submit(_chunk, self._items[k : k + size], *self._args)
                for k in range(0, len(self._items), size)
            ]
        else:
            self.workers = 0

    def __enter__(self) -> StatisticalRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (pending chunks are cancelled); in a shared pool, cancel this
        run's pending chunks only."""
        if self._pool is not None:
            if self._owned:
                self._pool.shutdown(wait=True, cancel_futures=True)
            else:
                for future in self._futures:
                    future.cancel()
            self._pool = None

    def result(self) -> dict[str, np.ndarray]:
        """``{method: array(cuts, series, h)}`` in usage units, NaN where a fit failed."""
        cuts, h, seasons = self._args
        if self._futures:
            results = [r for future in self._futures for r in future.result()]
        else:
            results = _chunk(self._items, cuts, h, seasons)
        self.close()
        names = statistical_names(seasons)
        if any(s.log_undecided for s in self._series):
            names += [name + RAW for name in names if name not in UNTRANSFORMED]
        out = {name: np.full((len(cuts), len(self._series), h), np.nan) for name in names}
        for j, got in zip(self._fit, results, strict=True):
            s = self._series[j]
            failed = []
            for name in names:
                pred = got.get(name)
                if pred is None:
                    continue
                ok = np.all(np.isfinite(pred), axis=1)
                out[name][ok, j] = s.unz(pred[ok])
                if not ok.any():
                    failed.append(name)
            if failed:
                # The backtest table has no row for them (nothing to score): the note says why.
                s.notes.append(f"{', '.join(failed)} could not be fitted to it (left out)")
        return out


def run_statistical(
    series: list[Series],
    cuts: list[int],
    h: int,
    seasons: tuple[int, ...],
    n_jobs: int = 1,
    pool: SharedPool | None = None,
) -> dict[str, np.ndarray]:
    """Predict every cut; returns ``{method: array(cuts, series, h)}`` (NaN where a fit failed)."""
    with StatisticalRun(series, cuts, h, seasons, n_jobs, pool) as run:
        return run.result()


class SharedPool:
    """One pool of ``workers`` forked processes for every `StatisticalRun` of a fit, started
    on first use and shut down by `close`.

    Runs submitted to it are served in order, so a fit can start the local models of a later
    step (the temporal step's sums, `tokenplan.forecast.temporal`) before the global model of
    an earlier one occupies this process: the workers stay busy meanwhile. Forked once, before
    any LightGBM thread exists, rather than once per run. Which process fits a series does not
    change its forecast.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._queued: list[Future[Any]] = []

    def get(self) -> ProcessPoolExecutor:
        """The pool, started on first call."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("fork"))
        return self._pool

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue ``fn(*args)`` in the pool (started on first use); `busy` counts it."""
        future = self.get().submit(fn, *args)
        self._queued.append(future)
        return future

    def busy(self) -> bool:
        """Whether any work submitted here is still queued or running."""
        self._queued = [future for future in self._queued if not future.done()]
        return bool(self._queued)

    def close(self) -> None:
        """Stop the workers (pending chunks are cancelled)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> SharedPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
