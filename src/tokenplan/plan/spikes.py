"""Spikes and drops: the newest buckets against the forecast band and the same-hour baseline."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.special import ndtri

__all__ = ["SURGE", "Anomaly", "find_anomalies", "same_phase_band"]

_SEASONS = 28  # how many past days (or weeks) the same-hour baseline looks at
# A run of buckets above the band shorter than ``k`` is still a spike when it reaches this many
# times the same-hour baseline, so a runaway job is reported in its first bucket, not its k-th.
# bench/spike_alerts.py replays clean traces bucket by bucket (spikes per 1,000 buckets; share of
# surges of x3 / x5 / x10 / x47 reported in their own bucket). Open LLM traces: k = 2 only 17.2,
# 10% / 11% / 11% / 11%; 3x 22.4, 41% / 71% / 80% / 88%; 5x 20.6, 14% / 43% / 76% / 87%; 10x
# 18.9, 12% / 14% / 44% / 85% (most of the spikes on clean traces are single clients' real
# bursts). M4 hourly: k = 2 only 0.64, 2% at every size; 5x 0.67, 4% / 71% / 100% / 100%.
SURGE = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Anomaly:
    """A run of buckets outside the band: ``spike`` (above) or ``drop`` (collapse to near zero)."""

    kind: str
    start: pd.Timestamp
    end: pd.Timestamp
    buckets: int
    actual: float
    expected: float
    peak_ratio: float
    phase_label: str
    dimension: str | None
    culprit: str | None
    culprit_share: float | None
    message: str
    # Still going at the newest bucket: happening now, not a thing of the past.
    ongoing: bool = False

    @property
    def severity(self) -> str:
        """``critical`` while the spike or drop is still going on, ``warning`` once it is over."""
        return "critical" if self.ongoing else "warning"


# A bucket still filling can show a drop once this share of it is in: against ten minutes of
# an hour's usual, a quiet spell of chance reads as a collapse.
MIN_FILLED = 0.5


def _phase(ds: pd.Series, step: pd.Timedelta) -> tuple[np.ndarray, int]:
    # Same hour of day for sub-daily buckets, same weekday for daily ones.
    seconds = (pd.to_datetime(ds) - pd.Timestamp("2000-01-03")).dt.total_seconds().to_numpy()
    step_s = step.total_seconds()
    season = max(round(86400 / step_s), 1) if step_s < 86400 else 7 if step_s == 86400 else 1
    return (np.floor(seconds / step_s).astype(np.int64) % season), season


def _baseline(history: pd.DataFrame, ds: pd.Series, step: pd.Timedelta) -> np.ndarray:
    """Median of the same phase over the last seasons of ``history`` (``ds, y``), per ``ds``."""
    hist = history.dropna(subset=["y"])
    if hist.empty:
        return np.full(len(ds), np.nan)
    h_phase, season = _phase(hist["ds"], step)
    keep = len(hist) - _SEASONS * season
    recent = hist.assign(phase=h_phase).iloc[max(keep, 0) :]
    by_phase = recent.groupby("phase")["y"]
    # One past day says nothing typical about an hour: such phases use the overall median.
    medians = by_phase.median()[by_phase.size() >= 2]
    phase, _ = _phase(ds, step)
    fallback = float(recent["y"].median())
    return np.array([medians.get(p, fallback) for p in phase], dtype=float)


def same_phase_band(history: pd.DataFrame, ds: pd.Series, *, level: float = 99.0) -> pd.DataFrame:
    """A band for ``ds`` from history alone: same-hour median × the spread of log residuals."""
    step = _step(history["ds"])
    base = _baseline(history, ds, step)
    hist = history.dropna(subset=["y"])
    fitted = _baseline(hist, hist["ds"], step)
    resid = np.log1p(hist["y"].to_numpy(float)) - np.log1p(fitted)
    resid = resid[np.isfinite(resid)]
    # MAD is robust to the very spikes we look for; the floor keeps flat series from alarming.
    sigma = (
        max(1.4826 * float(np.median(np.abs(resid - np.median(resid)))), 0.05)
        if len(resid)
        else 0.5
    )
    z = float(ndtri(0.5 + level / 200))
    hi = np.expm1(np.log1p(base) + z * sigma) + z * np.sqrt(np.maximum(base, 0))
    lo = np.maximum(np.expm1(np.log1p(base) - z * sigma) - z * np.sqrt(np.maximum(base, 0)), 0)
    return pd.DataFrame(
        {"ds": ds.to_numpy(), "baseline": base, f"lo_{level:g}": lo, f"hi_{level:g}": hi}
    )


def _step(ds: pd.Series) -> pd.Timedelta:
    gaps = pd.to_datetime(pd.Series(ds)).drop_duplicates().sort_values().diff().dropna()
    return gaps.min() if len(gaps) else pd.Timedelta(hours=1)


def _runs(mask: np.ndarray, k: int) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, flag in enumerate([*mask.tolist(), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start >= k:
                runs.append((start, i))
            start = None
    return runs


def find_anomalies(
    series: pd.DataFrame,
    *,
    recent: int = 24,
    band: pd.DataFrame | None = None,
    level: float = 99.0,
    k: int = 2,
    drop_k: int = 2,
    drop_share: float = 0.1,
    min_ratio: float = 2.0,
    surge: float = SURGE,
    dimension: str | None = "model",
    tz: str = "UTC",
    metric: str = "usage",
    filled: float = 1.0,
) -> list[Anomaly]:
    """Spikes and drops in the last ``recent`` buckets of a ``unique_id, ds, y`` frame.

    Several ``unique_id`` values are values of ``dimension``: the total is checked and a run is
    attributed to the value carrying most of the excess (or shortfall). ``band`` is a forecast
    frame with ``ds, lo_<level>, hi_<level>`` for the total; without it the band comes from the
    same-hour history. A spike is ``k``+ buckets above the band, or fewer that reach ``surge``
    times the same-hour baseline (a runaway job is reported in its first bucket, not its
    ``k``-th); a drop is ``drop_k``+ buckets under ``drop_share`` of the same-hour baseline and
    under the band. ``filled``: the share of the newest bucket the data covers (under 1 while
    it fills). A spike is judged on what it holds (a part of a bucket only undercounts one); a
    drop against the usual scaled to that share, once half of it is in (`MIN_FILLED`).
    """
    frame = series if "unique_id" in series else series.assign(unique_id="total")
    wide = frame.pivot_table(
        index="ds", columns="unique_id", values="y", aggfunc="sum", dropna=False
    )
    wide = wide.sort_index()
    if len(wide) <= recent:
        return []
    step = _step(wide.index.to_series())
    total = pd.DataFrame({"ds": wide.index, "y": wide.sum(axis=1, min_count=1).to_numpy()})
    hist, new = total.iloc[:-recent], total.iloc[-recent:].reset_index(drop=True)
    own = same_phase_band(hist, new["ds"], level=level)
    lo_col, hi_col = f"lo_{level:g}", f"hi_{level:g}"
    if band is not None and {lo_col, hi_col} <= set(band.columns):
        given = band.groupby("ds")[[lo_col, hi_col]].sum()
        own[hi_col] = (
            given[hi_col]
            .reindex(new["ds"])
            .fillna(pd.Series(own[hi_col].to_numpy(), index=new["ds"]))
            .to_numpy()
        )
        own[lo_col] = (
            given[lo_col]
            .reindex(new["ds"])
            .fillna(pd.Series(own[lo_col].to_numpy(), index=new["ds"]))
            .to_numpy()
        )
    y = new["y"].to_numpy(float)
    base = own["baseline"].to_numpy(float)
    above = np.nan_to_num(y, nan=-np.inf) > own[hi_col].to_numpy()
    spikes = [
        (a, b)
        for a, b in _runs(above, 1)
        if np.max(y[a:b] - min_ratio * base[a:b]) > 0
        and (b - a >= k or (np.isfinite(surge) and np.max(y[a:b] - surge * base[a:b]) > 0))
    ]
    # What each bucket should hold so far: the usual, scaled down in the one still filling.
    share = np.ones(len(y))
    share[-1] = filled if filled >= MIN_FILLED else np.nan
    so_far = base * share
    collapsed = (y < np.maximum(drop_share * so_far, 0)) | ((y == 0) & (so_far > 0))
    drops = _runs(collapsed & (y < own[lo_col].to_numpy() * share) & (so_far > 0), drop_k)
    out = []
    for kind, runs in (("spike", spikes), ("drop", drops)):
        usual = base if kind == "spike" else so_far
        for a, b in runs:
            out.append(_describe(kind, a, b, new, usual, wide, hist, step, dimension, tz, metric))
    covered = {i for a, b in drops for i in range(a, b)}
    if wide.shape[1] > 1:
        out += _partial_drops(
            wide, hist, new, so_far, step, covered, drop_k, drop_share, dimension, tz, metric, share
        )
    newest_end = pd.Timestamp(new["ds"].iloc[-1]) + step
    out = [replace(a, ongoing=a.end >= newest_end) for a in out]
    if filled < 1:
        # A spike's size counts only the part of the newest bucket in so far: it will grow.
        part = f"; the newest bucket is {filled:.0%} in, so its numbers are partial."
        out = [replace(a, message=a.message.rstrip(".") + part) if a.ongoing else a for a in out]
    return sorted(out, key=lambda x: x.start)


def _partial_drops(
    wide: pd.DataFrame,
    hist: pd.DataFrame,
    new: pd.DataFrame,
    total_base: np.ndarray,
    step: pd.Timedelta,
    covered: set[int],
    drop_k: int,
    drop_share: float,
    dimension: str | None,
    tz: str,
    metric: str,
    scale: np.ndarray,
) -> list[Anomaly]:
    """One dimension value collapsing (one model down) while the total carries on."""
    out = []
    n_hist = len(hist)
    # A value's same-hour baseline is a median of its history, so one whose busiest past hour
    # is under 5% of the total's baseline at every new bucket can never count as big below;
    # skipping those keeps thousands of small values cheap.
    known = total_base[np.isfinite(total_base)]
    floor = 0.05 * float(np.min(np.maximum(known, 1e-9))) if len(known) else 0.0
    busiest = np.nan_to_num(wide.iloc[:n_hist].to_numpy(float), nan=0.0).max(axis=0, initial=0.0)
    for uid in wide.columns[busiest >= floor]:
        col = wide[uid]
        own_hist = pd.DataFrame({"ds": col.index[:n_hist], "y": col.to_numpy()[:n_hist]})
        base = np.nan_to_num(_baseline(own_hist, new["ds"], step)) * scale
        y = col.to_numpy(float)[n_hist:]
        # Only values that usually carry a real share of the total (5%+) can cause an outage.
        big = base >= 0.05 * np.maximum(total_base, 1e-9)
        # A bursty value that went quiet like this before is not having an outage now.
        seen = np.nan_to_num(_baseline(own_hist, own_hist["ds"], step))
        before = np.nan_to_num(own_hist["y"].to_numpy(float)) < drop_share * seen
        if _runs(before & (seen > 0), drop_k):
            continue
        collapsed = big & (base > 0) & (np.nan_to_num(y) < drop_share * base)
        for a, b in _runs(collapsed, drop_k):
            if covered & set(range(a, b)):
                continue
            found = _describe(
                "drop",
                a,
                b,
                new.assign(y=y),
                base,
                wide[[uid]],
                hist,
                step,
                None,
                tz,
                f"{metric} of {uid}",
            )
            shortfall = float((base[a:b] - np.nan_to_num(y[a:b])).sum())
            total_short = float(
                np.clip(total_base[a:b] - new["y"].to_numpy(float)[a:b], 0, None).sum()
            )
            share = min(shortfall / total_short, 1.0) if total_short > 0 else 1.0
            out.append(
                replace(
                    found,
                    dimension=dimension,
                    culprit=str(uid),
                    culprit_share=share,
                    message=found.message.rstrip(".")
                    + f"; {uid} stopped while the rest carried on.",
                )
            )
    return out


def _describe(
    kind: str,
    a: int,
    b: int,
    new: pd.DataFrame,
    base: np.ndarray,
    wide: pd.DataFrame,
    hist: pd.DataFrame,
    step: pd.Timedelta,
    dimension: str | None,
    tz: str,
    metric: str,
) -> Anomaly:
    y = new["y"].to_numpy(float)[a:b]
    expected = base[a:b]
    pick = (
        int(np.argmax(y / np.maximum(expected, 1e-9)))
        if kind == "spike"
        else int(np.argmin(y - expected))
    )
    at = pd.Timestamp(new["ds"].iloc[a + pick])
    label = (
        at.tz_localize("UTC")
        .tz_convert(tz)
        .strftime("%H:%M" if step < pd.Timedelta(days=1) else "%A")
    )
    ratio = float(y[pick] / expected[pick]) if expected[pick] > 0 else float("inf")
    culprit = share = None
    if wide.shape[1] > 1:
        culprit, share = _attribute(kind, wide, new["ds"].iloc[a:b], len(hist), step)
    if kind == "spike":
        size = f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:,.1f}x"
        head = (
            f"{metric} {size} the usual for {label}"
            if np.isfinite(ratio)
            else f"new {metric} at {label} (usually none)"
        )
    else:
        head = f"{metric} fell to {ratio:.0%} of the usual for {label}, likely an outage"
    span = f"{b - a} bucket(s) from {pd.Timestamp(new['ds'].iloc[a]):%Y-%m-%d %H:%M} UTC"
    blame = (
        f"; {culprit} carries {share:.0%} of the {'excess' if kind == 'spike' else 'shortfall'}"
        if culprit
        else ""
    )
    return Anomaly(
        kind=kind,
        start=pd.Timestamp(new["ds"].iloc[a]),
        end=pd.Timestamp(new["ds"].iloc[b - 1]) + step,
        buckets=b - a,
        actual=float(np.nansum(y)),
        expected=float(expected.sum()),
        peak_ratio=ratio,
        phase_label=label,
        dimension=dimension if culprit else None,
        culprit=culprit,
        culprit_share=share,
        message=f"{head} ({span}){blame}.",
    )


def _attribute(
    kind: str, wide: pd.DataFrame, ds: pd.Series, n_hist: int, step: pd.Timedelta
) -> tuple[str | None, float | None]:
    """The dimension value with the largest excess (spike) or shortfall (drop) over its baseline."""
    gaps = {}
    for uid in wide.columns:
        col = wide[uid]
        hist = pd.DataFrame({"ds": col.index[:n_hist], "y": col.to_numpy()[:n_hist]})
        expected = np.nan_to_num(_baseline(hist, ds, step))
        actual = np.nan_to_num(col.reindex(ds).to_numpy(float))
        gaps[str(uid)] = float((actual - expected).sum())
    signed = {u: (g if kind == "spike" else -g) for u, g in gaps.items()}
    positive = {u: g for u, g in signed.items() if g > 0}
    if not positive:
        return None, None
    culprit = max(positive, key=lambda u: positive[u])
    return culprit, positive[culprit] / sum(positive.values())
