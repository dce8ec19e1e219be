"""`tokenplan report`: writes the HTML (and JSON), prints the paths, exits 2 on bad options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_fixtures import seasonal_naive, usage_rows

from tokenplan import capacity as build_module
from tokenplan.cli import main
from tokenplan.store import DuckDBStore


@pytest.fixture
def db(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store file with the synthetic usage; the stand-in forecaster keeps the test fast."""
    with DuckDBStore(db_path) as store:
        store.write(usage_rows())
    monkeypatch.setattr(build_module, "_engine", lambda notes: seasonal_naive)
    return db_path


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return int(exit_info.value.code or 0)


def test_report_writes_html_and_json(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A folder name past any terminal's width: the printed paths must stay whole lines.
    folder = tmp_path / ("reports-" + "x" * 120)
    out, js = folder / "report.html", folder / "report.json"
    code = _run(
        [
            *("report", "--db", str(db), "--out", str(out), "--json", str(js)),
            *("--horizon", "48", "--currency", "cny", "--fx", "7.3"),
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.splitlines() == [str(js), str(out)]
    data = json.loads(js.read_text())
    assert data["horizon_hours"] == 48
    assert data["currency"] == {"code": "CNY", "rate": 7.3, "note": "--fx"}
    assert len(data["capacity"]["items"][0]["hourly"]) == 48
    assert "<svg" in out.read_text()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--currency", "CNY"], "--currency and --fx go together"),
        (["--currency", "CNY", "--fx", "-1"], "positive"),
        (["--limits", "missing.toml"], "does not exist"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    code = _run(["report", "--db", str(db), "--out", str(tmp_path / "x.html"), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert words in err
    assert err.count("\n") == 1
