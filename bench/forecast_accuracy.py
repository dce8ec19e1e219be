"""Accuracy of tokenplan.forecast against the usual picks, on the real traces in shared/data.

Every method sees the same training stretch and is scored on the same rolling origins:
MASE (scaled by the in-sample seasonal naive error on the daily season), sMAPE, and the
share of actuals inside the 80% and 95% intervals (over every origin and step). Hours a trace
marks as missing (NASA's empty ``requests``) are missing for everybody: never scored,
interpolated for peers that cannot take gaps, left as gaps for tokenplan and Prophet.

"Ours" is the real command an outside check runs: the trace's own CSV rows before the origin
are written to a temporary usage CSV and ``tokenplan forecast --input ... --metric ...
--horizon ... [--by model] --out ...`` runs in a fresh process.

    .venv/bin/python bench/forecast_accuracy.py [--data DIR] [--quick] [--only NAME]
        [--no-prophet] [--jobs 2] [--cache DIR] [--save CSV]

``--cache DIR`` keeps the peers' forecasts per case (they are deterministic), so iterating
on tokenplan re-runs only the forecast command.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "shared"
LEVELS = (80, 95)


# name -> (relative CSV path, metric, forecast split by model)
SOURCES = {
    "servegen_hourly_total_tokens": ("servegen_language/hourly.csv", "total_tokens", True),
    "servegen_hourly_requests": ("servegen_language/hourly.csv", "requests", True),
    "servegen_10min_total_tokens": ("servegen_language/10min.csv", "total_tokens", True),
    "servegen_10min_requests": ("servegen_language/10min.csv", "requests", True),
    "azure_2024_conv_requests": ("azure_llm_2024_conv_hourly/hourly.csv", "requests", False),
    "nasa_1995_requests": ("nasa_http_1995_proxy/hourly.csv", "requests", False),
}
# A quick run: one origin per case on a subset that still has hourly, 10-min, gaps and tokens.
QUICK = ("servegen_hourly_total_tokens", "servegen_10min_requests", "nasa_1995_requests")


def _read(path: Path, metric: str) -> pd.DataFrame:
    raw = pd.read_csv(path)
    raw["ds"] = pd.to_datetime(raw["timestamp"]).dt.tz_localize(None)
    if metric == "total_tokens":
        both = raw[["input_tokens", "output_tokens"]]
        raw[metric] = both.sum(axis=1, min_count=2)
    return raw[["model", "ds", metric]].rename(columns={"model": "unique_id", metric: "y"})


def datasets(data: Path) -> dict[str, tuple[pd.DataFrame, str, str | None]]:
    """name -> (tidy frame, freq, total id or None)."""
    out: dict[str, tuple[pd.DataFrame, str, str | None]] = {}
    for metric in ("total_tokens", "requests"):
        frame = _read(data / "servegen_language" / "hourly.csv", metric)
        frame["unique_id"] = frame["unique_id"] + f":{metric}"
        out[f"servegen_hourly_{metric}"] = (frame, "1h", f"total:{metric}")
        frame = _read(data / "servegen_language" / "10min.csv", metric)
        frame["unique_id"] = frame["unique_id"] + f":{metric}"
        out[f"servegen_10min_{metric}"] = (frame, "10min", f"total:{metric}")
    out["azure_2024_conv_requests"] = (
        _read(data / "azure_llm_2024_conv_hourly" / "hourly.csv", "requests"),
        "1h",
        None,
    )
    out["nasa_1995_requests"] = (
        _read(data / "nasa_http_1995_proxy" / "hourly.csv", "requests"),
        "1h",
        None,
    )
    return out


def with_total(frame: pd.DataFrame, total_id: str | None) -> pd.DataFrame:
    if total_id is None:
        return frame
    total = frame.groupby("ds", as_index=False)["y"].sum(min_count=1).assign(unique_id=total_id)
    return pd.concat([frame, total], ignore_index=True)


def origins(n: int, h: int, per_day: int, count: int) -> list[int]:
    """Up to ``count`` origins stepping back by ``h``, each with >= max(h, 4 days) of history."""
    least = max(h, 4 * per_day)
    return [n - h - k * h for k in range(count) if n - h - k * h >= least]


# ---- peers -----------------------------------------------------------------------------------


def _filled(y: np.ndarray) -> np.ndarray:
    s = pd.Series(y)
    return s.interpolate(limit_direction="both").fillna(0.0).to_numpy()


def peer_statsforecast(
    train: pd.DataFrame, h: int, freq: str, daily: int, seasons: list[int]
) -> dict[str, pd.DataFrame]:
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoETS, AutoTheta, SeasonalNaive

    df = train.copy()
    df["y"] = df.groupby("unique_id")["y"].transform(lambda s: _filled(s.to_numpy()))
    models = [
        SeasonalNaive(season_length=seasons[-1] if seasons else 1, alias="seasonal_naive"),
        AutoETS(season_length=daily, alias="auto_ets"),
        AutoTheta(season_length=daily, alias="auto_theta"),
    ]
    if seasons:
        models.append(
            MSTL(season_length=seasons, trend_forecaster=AutoETS(model="ZZN"), alias="mstl")
        )
    sf = StatsForecast(models=models, freq=freq.replace("1h", "h"), n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = sf.forecast(df=df, h=h, level=list(LEVELS))
    out = {}
    for m in models:
        name = m.alias
        part = fc[["unique_id", "ds", name]].rename(columns={name: "mean"})
        for lv in LEVELS:
            part[f"lo_{lv}"] = fc[f"{name}-lo-{lv}"]
            part[f"hi_{lv}"] = fc[f"{name}-hi-{lv}"]
        out[name] = part
    return out


def peer_prophet(train: pd.DataFrame, h: int, freq: str) -> pd.DataFrame:
    from prophet import Prophet

    logging.getLogger("cmdstanpy").setLevel(logging.ERROR)
    logging.getLogger("prophet").setLevel(logging.ERROR)
    parts = []
    for uid, g in train.groupby("unique_id"):
        m = Prophet(uncertainty_samples=300)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(g[["ds", "y"]].dropna())
            future = pd.DataFrame(
                {"ds": pd.date_range(g["ds"].max(), periods=h + 1, freq=freq)[1:]}
            )
            point = m.predict(future)["yhat"].to_numpy()
            samples = m.predictive_samples(future)["yhat"]
        part = pd.DataFrame({"unique_id": uid, "ds": future["ds"], "mean": point})
        for lv in LEVELS:
            part[f"lo_{lv}"] = np.quantile(samples, 0.5 - lv / 200, axis=1)
            part[f"hi_{lv}"] = np.quantile(samples, 0.5 + lv / 200, axis=1)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _gbr_features(y: np.ndarray, ds: pd.DatetimeIndex, t: int, per_hour: int) -> list[float]:
    hour = ds[t].hour
    dow = ds[t].dayofweek
    feats = [
        hour,
        dow,
        float(dow >= 5),
        float(dow < 5 and 9 <= hour < 18),
        np.sin(2 * np.pi * hour / 24),
        np.cos(2 * np.pi * hour / 24),
        np.sin(2 * np.pi * dow / 7),
        np.cos(2 * np.pi * dow / 7),
    ]
    for lag in (1, 2, 3, 24 * per_hour, 48 * per_hour, 168 * per_hour):
        feats.append(y[t - lag] if t - lag >= 0 else np.nan)
    for w in (6, 12, 24, 168):
        win = y[max(0, t - w * per_hour) : t]
        feats += [win.mean(), win.std(), win.max()] if len(win) else [np.nan] * 3
    return feats


def peer_gbr(train: pd.DataFrame, h: int, freq: str, per_hour: int) -> pd.DataFrame:
    """The seed articles' recipe, predicted recursively so no future lag leaks in."""
    from sklearn.ensemble import GradientBoostingRegressor

    parts = []
    for uid, g in train.groupby("unique_id"):
        y = _filled(g["y"].to_numpy())
        ds = pd.DatetimeIndex(g["ds"])
        full_ds = ds.append(pd.date_range(ds[-1], periods=h + 1, freq=freq)[1:])
        start = min(len(y) - 1, 24 * per_hour)
        x = np.array([_gbr_features(y, full_ds, t, per_hour) for t in range(start, len(y))])
        x = np.nan_to_num(x, nan=0.0)
        model = GradientBoostingRegressor(random_state=0).fit(x, y[start:])
        ext = list(y)
        for t in range(len(y), len(y) + h):
            row = np.nan_to_num(np.array([_gbr_features(np.array(ext), full_ds, t, per_hour)]))
            ext.append(max(float(model.predict(row)[0]), 0.0))
        part = pd.DataFrame({"unique_id": uid, "ds": full_ds[len(y) :], "mean": ext[len(y) :]})
        for lv in LEVELS:
            part[f"lo_{lv}"] = np.nan
            part[f"hi_{lv}"] = np.nan
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def ours(
    data: Path, name: str, origin_ds: pd.Timestamp, h: int, total_id: str | None
) -> pd.DataFrame:
    """Run ``tokenplan forecast`` on the trace's rows before ``origin_ds``, as a user would."""
    rel, metric, split = SOURCES[name]
    raw = pd.read_csv(data / rel, dtype=str, keep_default_na=False)
    stamps = pd.to_datetime(raw["timestamp"]).dt.tz_localize(None)
    exe = Path(sys.executable).with_name("tokenplan")
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "usage.csv", Path(tmp) / "forecast.csv"
        raw[stamps < origin_ds].to_csv(src, index=False)
        cmd = [str(exe), "forecast", "--input", str(src), "--metric", metric]
        cmd += ["--horizon", str(h), "--out", str(out)] + (["--by", "model"] if split else [])
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({name}, {origin_ds}): {done.stderr}")
        pred = pd.read_csv(out)
    pred["ds"] = pd.to_datetime(pred["timestamp"]).dt.tz_localize(None)
    if split:
        pred["unique_id"] = np.where(
            pred["series"] == "total", str(total_id), pred["series"] + f":{metric}"
        )
    else:
        pred["unique_id"] = raw["model"].iloc[0]
    return pred.drop(columns=["series", "timestamp"])


# ---- scoring ---------------------------------------------------------------------------------


def score(
    pred: pd.DataFrame, test: pd.DataFrame, train: pd.DataFrame, daily: int
) -> list[dict[str, float]]:
    rows = []
    for uid, actual in test.groupby("unique_id"):
        p = pred[pred["unique_id"] == uid].set_index("ds").reindex(actual["ds"])
        y = actual["y"].to_numpy()
        hist = train.loc[train["unique_id"] == uid, "y"].to_numpy()
        scale = np.nanmean(np.abs(hist[daily:] - hist[:-daily]))
        ok = ~np.isnan(y)
        f = np.maximum(p["mean"].to_numpy(), 0.0)
        err = np.abs(y - f)[ok]
        denom = (np.abs(y) + np.abs(f))[ok]
        row = {
            "mase": float(err.mean() / scale),
            "smape": float(np.mean(np.where(denom > 0, 200 * err / np.maximum(denom, 1e-12), 0))),
            "n": float(ok.sum()),
        }
        for lv in LEVELS:
            lo, hi = p[f"lo_{lv}"].to_numpy()[ok], p[f"hi_{lv}"].to_numpy()[ok]
            row[f"hits{lv}"] = float(np.sum((y[ok] >= lo) & (y[ok] <= hi)))
            row[f"has{lv}"] = float(np.isfinite(lo).all())
        rows.append(row)
    return rows


def _case(args: tuple) -> list[dict[str, object]]:
    """Forecast one (dataset, h, origin) with one method group and score it."""
    data, name, h, origin, group, cache = args
    frame, freq, total_id = datasets(data)[name]
    per_hour = 6 if freq == "10min" else 1
    daily = 24 * per_hour
    frame = with_total(frame, total_id).sort_values(["unique_id", "ds"])
    groups = [g for _, g in frame.groupby("unique_id")]
    train = pd.concat([g.iloc[:origin] for g in groups], ignore_index=True)
    test = pd.concat([g.iloc[origin : origin + h] for g in groups], ignore_index=True)
    seasons = [s for s in (daily, 7 * daily) if origin >= 2 * s]
    key = cache / f"{name}-{h}-{origin}-{group}.pkl" if cache and group != "tokenplan" else None
    start = time.perf_counter()
    if key is not None and key.exists():
        preds, seconds = pickle.loads(key.read_bytes())
    else:
        if group == "tokenplan":
            preds = {group: ours(data, name, groups[0]["ds"].iloc[origin], h, total_id)}
        elif group == "statsforecast":
            preds = peer_statsforecast(train, h, freq, daily, seasons)
        elif group == "gbr_recursive":
            preds = {group: peer_gbr(train, h, freq, per_hour)}
        else:
            preds = {group: peer_prophet(train, h, freq)}
        seconds = (time.perf_counter() - start) / len(preds)
        if key is not None:
            key.parent.mkdir(parents=True, exist_ok=True)
            key.write_bytes(pickle.dumps((preds, seconds)))
    rows = []
    for method, pred in preds.items():
        for row in score(pred, test, train, daily):
            row |= {"dataset": name, "h": h, "origin": origin, "method": method}
            rows.append(row | {"seconds": seconds})
    return rows


def run(
    data: Path,
    quick: bool,
    only: str | None,
    skip_prophet: bool,
    jobs: int = 1,
    cache: Path | None = None,
) -> pd.DataFrame:
    cases = []
    for name, (frame, freq, _total_id) in datasets(data).items():
        if (only and only not in name) or (quick and not only and name not in QUICK):
            continue
        daily = 24 * (6 if freq == "10min" else 1)
        n = frame.groupby("unique_id").size().min()
        groups = ["tokenplan", "statsforecast", "gbr_recursive"]
        groups += [] if skip_prophet else ["prophet"]
        for h in (24, 168):
            for origin in origins(n, h, daily, 1 if quick else 3):
                cases += [(data, name, h, origin, group, cache) for group in groups]
    records = []
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        for args, rows in zip(cases, pool.map(_case, cases), strict=True):
            records += rows
            print(f"done {args[1]} h={args[2]} origin={args[3]} {args[4]}", flush=True)
    return pd.DataFrame(records)


def table(records: pd.DataFrame) -> pd.DataFrame:
    def agg(g: pd.DataFrame) -> pd.Series:
        out = {"MASE": g["mase"].mean(), "sMAPE": g["smape"].mean()}
        for lv in LEVELS:
            has = g[f"has{lv}"].all()
            out[f"cov{lv}"] = g[f"hits{lv}"].sum() / g["n"].sum() if has else np.nan
        out["s/case"] = g.groupby("origin")["seconds"].first().mean()
        out["cases"] = len(g)
        return pd.Series(out)

    return records.groupby(["dataset", "h", "method"]).apply(agg, include_groups=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--quick", action="store_true", help="one origin per case, three datasets")
    parser.add_argument("--only", help="run datasets whose name contains this")
    parser.add_argument("--no-prophet", action="store_true")
    parser.add_argument("--save", type=Path, help="write the raw per-case scores as CSV")
    parser.add_argument("--jobs", type=int, default=2, help="cases run in parallel")
    parser.add_argument("--cache", type=Path, help="folder to keep peer forecasts in")
    args = parser.parse_args()
    records = run(args.data, args.quick, args.only, args.no_prophet, args.jobs, args.cache)
    if args.save:
        records.to_csv(args.save, index=False)
    pd.set_option("display.width", 200)
    print(table(records).round(3).to_string())
    print()
    per_dataset = records.groupby(["dataset", "method"])["mase"].mean().unstack()
    peers = per_dataset.drop(columns="tokenplan")
    summary = pd.DataFrame(
        {
            "tokenplan": per_dataset["tokenplan"],
            "best_peer": peers.idxmin(axis=1),
            "best_peer_mase": peers.min(axis=1),
        }
    )
    summary["ratio"] = summary["tokenplan"] / summary["best_peer_mase"]
    summary["target_met(<=0.95)"] = summary["ratio"] <= 0.95
    mine = records[records["method"] == "tokenplan"].groupby("dataset")
    for lv in LEVELS:
        summary[f"cov{lv}"] = mine[f"hits{lv}"].sum() / mine["n"].sum()
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
