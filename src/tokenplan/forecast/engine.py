"""`Forecaster`: prepare series, run the candidates over backtest windows, choose, calibrate."""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import pandas as pd

from tokenplan.errors import ForecastError, InvalidInput
from tokenplan.forecast import selection as bt
from tokenplan.forecast.baselines import run_baselines, seasonal_naive, seen_once
from tokenplan.forecast.bootstrap import recent_history
from tokenplan.forecast.conformal import (
    COMMON_PRIOR,
    SHIFT_SHARE,
    SHIFT_SHARES,
    TAIL_WINDOWS,
    adaptive_bounds,
    choose_shares,
    common_prior,
    cross_coverage,
    independent_windows,
    log_shift,
    mirrored_bounds,
    path_tail_df,
    reference_errors,
    small_sample_widening,
    sum_widening,
)
from tokenplan.forecast.fallbacks import (
    BLIND_MODELS,
    MSTL,
    adjusted,
    blind_median,
    cycle_shape,
    drifting_errors,
    fallback,
    shape_at,
)
from tokenplan.forecast.hierarchy import cap_parts, reconcile_to_total, total_of
from tokenplan.forecast.preparation import (
    REGULAR,
    SHORT,
    STOPPED,
    Series,
    classify,
    one_cycle,
    to_series,
    validate,
)
from tokenplan.forecast.result import (
    ForecastResult,
    PathModel,
    from_calibration,
    level_name,
    to_calibration,
)
from tokenplan.forecast.statistical import RAW, SharedPool, StatisticalRun, run_statistical
from tokenplan.forecast.temporal import WINDOWS as SUM_WINDOWS
from tokenplan.forecast.temporal import adjust, sums_frame
from tokenplan.frequency import make_cadence

# The global model needs some rows to learn from.
_MIN_BOOSTING_ROWS = 200
# A backtest group of this many series has its baselines computed in the worker processes.
_MIN_POOLED_BASELINES = 200


# A series too short to backtest: its fallback's point forecast (modelling space), residuals,
# note, and the ``c`` of the space ``log(y + c)`` the residuals are in (`fallbacks.fallback`).
Short = tuple[Series, np.ndarray, np.ndarray, str, float]


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
    # Degrees of freedom of the sample paths' common scale (`conformal.path_tail_df`).
    tail_df: float = float("inf")
    # The prior of the paths' common share (`conformal.common_prior`).
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


@dataclass
class PanelFit:
    """Every series of a panel fitted, not yet reconciled or assembled (what a shard returns)."""

    series: list[Placed] = field(default_factory=list)
    fitted: dict[str, Fitted] = field(default_factory=dict)
    rows: list[dict[str, object]] = field(default_factory=list)

    def add(self, other: PanelFit) -> None:
        """Append another panel's series, fits and backtest rows."""
        self.series += other.series
        self.fitted |= other.fitted
        self.rows += other.rows


# Coverage counted in a worker, per candidate, and the backtest rows (row, candidate, series
# index in its group) it belongs in.
_Coverage = tuple[
    dict[str, Future[dict[float, np.ndarray]]], list[tuple[dict[str, object], str, int]]
]


def fill_coverage(pending: list[_Coverage], levels: tuple[float, ...]) -> None:
    """Put the coverage counted in the workers into its backtest rows."""
    for later, group_rows in pending:
        coverage = {name: future.result() for name, future in later.items()}
        for row, name, j in group_rows:
            for level in levels:
                row[f"coverage_{level_name(level)}"] = float(coverage[name][level][j])
    pending.clear()


@dataclass
class _Plan:
    """A panel prepared for fitting: its series, those too short to backtest with their
    fallbacks, the rest by (seasons, cuts), and each group's local models once started."""

    series: list[Series]
    short: list[Short]
    groups: dict[tuple[tuple[int, ...], tuple[int, ...]], list[Series]]
    local: bool
    runs: dict[tuple[tuple[int, ...], tuple[int, ...]], StatisticalRun] = field(
        default_factory=dict
    )
    # The pool of the panel's workers (`_start`), and the backtest rows whose coverage they
    # count (`fill_coverage`).
    pool: SharedPool | None = None
    pending: list[_Coverage] = field(default_factory=list)
    # Each large group's baselines, computed in the pool's workers in chunks of series.
    baselines: dict[
        tuple[tuple[int, ...], tuple[int, ...]], list[Future[dict[str, np.ndarray]]]
    ] = field(default_factory=dict)


class Forecaster:
    """Choose, fit and calibrate a forecaster per series by rolling-origin backtest."""

    def __init__(
        self,
        freq: str = "1h",
        horizon: int = 168,
        levels: Sequence[float] = (80, 95),
        *,
        hierarchy: str | None = None,
        local_models: bool | None = None,
        lightgbm: bool = True,
        n_windows: int | None = None,
        threads: int | None = None,
        engine: object = None,
        engine_address: str | None = None,
        shard_size: int = 500,
        temporal: bool = True,
        backtest_coverage: bool = True,
    ) -> None:
        if not isinstance(horizon, int | np.integer) or isinstance(horizon, bool) or horizon < 1:
            raise InvalidInput(
                f"horizon must be a positive whole number of buckets, not {horizon!r}."
            )
        levels = tuple(float(x) for x in levels)
        if not levels or any(not 0 < x < 100 for x in levels):
            raise InvalidInput(
                f"levels must be percentages strictly between 0 and 100, not {levels}."
            )
        self.cadence = make_cadence(freq)
        self.freq = freq
        self.horizon = int(horizon)
        self.levels = tuple(sorted(set(levels)))
        self.hierarchy = hierarchy
        self.local_models = local_models
        self.lightgbm = lightgbm
        self.n_windows = n_windows
        self.threads = threads
        # Nudge block totals toward a forecast of block sums (tokenplan.forecast.temporal).
        self.temporal = temporal
        # Each candidate's held-out coverage in the backtest table (``coverage_<L>``): a tenth
        # of the work on a large panel (`conformal.cross_coverage` per candidate), read only
        # by that table, so a caller that shows no backtest (`tokenplan forecast`) can skip it.
        self.backtest_coverage = backtest_coverage
        # Where the per-series work runs: None or "local" here; "dask", "ray", "spark" or an
        # engine object (a Dask Client, a SparkSession, a fugue engine) in shards of about
        # ``shard_size`` series (see tokenplan.scale). Not part of `config`: it changes where
        # the work runs, and with more than ``shard_size`` series what the global model sees.
        self.engine = engine
        self.engine_address = engine_address
        if not _is_local(engine):
            from tokenplan.scale.engines import parse_engine

            parse_engine(engine)  # an unknown engine or a missing extra fails here, not in fit
        if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
            raise InvalidInput(f"shard_size must be a positive whole number, not {shard_size!r}.")
        self.shard_size = shard_size
        # Worker processes and LightGBM threads: by default every core this process may use.
        self.cores = max(1, threads or _available_cores())
        self.result: ForecastResult | None = None
        self.metadata: dict[str, object] = {}
        # Only each backtested series' point forecast and backtest errors are wanted (the
        # temporal step's run on the sums): no bands, calibration or backtest rows.
        self._point_only = False

    def config(self) -> dict[str, object]:
        """The constructor arguments, as plain values."""
        return {
            "freq": self.freq,
            "horizon": self.horizon,
            "levels": list(self.levels),
            "hierarchy": self.hierarchy,
            "local_models": self.local_models,
            "lightgbm": self.lightgbm,
            "n_windows": self.n_windows,
            "threads": self.threads,
            "temporal": self.temporal,
            "backtest_coverage": self.backtest_coverage,
        }

    def fit(self, df: pd.DataFrame, *, now: datetime | None = None) -> Forecaster:
        """Backtest every candidate on ``df``, choose per series, calibrate, forecast."""
        data = validate(df)
        if data.empty:
            raise InvalidInput("forecast input has no rows; give at least one value per series.")
        if not _is_local(self.engine):
            # In shards on a distributed engine (tokenplan.scale), imported only here: the
            # local path loads nothing of fugue or the engines.
            from tokenplan.scale.sharded import run_sharded

            self.result, where = run_sharded(self, data)
            self.result.restore_ids(df["unique_id"].drop_duplicates().tolist())
            self.metadata = _metadata(data, self.result, now) | {"engine": where}
            return self
        if self.hierarchy is None:
            panel = self.fit_panel(data)
        else:
            # The total is forecast on its own, exactly as without a split (the global model
            # and the batching never see the parts), then the parts are reconciled to it.
            alone = total_of(data, str(self.hierarchy))
            panel = self.fit_panel(data)
            panel.add(self.fit_panel(alone))
        self.result = self.finish(panel)
        self.result.restore_ids(df["unique_id"].drop_duplicates().tolist())
        self.metadata = _metadata(data, self.result, now)
        return self

    def fit_panel(self, data: pd.DataFrame) -> PanelFit:
        """Fit every series of a validated frame together (no hierarchy, no assembly)."""
        # One pool of workers for every local-model run of the panel and of its sums: the
        # sums' local models start before the base panel's global model and selection, and
        # fit meanwhile (the order of the work changes, not its results).
        with SharedPool(self.cores) as pool:
            plan = self._plan(data)
            fitted, rows = self._fit_short(plan, pool)
            self._start(plan, pool)
            prepared = sums_frame(plan.series, self.horizon) if self.temporal else None
            sums: tuple[Forecaster, _Plan, tuple[int, list[Series], pd.DataFrame]] | None = None
            if prepared is not None:
                k, _, frame = prepared
                forecaster = self._sums_forecaster(k)
                sums_plan = forecaster._plan(validate(frame))
                # Fallbacks of sums too short to backtest: `adjust` never reads them.
                forecaster._fit_short(sums_plan, pool, blind=False)
                forecaster._start(sums_plan, pool)
                sums = (forecaster, sums_plan, prepared)
            errors = self._fit_groups(plan, fitted, rows)
            if sums is not None:
                forecaster, sums_plan, prepared = sums
                sum_fitted, sum_rows = forecaster._fit_short(sums_plan, pool, blind=False)
                sum_errors = forecaster._fit_groups(sums_plan, sum_fitted, sum_rows)
                adjust(fitted, errors, prepared, sum_fitted, sum_errors)
            fill_coverage(plan.pending, self.levels)
        return PanelFit(list(plan.series), fitted, rows)

    def _sums_forecaster(self, k: int) -> Forecaster:
        """The forecaster of ``k``-bucket sums, ``horizon / k`` blocks ahead, for the temporal
        step: it returns only what that step reads (each series' point forecast and its
        chosen forecast's backtest errors), without bands or backtest rows."""
        sums = Forecaster(
            f"{self.cadence.seconds * k}s",
            self.horizon // k,
            self.levels,
            local_models=self.local_models,
            lightgbm=self.lightgbm,
            n_windows=min(self.n_windows or SUM_WINDOWS, SUM_WINDOWS),
            threads=self.threads,
            temporal=False,
        )
        sums._point_only = True
        return sums

    def finish(self, panel: PanelFit) -> ForecastResult:
        """Reconcile the parts to the total (with a hierarchy) and draw the intervals."""
        if self.hierarchy is not None:
            self._reconcile(panel.series, panel.fitted)
        result = self._assemble(panel.series, panel.fitted, panel.rows)
        if self.hierarchy is not None:
            result.frame = cap_parts(result.frame, str(self.hierarchy), self.levels)
        return result

    def _plan(self, data: pd.DataFrame) -> _Plan:
        """Prepare and classify the series; group the backtested ones by seasons and cuts,
        the rest with their fallbacks."""
        h = self.horizon
        series = to_series(data, self.cadence)
        for s in series:
            classify(s, self.cadence, h, sums=self._point_only)
        groups: dict[tuple[tuple[int, ...], tuple[int, ...]], list[Series]] = defaultdict(list)
        max_windows = self.n_windows or bt.default_windows(h)
        short: list[Short] = []
        for s in series:
            if s.kind == REGULAR:
                seasons, cuts = bt.plan_windows(len(s.y), h, self.cadence, max_windows)
                # Seen for one cycle or more but not two, a series could be backtested only
                # by candidates that cannot see the cycle's shape: a flat line won that backtest
                # for 40-47 hours of hourly traffic a day ahead, at 5-6x seasonal naive's error
                # on M4 hourly, where 36 or 48 hours (too short to backtest) got the day's
                # shape. It gets the fallback's median instead (`_blind_once`), after the
                # repairs that `classify` made (its gaps filled, its bursts damped). Exactly
                # one cycle too: one day of 10-minute buckets backtested so was 1.09x AutoETS's
                # error two hours ahead and 1.39x seasonal naive's six hours ahead, the median
                # 0.98x and 0.74x (bench/one_day.py).
                if cuts and (seasons or not one_cycle(len(s.y), self.cadence.primary)):
                    groups[(seasons, tuple(cuts))].append(s)
                    continue
                s.kind = SHORT
            short.append((s, *fallback(s, h, self.cadence)))
        local = True if self.local_models is None else bool(self.local_models)
        return _Plan(series, short, groups, local)

    def _fit_short(
        self, plan: _Plan, pool: SharedPool, *, blind: bool = True
    ) -> tuple[dict[str, Fitted], list[dict[str, object]]]:
        """Fits and backtest rows of the series too short to backtest (`_blind` unless
        ``blind`` is False: the fallback alone)."""
        fitted: dict[str, Fitted] = {}
        rows: list[dict[str, object]] = []
        short = self._blind(plan.short, plan.local, pool) if blind else plan.short
        for s, point_z, errors, note, shift in short:
            if s.notes:  # what preparation repaired, as a backtested series says it
                note += "; " + "; ".join(s.notes)
            fitted[s.uid] = Fitted(
                s.unz(point_z),
                errors,
                s.log,
                note,
                note.split(",")[0],
                _fallback_variance(s),
                0,
                ceiling=bt.ceiling(s),
                tail_df=path_tail_df(0),
                shift=shift,
            )
            rows.append(
                {
                    "unique_id": s.uid,
                    "method": "fallback",
                    "mase": np.nan,
                    "smape": np.nan,
                    "chosen": True,
                    "why": (
                        "a cycle seen, not two: no backtest can judge its shape"
                        if one_cycle(len(s.y), self.cadence.primary)
                        else "too short to backtest"
                    ),
                }
            )
        return fitted, rows

    def _start(self, plan: _Plan, pool: SharedPool) -> None:
        """Start the local models of every backtest group (in ``pool`` where there are many
        series), in the order the groups are fitted."""
        h = self.horizon
        if self.cores > 1:
            plan.pool = pool
        for key, members in plan.groups.items():
            seasons, cuts = key
            if not plan.local:
                for s in members:
                    s.notes.append("local statsforecast models off (local_models=False)")
            else:
                for s in members:
                    if s.intermittent:
                        s.notes.append(
                            "no local statsforecast models: they would fit its empty buckets"
                            " as a level"
                        )
                plan.runs[key] = StatisticalRun(
                    members, [0, *cuts], h, seasons, n_jobs=self.cores, pool=pool
                )
            if self.cores > 1 and len(members) >= _MIN_POOLED_BASELINES:
                # Queued after the local models: the workers compute them while this process
                # fits the global model (numpy only, the same values as here).
                once = self._once(members, seasons, cuts)
                size = -(-len(members) // self.cores)
                plan.baselines[key] = [
                    pool.submit(run_baselines, members[k : k + size], [0, *cuts], h, seasons, once)
                    for k in range(0, len(members), size)
                ]

    def _fit_groups(
        self, plan: _Plan, fitted: dict[str, Fitted], rows: list[dict[str, object]]
    ) -> dict[str, np.ndarray]:
        """Fit every backtest group (into ``fitted`` and ``rows``); each backtested series'
        chosen forecast's backtest errors in usage units ``(W, h)``."""
        backtest: dict[str, np.ndarray] = {}
        for key, members in plan.groups.items():
            seasons, cuts = key
            statistical = plan.runs.pop(key, None)
            baselines = plan.baselines.pop(key, None)
            self._fit_group(
                members,
                seasons,
                list(cuts),
                statistical,
                baselines,
                fitted,
                rows,
                backtest,
                plan.pool,
                plan.pending,
            )
        return backtest

    def _blind(
        self,
        short: list[Short],
        local: bool,
        pool: SharedPool | None = None,
    ) -> list[Short]:
        """Fallbacks of series with two cycles or more: their point forecast becomes the median
        of the profile, seasonal naive and the local models (`fallbacks.blind_median`); of
        series with one to two, the median of seasonal naive and the local models fitted
        without the season (`_blind_once`)."""
        h, primary = self.horizon, self.cadence.primary
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        once: list[int] = []
        for i, (s, *_) in enumerate(short):
            seasons = self.cadence.usable(len(s.y))  # the primary first, if any
            if s.kind == SHORT and seasons:
                groups[seasons].append(i)
            elif s.kind == SHORT and one_cycle(len(s.y), primary):
                once.append(i)
        out = list(short)
        if local and once:
            self._blind_once(short, once, out, pool)
        for seasons, at in groups.items():
            members = [short[i][0] for i in at]
            preds: dict[str, np.ndarray] = {}
            if local:
                # Fitted both ways where the series is in log space, as an undecided one is.
                both = [replace(s, log_undecided=s.log) for s in members]
                preds = run_statistical(both, [0], h, seasons, n_jobs=self.cores, pool=pool)
                bt.cap_runaway(preds, members, [0])
            for j, i in enumerate(at):
                s, profile, errors, note, shift = short[i]
                others = [seasonal_naive(s.z(), primary, h)]
                names = ["seasonal naive"]
                for choices in BLIND_MODELS:
                    name = next((c for c in choices if c in preds), None)
                    if name is not None and np.all(np.isfinite(preds[name][0, j])):
                        others.append(s.z(preds[name][0, j]))
                        names.append(name.removesuffix(RAW))
                twice = ""
                if MSTL in names:  # counted twice (`fallbacks.blind_median`)
                    others.append(others[names.index(MSTL)])
                    twice = f", {MSTL} counted twice"
                point = blind_median(profile, others)
                note = (
                    f"{note}; forecast: the median of that profile, {', '.join(names[:-1])}"
                    f" and {names[-1]} (no backtest to choose among them{twice})"
                    if len(names) > 1
                    else f"{note}; forecast: the mean of that profile and {names[0]}"
                )
                out[i] = (s, point, errors, note, shift)
        return out

    def _blind_once(
        self,
        short: list[Short],
        at: list[int],
        out: list[Short],
        pool: SharedPool | None = None,
    ) -> None:
        """Series seen for one to two cycles: the median of seasonal naive and the local models
        fitted without a season on the series with its last cycle's shape taken out
        (`fallbacks.cycle_shape`), that shape put back on their forecasts."""
        h, primary = self.horizon, self.cadence.primary
        members = [short[i][0] for i in at]
        shapes, kept = zip(*(cycle_shape(s.z(), primary) for s in members), strict=True)
        flat = [adjusted(s, shape) for s, shape in zip(members, shapes, strict=True)]
        both = [replace(s, log_undecided=s.log) for s in flat]
        preds = run_statistical(both, [0], h, (), n_jobs=self.cores, pool=pool)
        for j, i in enumerate(at):
            s, naive, errors, note, shift = short[i]
            n = len(s.y)
            again = shape_at(shapes[j], n, n, n + h)
            limit = s.z(np.array([bt.ceiling(s)]))[0]
            others, names = [], []
            for choices in BLIND_MODELS:
                name = next((c for c in choices if c in preds), None)
                if name is not None and np.all(np.isfinite(preds[name][0, j])):
                    others.append(np.minimum(flat[j].z(preds[name][0, j]) + again, limit))
                    names.append(name.removesuffix(RAW))
            if not others:
                continue
            # Seasonal naive's errors a cycle apart hold the level's drift between cycles,
            # which the level-following models already follow: centred, the band sits around
            # the median rather than beside it. Judged by the interval score at 80% / 95%
            # over the same slices' before (bench/short_fallback.py --quick, geometric mean
            # per slice): M4 hourly from 36 hours 0.91 / 0.88 centred, 1.01 / 1.00 as they
            # were, 1.17 / 1.08 centred and scaled back to their mean square; the traces' 36
            # hours 0.93 / 0.86, 1.07 / 0.99, 1.16 / 1.00. Centred, M4's 95% band covers less
            # (96% -> 85%): its outer band mirrors these errors, and their drift mirrored
            # had made it wide.
            if drifting_errors(n, primary):
                errors = errors - np.mean(errors, axis=0)
            out[i] = (
                s,
                blind_median(naive, others),
                errors,
                f"{note}; forecast: the median of that, {' and '.join(names)}, fitted"
                f" without a season on the history less {kept[j]:.0%} of its last cycle's"
                " shape, which is put back (no backtest to choose among them)",
                shift,
            )

    def predict(self) -> ForecastResult:
        """The forecast made by the last `fit` (or stored in a loaded file)."""
        if self.result is None:
            raise ForecastError("this Forecaster is not fitted; call fit(df) or load a saved one.")
        return self.result

    def save(self, path: str, *, key: bytes | None = None) -> None:
        """Write the fitted forecaster as checksummed JSON (HMAC-signed when ``key`` is given)."""
        from tokenplan.forecast.persistence import save

        save(self, path, key=key)

    @classmethod
    def load(cls, path: str, *, key: bytes | None = None) -> Forecaster:
        """Read a file written by `save`; raise `ModelFileError` if tampered with or foreign."""
        from tokenplan.forecast.persistence import load

        return load(path, key=key)

    def _once(
        self, members: list[Series], seasons: tuple[int, ...], cuts: tuple[int, ...]
    ) -> tuple[int, ...]:
        """Longer seasons seen once before the earliest cut (`baselines.seen_once`)."""
        shortest = min(len(s.y) for s in members) - max(cuts)
        return seen_once(self.cadence.seasons, seasons, shortest)

    def _fit_group(
        self,
        members: list[Series],
        seasons: tuple[int, ...],
        cuts: list[int],
        statistical: StatisticalRun | None,
        baselines: list[Future[dict[str, np.ndarray]]] | None,
        fitted: dict[str, Fitted],
        rows: list[dict[str, object]],
        backtest_errors: dict[str, np.ndarray],
        pool: SharedPool | None = None,
        pending: list[_Coverage] | None = None,
    ) -> None:
        h = self.horizon
        all_cuts = [0, *cuts]
        with ExitStack() as stack:
            if statistical is not None:
                # Started before (`_start`): the local models fit in worker processes while
                # this one runs the baselines and the global model.
                stack.callback(statistical.close)
            shortest = min(len(s.y) for s in members) - max(cuts)
            once = self._once(members, seasons, tuple(cuts))
            if once:
                note = (
                    f"season {', '.join(map(str, once))} seen once: its seasonal naive is a "
                    "candidate, the models wait for two cycles"
                )
                for s in members:
                    s.notes.append(note)
            boosting: dict[str, np.ndarray] = {}
            if self.lightgbm and shortest * len(members) >= _MIN_BOOSTING_ROWS:
                from tokenplan.forecast.boosting import run_boosting

                # Every core once the pool's workers (this group's local models among them)
                # are idle, often so by the time the temporal step's sums are fitted; one
                # while they work.
                threads = 1 if pool is not None and pool.busy() else self.cores
                boosting = run_boosting(
                    members, all_cuts, h, seasons, threads, predict_threads=self.cores
                )
            if baselines:
                parts = [future.result() for future in baselines]
                preds = {
                    name: np.concatenate([p[name] for p in parts], axis=1) for name in parts[0]
                }
            else:
                preds = run_baselines(members, all_cuts, h, seasons, once)
            preds |= boosting  # the candidates in the same order as ever
            if statistical:
                preds |= statistical.result()
        bt.cap_runaway(preds, members, all_cuts)
        actual = bt.actual_windows(members, cuts, h)
        scale = bt.mase_scale(members, self.cadence)
        mase: dict[str, np.ndarray] = {}
        smape: dict[str, np.ndarray] = {}
        # Intermittent series are judged by squared errors: absolute ones reward forecasting
        # the typical bucket, about zero, where a plan needs the expected one.
        flags = np.array([s.intermittent for s in members], dtype=bool)
        squared = flags if flags.any() else None  # None: every series is judged by MASE
        weights = bt.window_weights(members, cuts)
        scored, partial = bt.judged_windows(preds, actual)
        unknown = np.isnan(actual).all(axis=2)  # (W, n): nothing to judge there anyway
        for name, pred in preds.items():
            mase[name], smape[name] = bt.scores(pred[1:], scored, scale, weights=weights)
        judged = (
            dict(mase)
            if squared is None
            else {n: bt.scores(p[1:], scored, scale, squared, weights)[0] for n, p in preds.items()}
        )
        ranking = bt.shrunk_scores(judged, len(cuts))
        e = bt.early_steps(h)
        early = None
        if e:
            first = {
                n: bt.scores(p[1:, :, :e], scored[:, :, :e], scale, squared, weights)[0]
                for n, p in preds.items()
            }
            early = bt.shrunk_scores(first, len(cuts))
        # Weights by ensemble selection where the backtest holds enough whole cycles.
        greedy = bt.ensemble_evidence(cuts, h, self.cadence.primary)
        combination = bt.add_combination(
            preds, ranking, early, squared, (scored, weights) if greedy else None
        )
        combined = combination.members
        if combined:
            name = bt.COMBINATION
            mase[name], smape[name] = bt.scores(preds[name][1:], scored, scale, weights=weights)
            judged[name] = (
                mase[name]
                if squared is None
                else bt.scores(preds[name][1:], scored, scale, squared, weights)[0]
            )
        per_window = {
            name: bt.window_errors(pred[1:], scored, squared) for name, pred in preds.items()
        }
        choices = bt.choose(judged, per_window)
        chosen = [c.method for c in choices]
        if self._point_only:
            # What the temporal step reads: the chosen point forecast and its backtest errors.
            for j, s in enumerate(members):
                method = chosen[j]
                fitted[s.uid] = Fitted(
                    point=np.maximum(preds[method][0, j], 0.0),
                    errors=np.zeros((0, h)),
                    log=s.log,
                    note="",
                    method=method,
                    variance=1.0,
                    independent=0,
                )
                backtest_errors[s.uid] = actual[:, j, :] - preds[method][1:, j, :]
            return
        log = np.array([s.log for s in members])[None, :, None]
        # The bands (and a part's error variance in a split) judge the windows before a level
        # shift at its new level (`Series.judged`): scored on the old one, every window before
        # a x10 drop erred 10x for every candidate alike, and the bands of a model that 90% of
        # the traffic had left ran to 13x its new level. The choice above keeps the record: it
        # hedges a shift read into a two-day lull (M4 H346: sMAPE 37 -> 78 when the choice was
        # judged at the new level too; bench/level_shifts.py's x1/3 rows followed less well).
        held = (
            bt.actual_windows(members, cuts, h, judged=True)
            if any(s.level_shift is not None for s in members)
            else actual
        )
        shift, shares = self._shifts(members, held, preds, chosen)
        shift = shift[None, :, None]
        z_actual = to_calibration(held, log, shift)
        coverage: dict[str, dict[float, np.ndarray]] = {}
        errors: dict[str, np.ndarray] = {}
        # A large group's coverage (read only by the backtest rows) is counted in the pool's
        # workers, after the work queued before it, and filled in when the panel is done.
        offload = pool is not None and pending is not None
        workers = pool if offload and len(members) >= _MIN_POOLED_BASELINES else None
        later: dict[str, Future[dict[float, np.ndarray]]] = {}
        for name, pred in preds.items():
            err = (z_actual - to_calibration(pred[1:], log, shift)).transpose(1, 0, 2)  # (n, W, h)
            errors[name] = err
            if not self.backtest_coverage:
                continue
            if workers is not None:
                later[name] = workers.submit(cross_coverage, err, self.levels)
            else:
                coverage[name] = cross_coverage(err, self.levels)
        group_rows: list[tuple[dict[str, object], str, int]] = []
        independent = independent_windows(cuts, h)  # the same for every member
        for j, s in enumerate(members):
            method = chosen[j]
            # The runner-up by the score the choice read: squared errors for intermittent series.
            by = judged if s.intermittent else mase
            ranked = sorted(by, key=lambda m, j=j, by=by: float(by[m][j]))  # type: ignore[misc]
            runner = next((m for m in ranked if m != method and np.isfinite(by[m][j])), None)
            what = method
            if method == bt.COMBINATION and len(combined[j]) == 1:
                # A mean of one is that candidate: say so, and why nothing joined it.
                what = (
                    f"{method} ({combined[j][0]} alone: no other candidate's backtest score"
                    f" within {bt.GATE:g}x of its)"
                )
            elif method == bt.COMBINATION:
                mean = "weighted mean" if s.intermittent else "weighted geometric mean"
                how = "; weights by ensemble selection" if combination.selected[j] else ""
                what = f"{method} ({mean} of {', '.join(combined[j])}{how})"
            note = (
                f"chose {what}: backtest MASE {mase[method][j]:.3f} over {len(cuts)} window(s)"
                + _ranking(method, runner, judged if s.intermittent else None, mase, j)
                + _why_kept(choices[j], judged, j, squared=s.intermittent)
                + f"; {'log1p' if s.log else 'no'} transform"
                + (
                    " (local models also fitted untransformed: too short to test the spread)"
                    if s.log_undecided
                    else ""
                )
                + f"; seasons {list(seasons) or 'none'}"
            )
            left_out = int(np.sum(np.isnan(scored[:, j]).all(axis=1) & ~unknown[:, j]))
            if left_out:
                short = [n for n in partial if partial[n][j]]
                note += (
                    f"; every candidate judged without the {left_out} window(s) that"
                    f" {', '.join(short)} could not forecast (too little history before them)"
                )
            if not seasons and self.cadence.seasons:
                need = 2 * self.cadence.primary
                note += f"; no seasonal profile (needs {need} buckets, two cycles of {need // 2})"
            if independent < TAIL_WINDOWS and self.levels:
                note += (
                    f"; {independent} non-overlapping backtest window(s), too few to tell which"
                    " way it will err: every band at least what its errors and their mirror"
                    " image give"
                )
            if s.log and shares[j] != SHIFT_SHARE:
                note += (
                    f"; bands in log(y + {float(shift[0, j, 0]):.6g}), {shares[j]:g}x the recent"
                    " level: the lowest backtest interval score"
                )
            if s.notes:
                note += "; " + "; ".join(s.notes)
            history = None
            if s.intermittent:
                history = recent_history(s.y, self.cadence.primary)
                cycles = len(history) / self.cadence.primary
                note += (
                    f"; sums' bands from blocks of its last {cycles:.3g} cycle(s), half scaled to"
                    " the forecast's rate (block bootstrap)"
                )
            err_raw = held[:, j, :] - preds[method][1:, j, :]
            c = float(shift[0, j, 0])
            calibration = errors[method][j]
            widen = path_widen = 1.0
            borrowed = 0
            if independent < TAIL_WINDOWS:
                pooled = _with_reference(calibration, s, h, seasons, independent, c)
                borrowed = len(pooled) - len(calibration)
                if borrowed:
                    note += (
                        f"; bands also from seasonal naive's latest {borrowed} window(s),"
                        " which erred more"
                    )
                widen = small_sample_widening(independent + borrowed)
                path_widen = sum_widening(independent + borrowed)
                if widen > 1.0:
                    sums = "" if s.intermittent else f" (sums x{path_widen:.2f})"
                    note += (
                        f"; bands x{widen:.2f}{sums} for"
                        f" {independent + borrowed} independent window(s) (Student t)"
                    )
                calibration = pooled
            fitted[s.uid] = Fitted(
                point=np.maximum(preds[method][0, j], 0.0),
                errors=calibration,
                log=s.log,
                note=note,
                method=method,
                variance=float(np.nanmean(err_raw**2)) if np.any(~np.isnan(err_raw)) else 1.0,
                independent=independent,
                widening=widen,
                path_widening=path_widen,
                ceiling=bt.ceiling(s),
                shift=c,
                tail_df=path_tail_df(independent + borrowed),
                history=history,
                season=self.cadence.primary,
                common_prior=common_prior(
                    to_calibration(s.judged(), s.log, c), h, seasons[0] if seasons else 1
                ),
            )
            # The temporal step weighs these against its sums' errors, scored on the record.
            backtest_errors[s.uid] = actual[:, j, :] - preds[method][1:, j, :]
            for name in mase:
                made = ~np.isnan(preds[name][:, j]).all(axis=1)  # (C,): final, then windows
                if not made.any():
                    # Not a candidate of this series (the local models skip intermittent
                    # series; some baselines need more cycles), or it failed throughout
                    # (`StatisticalRun` notes it): a row of it would only say "inf".
                    continue
                score = float(mase[name][j])
                row: dict[str, object] = {
                    "unique_id": s.uid,
                    "method": name,
                    "mase": score if np.isfinite(score) else np.nan,
                    "smape": float(smape[name][j]) if np.isfinite(score) else np.nan,
                    "chosen": name == method,
                    "why": "" if np.isfinite(score) else _undefined(made, len(cuts)),
                }
                if later:
                    group_rows.append((row, name, j))
                elif coverage:
                    for level in self.levels:
                        row[f"coverage_{level_name(level)}"] = float(coverage[name][level][j])
                rows.append(row)
        if later and pending is not None:
            pending.append((later, group_rows))

    def _shifts(
        self,
        members: list[Series],
        actual: np.ndarray,
        preds: dict[str, np.ndarray],
        chosen: list[str],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per series, ``c`` of its calibration space ``log(y + c)`` and the share of the recent
        level it is (`conformal.choose_shares`)."""
        season = self.cadence.primary
        options = np.array(
            [[log_shift(s.actual, season, share) for share in SHIFT_SHARES] for s in members]
        )
        default = SHIFT_SHARES.index(SHIFT_SHARE)
        best = np.full(len(members), default)
        logged = [j for j, s in enumerate(members) if s.log]
        if logged and self.levels:
            pred = np.stack([preds[chosen[j]][1:, j] for j in logged])  # (n, W, h)
            best[logged] = choose_shares(
                actual[:, logged].transpose(1, 0, 2), pred, options[logged], self.levels
            )
        picked = np.take_along_axis(options, best[:, None], axis=1)[:, 0]
        return picked, np.asarray(SHIFT_SHARES)[best]

    def _reconcile(self, series: Sequence[Placed], fitted: dict[str, Fitted]) -> None:
        total_id = str(self.hierarchy)
        end = next(s.end for s in series if s.uid == total_id)
        # Parts whose history stops before the total's forecast other buckets; they are
        # capped by the total's quantiles in `cap_parts` but not shared its mean.
        parts = [s.uid for s in series if s.uid != total_id and s.end == end]
        # A part with no error variance (stopped, or all zeros) keeps its forecast: a share of
        # the gap in proportion to nothing is a rounding error of about 1e-24.
        moving = [u for u in parts if fitted[u].variance > 0]
        parts = moving or parts
        if not parts:
            return
        point_parts = reconcile_to_total(
            fitted[total_id].point,
            np.stack([fitted[u].point for u in parts]),
            np.array([fitted[u].variance for u in parts]),
        )
        fitted[total_id].note += "; the parts are reconciled to it"
        for uid, point in zip(parts, point_parts, strict=True):
            fitted[uid].point = point
            fitted[
                uid
            ].note += f"; reconciled to sum to {total_id!r} (gap shared by backtest error variance)"

    def _assemble(
        self, series: Sequence[Placed], fitted: dict[str, Fitted], rows: list[dict[str, object]]
    ) -> ForecastResult:
        h = self.horizon
        paths: dict[str, PathModel] = {}
        point = np.stack([fitted[s.uid].point for s in series])  # (n, h), usage units
        log = np.array([fitted[s.uid].log for s in series])
        shift = np.array([fitted[s.uid].shift for s in series])[:, None]
        point_z = to_calibration(point, log[:, None], shift)
        bands = {
            level: (np.empty((len(series), h)), np.empty((len(series), h))) for level in self.levels
        }
        few = np.array([fitted[s.uid].independent < TAIL_WINDOWS for s in series])
        # Every band of a few-window series reaches at least `mirrored_bounds` (zero offsets,
        # no effect, elsewhere); applied after the widening, which it already holds. A series
        # too short to backtest (no window) has the widest band mirrored only: its errors are
        # its profile's, already widened for want of a backtest (`fallbacks`), and mirrored
        # at every level they took bench/short_fallback.py's 80% band from 86.0% to 90.2% and
        # its interval score from 9.39 to 10.38.
        inner_too = np.array([fitted[s.uid].independent > 0 for s in series])[:, None]
        widest = max(self.levels, default=None)
        mirror = {
            level: (np.zeros((len(series), h)), np.zeros((len(series), h))) for level in self.levels
        }
        # Bounds for all series at once, in groups of equal residual shape.
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for j, s in enumerate(series):
            by_shape[fitted[s.uid].errors.shape].append(j)
        for members in by_shape.values():
            errors = np.stack([fitted[series[j].uid].errors for j in members])
            for level, (lo_off, hi_off) in adaptive_bounds(errors, self.levels).items():
                bands[level][0][members] = lo_off
                bands[level][1][members] = hi_off
            short = few[members]
            if short.any():
                picked = np.asarray(members)[short]
                for level, (lo_off, hi_off) in mirrored_bounds(errors[short], self.levels).items():
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
                "ds": _horizon_stamps(series, h).ravel(),
                "mean": point.ravel(),
            }
        )
        ceiling = np.maximum(np.array([fitted[s.uid].ceiling for s in series])[:, None], point)
        inner_lo, inner_hi = point, point
        for level in self.levels:  # ascending, so wider levels nest around narrower ones
            lo_off, hi_off = bands[level]
            lo = np.minimum(_to_usage(point_z + lo_off, log, shift), inner_lo)
            raw_hi = _to_usage(point_z + hi_off, log, shift)
            hi = np.maximum(np.minimum(raw_hi, ceiling), inner_hi)
            frame[f"lo_{level_name(level)}"] = lo.ravel()
            frame[f"hi_{level_name(level)}"] = hi.ravel()
            inner_lo, inner_hi = lo, hi
        if self.levels:  # the widest level's raw upper band, left by the loop
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
        for level in self.levels:
            columns += [f"lo_{level_name(level)}", f"hi_{level_name(level)}"]
        if not np.all(np.isfinite(frame[columns[2:]].to_numpy())):
            raise ForecastError(
                "a forecast came out non-finite; please report this with the input."
            )
        table = pd.DataFrame(rows)
        counted = self.levels if self.backtest_coverage else ()
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
            levels=self.levels,
            horizon=h,
            freq=self.freq,
            paths=paths,
            total_id=self.hierarchy,
        )


def _ranking(
    method: str,
    runner: str | None,
    squared: dict[str, np.ndarray] | None,
    mase: dict[str, np.ndarray],
    j: int,
) -> str:
    """The runner-up, by the score the choice read. An intermittent series is ranked by its
    squared errors (`selection.scores`), so its table's MASE column is not that ranking, and
    the note gives the one that was (RMSSE over the same scale)."""
    if squared is None:
        return f" (next {runner} {mase[runner][j]:.3f})" if runner else ""
    return (
        f", ranked by squared errors (RMSSE {squared[method][j]:.3f}"
        + (f"; next {runner} {squared[runner][j]:.3f}" if runner else "")
        + ")"
    )


def _why_kept(
    choice: bt.Choice, judged: dict[str, np.ndarray], j: int, *, squared: bool = False
) -> str:
    """Why the combination stands where a single candidate scored lower: it did not score
    clearly lower (`selection.DOMINANCE`) and in most windows, so the user is not handed a
    pick that a few windows may have flattered."""
    if choice.rival is None:
        return ""
    ratio = float(judged[choice.rival][j] / judged[bt.COMBINATION][j])
    by = " by squared errors" if squared else ""
    return (
        f"; kept over {choice.rival}, which scored lower{by} ({ratio:.2f}x) but not clearly:"
        f" a single candidate replaces the combination below {bt.DOMINANCE:g}x its score"
        f" and winning most windows (it won {choice.wins} of {choice.judged})"
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


def _with_reference(
    errors: np.ndarray, s: Series, h: int, seasons: tuple[int, ...], independent: int, shift: float
) -> np.ndarray:
    """``errors`` and, when they err more, seasonal naive's latest windows as a reference,
    brought to the geometric mean of the two methods' error sizes.

    Too few independent windows cannot show how much whole days (or hours) err. Seasonal
    naive needs one cycle of history instead of the models' two, so a short series has more
    of its windows; they join the pool only to widen it (where they err less than the chosen
    method, as naive on the multimodal 10-minute trace, they would narrow it). Their spread
    from window to window is what the pool lacks; their size is a weaker method's. Taken as
    they were, they gave a series whose model errs a fifth as much as seasonal naive bands
    as wide as seasonal naive's (M4 hourly summed into daily totals, a week ahead on four or
    five weeks: 80% coverage 90.8-94.8%); scaled to the chosen method's size, the few calm
    windows set the scale again (3 days of hourly history: 77.3%). Between the two, in
    log scale: bench/forecast_accuracy.py MSIS ratio to the best peer's 1.154 -> 1.105, no
    case's MSIS higher; see docs/forecast-changes.md.
    """
    extra = reference_errors(
        to_calibration(s.judged(), s.log, shift),
        h,
        seasons[0] if seasons else 1,
        TAIL_WINDOWS - independent,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: nothing known
        own = float(np.nanmean(np.abs(errors)))
        theirs = float(np.nanmean(np.abs(extra)))
    if not (extra.size and theirs > own):  # False when either is NaN
        return errors
    # A backtest that never erred gives no size to scale by: the reference stays as it was.
    scale = np.sqrt(own / theirs) if own > 0 else 1.0
    return np.vstack([errors, extra * scale])


def _to_usage(z: np.ndarray, log: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Rows of ``z`` (one per series) back to usage units; ``log`` says which rows are logs,
    ``shift`` (one per row) their offset."""
    out = np.maximum(z, 0.0)
    # Only the log rows: exp of a linear-space row may overflow.
    out[log] = from_calibration(z[log], True, np.broadcast_to(shift, z.shape)[log])
    return out


def _horizon_stamps(series: Sequence[Placed], h: int) -> np.ndarray:
    """``(n, h)`` bucket starts of each series' forecast: one step after its last bucket on."""
    end = np.array([s.end.value for s in series], dtype=np.int64)
    step = np.array([s.step.value for s in series], dtype=np.int64)
    stamps = end[:, None] + step[:, None] * np.arange(1, h + 1)[None, :]
    return stamps.astype("datetime64[ns]")


def _undefined(made: np.ndarray, windows: int) -> str:
    """Why a candidate that forecast something for a series has no backtest score; ``made``
    says, for the final forecast and then each window, whether it forecast it."""
    ran = int(made[1:].sum())
    if ran < windows:
        return (
            f"forecast only {ran} of {windows} backtest window(s) (too little history before"
            " the others), and every candidate is scored on the same windows"
        )
    return "its forecast failed at some steps of the backtest windows"


def _is_local(engine: object) -> bool:
    return engine is None or (isinstance(engine, str) and engine.strip().lower() == "local")


def _fallback_variance(s: Series) -> float:
    if s.kind == STOPPED:
        return 0.0  # takes no share of the total's gap when reconciled (`reconcile_to_total`)
    return float(np.var(s.y)) if len(s.y) > 1 else float(s.y[0] ** 2)


def _metadata(
    data: pd.DataFrame, result: ForecastResult, now: datetime | None
) -> dict[str, object]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("tokenplan", "statsforecast", "mlforecast", "lightgbm", "numpy", "pandas"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "absent"
    return {
        "trained_at": (now or datetime.now(UTC)).isoformat(),
        "data_start": data["ds"].min().isoformat(),
        "data_end": data["ds"].max().isoformat(),
        "series": int(data["unique_id"].nunique()),
        "rows": len(data),
        "versions": versions,
    }


def forecast(
    df: pd.DataFrame,
    horizon: int = 168,
    freq: str = "1h",
    levels: Sequence[float] = (80, 95),
    hierarchy: str | None = None,
    **options: object,
) -> ForecastResult:
    """Forecast every series in ``df`` (``unique_id, ds, y``) ``horizon`` buckets ahead."""
    return Forecaster(freq, horizon, levels, hierarchy=hierarchy, **options).fit(df).predict()  # type: ignore[arg-type]


def backtest(
    df: pd.DataFrame,
    horizon: int = 168,
    freq: str = "1h",
    levels: Sequence[float] = (80, 95),
    **options: object,
) -> pd.DataFrame:
    """Per series and candidate: backtest MASE, sMAPE and interval coverage, choice marked."""
    return forecast(df, horizon, freq, levels, **options).backtest  # type: ignore[arg-type]


def _available_cores() -> int:
    """Cores this process may run on (its affinity where the platform tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
