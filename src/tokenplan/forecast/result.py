"""`ForecastResult`: the forecast frame, the choice made per series, and period-total queries."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tokenplan.errors import InvalidInput
from tokenplan.forecast.bootstrap import bootstrap_paths
from tokenplan.forecast.paths import COMMON_PRIOR, sample_errors
from tokenplan.timestamps import iso_utc_many


def contract_frame(frame: pd.DataFrame, levels: tuple[int, ...]) -> pd.DataFrame:
    """A forecast frame as the CSV contract: ``series, timestamp, mean, lo_L, hi_L`` per level.

    What the contract guarantees is enforced here: never negative, ``lo <= mean <= hi``.
    """
    columns = ["mean"] + [f"{side}_{lv}" for lv in levels for side in ("lo", "hi")]
    table = frame.rename(columns={"unique_id": "series"})
    # Vectorised: 5,000 series x 168 hours is 840,000 stamps, too many to format one by one.
    table["timestamp"] = iso_utc_many(table["ds"])
    table = table[["series", "timestamp", *columns]]
    # Float noise in reconciliation can put a bound a hair on the wrong side of the mean.
    table[columns] = table[columns].clip(lower=0.0)
    for lv in levels:
        table[f"lo_{lv}"] = table[[f"lo_{lv}", "mean"]].min(axis=1)
        table[f"hi_{lv}"] = table[[f"hi_{lv}", "mean"]].max(axis=1)
    return table.reset_index(drop=True)


def level_name(level: float) -> str:
    """Column suffix for a level: ``80`` for 80.0, ``97.5`` for 97.5."""
    return f"{int(level)}" if float(level).is_integer() else f"{level:g}"


def to_calibration(
    values: np.ndarray, log: np.ndarray | bool, shift: np.ndarray | float
) -> np.ndarray:
    """Usage units to calibration space: ``log(y + shift)`` where ``log``, else ``y``."""
    with np.errstate(invalid="ignore"):
        return np.where(log, np.log(np.maximum(values, 0.0) + shift), values)


# exp() of more overflows float64; a sample path that far out is cut by the ceiling anyway.
_MAX_LOG = 700.0


def from_calibration(z: np.ndarray, log: bool, shift: np.ndarray | float) -> np.ndarray:
    """Calibration space back to usage units, never negative (and never infinite)."""
    return np.maximum(np.exp(np.minimum(z, _MAX_LOG)) - shift if log else z, 0.0)


@dataclass
class PathModel:
    """What sample paths of one series need: point and residuals in modelling space."""

    point: np.ndarray
    log: bool
    errors: np.ndarray
    # Paths' distance from the point path is scaled by this, in usage units (few windows).
    widening: float = 1.0
    # No step of a path goes above this (or the point forecast, if higher), usage units.
    ceiling: float = float("inf")
    # Log-space points and errors are in log(y + shift); 1 is log1p.
    shift: float = 1.0
    # Degrees of freedom of the paths' common scale (`paths.path_scales`); inf: none.
    tail_df: float = float("inf")
    # Intermittent series: recent history (usage units) that paths are bootstrapped from
    # instead of the errors (`bootstrap.bootstrap_paths`), in blocks of ``season`` buckets.
    history: np.ndarray | None = None
    season: int = 1
    # The prior of the paths' common share (`paths.common_prior`).
    common_prior: float = COMMON_PRIOR

    def to_usage(self, z: np.ndarray) -> np.ndarray:
        """Calibration space back to usage units, never negative."""
        return from_calibration(z, self.log, self.shift)

    def to_model(self, values: np.ndarray) -> np.ndarray:
        """Usage units to calibration space."""
        return to_calibration(values, self.log, self.shift)


@dataclass
class ForecastResult:
    """Forecasts with calibrated intervals, the per-series choice and the backtest behind it.

    ``frame`` has ``unique_id, ds, mean`` and a ``lo_<L>, hi_<L>`` pair per level; ``notes``
    says per series which model or fallback was used and why; ``backtest`` has one row per
    series and candidate it forecast (``mase, smape, coverage_<L>, chosen, why``; ``why``
    says why a score is undefined, NaN there, and is empty where it is defined). ``total_id`` is the
    hierarchy's total, when the forecast has one: a part's sums never exceed the total's.
    Series keep the caller's own ids (``1``, not ``"1"``) in ``frame``, ``backtest``, ``notes``
    and ``chosen``; the queries take either.
    """

    frame: pd.DataFrame
    notes: dict[Any, str]  # by the caller's own ids (`restore_ids`)
    chosen: dict[Any, str]
    backtest: pd.DataFrame
    levels: tuple[float, ...]
    horizon: int
    freq: str
    paths: dict[str, PathModel] = field(default_factory=dict, repr=False)
    total_id: str | None = None
    # The total's paths by (n, seed): every part's paths are capped by them.
    _total_paths: dict[tuple[int, int], np.ndarray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    # The frame's ids as the engine's strings, kept with the frame they were read from.
    _keys: tuple[pd.DataFrame, np.ndarray] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def restore_ids(self, originals: Iterable[Hashable]) -> None:
        """Give the caller's own ids back (the engine works on their strings): an outside
        check that merges ``frame`` with its own test frame on ``unique_id`` must find the same
        values, and an integer id read back as a string joins nothing."""
        mapping = {str(v): v for v in originals}
        if all(isinstance(v, str) for v in mapping.values()):
            return

        def back(key: object) -> object:
            return mapping.get(key, key) if isinstance(key, str) else key

        self.frame["unique_id"] = self.frame["unique_id"].map(back)
        if "unique_id" in self.backtest:
            self.backtest["unique_id"] = self.backtest["unique_id"].map(back)
        self.notes = {back(k): v for k, v in self.notes.items()}
        self.chosen = {back(k): v for k, v in self.chosen.items()}
        self._keys = None

    def _rows(self, unique_id: object) -> np.ndarray:
        """Which rows of ``frame`` are the series ``unique_id`` (its own id or its string)."""
        if self._keys is None or self._keys[0] is not self.frame:
            self._keys = (self.frame, self.frame["unique_id"].astype(str).to_numpy())
        return self._keys[1] == str(unique_id)

    def sample_paths(self, unique_id: str, n: int = 2000, seed: int = 0) -> np.ndarray:
        """``n`` joint sample paths ``(n, horizon)`` in usage units for one series.

        Marginals follow the calibrated per-step errors; steps are tied by a common shock and
        an AR(1) part estimated from the backtest, so sums over many steps keep their spread.
        Intermittent series' paths are blocks of their own history instead (`bootstrap`).
        A part of a hierarchy never goes above the total's path of the same draw: the two come
        from separate path models, and a part near the whole could otherwise draw a month, a
        remaining budget or a chance of overrun above the total's. Every sum, quantile and
        probability read from paths that are below the total's path by path is below the
        total's too.
        """
        unique_id = str(unique_id)
        paths = self._own_paths(unique_id, n, seed)
        if unique_id == self.total_id:
            return paths.copy()  # the kept draw stays as drawn
        if self.total_id is None or self.total_id not in self.paths:
            return paths
        whole = self._own_paths(self.total_id, n, seed)
        # Aligned by timestamp: a part whose history stops early has its own forecast buckets.
        at = self._columns(self.total_id).get_indexer(self._columns(unique_id))
        inside = at >= 0
        paths[:, inside] = np.minimum(paths[:, inside], whole[:, at[inside]])
        return paths

    def _own_paths(self, unique_id: str, n: int, seed: int) -> np.ndarray:
        """One series' paths from its own model; the total's are kept per ``(n, seed)`` (every
        part is capped by them, so months of many parts draw the total once)."""
        key = (n, seed)
        if unique_id == self.total_id and key in self._total_paths:
            return self._total_paths[key]
        model = self._model(unique_id)
        centre = model.to_usage(model.point)
        if model.history is not None:
            paths = bootstrap_paths(model.history, centre, model.season, n, seed)
        else:
            errors = sample_errors(model.errors, n, seed, model.tail_df, model.common_prior)
            paths = model.to_usage(model.point[None, :] + errors)
            if model.widening != 1.0:
                # Scaled about the point path, so the median path stays the point forecast.
                paths = np.maximum(centre + model.widening * (paths - centre), 0.0)
        if np.isfinite(model.ceiling):
            paths = np.minimum(paths, np.maximum(model.ceiling, centre)[None, :])
        if unique_id == self.total_id:
            self._total_paths[key] = paths
        return paths

    def _columns(self, unique_id: str) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.frame.loc[self._rows(unique_id), "ds"])

    def sum_interval(
        self,
        unique_id: str,
        start: pd.Timestamp | str | None = None,
        end: pd.Timestamp | str | None = None,
        levels: tuple[float, ...] | None = None,
        n: int = 4000,
        seed: int = 0,
    ) -> dict[str, float]:
        """Distribution of the total over buckets ``start <= ds < end`` (default: all).

        Returns ``point`` (sum of the point forecasts), ``mean`` (expected total), ``lo_<L>``
        and ``hi_<L>`` per level, and ``buckets``. A part of a hierarchy gets no figure above
        the total's over the same buckets (its paths are capped by the total's, and its point
        forecasts by `cap_parts`).
        """
        mask = self._window(unique_id, start, end)
        totals = self.sample_paths(unique_id, n, seed)[:, mask].sum(axis=1)
        rows = self.frame[self._rows(unique_id)]
        out = {"point": float(rows["mean"].to_numpy()[mask].sum()), "mean": float(totals.mean())}
        for level in levels or self.levels:
            lo, hi = np.quantile(totals, [0.5 - level / 200.0, 0.5 + level / 200.0])
            out[f"lo_{level_name(level)}"] = float(min(lo, out["point"]))
            out[f"hi_{level_name(level)}"] = float(max(hi, out["point"]))
        out["buckets"] = float(mask.sum())
        return out

    def prob_sum_above(
        self,
        unique_id: str,
        limit: float,
        start: pd.Timestamp | str | None = None,
        end: pd.Timestamp | str | None = None,
        n: int = 4000,
        seed: int = 0,
    ) -> float:
        """Probability that the total over ``start <= ds < end`` exceeds ``limit``."""
        mask = self._window(unique_id, start, end)
        totals = self.sample_paths(unique_id, n, seed)[:, mask].sum(axis=1)
        return float(np.mean(totals > limit))

    def _model(self, unique_id: str) -> PathModel:
        unique_id = str(unique_id)
        if unique_id not in self.paths:
            raise InvalidInput(
                f"no forecast for series {unique_id!r}; known: {', '.join(sorted(self.paths))}."
            )
        return self.paths[unique_id]

    def _window(
        self, unique_id: str, start: pd.Timestamp | str | None, end: pd.Timestamp | str | None
    ) -> np.ndarray:
        self._model(unique_id)
        ds = self.frame.loc[self._rows(unique_id), "ds"].to_numpy()
        mask = np.ones(len(ds), dtype=bool)
        if start is not None:
            mask &= ds >= np.datetime64(pd.Timestamp(start).tz_localize(None))
        if end is not None:
            mask &= ds < np.datetime64(pd.Timestamp(end).tz_localize(None))
        return mask
