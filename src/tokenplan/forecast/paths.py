"""Sample paths of a forecast's errors, for sums over many steps (a day, a month, a budget).

A Gaussian copula over steps: a common per-path shock (the errors of one window share a level)
plus an AR(1) part, both estimated from the backtest residuals (`dependence`), the common share
shrunk toward the series' own prior (`common_prior`); each path scaled by a Student t mixture
read off the windows behind it (`path_scales`, `path_tail_df`), and mapped through each step's
empirical residual quantiles (`sample_errors`).
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
from scipy.special import ndtr, ndtri

from tokenplan.forecast.conformal import TAIL_WINDOWS, radius, reference_errors, step_pools

# The share of a window's error variance common to all its steps (`dependence`) is shrunk
# toward a prior worth this many windows: LLM traffic errs by whole days (a level that moved)
# more than by single hours. The prior is the series' own (`common_prior`) when its history
# holds enough seasonal naive windows, else this.
COMMON_PRIOR = 0.5
_COMMON_PRIOR_WINDOWS = 3
# Seasonal naive windows `common_prior` reads at most (the latest), and needs at least.
_PRIOR_WINDOWS = 60
_MIN_PRIOR_WINDOWS = 2 * TAIL_WINDOWS
# The sample paths' common scale has at least this many degrees of freedom (`path_tail_df`):
# fewer would give a day's total an infinite variance.
_MIN_TAIL_DF = 3
# ... and its factor is cut at this upper tail quantile of the mixture (`path_scales`).
_SCALE_CUT = 0.005


def path_tail_df(windows: int) -> float:
    """Degrees of freedom of the sample paths' common scale, read off ``windows`` windows.

    A day's total errs by about one number per backtest window, and its spread is estimated
    from that many: Student t with ``windows - 1`` degrees of freedom (at least
    `_MIN_TAIL_DF`) describes what a new day may do. See `path_scales`.
    """
    return float(max(windows - 1, _MIN_TAIL_DF))


def path_scales(n: int, df: float, rng: np.random.Generator) -> np.ndarray:
    """One factor per sample path on its errors: a Student t scale mixture, ``(n, 1)``.

    Each path's errors are multiplied by ``c * sqrt(df / chi2(df))``, so a path's steps move
    together by a heavy-tailed amount, as whole days of LLM traffic do (a new client, an
    outage). ``c`` keeps the central 80% where it was: on the 414 M4 hourly series the first
    day's total fell inside its 80% band 78.0% of the time but inside its 95% band only 90.6%
    (misses reached 1.29x the band at the 95th percentile); with these scales 77.8% / 93.0%
    (bench/m4_hourly.py). On the open traces' short histories (bench/short_history.py, 3 / 5 /
    7 days) the day's 95% coverage went 88.6 / 86.8 / 86.5% -> 89.5 / 86.8 / 89.2%, 80%
    unchanged or up. Per-step bands do not read the paths.

    The factor is cut at the mixture's 99.5% quantile (x5.1 for three degrees of freedom):
    untruncated, one path in thousands drew a factor in the hundreds, and a log-space error
    that large overflows ``exp``. The cut moves only the outermost half percent of paths.
    """
    if not np.isfinite(df):
        return np.ones((n, 1))
    c, top = _scale_constants(df)
    return c * np.minimum(np.sqrt(df / rng.chisquare(df, (n, 1))), top)


@cache
def _scale_constants(df: float) -> tuple[float, float]:
    """`path_scales`' ``c`` and cut for ``df``: computed once, read for every series' paths."""
    from scipy.stats import chi2, t

    c = float(ndtri(0.9) / t.ppf(0.9, df))
    # A small chi-square draw is a large factor: the factor's upper quantile is chi2's lower.
    return c, float(np.sqrt(df / chi2.ppf(_SCALE_CUT, df)))


def normal_scores(errors: np.ndarray) -> np.ndarray:
    """Residuals mapped to standard normal scores by their rank (NaN stays NaN)."""
    out = np.full(errors.shape, np.nan)
    known = ~np.isnan(errors)
    values = errors[known]
    if values.size == 0:
        return out
    ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable")
    out[known] = ndtri((ranks + 0.5) / values.size)
    return out


def common_prior(z: np.ndarray, h: int, season: int) -> float:
    """The prior of `dependence`'s common share for a series with history ``z`` (calibration
    space): the common share of seasonal naive's ``h``-windows over that history.

    Six backtest windows cannot tell a steady series from one whose days move as blocks, so
    the fixed `COMMON_PRIOR` decided, and a steady series' day total got a band twice as wide
    as its noise allows (bench/steady_sums.py: four weeks of hourly buckets with independent
    noise, the next day's 80% band +-18% where the noise gives +-8.5%). A history of at least
    `_MIN_PRIOR_WINDOWS` seasonal naive windows says how much whole windows move: little on
    a steady series, a third or more on real LLM traffic (ServeGen clients over 13 days:
    0.28-0.38). Shorter histories keep `COMMON_PRIOR`: on 5-7 days of real traffic
    (bench/short_history.py) their few windows gave narrower day bands that held the day's
    total less often (95%: 86.8% -> 85.7% on 5 days, 89.2% -> 87.8% on 7).

    The primary season, not the longest: on the 414 M4 hourly series (bench/m4_hourly.py) the
    first day's total fell inside its 80% / 95% band 81.6% / 94.7% of the time with the fixed
    prior (interval score 2.21 / 3.64), 79.7% / 93.2% with this (2.21 / 3.66), and 80.0% /
    92.3% with weekly windows where the history holds enough of them (2.23 / 3.74). A quiet
    weekend then counts as days that move together, which is what a daily cycle sees.
    """
    ref = reference_errors(z, h, season, _PRIOR_WINDOWS)
    # A window inside a gap (unknown buckets) says nothing either way.
    ref = ref[np.any(~np.isnan(ref), axis=1)] if ref.size else ref
    if len(ref) < _MIN_PRIOR_WINDOWS:
        return COMMON_PRIOR
    return dependence(ref)[0]


def dependence(errors: np.ndarray, prior: float = COMMON_PRIOR) -> tuple[float, float]:
    """Share of error variance common to a whole window, and lag-1 correlation of the rest.

    Both are estimated on the residuals' normal scores, the scale of the Gaussian copula that
    `sample_errors` draws from. On raw residuals a few huge log errors (near-empty hours of a
    bursty series) swamped the moments: the ServeGen m-small demo series came out with no
    common shock and no autocorrelation although its backtest days erred by +-20-40% as a
    block, so a day's total had an 80% band of +-6% that left out the point forecast.
    """
    w, h = errors.shape
    spread = np.nanstd(errors)
    if not np.isfinite(spread) or spread == 0 or h < 2:
        return 0.5, 0.5
    z = normal_scores(errors)
    means = np.nanmean(z, axis=1)
    if w >= 2:
        between = float(np.nanvar(means))
        common = float(np.clip((between - 1.0 / h) / (1.0 - 1.0 / h), 0.0, 0.95))
    else:
        common = 0.3
    # Shrunk toward ``prior``, worth `_COMMON_PRIOR_WINDOWS` windows: from a few (overlapping)
    # windows the between-window variance comes out low, and sums then came out too narrow.
    common = (w * common + _COMMON_PRIOR_WINDOWS * prior) / (w + _COMMON_PRIOR_WINDOWS)
    rest = z - means[:, None]
    a, b = rest[:, :-1].ravel(), rest[:, 1:].ravel()
    ok = ~np.isnan(a) & ~np.isnan(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return common, 0.5
    rho = float(np.clip(np.corrcoef(a[ok], b[ok])[0, 1], 0.0, 0.98))
    return common, rho


def sample_errors(
    errors: np.ndarray,
    n: int,
    seed: int = 0,
    tail_df: float = float("inf"),
    prior: float = COMMON_PRIOR,
) -> np.ndarray:
    """Draw ``n`` error paths ``(n, h)`` with the calibrated spread and dependence.

    With a finite ``tail_df`` each path is scaled by `path_scales`: heavier tails for sums.

    Each step's residual pool is centred on its median first, so the median path is the point
    forecast. Uncentred, the few backtest windows' bias at each step (log-space medians of
    -0.04 to -0.19 on the ServeGen demo) moved whole sums off the point forecast, which then
    sat at one edge of the period band.
    """
    w, h = errors.shape
    pools = step_pools(errors[None], radius(w, h))[0]  # (h, P) sorted, NaN last
    count = np.sum(~np.isnan(pools), axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a step with no residual at all
        centre = np.nanmedian(pools, axis=1)
    pools = pools - np.nan_to_num(centre)[:, None]
    common, rho = dependence(errors, prior)
    rng = np.random.default_rng(seed)
    shock = rng.standard_normal((n, 1))
    innov = rng.standard_normal((n, h))
    ar = np.empty((n, h))
    ar[:, 0] = innov[:, 0]
    scale = np.sqrt(1 - rho**2)
    for j in range(1, h):
        ar[:, j] = rho * ar[:, j - 1] + scale * innov[:, j]
    latent = np.sqrt(common) * shock + np.sqrt(1 - common) * ar
    u = ndtr(latent)
    out = np.zeros((n, h))
    for j in range(h):
        m = int(count[j])
        if m == 0:
            continue
        grid = pools[j, :m]
        pos = u[:, j] * (m - 1)
        out[:, j] = np.interp(pos, np.arange(m), grid)
    # Drawn after the copula, so a Gaussian run (``tail_df`` infinite) keeps its paths exactly.
    return out * path_scales(n, tail_df, rng)
