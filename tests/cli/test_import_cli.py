"""`tokenplan import` as a user runs it: a summary on success, one line and exit 2 on bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_process import run_cli

DATA = Path(__file__).resolve().parents[1] / "data"
GOOD = DATA / "shared" / "azure_llm_2023" / "minutely.csv"


def _state(db: Path) -> str:
    out = run_cli(
        "usage", "--db", str(db), "--metric", "total_tokens", "--freq", "1h", "--format", "csv"
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_prints_a_summary(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    out = run_cli("import", str(GOOD), "--db", str(db))
    assert out.returncode == 0, out.stderr
    for words in ("rows read", "118", "rows rejected", "2023-11-16T18:15:00Z", "azure-code",
                  "44,756,405", "unpriced models"):  # fmt: skip
        assert words in out.stdout
    again = run_cli("import", str(GOOD), "--db", str(db))
    assert "0 new, 118 already present" in again.stdout


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    negative = tmp_path / "negative.csv"
    negative.write_text(
        "ts,model,input_tokens,output_tokens\n"
        + "".join(f"2025-01-01T00:0{i}:00Z,m,10,5\n" for i in range(3))
        + "2025-01-01T00:09:00Z,m,-7,5\n"
    )
    timestamp = tmp_path / "timestamp.csv"
    timestamp.write_text(
        "timestamp,model,requests\n2025-01-01T00:00:00Z,m,1\n2025-01-01T25:00:00Z,m,1\n"
    )
    truncated = tmp_path / "truncated.json"
    text = (DATA / "provider" / "anthropic_usage.json").read_text()
    truncated.write_text(text[: len(text) - 200])
    return {
        "negative tokens": (negative, f"{negative}, line 5, field 'input_tokens': -7 is negative"),
        "malformed timestamp": (timestamp, f"{timestamp}, line 3, field 'timestamp'"),
        "truncated JSON": (truncated, f"{truncated}, line "),
    }


def test_a_small_cost_is_not_shown_as_zero(tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    calls.write_text(
        '{"ts": "2025-06-01T00:00:00Z", "provider": "openai", "model": "gpt-4o-mini",'
        ' "input_tokens": 1000, "output_tokens": 100, "request_id": "a"}\n'
    )
    out = run_cli("import", str(calls), "--db", str(tmp_path / "t.duckdb"))
    assert out.returncode == 0, out.stderr
    # 1,000 input tokens at $0.15/M and 100 output at $0.60/M: $0.00021, not "$0.00".
    assert "$0.00021" in out.stdout
    assert "$0.00 " not in out.stdout


@pytest.mark.parametrize("case", ["negative tokens", "malformed timestamp", "truncated JSON"])
def test_bad_file_exits_2_and_changes_nothing(tmp_path: Path, case: str) -> None:
    db = tmp_path / "t.duckdb"
    assert run_cli("import", str(GOOD), "--db", str(db)).returncode == 0
    before = _state(db)
    path, start = _bad_files(tmp_path)[case]
    out = run_cli("import", str(path), "--db", str(db))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: {start}"), lines[0]
    assert "Traceback" not in out.stderr
    assert _state(db) == before


def test_bad_options(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    out = run_cli("import", str(GOOD), "--db", str(db), "--tz", "Mars/Olympus")
    assert out.returncode == 2
    assert "unknown time zone 'Mars/Olympus'" in out.stderr
    out = run_cli("import", str(tmp_path / "nope.csv"), "--db", str(db))
    assert out.returncode == 2
    assert "no such file" in out.stderr


def test_usage_since_reads_a_span_before_the_datas_end(tmp_path: Path) -> None:
    # Azure 2023's minutes end at 19:14Z: "30m" is from 18:44Z, whatever the wall clock says.
    db = tmp_path / "t.duckdb"
    assert run_cli("import", str(GOOD), "--db", str(db)).returncode == 0
    usage = ("usage", "--db", str(db), "--metric", "requests", "--freq", "1min", "--format", "csv")
    span = run_cli(*usage, "--since", "30m")
    iso = run_cli(*usage, "--since", "2023-11-16T18:44:00Z")
    assert span.returncode == 0, span.stderr
    assert span.stdout == iso.stdout
    assert span.stdout.splitlines()[1].split(",")[1] == "2023-11-16T18:44:00Z"
    bad = run_cli(*usage, "--since", "yesterday")
    assert bad.returncode == 2
    assert "'yesterday' is neither an ISO 8601 time" in bad.stderr


def test_an_export_taken_before_its_last_day_ended_is_read_as_partial(tmp_path: Path) -> None:
    """Today's daily bucket of an OpenAI usage export is still open: `import` and `usage` say
    so, and `project` forecasts the day rather than read its part as the whole day."""
    today = int(time.time()) // 86_400 * 86_400
    buckets = [
        {
            "object": "bucket",
            "start_time": today - k * 86_400,
            "end_time": today - (k - 1) * 86_400,
            "results": [
                {
                    "object": "organization.usage.completions.result",
                    "input_tokens": 1_000_000 if k else 10,
                    "output_tokens": 100_000 if k else 1,
                    "num_model_requests": 500 if k else 1,
                    "model": "gpt-4o-mini",
                    "batch": False,
                }
            ],
        }
        for k in range(20, -1, -1)
    ]
    export = tmp_path / "usage.json"
    export.write_text(json.dumps({"object": "page", "data": buckets, "has_more": False}))
    db = tmp_path / "t.duckdb"
    out = run_cli("import", str(export), "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert "end after now" in " ".join(out.stdout.split())
    usage = run_cli("usage", "--db", str(db), "--metric", "total_tokens", "--freq", "1d")
    assert "its numbers are partial" in " ".join(usage.stdout.split())
    assert "buckets 1d wide" not in usage.stdout
    # Per hour, a day's bucket shows at midnight and 0 after: said, on stderr beside the CSV.
    hourly = run_cli("usage", "--db", str(db), "--freq", "1h", "--format", "csv")
    assert hourly.stdout.startswith("series,timestamp,total_tokens\n")
    assert "buckets 1d wide in this range" in " ".join(hourly.stderr.split())
    project = run_cli(
        "project", "--db", str(db), "--metric", "total_tokens", "--period", "day",
        "--limit", "1e9", "--format", "json",
    )  # fmt: skip
    assert project.returncode == 0, project.stderr
    day = json.loads(project.stdout)
    assert day["so_far"] == 0  # 11 tokens of an open day are not the day
    assert day["projected"] > 500_000
