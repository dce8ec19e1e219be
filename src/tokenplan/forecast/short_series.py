"""Series too short to backtest: their fallbacks (`fallbacks.fallback`) made the median of
several forecasts where models can fit (`blind`), and then a `Fitted` with its row of the
backtest table (`fit_short`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np

from tokenplan.forecast import selection as bt
from tokenplan.forecast.assembly import Fitted
from tokenplan.forecast.baselines import seasonal_naive
from tokenplan.forecast.fallbacks import (
    BLIND_MODELS,
    MSTL,
    adjusted,
    blind_median,
    cycle_shape,
    drifting_errors,
    shape_at,
)
from tokenplan.forecast.paths import path_tail_df
from tokenplan.forecast.preparation import SHORT, STOPPED, Series, one_cycle
from tokenplan.forecast.statistical import RAW, SharedPool, run_statistical
from tokenplan.frequency import Cadence

# A series too short to backtest: its fallback's point forecast (modelling space), residuals,
# note, and the ``c`` of the space ``log(y + c)`` the residuals are in (`fallbacks.fallback`).
Short = tuple[Series, np.ndarray, np.ndarray, str, float]


def fit_short(
    short: list[Short], cadence: Cadence
) -> tuple[dict[str, Fitted], list[dict[str, object]]]:
    """Each fallback made a `Fitted` (no backtest window behind its errors), with its row of
    the backtest table."""
    fitted: dict[str, Fitted] = {}
    rows: list[dict[str, object]] = []
    for s, point_z, errors, note, shift in short:
        if s.notes:  # what preparation repaired, as a backtested series says it
            note += "; " + "; ".join(s.notes)
        fitted[s.uid] = Fitted(
            s.unz(point_z),
            errors,
            s.log,
            note,
            note.split(",")[0],
            fallback_variance(s),
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
                    if one_cycle(len(s.y), cadence.primary)
                    else "too short to backtest"
                ),
            }
        )
    return fitted, rows


def blind(
    short: list[Short],
    local: bool,
    horizon: int,
    cadence: Cadence,
    cores: int,
    pool: SharedPool | None = None,
) -> list[Short]:
    """Fallbacks of series with two cycles or more: their point forecast becomes the median
    of the profile, seasonal naive and the local models (`fallbacks.blind_median`); of
    series with one to two, the median of seasonal naive and the local models fitted
    without the season (`_blind_once`)."""
    h, primary = horizon, cadence.primary
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    once: list[int] = []
    for i, (s, *_) in enumerate(short):
        seasons = cadence.usable(len(s.y))  # the primary first, if any
        if s.kind == SHORT and seasons:
            groups[seasons].append(i)
        elif s.kind == SHORT and one_cycle(len(s.y), primary):
            once.append(i)
    out = list(short)
    if local and once:
        _blind_once(short, once, out, horizon, cadence, cores, pool)
    for seasons, at in groups.items():
        members = [short[i][0] for i in at]
        preds: dict[str, np.ndarray] = {}
        if local:
            # Fitted both ways where the series is in log space, as an undecided one is.
            both = [replace(s, log_undecided=s.log) for s in members]
            preds = run_statistical(both, [0], h, seasons, n_jobs=cores, pool=pool)
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
    short: list[Short],
    at: list[int],
    out: list[Short],
    horizon: int,
    cadence: Cadence,
    cores: int,
    pool: SharedPool | None = None,
) -> None:
    """Series seen for one to two cycles: the median of seasonal naive and the local models
    fitted without a season on the series with its last cycle's shape taken out
    (`fallbacks.cycle_shape`), that shape put back on their forecasts."""
    h, primary = horizon, cadence.primary
    members = [short[i][0] for i in at]
    shapes, kept = zip(*(cycle_shape(s.z(), primary) for s in members), strict=True)
    flat = [adjusted(s, shape) for s, shape in zip(members, shapes, strict=True)]
    both = [replace(s, log_undecided=s.log) for s in flat]
    preds = run_statistical(both, [0], h, (), n_jobs=cores, pool=pool)
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


def fallback_variance(s: Series) -> float:
    """A fallback's error variance for reconciliation: the variance of its history."""
    if s.kind == STOPPED:
        return 0.0  # takes no share of the total's gap when reconciled (`reconcile_to_total`)
    return float(np.var(s.y)) if len(s.y) > 1 else float(s.y[0] ** 2)
