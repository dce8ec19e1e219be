"""Sample paths of intermittent series: a block bootstrap of their own recent history.

A series empty most of the time is a handful of busy buckets a day, of heavy-tailed sizes. Its
backtest errors are a poor basis for the spread of a day's total: they are additive in usage
units, so a backtest whose forecasts were zero (the client was quiet) says nothing about the
downside of a forecast that is not, and a copula over per-step errors cannot produce the days
on which every bucket is empty. The distribution of the series' own past totals can
(Willemain, Smart and Schwarz, 2004, bootstrapped the lead-time demand of intermittent items).

Paths are whole cycles of the recent history (the last `HISTORY_CYCLES` primary cycles),
drawn with replacement at the phase of the horizon, so a path's hours keep their time of day
and their clustering. Half the paths stay at the history's own rate, half are scaled to the
forecast's: the forecast of an intermittent series' rate is itself uncertain (a client that
fades, wakes or moves), and the two halves hedge it without a parameter to tune. Over 634
client-days of ServeGen clients with more than 20% of their hours empty, the day's total fell
inside its 80% / 95% band on 82% / 91% of the days, against 52% / 65% with the errors' paths,
and the interval score improved from 15.25 to 13.59 (80%); the synthetic series' week bands,
far too wide before, scored 0.69 against 3.46 (`bench/intermittent.py --bands`).
"""

from __future__ import annotations

import numpy as np

# Recent primary cycles (days, at hourly or 10-minute buckets) the blocks are drawn from.
HISTORY_CYCLES = 28
# Fewer phase-aligned blocks than this resolve a 95% band too coarsely; blocks then start at
# any bucket.
_MIN_BLOCKS = 10


def recent_history(y: np.ndarray, season: int) -> np.ndarray:
    """The part of ``y`` the blocks are drawn from: its last `HISTORY_CYCLES` cycles."""
    return np.array(y[-HISTORY_CYCLES * max(season, 1) :], dtype=float)


def block_starts(n: int, block: int, season: int) -> np.ndarray:
    """Starts of the blocks of ``block`` buckets in a history of ``n`` buckets.

    A block starts a whole number of cycles before the end, so its first bucket has the phase
    of the first forecast bucket; when that leaves fewer than `_MIN_BLOCKS`, at any bucket.
    """
    starts = np.arange(max(n - block + 1, 1))
    aligned = starts[(n - starts) % max(season, 1) == 0]
    return aligned if len(aligned) >= _MIN_BLOCKS else starts


def bootstrap_paths(
    history: np.ndarray, point: np.ndarray, season: int, n: int, seed: int
) -> np.ndarray:
    """``n`` paths ``(n, len(point))`` in usage units: history blocks, half scaled to ``point``.

    Blocks are one cycle long (the whole horizon when that is shorter or the series has no
    cycle; shorter still when the history holds too few of them) and laid end to end until the
    horizon is covered. The scaled half is multiplied by the forecast's mean over the
    history's, so those paths average the forecast's total; with an empty history every path
    is the point forecast.
    """
    h = len(point)
    history = np.nan_to_num(np.maximum(np.asarray(history, dtype=float), 0.0))
    rate = float(history.mean()) if len(history) else 0.0
    if rate <= 0.0:
        return np.repeat(point[None, :], n, axis=0)
    # No longer than the horizon (a path reads no further), and short enough to leave
    # `_MIN_BLOCKS` different starts: a history of less than a cycle (a few hours of minutes)
    # would otherwise be one block, and every path the same.
    block = min(season if season > 1 else h, h, max(len(history) - _MIN_BLOCKS + 1, 1))
    starts = block_starts(len(history), block, season)
    count = -(-h // block)
    rng = np.random.default_rng(seed)
    picks = starts[rng.integers(0, len(starts), size=(n, count))]
    paths = history[picks[..., None] + np.arange(block)].reshape(n, count * block)[:, :h]
    scaled = rng.random(n) < 0.5
    ratio = float(np.mean(point)) / rate
    return np.where(scaled[:, None], paths * ratio, paths)
