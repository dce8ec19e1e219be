"""A global LightGBM candidate whose every feature is known at the forecast origin.

Each target bucket ``t`` is described by lags of at least ``h`` buckets (so for any step of a
forecast made at origin ``o``, every lag falls at or before ``o``: no recursion and no leak),
rolling means that end ``h`` buckets back, and the calendar of ``t`` itself (hour, weekday,
minute). Values are log1p and expressed relative to the series' mean over the primary season
ending ``h`` buckets back, so one model serves series of any size and follows level changes.
The loss is L1, which targets the median and shrugs off bursts.

Features are built directly in numpy rather than with mlforecast: with no lag shorter than
the horizon there is nothing recursive to do, and mlforecast's step-by-step predict loop cost
seconds per backtest window; it also sidesteps the mlforecast 1.1.0 direct-mode calendar bug.
One model is fitted at the earliest backtest cut and reused for later cuts (it sees only data
before each of them); the final model is fitted on all history.
"""

from __future__ import annotations

import numpy as np

from tokenplan.forecast.preparation import Series
from tokenplan.frequency import Cadence

NAME = "lightgbm"
# Above this many training rows, keep only each series' most recent rows: older weeks add
# little and fitting time grows with rows.
_MAX_ROWS = 200_000
# Few rows cannot use several threads well (OpenMP start-up dominates).
_ROWS_PER_THREAD = 50_000


def lags_for(h: int, seasons: tuple[int, ...], shortest: int) -> list[int]:
    """Lags at least ``h`` long: ``h`` itself and seasonal multiples past the horizon."""
    lags = {h}
    for s in seasons:
        first = s * (-(-h // s))
        lags.update({first, first + s})
    if not seasons:
        lags.update({h + 1, h + 2})
    # A lag needs history behind it and some rows left to learn from.
    usable = sorted(lag for lag in lags if lag <= shortest - max(h, 16))
    return usable or [h]


class _Design:
    """Feature layout shared by training and prediction."""

    def __init__(self, h: int, seasons: tuple[int, ...], shortest: int, cadence: Cadence) -> None:
        self.h = h
        self.lags = lags_for(h, seasons, shortest)
        self.base = seasons[0] if seasons else max(2, min(h, 24))
        self.windows = sorted({s for s in seasons if s + h <= shortest} | {self.base})
        self.seconds = cadence.seconds
        self.reach = max(max(self.lags), h + max(self.windows) - 1)

    def rows(
        self, z: np.ndarray, start_ns: int, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Features and level offsets for target indices (all refer to ``z[:min(targets)]``+)."""
        csum = np.concatenate([[0.0], np.cumsum(z)])

        def trailing_mean(end: np.ndarray, w: int) -> np.ndarray:
            # mean of z[end - w + 1 .. end], clipped at the series start
            lo = np.maximum(end - w + 1, 0)
            return (csum[end + 1] - csum[lo]) / (end + 1 - lo)

        ref = targets - self.h
        level = trailing_mean(ref, self.base)
        cols = []
        for lag in self.lags:
            idx = targets - lag
            cols.append(np.where(idx >= 0, z[np.maximum(idx, 0)] - level, np.nan))
        for w in self.windows:
            if w != self.base:
                cols.append(trailing_mean(ref, w) - level)
        seconds = start_ns // 1_000_000_000 + targets * self.seconds
        if self.seconds < 86_400:
            cols.append((seconds // 3600) % 24)
        cols.append((seconds // 86_400 + 3) % 7)  # 1970-01-01 was a Thursday; Monday = 0
        if self.seconds < 3600:
            cols.append((seconds // 60) % 60)
        if self.seconds >= 86_400:
            cols.append((seconds // 86_400) % 365)
        return np.column_stack(cols).astype(float), level


def _model(rows: int, threads: int) -> object:
    import lightgbm as lgb

    return lgb.LGBMRegressor(
        objective="l1",
        n_estimators=250,
        learning_rate=0.06,
        num_leaves=31,
        min_child_samples=20,
        deterministic=True,
        force_row_wise=True,
        num_threads=max(1, min(threads, rows // _ROWS_PER_THREAD)),
        random_state=0,
        verbose=-1,
    )


def _train(
    design: _Design, logs: list[np.ndarray], starts: list[int], cut: int, threads: int
) -> object | None:
    per_series = max(_MAX_ROWS // max(len(logs), 1), 200)
    xs, ys = [], []
    for z_all, start in zip(logs, starts, strict=True):
        z = z_all[: len(z_all) - cut]
        first = max(design.h + design.base - 1, min(design.reach, len(z) // 2))
        targets = np.arange(max(first, len(z) - per_series), len(z))
        if len(targets) == 0:
            continue
        x, level = design.rows(z, start, targets)
        xs.append(x)
        ys.append(z[targets] - level)
    if not xs:
        # Too little history left before this cut for any lag row: no model, not a crash.
        return None
    x_all, y_all = np.vstack(xs), np.concatenate(ys)
    model = _model(len(y_all), threads)
    model.fit(x_all, y_all)  # type: ignore[attr-defined]
    return model


def run_boosting(
    series: list[Series],
    cuts: list[int],
    h: int,
    seasons: tuple[int, ...],
    cadence: Cadence,
    threads: int = 2,
) -> dict[str, np.ndarray]:
    """Fit at the earliest cut, predict every cut: ``{"lightgbm": array(cuts, series, h)}``."""
    out = np.full((len(cuts), len(series), h), np.nan)
    logs = [np.log1p(s.y) for s in series]
    starts = [int(s.start.value) for s in series]
    earliest = max(cuts)
    shortest = min(len(z) for z in logs)
    designs = {
        True: _Design(h, seasons, shortest, cadence),
        False: _Design(h, seasons, shortest - earliest, cadence),
    }
    models: dict[bool, object | None] = {}
    for i, cut in enumerate(cuts):
        final = cut == 0
        design = designs[final]
        if final not in models:
            models[final] = _train(design, logs, starts, 0 if final else earliest, threads)
        model = models[final]
        if model is None:
            continue  # this cut keeps NaN: the candidate is unavailable there
        xs, levels = [], []
        for z_all, start in zip(logs, starts, strict=True):
            origin = len(z_all) - cut
            x, level = design.rows(z_all[:origin], start, np.arange(origin, origin + h))
            xs.append(x)
            levels.append(level)
        pred = model.predict(np.vstack(xs)).reshape(len(series), h)  # type: ignore[attr-defined]
        out[i] = np.maximum(np.expm1(pred + np.stack(levels)), 0.0)
    return {NAME: out}
