"""A backtested series' chosen forecast made a `Fitted`: the space its errors are read in
(`shifts`), the errors its bands come from, widened where few windows stand behind them and
joined by seasonal naive's where those err more (`calibrate`), and what its note says of them."""

from __future__ import annotations

import warnings

import numpy as np

from tokenplan.forecast import selection as bt
from tokenplan.forecast.assembly import Fitted
from tokenplan.forecast.bootstrap import recent_history
from tokenplan.forecast.conformal import (
    SHIFT_SHARE,
    SHIFT_SHARES,
    TAIL_WINDOWS,
    choose_shares,
    independent_windows,
    log_shift,
    reference_errors,
    small_sample_widening,
    sum_widening,
)
from tokenplan.forecast.paths import common_prior, path_tail_df
from tokenplan.forecast.preparation import Series
from tokenplan.forecast.result import to_calibration
from tokenplan.frequency import Cadence


def calibrate(
    s: Series,
    method: str,
    note: str,
    *,
    held: np.ndarray,
    preds: np.ndarray,
    errors: np.ndarray,
    space: tuple[float, float],
    seasons: tuple[int, ...],
    cuts: list[int],
    cadence: Cadence,
    levels: tuple[float, ...],
) -> Fitted:
    """``s`` fitted with ``method``: ``note`` is what the choice said (`Verdict.describe`),
    ``held`` the windows' actuals its bands judge ``(W, h)``, ``preds`` the method's final
    forecast and windows ``(1 + W, h)``, ``errors`` their errors in the calibration space
    ``log(y + c)`` with ``space`` its ``(c, share of the recent level)``."""
    h = held.shape[-1]
    c, share = space
    independent = independent_windows(cuts, h)  # the same for every series of a group
    if not seasons and cadence.seasons:
        need = 2 * cadence.primary
        note += f"; no seasonal profile (needs {need} buckets, two cycles of {need // 2})"
    if independent < TAIL_WINDOWS and levels:
        note += (
            f"; {independent} non-overlapping backtest window(s), too few to tell which"
            " way it will err: every band at least what its errors and their mirror"
            " image give"
        )
    if s.log and share != SHIFT_SHARE:
        note += (
            f"; bands in log(y + {c:.6g}), {share:g}x the recent"
            " level: the lowest backtest interval score"
        )
    if s.notes:
        note += "; " + "; ".join(s.notes)
    history = None
    if s.intermittent:
        history = recent_history(s.y, cadence.primary)
        cycles = len(history) / cadence.primary
        note += (
            f"; sums' bands from blocks of its last {cycles:.3g} cycle(s), half scaled to"
            " the forecast's rate (block bootstrap)"
        )
    err_raw = held - preds[1:]
    calibration = errors
    widen = path_widen = 1.0
    borrowed = 0
    if independent < TAIL_WINDOWS:
        pooled = with_reference(calibration, s, h, seasons, independent, c)
        borrowed = len(pooled) - len(calibration)
        if borrowed:
            note += (
                f"; bands also from seasonal naive's latest {borrowed} window(s), which erred more"
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
    return Fitted(
        point=np.maximum(preds[0], 0.0),
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
        season=cadence.primary,
        common_prior=common_prior(
            to_calibration(s.judged(), s.log, c), h, seasons[0] if seasons else 1
        ),
    )


def shifts(
    members: list[Series],
    actual: np.ndarray,
    preds: dict[str, np.ndarray],
    chosen: list[str],
    season: int,
    levels: tuple[float, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Per series, ``c`` of its calibration space ``log(y + c)`` and the share of the recent
    level it is (`conformal.choose_shares`)."""
    options = np.array(
        [[log_shift(s.actual, season, share) for share in SHIFT_SHARES] for s in members]
    )
    default = SHIFT_SHARES.index(SHIFT_SHARE)
    best = np.full(len(members), default)
    logged = [j for j, s in enumerate(members) if s.log]
    if logged and levels:
        pred = np.stack([preds[chosen[j]][1:, j] for j in logged])  # (n, W, h)
        best[logged] = choose_shares(
            actual[:, logged].transpose(1, 0, 2), pred, options[logged], levels
        )
    picked = np.take_along_axis(options, best[:, None], axis=1)[:, 0]
    return picked, np.asarray(SHIFT_SHARES)[best]


def with_reference(
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
