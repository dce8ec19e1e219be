"""Fuzz `tokenplan forecast --input` with damaged usage files cut from the open traces.

Each case writes a usage CSV (``timestamp, model, requests, input_tokens, output_tokens``) from a
random slice of one of the first series of every open trace at 10 minutes or wider: one or two
models, timestamps with ``Z``, a ``+08:00``-style offset or none, sometimes off the hour,
shuffled, with duplicate rows, or cut to a tenth. It runs the CLI's own entry point with random
``--metric``, ``--freq`` (10min to 1mo), ``--tz``, ``--by model`` and ``--horizon``, and checks
what the CLI promises: exit 0 with a forecast CSV whose values are finite and whose bands are in
order, or exit 2 with one line of error and no traceback. Anything else is a failure, printed
with the command and the file kept under bench/results/fuzz/.

    .venv/bin/python bench/cli_fuzz.py [--seed 1] [--seconds 300]
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from forecast_fuzz import failure_file, options, traces
from tokenplan.cli import main as cli

METRICS = ("requests", "total_tokens", "input_tokens")
FREQS = (None, "1h", "1d", "1w", "1mo", "10min", "6h")
FREQ_ODDS = (0.3, 0.2, 0.15, 0.1, 0.1, 0.1, 0.05)
ZONES = ("UTC", "Asia/Shanghai", "America/New_York", "Asia/Kolkata")


def usage_file(one: pd.DataFrame, rng: np.random.Generator, path: Path) -> tuple[list[str], int]:
    """Write a damaged usage CSV from ``one`` to ``path``; returns what was done, and how many
    models the file holds."""
    n = int(rng.integers(2, len(one) + 1))
    start = int(rng.integers(0, len(one) - n + 1))
    part = one.iloc[start : start + n]
    done = [f"slice {n}"]
    models = ["gpt-4o", "claude-sonnet-4-5"] if rng.random() < 0.4 else ["gpt-4o"]
    frames = [
        part.assign(model=m, y=part["y"] * (1.0 if i == 0 else 0.3)) for i, m in enumerate(models)
    ]
    df = pd.concat(frames, ignore_index=True)
    df["requests"] = df["y"].fillna(0).round().astype("int64")
    df["input_tokens"] = df["requests"] * 1000
    df["output_tokens"] = df["requests"] * 200
    ts = df["ds"]
    if rng.random() < 0.2:
        ts = ts + pd.Timedelta(minutes=int(rng.integers(1, 60)))
        done.append("off the hour")
    style = str(rng.choice(["z", "offset", "naive"]))
    if style == "z":
        df["timestamp"] = ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    elif style == "offset":
        local = ts.dt.tz_localize("UTC").dt.tz_convert("Asia/Shanghai")
        df["timestamp"] = local.dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    else:
        df["timestamp"] = ts.dt.strftime("%Y-%m-%d %H:%M:%S")
    done.append(f"timestamps {style}")
    df = df[["timestamp", "model", "requests", "input_tokens", "output_tokens"]]
    if rng.random() < 0.3:
        df = df.sample(frac=1.0, random_state=int(rng.integers(1_000_000)))
        done.append("shuffled")
    if rng.random() < 0.1:
        df = pd.concat([df, df.iloc[:3]])
        done.append("duplicate rows")
    if rng.random() < 0.1:
        df = df.iloc[: max(1, len(df) // 10)]
        done.append("a tenth")
    df.to_csv(path, index=False)
    return [*done, f"{len(models)} model(s)"], len(models)


def arguments(source: Path, folder: Path, rng: np.random.Generator, models: int) -> list[str]:
    """A random `tokenplan forecast` command line on ``source``."""
    args = ["forecast", "--input", str(source), "--db", str(folder / "never.duckdb")]
    args += ["--metric", str(rng.choice(METRICS))]
    freq = FREQS[int(rng.choice(len(FREQS), p=FREQ_ODDS))]
    if freq:
        args += ["--freq", freq]
    if rng.random() < 0.3:
        args += ["--tz", str(rng.choice(ZONES))]
    if models > 1 and rng.random() < 0.5:
        args += ["--by", "model"]
    args += ["--horizon", str(int(rng.choice([1, 3, 7, 24, 48, 168])))]
    return [*args, "--out", str(folder / "forecast.csv")]


def run(args: list[str]) -> tuple[int, str]:
    """The CLI's exit code and everything it printed."""
    printed = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        try:
            cli(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
    return code, printed.getvalue()


def problem(code: int, printed: str, out: Path) -> str | None:
    """What breaks the CLI's promise, or None."""
    if "Traceback" in printed:
        return "a traceback"
    if code == 2:
        lines = printed.strip().splitlines()
        return None if len(lines) == 1 else f"{len(lines)} lines of error"
    if code != 0:
        return f"exit {code}"
    frame = pd.read_csv(out)
    values = frame[[c for c in frame.columns if c.startswith(("lo_", "hi_", "mean"))]]
    if not np.isfinite(values.to_numpy(dtype=float)).all():
        return "non-finite values"
    if (frame["lo_95"] > frame["mean"] + 1e-6).any() or (
        frame["mean"] > frame["hi_95"] + 1e-6
    ).any():
        return "bands out of order"
    return None


def main() -> None:
    args = options(__doc__ or "")
    rng = np.random.default_rng(args.seed)
    pool = [(name, one) for name, freq, one in traces() if freq != "1min"]
    cases = failed = 0
    refusals: Counter[str] = Counter()
    deadline = time.monotonic() + args.seconds
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        while time.monotonic() < deadline:
            name, one = pool[int(rng.integers(len(pool)))]
            source = folder / "usage.csv"
            done, models = usage_file(one, rng, source)
            command = arguments(source, folder, rng, models)
            (folder / "forecast.csv").unlink(missing_ok=True)
            cases += 1
            code, printed = run(command)
            wrong = problem(code, printed, folder / "forecast.csv")
            if wrong:
                failed += 1
                kept = failure_file(f"cli_seed{args.seed}_case{cases}.csv")
                kept.write_bytes(source.read_bytes())
                print(f"FAILED ({wrong}) {name} [{'; '.join(done)}]: {' '.join(command)} ({kept})")
            elif code == 2:
                refusals[printed.strip()] += 1
    for message, count in refusals.most_common():
        print(f"refused x{count}: {message}")
    print(
        f"{cases} cases (seed {args.seed}, {args.seconds:.0f} s): {failed} failed, "
        f"{sum(refusals.values())} refused with one line"
    )


if __name__ == "__main__":
    main()
