"""Saved forecasters round-trip with metadata; tampered or foreign files are refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tokenplan.errors import ModelFileError
from tokenplan.forecast import Forecaster, persistence


@pytest.fixture
def fitted(series: pd.DataFrame) -> Forecaster:
    now = datetime(2024, 2, 1, tzinfo=UTC)
    return Forecaster("1h", 12, (80, 95), local_models=False).fit(series, now=now)


def test_round_trip(fitted: Forecaster, tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    fitted.save(str(path))
    loaded = Forecaster.load(str(path))
    pd.testing.assert_frame_equal(loaded.predict().frame, fitted.predict().frame)
    assert loaded.predict().chosen == fitted.predict().chosen
    assert loaded.predict().sum_interval("s") == fitted.predict().sum_interval("s")
    meta = loaded.metadata
    assert meta["trained_at"] == "2024-02-01T00:00:00+00:00"
    assert meta["data_start"].startswith("2024-01-01")
    assert {"statsforecast", "lightgbm", "pandas"} <= set(meta["versions"])
    assert loaded.config() == fitted.config()


def test_tampered_number_is_refused(fitted: Forecaster, tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    fitted.save(str(path))
    doc = json.loads(path.read_text())
    doc["body"]["result"]["frame"]["mean"][0] *= 10
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match="integrity"):
        Forecaster.load(str(path))


@pytest.mark.parametrize(
    "content", [b"\x80\x04\x95pickle", b"{}", b'{"format": "other"}', b"[1, 2]", b"not json"]
)
def test_foreign_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(content)
    with pytest.raises(ModelFileError):
        Forecaster.load(str(path))


def test_signed_file_needs_the_key(fitted: Forecaster, tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    fitted.save(str(path), key=b"secret")
    assert Forecaster.load(str(path), key=b"secret").predict().frame.shape[0] == 12
    with pytest.raises(ModelFileError, match="key"):
        Forecaster.load(str(path))
    with pytest.raises(ModelFileError, match="integrity"):
        Forecaster.load(str(path), key=b"wrong")


def test_missing_file_is_model_file_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError):
        Forecaster.load(str(tmp_path / "absent.json"))


def test_a_short_historys_widened_sums_round_trip(tmp_path: Path) -> None:
    from forecast_frames import usage

    # Three days hourly: few backtest windows, so the paths behind sums are widened.
    fitted = Forecaster("1h", 24, (80, 95), local_models=False).fit(usage(n=72, seed=4))
    assert fitted.predict().paths["s"].widening > 1.0
    path = tmp_path / "f.json"
    fitted.save(str(path))
    loaded = Forecaster.load(str(path)).predict()
    assert loaded.paths["s"].widening == fitted.predict().paths["s"].widening
    assert loaded.sum_interval("s") == fitted.predict().sum_interval("s")


def _resave(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit a saved file's paths and re-sign it as `save` would (an older or damaged file)."""
    doc = json.loads(path.read_text())
    for model in doc["body"]["result"]["paths"].values():
        edit(model)
    doc["digest"] = persistence._digest(doc["body"], None)
    path.write_text(json.dumps(doc))


def test_a_file_from_before_heavy_tailed_paths_loads_without_them(
    fitted: Forecaster, tmp_path: Path
) -> None:
    path = tmp_path / "f.json"
    fitted.save(str(path))
    assert fitted.predict().paths["s"].tail_df < float("inf")
    _resave(path, lambda model: model.pop("tail_df"))
    loaded = Forecaster.load(str(path)).predict()
    assert loaded.paths["s"].tail_df == float("inf")
    pd.testing.assert_frame_equal(loaded.frame, fitted.predict().frame)  # bands do not read it
    _resave(path, lambda model: model.update(tail_df=0.5))
    with pytest.raises(ModelFileError, match="bad tail_df"):
        Forecaster.load(str(path))
