"""Forecast scores as the M4 competition defined them, for one series and forecast window.

MASE and MSIS are scaled by the in-sample mean absolute error of the seasonal naive forecast
(lag ``season``); sMAPE is 200|a - f| / (|a| + |f|) with 0/0 counted as 0; MSIS is for the 95%
interval (a = 0.05). Actuals that are NaN (gaps in a trace) are never scored.
"""

from __future__ import annotations

import numpy as np

# Naive2's published M4 hourly scores, the OWA reference.
M4_NAIVE2_SMAPE, M4_NAIVE2_MASE = 18.383, 2.395


def mase_scale(history: np.ndarray, season: int) -> float:
    """In-sample MAE of the lag-``season`` naive forecast (NaN pairs skipped); NaN if none."""
    y = np.asarray(history, dtype=float)
    if len(y) <= season:
        return float("nan")
    diffs = np.abs(y[season:] - y[:-season])
    return float(np.nanmean(diffs)) if np.isfinite(diffs).any() else float("nan")


def score_window(
    actual: np.ndarray,
    mean: np.ndarray,
    bounds: dict[int, tuple[np.ndarray, np.ndarray]],
    scale: float,
) -> dict[str, float]:
    """MASE, sMAPE, MSIS (95%), the 80% interval score and interval hits of one window;
    ``bounds`` maps level -> (lo, hi).

    Hits are counts (``hits80``, ``hits95``) over the ``n`` scored steps, so coverage can be
    pooled across windows.
    """
    a = np.asarray(actual, dtype=float)
    ok = np.isfinite(a)
    a, f = a[ok], np.asarray(mean, dtype=float)[ok]
    err = np.abs(a - f)
    denom = np.abs(a) + np.abs(f)
    smape = np.where(denom > 0, 200 * err / np.where(denom > 0, denom, 1.0), 0.0)
    out = {
        "n": float(ok.sum()),
        "mase": float(err.mean() / scale),
        "smape": float(smape.mean()),
    }
    for level, (lo_all, hi_all) in bounds.items():
        lo, hi = np.asarray(lo_all, dtype=float)[ok], np.asarray(hi_all, dtype=float)[ok]
        out[f"hits{level}"] = float(np.sum((a >= lo) & (a <= hi)))
        if level in (80, 95):
            # The interval score (Gneiting and Raftery 2007) over the scale: M4's MSIS at 95%,
            # and the same at 80%, where coverage alone would reward any widening.
            alpha = 1 - level / 100
            penalty = (2 / alpha) * ((lo - a) * (a < lo) + (a - hi) * (a > hi))
            out["msis" if level == 95 else "is80"] = float(np.mean(hi - lo + penalty) / scale)
    return out


def owa(smape: float, mase: float) -> float:
    """M4's overall weighted average against Naive2 on the hourly set."""
    return 0.5 * (smape / M4_NAIVE2_SMAPE + mase / M4_NAIVE2_MASE)
