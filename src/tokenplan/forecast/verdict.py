"""A backtest group's candidates judged: their scores, the combination, the choice, and the
note that says what was chosen and why (`judge`, `Verdict`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tokenplan.forecast.combination import (
    COMBINATION,
    GATE,
    Combination,
    add_combination,
    early_steps,
    ensemble_evidence,
)
from tokenplan.forecast.preparation import Series
from tokenplan.forecast.selection import (
    DOMINANCE,
    Choice,
    actual_windows,
    cap_runaway,
    choose,
    judged_windows,
    mase_scale,
    scores,
    shrunk_scores,
    window_errors,
    window_weights,
)
from tokenplan.frequency import Cadence


@dataclass
class Verdict:
    """What the backtest of one group found, per candidate ``(series,)`` arrays."""

    preds: dict[str, np.ndarray]  # (1 + W, n, h) usage units: the final forecast, then windows
    actual: np.ndarray  # (W, n, h) the windows' actuals, NaN where unknown
    mase: dict[str, np.ndarray]
    smape: dict[str, np.ndarray]
    # The score the choice read: MASE, or squared errors (RMSSE) for intermittent series.
    judged: dict[str, np.ndarray]
    scored: np.ndarray  # (W, n, h) the actuals every candidate is judged on
    partial: dict[str, np.ndarray]  # (n,) candidates that could not forecast every window
    unknown: np.ndarray  # (W, n) windows with nothing known to judge
    combination: Combination
    choices: list[Choice]

    @property
    def chosen(self) -> list[str]:
        """The chosen method of each series."""
        return [c.method for c in self.choices]

    def describe(self, j: int, s: Series, seasons: tuple[int, ...]) -> str:
        """The note's first part for series ``j``: what was chosen, its score and the
        runner-up's, why a lower-scoring single candidate was not taken, the space and the
        seasons, and the windows every candidate was judged without."""
        method = self.chosen[j]
        # The runner-up by the score the choice read: squared errors for intermittent series.
        by = self.judged if s.intermittent else self.mase
        ranked = sorted(by, key=lambda m, j=j, by=by: float(by[m][j]))  # type: ignore[misc]
        runner = next((m for m in ranked if m != method and np.isfinite(by[m][j])), None)
        what = method
        combined = self.combination.members[j]
        if method == COMBINATION and len(combined) == 1:
            # A mean of one is that candidate: say so, and why nothing joined it.
            what = (
                f"{method} ({combined[0]} alone: no other candidate's backtest score"
                f" within {GATE:g}x of its)"
            )
        elif method == COMBINATION:
            mean = "weighted mean" if s.intermittent else "weighted geometric mean"
            how = "; weights by ensemble selection" if self.combination.selected[j] else ""
            what = f"{method} ({mean} of {', '.join(combined)}{how})"
        note = (
            f"chose {what}: backtest MASE {self.mase[method][j]:.3f}"
            + f" over {len(self.actual)} window(s)"
            + _ranking(method, runner, self.judged if s.intermittent else None, self.mase, j)
            + _why_kept(self.choices[j], self.judged, j, squared=s.intermittent)
            + f"; {'log1p' if s.log else 'no'} transform"
            + (
                " (local models also fitted untransformed: too short to test the spread)"
                if s.log_undecided
                else ""
            )
            + f"; seasons {list(seasons) or 'none'}"
        )
        left_out = int(np.sum(np.isnan(self.scored[:, j]).all(axis=1) & ~self.unknown[:, j]))
        if left_out:
            short = [n for n in self.partial if self.partial[n][j]]
            note += (
                f"; every candidate judged without the {left_out} window(s) that"
                f" {', '.join(short)} could not forecast (too little history before them)"
            )
        return note

    def rows(self, j: int, uid: str) -> list[tuple[str, dict[str, object]]]:
        """Series ``j``'s rows of the backtest table, one per candidate that forecast it, with
        its scores, whether it was chosen, and why a score is undefined."""
        out: list[tuple[str, dict[str, object]]] = []
        for name in self.mase:
            made = ~np.isnan(self.preds[name][:, j]).all(axis=1)  # (C,): final, then windows
            if not made.any():
                # Not a candidate of this series (the local models skip intermittent
                # series; some baselines need more cycles), or it failed throughout
                # (`StatisticalRun` notes it): a row of it would only say "inf".
                continue
            score = float(self.mase[name][j])
            row: dict[str, object] = {
                "unique_id": uid,
                "method": name,
                "mase": score if np.isfinite(score) else np.nan,
                "smape": float(self.smape[name][j]) if np.isfinite(score) else np.nan,
                "chosen": name == self.choices[j].method,
                "why": "" if np.isfinite(score) else _undefined(made, len(self.actual)),
            }
            out.append((name, row))
        return out


def judge(
    preds: dict[str, np.ndarray], members: list[Series], cuts: list[int], cadence: Cadence
) -> Verdict:
    """Score every candidate over the windows, add the combination to ``preds`` (in place, as
    `cap_runaway` caps runaway forecasts there) and choose per series."""
    h = preds[next(iter(preds))].shape[-1]
    all_cuts = [0, *cuts]
    cap_runaway(preds, members, all_cuts)
    actual = actual_windows(members, cuts, h)
    scale = mase_scale(members, cadence)
    mase: dict[str, np.ndarray] = {}
    smape: dict[str, np.ndarray] = {}
    # Intermittent series are judged by squared errors: absolute ones reward forecasting
    # the typical bucket, about zero, where a plan needs the expected one.
    flags = np.array([s.intermittent for s in members], dtype=bool)
    squared = flags if flags.any() else None  # None: every series is judged by MASE
    weights = window_weights(members, cuts)
    scored, partial = judged_windows(preds, actual)
    unknown = np.isnan(actual).all(axis=2)  # (W, n): nothing to judge there anyway
    for name, pred in preds.items():
        mase[name], smape[name] = scores(pred[1:], scored, scale, weights=weights)
    judged = (
        dict(mase)
        if squared is None
        else {n: scores(p[1:], scored, scale, squared, weights)[0] for n, p in preds.items()}
    )
    ranking = shrunk_scores(judged, len(cuts))
    e = early_steps(h)
    early = None
    if e:
        first = {
            n: scores(p[1:, :, :e], scored[:, :, :e], scale, squared, weights)[0]
            for n, p in preds.items()
        }
        early = shrunk_scores(first, len(cuts))
    # Weights by ensemble selection where the backtest holds enough whole cycles.
    greedy = ensemble_evidence(cuts, h, cadence.primary)
    combination = add_combination(
        preds, ranking, early, squared, (scored, weights) if greedy else None
    )
    combined = combination.members
    if combined:
        name = COMBINATION
        mase[name], smape[name] = scores(preds[name][1:], scored, scale, weights=weights)
        judged[name] = (
            mase[name]
            if squared is None
            else scores(preds[name][1:], scored, scale, squared, weights)[0]
        )
    per_window = {name: window_errors(pred[1:], scored, squared) for name, pred in preds.items()}
    choices = choose(judged, per_window)
    return Verdict(
        preds, actual, mase, smape, judged, scored, partial, unknown, combination, choices
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
    choice: Choice, judged: dict[str, np.ndarray], j: int, *, squared: bool = False
) -> str:
    """Why the combination stands where a single candidate scored lower: it did not score
    clearly lower (`selection.DOMINANCE`) and in most windows, so the user is not handed a
    pick that a few windows may have flattered."""
    if choice.rival is None:
        return ""
    ratio = float(judged[choice.rival][j] / judged[COMBINATION][j])
    by = " by squared errors" if squared else ""
    return (
        f"; kept over {choice.rival}, which scored lower{by} ({ratio:.2f}x) but not clearly:"
        f" a single candidate replaces the combination below {DOMINANCE:g}x its score"
        f" and winning most windows (it won {choice.wins} of {choice.judged})"
    )


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
