"""`Forecaster`: the order of the work on a panel. Its series are prepared (`preparation`);
those too short to backtest get their fallbacks (`short_series`); the others' candidates run
over the backtest windows (`baselines`, `statistical`, `boosting`) and are judged (`verdict`),
each chosen forecast is calibrated (`calibration`), nudged toward a forecast of its block sums
(`temporal`), reconciled to the total in a split (`hierarchy`), and the panel made into its
forecast (`assembly`)."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from tokenplan.errors import ForecastError, InvalidInput
from tokenplan.forecast import selection as bt
from tokenplan.forecast.assembly import Fitted, Placed, assemble
from tokenplan.forecast.baselines import run_baselines, seen_once
from tokenplan.forecast.calibration import calibrate, shifts
from tokenplan.forecast.conformal import cross_coverage
from tokenplan.forecast.fallbacks import (
    fallback,
)
from tokenplan.forecast.hierarchy import cap_parts, reconcile_parts, total_of
from tokenplan.forecast.preparation import (
    REGULAR,
    SHORT,
    Series,
    one_cycle,
    to_series,
    validate,
)
from tokenplan.forecast.repairs import classify
from tokenplan.forecast.result import (
    ForecastResult,
    level_name,
    to_calibration,
)
from tokenplan.forecast.short_series import Short, blind, fit_short
from tokenplan.forecast.statistical import SharedPool, StatisticalRun
from tokenplan.forecast.temporal import WINDOWS as SUM_WINDOWS
from tokenplan.forecast.temporal import adjust, sums_frame
from tokenplan.forecast.verdict import judge
from tokenplan.frequency import make_cadence

# The global model needs some rows to learn from.
_MIN_BOOSTING_ROWS = 200
# A backtest group of this many series has its baselines computed in the worker processes.
_MIN_POOLED_BASELINES = 200


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
            short = blind(plan.short, plan.local, self.horizon, self.cadence, self.cores, pool)
            fitted, rows = fit_short(short, self.cadence)
            self._start(plan, pool)
            prepared = sums_frame(plan.series, self.horizon) if self.temporal else None
            sums: tuple[Forecaster, _Plan, tuple[int, list[Series], pd.DataFrame]] | None = None
            if prepared is not None:
                k, _, frame = prepared
                forecaster = self._sums_forecaster(k)
                sums_plan = forecaster._plan(validate(frame))
                forecaster._start(sums_plan, pool)
                sums = (forecaster, sums_plan, prepared)
            errors = self._fit_groups(plan, fitted, rows)
            if sums is not None:
                forecaster, sums_plan, prepared = sums
                # Fallbacks of sums too short to backtest, as they are: `adjust` never reads them.
                sum_fitted, sum_rows = fit_short(sums_plan.short, forecaster.cadence)
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
            reconcile_parts(panel.series, panel.fitted, str(self.hierarchy))
        result = assemble(
            panel.series,
            panel.fitted,
            panel.rows,
            horizon=self.horizon,
            levels=self.levels,
            freq=self.freq,
            total_id=self.hierarchy,
            backtest_coverage=self.backtest_coverage,
        )
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
                # shape. It gets the fallback's median instead (`short_series.blind`), after the
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
            seasons, cuts = key[0], list(key[1])
            statistical = plan.runs.pop(key, None)
            baselines = plan.baselines.pop(key, None)
            preds = self._candidates(members, seasons, cuts, statistical, baselines, plan.pool)
            self._fit_group(
                members,
                seasons,
                cuts,
                preds,
                fitted,
                rows,
                backtest,
                plan.pool,
                plan.pending,
            )
        return backtest

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

    def _candidates(
        self,
        members: list[Series],
        seasons: tuple[int, ...],
        cuts: list[int],
        statistical: StatisticalRun | None,
        baselines: list[Future[dict[str, np.ndarray]]] | None,
        pool: SharedPool | None,
    ) -> dict[str, np.ndarray]:
        """Every candidate's forecasts of a group ``(1 + W, n, h)``: the final one, then each
        window's; the baselines and local models collected from the pool where they ran."""
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
        return preds

    def _fit_group(
        self,
        members: list[Series],
        seasons: tuple[int, ...],
        cuts: list[int],
        preds: dict[str, np.ndarray],
        fitted: dict[str, Fitted],
        rows: list[dict[str, object]],
        backtest_errors: dict[str, np.ndarray],
        pool: SharedPool | None = None,
        pending: list[_Coverage] | None = None,
    ) -> None:
        """Fit one backtest group from its candidates' forecasts (`_candidates`): judge them
        (`verdict.judge`), and make each series' `Fitted` (`calibration.calibrate`), its
        backtest rows (their coverage counted here, or in the pool's workers and filled in from
        ``pending``) and its chosen forecast's backtest errors (into ``backtest_errors``, for
        the temporal step)."""
        h = self.horizon
        v = judge(preds, members, cuts, self.cadence)
        actual, chosen = v.actual, v.chosen
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
        shift, shares = shifts(members, held, preds, chosen, self.cadence.primary, self.levels)
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
        for j, s in enumerate(members):
            method = chosen[j]
            fitted[s.uid] = calibrate(
                s,
                method,
                v.describe(j, s, seasons),
                held=held[:, j, :],
                preds=preds[method][:, j, :],
                errors=errors[method][j],
                space=(float(shift[0, j, 0]), float(shares[j])),
                seasons=seasons,
                cuts=cuts,
                cadence=self.cadence,
                levels=self.levels,
            )
            # The temporal step weighs these against its sums' errors, scored on the record.
            backtest_errors[s.uid] = actual[:, j, :] - preds[method][1:, j, :]
            for name, row in v.rows(j, s.uid):
                if later:
                    group_rows.append((row, name, j))
                elif coverage:
                    for level in self.levels:
                        row[f"coverage_{level_name(level)}"] = float(coverage[name][level][j])
                rows.append(row)
        if later and pending is not None:
            pending.append((later, group_rows))


def _is_local(engine: object) -> bool:
    return engine is None or (isinstance(engine, str) and engine.strip().lower() == "local")


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
