"""Scale-out of tokenplan.forecast: the local engine against Dask workers on this machine.

    .venv/bin/python bench/scale_out.py [--series 10000] [--days 60] [--horizon 168]
                                        [--workers 2] [--engines local,dask] [--save FILE]

Forecasts ``--series`` hourly series of ``--days`` days ``--horizon`` buckets ahead, all
candidates on (backtest, choice, calibration), once on the local engine and once on a Dask
``LocalCluster`` of ``--workers`` single-threaded worker processes (the shards of about 500
series each). Prints series/s, peak RSS per process (psutil, sampled every 0.2 s over the
driver and every child process: the local engine's statsforecast workers, Dask's nanny and
workers), and the projected time for 1M series on N workers from the measured per-series
cost, assuming the work is linear in series (shards are independent; a worker-second per
series stays what it is here) and the driver's share (sharding, collection, assembly) is as
measured per series. Also compares the two results: per-series means and backtest coverage.

The series are synthetic but built from real shapes: each takes one of the ServeGen clients
(tests/data/shared/servegen_language/clients_10min.csv.gz, Alibaba Bailian production
traffic, hourly) and strings together whole days sampled from that client's own days of the
same weekday, then scales it to a random size (log-normal), adds a slow random trend and
multiplicative noise. Seeded, so every run sees the same data.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = ROOT / "tests" / "data" / "shared" / "servegen_language" / "clients_10min.csv.gz"
SHARD_SIZE = 500


def client_shapes(min_active_days: int = 12) -> np.ndarray:
    """``(clients, 14, 24)``: each busy client's hourly requests, day by day (t=0 day start)."""
    raw = pd.read_csv(CLIENTS, usecols=["t_offset_s", "model", "client", "requests"])
    raw["hour"] = raw["t_offset_s"] // 3600
    hourly = raw.groupby(["model", "client", "hour"])["requests"].sum()
    table = hourly.unstack("hour", fill_value=0).reindex(columns=range(14 * 24), fill_value=0)
    values = table.to_numpy(dtype=float).reshape(len(table), 14, 24)
    active_days = (values.sum(axis=2) > 0).sum(axis=1)
    return values[active_days >= min_active_days]


def realistic_panel(n_series: int, days: int, seed: int = 0) -> pd.DataFrame:
    """``unique_id, ds, y`` hourly: real client days re-strung, rescaled, trended and noised."""
    rng = np.random.default_rng(seed)
    shapes = client_shapes()
    base = rng.integers(len(shapes), size=n_series)
    # Day k of a synthetic series is one of the two source days with the same weekday.
    weekday = np.arange(days) % 7
    pick = weekday[None, :] + 7 * rng.integers(2, size=(n_series, days))
    daily = shapes[base[:, None], pick]  # (n, days, 24)
    y = daily.reshape(n_series, days * 24)
    y = y / np.maximum(y.mean(axis=1, keepdims=True), 1e-9)
    t = np.arange(days * 24) / (days * 24)
    level = rng.lognormal(6.0, 2.0, size=(n_series, 1))
    trend = np.exp(rng.normal(0, 0.3, size=(n_series, 1)) * t[None, :])
    noise = rng.lognormal(0, 0.1, size=y.shape)
    y = np.round(y * level * trend * noise)
    ds = pd.date_range("2025-01-06", periods=days * 24, freq="1h")
    return pd.DataFrame(
        {
            "unique_id": np.repeat([f"s{i:06d}" for i in range(n_series)], days * 24),
            "ds": np.tile(ds.to_numpy(), n_series),
            "y": y.ravel(),
        }
    )


class PeakRss:
    """Peak resident memory of this process and each of its descendants, sampled."""

    def __init__(self, every: float = 0.2) -> None:
        import psutil

        self._me = psutil.Process()
        self._cmd = self._me.cmdline()
        self._every = every
        self.peaks: dict[int, tuple[str, int]] = {}
        self.cpu: dict[int, float] = {}  # last user + system seconds seen, per process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        times = self._me.cpu_times()
        self._start_cpu = times.user + times.system
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            for proc in [self._me, *self._me.children(recursive=True)]:
                try:
                    rss = proc.memory_info().rss
                    times = proc.cpu_times()
                    self.cpu[proc.pid] = times.user + times.system
                    name = "driver" if proc.pid == self._me.pid else _role(proc, self._cmd)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                old = self.peaks.get(proc.pid, (name, 0))
                self.peaks[proc.pid] = (name, max(old[1], rss))
            self._stop.wait(self._every)

    def cpu_seconds(self) -> float:
        """CPU seconds of the driver (since start) and of every process seen (up to 0.2 s
        of each short-lived one may be missed): the work, whatever else loads the machine."""
        return sum(self.cpu.values()) - self._start_cpu

    def summary(self) -> dict[str, float]:
        """Largest peak per role in MiB (driver, worker, helper) and how many of each."""
        out: dict[str, float] = {"cpu_seconds": self.cpu_seconds()}
        for name, rss in self.peaks.values():
            out[name] = max(out.get(name, 0.0), rss / 2**20)
            out[f"{name} processes"] = out.get(f"{name} processes", 0) + 1
        return out


def _role(proc: object, driver_cmd: list[str]) -> str:
    """``worker`` for a forked or spawned worker process, else ``helper`` (resource tracker)."""
    cmd = proc.cmdline()  # type: ignore[attr-defined]
    if cmd == driver_cmd or "spawn_main" in " ".join(cmd):
        return "worker"
    return "helper"


def run(df: pd.DataFrame, horizon: int, engine: object) -> tuple[object, float, dict[str, float]]:
    """One forecast on the local engine: the result, wall seconds, peak RSS per role."""
    from tokenplan.forecast import forecast

    with PeakRss() as rss:
        start = time.perf_counter()
        result = forecast(df, horizon=horizon, freq="1h", levels=(80, 95), engine=engine)
        seconds = time.perf_counter() - start
    return result, seconds, rss.summary()


def run_sharded(
    df: pd.DataFrame, horizon: int, client: object
) -> tuple[object, float, float, dict[str, float]]:
    """One forecast in shards: the result, wall seconds, of which driver assembly, peak RSS.

    The same steps as ``forecast(df, engine=client)``, timed apart: the shards (dealt, shipped,
    fitted on the workers, collected, decoded) and the driver's assembly of the result.
    """
    from tokenplan.forecast import Forecaster
    from tokenplan.forecast.preparation import validate
    from tokenplan.scale.engines import parse_engine
    from tokenplan.scale.shard_rows import shard_count
    from tokenplan.scale.sharded import fit_shards

    forecaster = Forecaster("1h", horizon, (80, 95), engine=client, shard_size=SHARD_SIZE)
    with PeakRss() as rss:
        start = time.perf_counter()
        data = validate(df)
        shards = shard_count(data["unique_id"].nunique(), SHARD_SIZE)
        panel = fit_shards(forecaster, data, shards, client, parse_engine(client))
        assembly = time.perf_counter()
        result = forecaster.finish(panel)
        end = time.perf_counter()
    return result, end - start, end - assembly, rss.summary()


def compare(local: object, other: object) -> dict[str, float]:
    """How far the sharded result is from the local one: means and backtest coverage."""
    a = local.frame.groupby("unique_id")["mean"].sum()  # type: ignore[attr-defined]
    b = other.frame.groupby("unique_id")["mean"].sum()  # type: ignore[attr-defined]
    rel = (b / a.replace(0, np.nan) - 1).abs().dropna()
    out = {
        "series_mean_abs_rel_diff_median": float(rel.median()),
        "series_mean_abs_rel_diff_p90": float(rel.quantile(0.9)),
        "series_within_1pct": float((rel <= 0.01).mean()),
        "total_rel_diff": float(b.sum() / a.sum() - 1),
    }
    # Which is the better forecast on its own backtest windows (same series, same windows)?
    mase = {}
    for name, result in (("local", local), ("sharded", other)):
        table = result.backtest  # type: ignore[attr-defined]
        mase[name] = table.loc[table["chosen"]].set_index("unique_id")["mase"]
    ratio = (mase["sharded"] / mase["local"]).replace([np.inf, -np.inf], np.nan).dropna()
    out["chosen_mase_median_local"] = float(mase["local"].median())
    out["chosen_mase_median_sharded"] = float(mase["sharded"].median())
    out["chosen_mase_geomean_ratio_sharded_to_local"] = float(np.exp(np.log(ratio).mean()))
    # The total is dominated by the biggest series (sizes are log-normal).
    top = a.nlargest(max(1, len(a) // 100)).index
    out["total_rel_diff_without_top_1pct"] = float(b.drop(top).sum() / a.drop(top).sum() - 1)
    for level in ("80", "95"):
        col = f"coverage_{level}"
        ca = local.backtest.loc[local.backtest["chosen"], col].mean()  # type: ignore[attr-defined]
        cb = other.backtest.loc[other.backtest["chosen"], col].mean()  # type: ignore[attr-defined]
        out[f"coverage_{level}_local"] = float(ca)
        out[f"coverage_{level}_sharded"] = float(cb)
    return out


def write_lake(root: Path, events: int, days: int = 7, seed: int = 0) -> None:
    """A lake of ``events`` raw calls in the export layout (date=/provider=/part-0.parquet)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    start = np.datetime64("2025-01-06T00:00:00", "us")
    ts = start + rng.integers(0, days * 86_400_000_000, size=events).astype("timedelta64[us]")
    ts.sort()
    providers = np.array(["anthropic", "openai", "relay"])[rng.integers(3, size=events)]
    keys = np.char.add("key-", rng.zipf(1.3, size=events).clip(max=5000).astype(str))
    table = pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "bucket_s": pa.array(np.zeros(events, dtype=np.int32)),
            "model": pa.array(np.array(["m-large", "m-small"])[rng.integers(2, size=events)]),
            "key_id": pa.array(keys),
            "requests": pa.array(np.ones(events, dtype=np.int64)),
            "input_tokens": pa.array(rng.integers(0, 8000, size=events)),
            "output_tokens": pa.array(rng.integers(0, 1000, size=events)),
            "unsplit_tokens": pa.array(np.full(events, None), pa.int64()),
        }
    )
    day = ts.astype("datetime64[D]")
    for d in np.unique(day):
        for provider in np.unique(providers):
            mask = (day == d) & (providers == provider)
            folder = root / f"date={d}" / f"provider={provider}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table.filter(pa.array(mask)), folder / "part-0.parquet")


def _same(df: pd.DataFrame) -> pd.DataFrame:
    return df


def time_lake_rollup(events: int, workers: int) -> dict[str, float]:
    """Rows/s of `rollup_lake` (hourly total_tokens per key) in process and on Dask."""
    import tempfile

    from dask.distributed import Client, LocalCluster
    from fugue import NativeExecutionEngine
    from fugue import transform as fugue_transform

    from tokenplan.scale.lake_rollup import rollup_lake

    out = {}
    # fugue loads every installed engine's plugin on its first call (several seconds here):
    # a one-time cost of the process, not of the rollup.
    fugue_transform(pd.DataFrame({"a": [1]}), _same, schema="*")
    with tempfile.TemporaryDirectory() as tmp:
        write_lake(Path(tmp), events)
        for name in ("in-process", "dask"):
            if name == "dask":
                cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    dashboard_address=":0",
                    scheduler_kwargs={"dashboard": False},
                )
                engine: object = Client(cluster)
            else:
                engine = NativeExecutionEngine()
            start = time.perf_counter()
            frame = rollup_lake(tmp, "total_tokens", "1h", ("key_id",), engine=engine)
            seconds = time.perf_counter() - start
            if name == "dask":
                engine.close()  # type: ignore[attr-defined]
                cluster.close()
            out[name] = events / seconds
            print(
                f"lake rollup ({name}): {events:,} events -> {frame['unique_id'].nunique():,} "
                f"hourly key series in {seconds:.1f} s, {events / seconds:,.0f} events/s"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--horizon", type=int, default=168)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engines", default="local,dask")
    parser.add_argument("--save", type=Path, default=None, help="write the figures as JSON")
    parser.add_argument(
        "--lake-events", type=int, default=0, help="also time rollup_lake over this many events"
    )
    args = parser.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    print(f"cores available: {len(os.sched_getaffinity(0))}; load average {os.getloadavg()[0]:.1f}")
    start = time.perf_counter()
    df = realistic_panel(args.series, args.days)
    print(
        f"{args.series:,} hourly series x {args.days} days ({len(df):,} rows), h={args.horizon}; "
        f"built in {time.perf_counter() - start:.1f} s"
    )
    figures: dict[str, object] = {"series": args.series, "days": args.days, "h": args.horizon}
    results = {}
    for name in engines:
        assembly = 0.0
        if name == "local":
            result, seconds, rss = run(df, args.horizon, None)
            workers = len(os.sched_getaffinity(0))  # its worker processes use every core
        elif name == "dask":
            from dask.distributed import Client, LocalCluster

            with (
                LocalCluster(
                    n_workers=args.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    scheduler_kwargs={"dashboard": False},
                ) as cluster,
                Client(cluster) as client,
            ):
                result, seconds, assembly, rss = run_sharded(df, args.horizon, client)
            workers = args.workers
        else:
            sys.exit(f"--engines: {name!r} is not local or dask")
        results[name] = result
        rate = args.series / seconds
        cpu = rss.pop("cpu_seconds")
        # Cost per series: CPU seconds of every process (what the work costs, whatever else
        # runs on the machine), and wall time x the cores the engine had (what it took here).
        per_series = (cpu - assembly) / args.series
        wall_per_series = (seconds - assembly) * workers / args.series
        driver = assembly / args.series
        line = (
            f"{name}: {seconds:.1f} s, {rate:.2f} series/s; {per_series:.3f} CPU-s/series, "
            f"{wall_per_series:.3f} core-s/series of wall time x {workers} cores"
        )
        if assembly:
            line += f"; driver assembly {assembly:.1f} s ({1e3 * driver:.2f} ms/series)"
        print(line)
        print(f"  peak RSS MiB: {json.dumps({k: round(v) for k, v in rss.items()})}")
        print(f"  load average now {os.getloadavg()[0]:.1f} (other work on the machine)")
        figures[name] = {
            "seconds": seconds,
            "series_per_s": rate,
            "cpu_seconds_per_series": per_series,
            "wall_core_seconds_per_series": wall_per_series,
            "driver_assembly_seconds": assembly,
            "peak_rss_mib": rss,
        }
        if name == "dask":
            projection = {}
            for n_workers in (2, 8, 32, 128):
                hours = (1_000_000 * per_series / n_workers + 1_000_000 * driver) / 3600
                projection[n_workers] = hours
                print(
                    f"  projected 1M series on {n_workers} single-core workers: {hours:.1f} h "
                    f"(1M x {per_series:.3f} CPU-s / {n_workers} + 1M x {1e3 * driver:.2f} ms "
                    "driver assembly; assumes cost linear in series, shards independent)"
                )
            figures["projection_hours_1M"] = projection
    if "local" in results and "dask" in results:
        diff = compare(results["local"], results["dask"])
        figures["dask_vs_local"] = diff
        print("dask vs local:", json.dumps({k: round(v, 4) for k, v in diff.items()}))
    if args.lake_events:
        figures["lake_rollup_events_per_s"] = time_lake_rollup(args.lake_events, args.workers)
    if args.save:
        args.save.write_text(json.dumps(figures, indent=2, default=float))


if __name__ == "__main__":
    main()
