"""Saved forecasters: plain JSON with a checksum, never pickle, so loading runs no code.

Layout::

    {"format": "tokenplan-forecaster", "version": 1,
     "body": {"config": ..., "metadata": ..., "result": ...},
     "digest": {"algorithm": "sha256" | "hmac-sha256", "value": "<hex>"}}

The digest covers the canonical JSON of ``body`` (sorted keys, no spaces). ``sha256`` catches
corruption and casual edits; pass ``key=`` to sign with HMAC-SHA256 so that only holders of the
key can produce a file that loads. The body holds the configuration, metadata (library
versions, data range, trained_at), the forecast, the backtest table and the calibrated errors
that sample paths need; ``Forecaster.load(path).fit(df)`` refits with the same configuration.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tokenplan.errors import ModelFileError
from tokenplan.forecast.paths import COMMON_PRIOR
from tokenplan.forecast.result import ForecastResult, PathModel

if TYPE_CHECKING:
    from tokenplan.forecast.engine import Forecaster

FORMAT = "tokenplan-forecaster"
VERSION = 1
# A forecaster file is a few MB at most; refuse anything absurd before parsing it.
_MAX_BYTES = 512 * 1024 * 1024


def _clean(value: Any) -> Any:
    """Plain JSON values: NaN and infinities become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def _canonical(body: Any) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _digest(body: Any, key: bytes | None) -> dict[str, str]:
    data = _canonical(body)
    if key is None:
        return {"algorithm": "sha256", "value": hashlib.sha256(data).hexdigest()}
    return {"algorithm": "hmac-sha256", "value": hmac.new(key, data, hashlib.sha256).hexdigest()}


def _null_if_infinite(value: float) -> float | None:
    """JSON has no infinity: null stands for "none" (no ceiling, no heavy tails)."""
    return float(value) if np.isfinite(value) else None


def _infinite_if_null(p: dict[str, Any], key: str, uid: object, *, minimum: float) -> float:
    """``p[key]`` as written by `_null_if_infinite`: missing or null is infinite."""
    raw = p.get(key)
    value = float("inf") if raw is None else float(raw)
    if np.isnan(value) or value < minimum:
        raise ValueError(f"series {uid!r} has a bad {key} {raw!r}")
    return value


def _frame_records(frame: pd.DataFrame) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for col in frame.columns:
        values = frame[col]
        if pd.api.types.is_datetime64_any_dtype(values):
            out[col] = [ts.isoformat() for ts in values]
        else:
            out[col] = values.tolist()
    return out


def save(forecaster: Forecaster, path: str | Path, *, key: bytes | None = None) -> None:
    """Write ``forecaster`` (fitted) to ``path`` as checksummed JSON."""
    result = forecaster.predict()
    body = _clean(
        {
            "config": forecaster.config(),
            "metadata": forecaster.metadata,
            "result": {
                "frame": _frame_records(result.frame),
                "backtest": _frame_records(result.backtest),
                "notes": result.notes,
                "chosen": result.chosen,
                "paths": {
                    uid: {
                        "point": m.point,
                        "log": m.log,
                        "errors": m.errors,
                        "widening": m.widening,
                        "ceiling": _null_if_infinite(m.ceiling),
                        "shift": m.shift,
                        "tail_df": _null_if_infinite(m.tail_df),
                        "history": m.history,
                        "season": m.season,
                        "common_prior": m.common_prior,
                    }
                    for uid, m in result.paths.items()
                },
            },
        }
    )
    document = {"format": FORMAT, "version": VERSION, "body": body, "digest": _digest(body, key)}
    Path(path).write_text(json.dumps(document, allow_nan=False), encoding="utf-8")


def load(path: str | Path, *, key: bytes | None = None) -> Forecaster:
    """Read and verify a file written by `save`; raise `ModelFileError` on any doubt."""
    where = str(path)
    try:
        size = Path(path).stat().st_size
        if size > _MAX_BYTES:
            raise ModelFileError(f"{where} is {size} bytes, too large to be a forecaster file.")
        document = json.loads(Path(path).read_bytes())
    except ModelFileError:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(
            f"{where} is not a tokenplan forecaster file (not readable JSON: {exc})."
        ) from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ModelFileError(
            f"{where} is not a tokenplan forecaster file (format marker missing); "
            "refit and save with Forecaster.save."
        )
    if document.get("version") != VERSION:
        raise ModelFileError(
            f"{where} has forecaster file version {document.get('version')!r}; "
            f"this tokenplan reads version {VERSION}. Refit and save again."
        )
    body, digest = document.get("body"), document.get("digest")
    if not isinstance(digest, dict) or not isinstance(digest.get("value"), str):
        raise ModelFileError(f"{where} has no integrity digest; it cannot be trusted.")
    expected = "sha256" if key is None else "hmac-sha256"
    if digest.get("algorithm") != expected:
        raise ModelFileError(
            f"{where} is signed with {digest.get('algorithm')!r} but {expected!r} was expected"
            + ("; pass the signing key." if key is None else "; it was saved without a key.")
        )
    try:
        actual = _digest(body, key)["value"]
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{where} has a malformed body: {exc}") from exc
    if not hmac.compare_digest(actual, digest["value"]):
        raise ModelFileError(
            f"{where} failed its integrity check: the file was changed after it was saved "
            "(or the key is wrong). Refusing to load it."
        )
    if not isinstance(body, dict):
        raise ModelFileError(f"{where} has a malformed body: expected an object.")
    try:
        return _rebuild(body)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(
            f"{where} passed its checksum but its content is malformed: {exc}"
        ) from exc


def _rebuild(body: dict[str, Any]) -> Forecaster:
    from tokenplan.forecast.engine import Forecaster

    config = dict(body["config"])
    forecaster = Forecaster(
        config.pop("freq"), int(config.pop("horizon")), config.pop("levels"), **config
    )
    raw = body["result"]
    frame = pd.DataFrame(raw["frame"])
    frame["ds"] = pd.to_datetime(frame["ds"])
    numeric = [c for c in frame.columns if c not in ("unique_id", "ds")]
    frame[numeric] = frame[numeric].astype(float)
    backtest = pd.DataFrame(raw["backtest"])
    for col in backtest.columns:
        if col not in ("unique_id", "method", "chosen", "why"):
            backtest[col] = backtest[col].astype(float)
    paths = {}
    for uid, p in raw["paths"].items():
        errors = np.array(
            [[np.nan if v is None else float(v) for v in row] for row in p["errors"]], dtype=float
        )
        point = np.array(p["point"], dtype=float)
        if errors.ndim != 2 or errors.shape[1] != len(point) or len(point) != forecaster.horizon:
            raise ValueError(f"series {uid!r} has arrays of the wrong shape")
        # Files written before paths were widened have no factor: theirs is 1.
        widening = float(p.get("widening", 1.0))
        if not np.isfinite(widening) or widening < 1.0:
            raise ValueError(f"series {uid!r} has a bad widening {widening!r}")
        # Files written before bands had a ceiling have none.
        ceiling = _infinite_if_null(p, "ceiling", uid, minimum=0.0)
        # Files written before errors were read in log(y + c) have log1p's c = 1.
        shift = float(p.get("shift", 1.0))
        if not np.isfinite(shift) or shift < 1.0:
            raise ValueError(f"series {uid!r} has a bad shift {p.get('shift')!r}")
        # Files written before paths had a heavy-tailed scale have none.
        tail_df = _infinite_if_null(p, "tail_df", uid, minimum=1.0)
        history, season = _history(p, uid)
        # Files written before the prior was read off the series' history have the fixed one.
        prior = float(p.get("common_prior", COMMON_PRIOR))
        if not 0.0 <= prior <= 1.0:
            raise ValueError(f"series {uid!r} has a bad common_prior {prior!r}")
        paths[str(uid)] = PathModel(
            point=point,
            log=bool(p["log"]),
            errors=errors,
            widening=widening,
            ceiling=ceiling,
            shift=shift,
            tail_df=tail_df,
            history=history,
            season=season,
            common_prior=prior,
        )
    forecaster.result = ForecastResult(
        frame=frame,
        notes={str(k): str(v) for k, v in raw["notes"].items()},
        chosen={str(k): str(v) for k, v in raw["chosen"].items()},
        backtest=backtest,
        levels=forecaster.levels,
        horizon=forecaster.horizon,
        freq=forecaster.freq,
        paths=paths,
        total_id=forecaster.hierarchy,
    )
    # JSON keys are strings: the notes of a series saved with an integer id come back as "1".
    forecaster.result.restore_ids(frame["unique_id"].drop_duplicates().tolist())
    forecaster.metadata = dict(body["metadata"])
    return forecaster


def _history(p: dict[str, Any], uid: object) -> tuple[np.ndarray | None, int]:
    """An intermittent series' bootstrap history and cycle; files written before have none."""
    season = p.get("season", 1)
    if not isinstance(season, int) or isinstance(season, bool) or season < 1:
        raise ValueError(f"series {uid!r} has a bad season {season!r}")
    if p.get("history") is None:
        return None, season
    history = np.array([float(v) for v in p["history"]], dtype=float)
    if history.ndim != 1 or not np.all(np.isfinite(history)) or np.any(history < 0):
        raise ValueError(f"series {uid!r} has a bad history: finite usage >= 0 expected")
    return history, season
