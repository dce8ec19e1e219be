"""Every real file under tests/data/shared imports, and `tokenplan usage` totals equal its sums."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pytest

from tokenplan.cli import main
from tokenplan.collect import import_file
from tokenplan.store import DuckDBStore

DATA = Path(__file__).resolve().parents[1] / "data" / "shared"
USAGE_FILES = sorted(p for p in DATA.glob("*/*.csv*") if not p.name.startswith("requests"))
TRACES = {
    "azure_llm_2023/requests.csv.gz": ("ContextTokens", "GeneratedTokens"),
    "mooncake_conversation/requests.csv.gz": ("input_length", "output_length"),
}
METRICS = ("requests", "input_tokens", "output_tokens")


def _rows(path: Path) -> list[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:  # type: ignore[operator]
        return list(csv.DictReader(f))


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out = capsys.readouterr()
    assert exit_info.value.code == 0, out.err
    return out.out


def _usage(capsys: pytest.CaptureFixture[str], db: Path, metric: str, freq: str) -> list[str]:
    text = _cli(
        capsys, "usage", "--db", str(db), "--metric", metric, "--freq", freq, "--format", "csv"
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    return [r[metric] for r in rows]


def test_all_usage_files_are_found() -> None:
    names = {p.name for p in USAGE_FILES}
    assert {"hourly.csv", "minutely.csv", "10min.csv", "clients_10min.csv.gz"} <= names
    assert len(USAGE_FILES) == 10


@pytest.mark.parametrize("path", USAGE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_usage_file_totals_are_exact(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "t.duckdb"
    _cli(capsys, "import", str(path), "--db", str(db))
    rows = _rows(path)
    for metric in METRICS:
        known = [int(r[metric]) for r in rows if r[metric] != ""]
        values = _usage(capsys, db, metric, "1d")
        got = [int(v) for v in values if v != ""]
        if known:
            assert sum(got) == sum(known), metric
        else:
            # A column the source does not know stays unknown: never a made-up zero.
            assert got == [], metric
    totals = _usage(capsys, db, "total_tokens", "1d")
    expected = sum(
        int(r["input_tokens"]) + int(r["output_tokens"])
        for r in rows
        if r["input_tokens"] != "" and r["output_tokens"] != ""
    )
    assert sum(int(v) for v in totals if v != "") == expected


def test_nasa_gap_hours_stay_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = DATA / "nasa_http_1995_proxy" / "hourly.csv"
    db = tmp_path / "t.duckdb"
    _cli(capsys, "import", str(path), "--db", str(db))
    rows = _rows(path)
    values = _usage(capsys, db, "requests", "1h")
    assert len(values) == len(rows) == 1488
    gaps = [i for i, r in enumerate(rows) if r["requests"] == ""]
    assert len(gaps) == 82 + 37
    assert all(values[i] == "" for i in gaps)
    assert all(values[i] == r["requests"] for i, r in enumerate(rows) if r["requests"] != "")


@pytest.mark.parametrize("name", sorted(TRACES))
def test_traces_import_exactly(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = DATA / name
    db = tmp_path / "t.duckdb"
    _cli(capsys, "import", str(path), "--db", str(db))
    rows = _rows(path)
    inp, out = TRACES[name]
    assert sum(int(v) for v in _usage(capsys, db, "requests", "1h")) == len(rows)
    assert sum(int(v) for v in _usage(capsys, db, "input_tokens", "1h")) == sum(
        int(r[inp]) for r in rows
    )
    assert sum(int(v) for v in _usage(capsys, db, "output_tokens", "1h")) == sum(
        int(r[out]) for r in rows
    )


@pytest.mark.parametrize(
    ("trace", "minutely"),
    [
        ("azure_llm_2023/requests.csv.gz", "azure_llm_2023/minutely.csv"),
        ("mooncake_conversation/requests.csv.gz", "mooncake_conversation/minutely.csv"),
    ],
)
def test_trace_matches_its_minutely_aggregate(trace: str, minutely: str) -> None:
    with DuckDBStore(":memory:") as raw, DuckDBStore(":memory:") as agg:
        import_file(raw, DATA / trace)
        import_file(agg, DATA / minutely)
        for metric in ("requests", "total_tokens"):
            a = raw.series(metric, "1min", ["model"], exact=True)
            b = agg.series(metric, "1min", ["model"], exact=True)
            merged = a.merge(b, on=["unique_id", "ds"], how="outer").fillna(0)
            assert (merged["y_x"] == merged["y_y"]).all(), metric


@pytest.mark.parametrize(
    ("name", "width"),
    [
        ("azure_llm_2023/minutely.csv", 60),
        ("servegen_language/10min.csv", 600),
        ("servegen_language/clients_10min.csv.gz", 600),
        ("nasa_http_1995_proxy/hourly.csv", 3600),
    ],
)
def test_bucket_width_is_inferred(name: str, width: int) -> None:
    with DuckDBStore(":memory:") as store:
        import_file(store, DATA / name)
        widths = store.connection.execute("SELECT DISTINCT bucket_s FROM usage").fetchall()
    assert widths == [(width,)]


@pytest.mark.parametrize(
    "name", ["servegen_language/clients_10min.csv.gz", "azure_llm_2023/requests.csv.gz"]
)
def test_reimport_changes_nothing(name: str) -> None:
    with DuckDBStore(":memory:") as store:
        first = import_file(store, DATA / name)
        before = store.summary()
        second = import_file(store, DATA / name)
        assert store.summary() == before
    assert first.inserted == first.rows_read > 0
    assert (second.inserted, second.duplicates) == (0, first.rows_read)
