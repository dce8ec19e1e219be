"""The peers a user would pick instead of tokenplan, each fitted on the same training frame.

statsforecast 2.1.1: seasonal naive at each usable season, naive, AutoETS and AutoTheta on the
daily season, MSTL on all usable seasons with an AutoETS(ZZN) trend; Prophet 1.5 with its
defaults. All give native 80% / 95% intervals (Prophet from its predictive samples). Gaps are
linearly interpolated for them; forecasts and bounds are clipped at zero, as usage is never
negative. Fits are deterministic, so `PeerCache` keeps them by a hash of their input.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from accuracy_cases import PANDAS_FREQ

LEVELS = (80, 95)


@dataclass(frozen=True)
class Peer:
    """A named forecaster: ``fit(train, h, freq)`` returns ``unique_id, ds, mean, lo_*, hi_*``."""

    name: str
    spec: str
    fit: Callable[[pd.DataFrame, int, str], pd.DataFrame]


def statsforecast_peers(seasons: tuple[int, ...], primary: int) -> list[Peer]:
    """The statsforecast peers for a case with these usable seasons."""
    import statsforecast
    from statsforecast.models import MSTL, AutoETS, AutoTheta, Naive, SeasonalNaive

    makers: list[tuple[str, Callable[[], object]]] = [
        (f"seasonal_naive_{s}", lambda s=s: SeasonalNaive(season_length=s)) for s in seasons
    ]
    makers += [
        ("naive", Naive),
        ("auto_ets", lambda: AutoETS(season_length=primary)),
        ("auto_theta", lambda: AutoTheta(season_length=primary)),
    ]
    if seasons:
        # A fresh trend model each time: statsforecast shares MSTL's default one between fits.
        makers.append(
            (
                "mstl",
                lambda: MSTL(season_length=list(seasons), trend_forecaster=AutoETS(model="ZZN")),
            )
        )
    version = f"statsforecast {statsforecast.__version__}"
    return [
        Peer(name, f"{name}:{seasons}:{primary}:{version}", _statsforecast(make))
        for name, make in makers
    ]


def _statsforecast(make: Callable[[], object]) -> Callable[[pd.DataFrame, int, str], pd.DataFrame]:
    def fit(train: pd.DataFrame, h: int, freq: str) -> pd.DataFrame:
        from statsforecast import StatsForecast

        model = make()
        jobs = 2 if train["unique_id"].nunique() > 1 else 1
        sf = StatsForecast(models=[model], freq=PANDAS_FREQ[freq], n_jobs=jobs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fc = sf.forecast(df=train, h=h, level=list(LEVELS))
        name = str(model)
        out = fc[["unique_id", "ds"]].copy()
        out["mean"] = fc[name]
        for lv in LEVELS:
            out[f"lo_{lv}"] = fc[f"{name}-lo-{lv}"]
            out[f"hi_{lv}"] = fc[f"{name}-hi-{lv}"]
        return out

    return fit


def _prophet(train: pd.DataFrame, h: int, freq: str) -> pd.DataFrame:
    from prophet import Prophet

    # cmdstanpy resets its own level on every fit; only disabling the logger keeps it quiet.
    logging.getLogger("cmdstanpy").disabled = True
    logging.getLogger("prophet").setLevel(logging.ERROR)
    parts = []
    for uid, g in train.groupby("unique_id", sort=False):
        model = Prophet(uncertainty_samples=500)
        future = pd.DataFrame(
            {"ds": pd.date_range(g["ds"].max(), periods=h + 1, freq=PANDAS_FREQ[freq])[1:]}
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(g[["ds", "y"]])
            point = model.predict(future)["yhat"].to_numpy()
            samples = model.predictive_samples(future)["yhat"]
        part = pd.DataFrame({"unique_id": uid, "ds": future["ds"], "mean": point})
        for lv in LEVELS:
            part[f"lo_{lv}"] = np.quantile(samples, 0.5 - lv / 200, axis=1)
            part[f"hi_{lv}"] = np.quantile(samples, 0.5 + lv / 200, axis=1)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def prophet_peer() -> Peer | None:
    """Prophet with its defaults, or None when it is not installed."""
    logging.getLogger("prophet.plot").disabled = True  # "Importing plotly failed": harmless
    try:
        import prophet
    except ImportError:
        return None
    return Peer("prophet", f"prophet:{prophet.__version__}", _prophet)


def filled(train: pd.DataFrame) -> pd.DataFrame:
    """Gaps linearly interpolated per series, for peers that cannot take NaN."""
    out = train.copy()
    out["y"] = out.groupby("unique_id")["y"].transform(
        lambda s: s.interpolate(limit_direction="both").fillna(0.0)
    )
    return out


class PeerCache:
    """Peer forecasts on disk, keyed by the peer, horizon, frequency and training data."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def forecast(
        self, peer: Peer, train: pd.DataFrame, h: int, freq: str
    ) -> tuple[pd.DataFrame, float, bool]:
        """``(forecast, seconds the fit took, came from the cache)``; bounds clipped at zero."""
        path = self._path(peer, train, h, freq)
        if path is not None and path.exists():
            frame, seconds = pickle.loads(path.read_bytes())
            return frame, seconds, True
        start = time.perf_counter()
        frame = peer.fit(train, h, freq)
        seconds = time.perf_counter() - start
        cols = ["mean"] + [f"{side}_{lv}" for lv in LEVELS for side in ("lo", "hi")]
        frame[cols] = frame[cols].clip(lower=0.0)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pickle.dumps((frame, seconds)))
        return frame, seconds, False

    def _path(self, peer: Peer, train: pd.DataFrame, h: int, freq: str) -> Path | None:
        if self.folder is None:
            return None
        digest = hashlib.sha256(f"{peer.spec}|{h}|{freq}|".encode())
        digest.update(pd.util.hash_pandas_object(train, index=False).to_numpy().tobytes())
        return self.folder / f"{peer.name}-{digest.hexdigest()[:20]}.pkl"
