"""Turn the bench's per-window scores into per-case tables, the summary and the result files."""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scoring import owa

if TYPE_CHECKING:
    from forecast_accuracy import Run

TARGETS = (
    "over the trace cases: geometric-mean ratio <= 0.95, no case above 1.10, coverage 80% in "
    "77-83%, 95% in 92-98%"
)
# Bootstrap resamples of each case's windows (series x origins) for the ratios' intervals.
RESAMPLES = 2000


@dataclass
class Summary:
    """The long per-case, per-method table, the one-row-per-case summary and the printed text."""

    table: pd.DataFrame
    cases: pd.DataFrame
    lines: list[str]
    text: str


def _per_method(scores: pd.DataFrame) -> pd.DataFrame:
    grouped = scores.groupby(["case", "method"], sort=False)
    out = grouped.agg(
        series=("uid", "nunique"),
        origins=("origin", "nunique"),
        windows=("uid", "size"),
        mase=("mase", "mean"),
        smape=("smape", "mean"),
        msis=("msis", "mean"),
        is80=("is80", "mean"),
        hits80=("hits80", "sum"),
        hits95=("hits95", "sum"),
        n=("n", "sum"),
    ).reset_index()
    out["cov80"] = out["hits80"] / out["n"]
    out["cov95"] = out["hits95"] / out["n"]
    m4 = out["case"].str.startswith("m4_hourly")
    out["owa"] = np.where(m4, owa(out["smape"], out["mase"]), np.nan)
    return out


def _complete(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Keep peers that scored every window tokenplan scored in the case."""
    ours = table[table["method"] == "tokenplan"].set_index("case")["windows"]
    want = table["case"].map(ours).fillna(0).astype(int)
    keep = (want > 0) & (table["windows"] == want)
    notes = [
        f"{r.case}: {r.method} left out ({r.windows} of the {want[i]} windows tokenplan scored)"
        for i, r in table[~keep].iterrows()
    ]
    return table[keep].reset_index(drop=True), notes


def _seconds(run: Run, table: pd.DataFrame) -> pd.Series:
    fits = pd.DataFrame(run.fits)
    if fits.empty:
        return pd.Series(np.nan, index=table.index)
    per = fits.groupby(["key", "method"])["seconds"].sum()
    key = np.where(
        table["method"] == "tokenplan", table["case"], table["case"].str.rsplit("/", n=1).str[0]
    )
    return pd.Series(
        [per.get((k, m), np.nan) for k, m in zip(key, table["method"], strict=True)],
        index=table.index,
    )


def _yardstick(peers: pd.DataFrame) -> str:
    """Each peer held to tokenplan's target: its MASE over the best of the other peers per case.

    The best peer is picked per case in hindsight, from several noisy candidates, so no single
    method sits at 1.0 against it; this line shows how far the simple methods themselves are.
    """
    wide = peers.pivot_table(index="case", columns="method", values="mase")
    parts = []
    for method in wide.columns:
        others = wide.drop(columns=method).min(axis=1)
        ratio = (wide[method] / others).dropna()
        if len(ratio) < 2:
            continue
        geo = float(np.exp(np.mean(np.log(ratio))))
        parts.append((geo, f"{method} {geo:.3f} ({int((ratio > 1.10).sum())} of {len(ratio)})"))
    listed = ", ".join(text for _, text in sorted(parts))
    return (
        "each peer on the same yardstick (its MASE over the best other peer's, geometric mean;"
        f" cases above 1.10 of cases run): {listed}"
    )


def bootstrap_ratios(scores: pd.DataFrame, best: pd.Series) -> dict[str, np.ndarray]:
    """Per case, ``RESAMPLES`` draws of tokenplan's MASE ratio to the best peer's.

    A case's windows (one per series and origin) are drawn with replacement and both mean
    MASEs taken over the same draw, against the peer ``best`` names for the case (chosen on
    all its windows: choosing again in every draw would take the least of several noisy means
    and lean every ratio upward). Cases of one series and three origins, or twelve series and
    one origin, are decided by a window or two; the spread of the draws says how far a case's
    ratio would move on other windows like them.
    """
    rng = np.random.default_rng(0)
    out: dict[str, np.ndarray] = {}
    for case, part in scores.groupby("case", sort=False):
        peer = best.get(case)
        wide = part.pivot_table(index=["uid", "origin"], columns="method", values="mase")
        if peer is None or "tokenplan" not in wide or peer not in wide:
            continue
        values = wide[["tokenplan", peer]].to_numpy(float)
        draws = rng.integers(0, len(values), (RESAMPLES, len(values)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a draw of only unknown windows
            means = np.nanmean(values[draws], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[str(case)] = means[:, 0] / means[:, 1]
    return out


def _interval(draws: np.ndarray) -> tuple[float, float]:
    """The central 90% of finite draws."""
    finite = draws[np.isfinite(draws) & (draws > 0)]
    if not finite.size:
        return float("nan"), float("nan")
    lo, hi = np.quantile(finite, [0.05, 0.95])
    return float(lo), float(hi)


def _geometric_line(label: str, ratios: pd.Series, draws: dict[str, np.ndarray]) -> str:
    """Geometric mean and worst of ``ratios`` over cases, with the bootstrap's 90% interval."""
    geo = float(np.exp(np.mean(np.log(ratios))))
    worst = ratios.idxmax()
    line = f"MASE ratio to the best peer over {len(ratios)} {label}: geometric mean {geo:.3f}"
    have = [case for case in ratios.index if case in draws]
    if len(have) == len(ratios):
        logs = np.log(np.stack([draws[case] for case in have]))
        lo, hi = _interval(np.exp(np.nanmean(logs, axis=0)))
        line += f" (90% bootstrap interval {lo:.3f}-{hi:.3f})"
    above = ratios[ratios > 1.10]
    line += f", worst {ratios[worst]:.3f} ({worst}), {len(above)} case(s) above 1.10"
    if len(above):
        clear = sum(_interval(draws[case])[0] > 1.10 for case in above.index if case in draws)
        line += f" ({clear} with its whole 90% interval above 1.10)"
    return line


def _score_line(label: str, ratios: pd.Series) -> str:
    """Geometric mean, worst case and count above 1.5 of per-case interval score ratios."""
    geo = float(np.exp(np.mean(np.log(ratios))))
    return (
        f"{label} over {len(ratios)} cases: geometric mean {geo:.3f}, worst "
        f"{ratios.max():.3g} ({ratios.idxmax()}), {int((ratios > 1.5).sum())} case(s) above 1.5"
    )


def summarize(run: Run, wall: float, prophet_note: str) -> Summary:
    """Per-case tables, the summary over cases and the timing, as text and frames."""
    lines: list[str] = []
    scores = pd.DataFrame(run.scores)
    if scores.empty:
        lines = ["no case scored", *_failures(run)]
        return Summary(pd.DataFrame(), pd.DataFrame(), lines, "\n".join(lines))
    table, dropped = _complete(_per_method(scores))
    peers = table[table["method"] != "tokenplan"]
    best = peers.loc[peers.groupby("case")["mase"].idxmin()].set_index("case")
    table["ratio"] = table["mase"] / table["case"].map(best["mase"])
    table["best_peer"] = table["method"] == table["case"].map(best["method"])
    table["seconds"] = _seconds(run, table)

    blocks = []
    cols = ["mase", "smape", "msis", "is80", "cov80", "cov95", "owa", "ratio", "seconds"]
    for case, part in table.groupby("case", sort=False):
        shown = part.set_index("method")[cols].dropna(axis=1, how="all")
        head = f"== {case}: {part['series'].iloc[0]} series x {part['origins'].iloc[0]} origins"
        blocks.append(head + "\n" + shown.round(3).to_string())

    ours = table[table["method"] == "tokenplan"].set_index("case")
    cases = pd.DataFrame(
        {
            "series": ours["series"],
            "origins": ours["origins"],
            "tokenplan_mase": ours["mase"],
            "best_peer": best["method"],
            "best_peer_mase": best["mase"],
            "ratio": ours["ratio"],
            "msis": ours["msis"],
            "best_msis": peers.groupby("case")["msis"].min(),
            "is80": ours["is80"],
            "best_is80": peers.groupby("case")["is80"].min(),
            "cov80": ours["cov80"],
            "cov95": ours["cov95"],
        }
    ).reindex(ours.index)  # run order (M4, clients, models, traces), not alphabetical
    cases.index.name = "case"
    draws = bootstrap_ratios(scores, best["method"])
    spans = {case: _interval(d) for case, d in draws.items()}
    cases["ratio_lo90"] = [spans.get(case, (np.nan, np.nan))[0] for case in cases.index]
    cases["ratio_hi90"] = [spans.get(case, (np.nan, np.nan))[1] for case in cases.index]
    ratios = cases["ratio"].dropna()
    lines.append(_geometric_line("cases", ratios, draws))
    traces = ratios[~ratios.index.str.startswith("m4_hourly")]
    if len(traces) and len(traces) < len(ratios):
        lines.append(_geometric_line("trace cases (the target's)", traces, draws))
    lines.append(_yardstick(peers))
    # Interval scores charge width and misses together: coverage alone would reward any
    # widening, and would not see a band a million times too wide.
    for label, column in (
        ("MSIS ratio to the best peer's MSIS", "msis"),
        ("80% interval score ratio to the best peer's", "is80"),
    ):
        scored = (cases[column] / cases[f"best_{column}"]).dropna()
        if len(scored):
            lines.append(_score_line(label, scored))
    m4 = ours.index.str.startswith("m4_hourly")
    for label, sel in (("non-M4 cases", ~m4), ("M4", m4)):
        part = ours[sel]
        if len(part):
            n = part["n"].sum()
            c80, c95 = part["hits80"].sum() / n, part["hits95"].sum() / n
            lines.append(
                f"tokenplan coverage pooled over {label}: 80% {c80:.1%}, 95% {c95:.1%} "
                f"({int(n)} points)"
            )
    lines.append(f"targets: {TARGETS}")
    fits = pd.DataFrame(run.fits)
    peer_fits = fits[fits["method"] != "tokenplan"]
    fitted = peer_fits[~peer_fits["cached"]]
    lines.append(
        f"runtime {wall:.0f} s: peers fitted {fitted['seconds'].sum():.0f} s "
        f"({len(peer_fits) - len(fitted)} of {len(peer_fits)} fits from the cache), "
        f"tokenplan {fits.loc[fits['method'] == 'tokenplan', 'seconds'].sum():.0f} s"
    )
    lines.append(
        "seconds: tokenplan's per case; a peer's per dataset and metric (one fit per origin at "
        "the longest horizon serves every horizon; cached fits show the time they first took)"
    )
    lines.append(prophet_note)
    lines += [f"note: {d}" for d in dropped]
    lines += _failures(run)

    text = "\n\n".join(blocks) + "\n\n== summary\n" + cases.round(3).to_string() + "\n"
    text += "\n".join(lines)
    return Summary(table, cases, lines, text)


def _failures(run: Run) -> list[str]:
    lines = []
    for f in run.failures:
        lines.append(f"FAILED {f['method']} on {f['case']} origin -{f['origin']}: {f['error']}")
        if "reproducer" in f:
            lines.append(f"  reproduce: {f['reproducer']}")
    return lines


def _markdown(cases: pd.DataFrame) -> str:
    rows = [
        "| case | series × origins | tokenplan MASE | best peer (MASE) | ratio (90% interval) "
        "| MSIS (best peer's) | cov 80% | cov 95% |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case, r in cases.iterrows():
        # One window cannot be resampled into a spread: its draws are all the one ratio.
        one = r["series"] * r["origins"] < 2 or not np.isfinite(r["ratio_lo90"])
        span = "(one window)" if one else f"({r['ratio_lo90']:.2f}-{r['ratio_hi90']:.2f})"
        rows.append(
            f"| {case} | {r['series']} × {r['origins']} | {r['tokenplan_mase']:.3f} | "
            f"{r['best_peer']} ({r['best_peer_mase']:.3f}) | {r['ratio']:.3f} {span} | "
            f"{r['msis']:.3g} ({r['best_msis']:.3g}) | {r['cov80']:.1%} | {r['cov95']:.1%} |"
        )
    return "\n".join(rows)


def write_results(summary: Summary, out: Path, command: str, plans_text: list[str]) -> None:
    """``forecast_accuracy.csv`` (every case and method) and ``forecast_accuracy.md``."""
    out.mkdir(parents=True, exist_ok=True)
    cols = ["case", "method", "series", "origins", "mase", "smape", "msis", "is80", "cov80"]
    cols += ["cov95"]
    cols += ["owa", "ratio", "best_peer", "seconds"]
    summary.table[cols].round(5).to_csv(out / "forecast_accuracy.csv", index=False)
    today = dt.date.today().isoformat()
    md = [
        f"Measured {today} with `.venv/bin/python {command}`.",
        "",
        _markdown(summary.cases),
        "",
        *[f"- {line}" for line in summary.lines if not line.startswith("seconds:")],
        "",
        "Series kept by the history rule:",
        "",
        *[f"- {line}" for line in plans_text],
        "",
    ]
    (out / "forecast_accuracy.md").write_text("\n".join(md))
