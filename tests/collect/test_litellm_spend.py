"""LiteLLM spend-log exports: detection, CSV and JSON, errors naming file/line/field."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenplan.collect import detect, import_file
from tokenplan.collect.detect import Source
from tokenplan.collect.litellm_spend import parse_record
from tokenplan.errors import InvalidInput
from tokenplan.store import open_store

HEADER = (
    "request_id,call_type,api_key,spend,total_tokens,prompt_tokens,completion_tokens,"
    "startTime,endTime,model,user,team_id,request_tags,cache_hit,status\n"
)
ROWS = [
    "r1,acompletion,88dc28d0f0,0.00123,1300,1200,100,2026-01-01 10:00:00.000,"
    '2026-01-01 10:00:01.500,gpt-4o,u-1,team-a,"[""search"", ""prod""]",False,success\n',
    "r2,acompletion,88dc28d0f0,0,0,0,0,2026-01-01 10:05:00,2026-01-01 10:05:00.2,gpt-4o,"
    "u-1,team-a,[],False,failure\n",
    "r3,acompletion,88dc28d0f0,0,50,40,10,2026-01-01 10:06:00,2026-01-01 10:06:00.1,"
    "gpt-4o,u-2,team-b,[],True,success\n",
]


def _csv(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "spend.csv"
    path.write_text(HEADER + "".join(rows))
    return path


def _stored(db: Path) -> list[dict]:
    with open_store(db) as store:
        return store.connection.sql("SELECT * FROM usage ORDER BY ts").to_arrow_table().to_pylist()


def test_csv_export_is_detected_and_imported(tmp_path: Path, db_path: Path) -> None:
    path = _csv(tmp_path, ROWS)
    assert detect.detect_format(Source(path)) == detect.LITELLM_SPEND
    with open_store(db_path) as store:
        summary = import_file(store, path)
    assert summary.format == "litellm_spend"
    assert any("1 LiteLLM cache hits skipped" in n for n in summary.notes)
    ok, failed = _stored(db_path)
    assert (ok["input_tokens"], ok["output_tokens"]) == (1200, 100)  # prompt incl. cached
    assert ok["cost_usd"] == Decimal("0.00123")
    assert (ok["team"], ok["user"], ok["feature"], ok["key_id"]) == (
        "team-a",
        "u-1",
        "search",
        "88dc28d0f0",
    )
    assert ok["latency_ms_sum"] == pytest.approx(1500.0)
    assert failed["input_tokens"] is None
    assert failed["failed_requests"] == 1


def test_reimport_counts_each_request_once(tmp_path: Path, db_path: Path) -> None:
    path = _csv(tmp_path, ROWS)
    with open_store(db_path) as store:
        import_file(store, path)
        again = import_file(store, path)
    assert (again.inserted, again.duplicates) == (0, 2)


def test_json_array_with_format_flag(tmp_path: Path, db_path: Path) -> None:
    path = tmp_path / "spend.json"
    path.write_text(
        json.dumps(
            [
                {
                    "request_id": "j1",
                    "startTime": "2026-01-01T10:00:00Z",
                    "endTime": "2026-01-01T10:00:02Z",
                    "model": "claude-sonnet-4-5",
                    "custom_llm_provider": "anthropic",
                    "spend": 0.5,
                    "prompt_tokens": 10,
                    "completion_tokens": 5,
                    "request_tags": ["batch"],
                }
            ]
        )
    )
    assert detect.detect_format(Source(path)) == detect.LITELLM_SPEND
    with open_store(db_path) as store:
        import_file(store, path, fmt="litellm")
    [row] = _stored(db_path)
    assert (row["provider"], row["feature"], row["cost_usd"]) == (
        "anthropic",
        "batch",
        Decimal("0.5"),
    )


def test_bad_value_names_file_line_and_field_and_stores_nothing(
    tmp_path: Path, db_path: Path
) -> None:
    bad = ROWS[0].replace(",1200,100,", ",12x0,100,")
    path = _csv(tmp_path, [ROWS[2], bad])
    with open_store(db_path) as store, pytest.raises(InvalidInput) as caught:
        import_file(store, path, fmt="litellm")
    assert f"{path}, line 3, field 'prompt_tokens'" in str(caught.value)
    assert _stored(db_path) == []


def test_missing_column_is_named(tmp_path: Path, db_path: Path) -> None:
    path = tmp_path / "spend.csv"
    path.write_text("request_id,startTime,spend,model\nr1,2026-01-01,0,m\n")
    with open_store(db_path) as store, pytest.raises(InvalidInput, match="prompt_tokens"):
        import_file(store, path, fmt="litellm")


_values = st.one_of(st.none(), st.text(max_size=12), st.integers(-5, 10**6), st.floats())


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "startTime": st.one_of(_values, st.just("2026-01-01 10:00:00")),
            "endTime": _values,
            "model": _values,
            "prompt_tokens": _values,
            "completion_tokens": _values,
            "spend": _values,
            "request_tags": _values,
            "status": _values,
            "cache_hit": _values,
        }
    )
)
def test_any_record_parses_or_names_its_field(record: dict) -> None:
    try:
        parsed = parse_record(record, source="f.csv", line=7)
    except InvalidInput as exc:
        message = str(exc)
    else:
        message = "f.csv, line 7"
        if parsed is not None and not isinstance(parsed, dict):
            assert parsed.input_tokens >= 0
            assert parsed.output_tokens >= 0
    assert message.startswith("f.csv, line 7")


@pytest.mark.parametrize("shape", ["jsonl", "json"])
def test_half_a_surrogate_pair_is_refused_with_its_place(
    tmp_path: Path, db_path: Path, shape: str
) -> None:
    good = {"startTime": "2026-01-01 10:00:00", "model": "gpt-4o", "prompt_tokens": 10,
            "completion_tokens": 2, "team_id": "team-a"}  # fmt: skip
    bad = {**good, "team_id": "team-\ud800"}  # half of "\ud800\udc00", as json.dumps escapes it
    path = tmp_path / f"spend.{shape}"
    if shape == "jsonl":
        path.write_text(f"{json.dumps(good)}\n{json.dumps(bad)}\n")
        where = f"{path}, line 2, field 'team_id'"
    else:
        path.write_text(json.dumps([good, bad]))
        where = f"{path}, item 2, field 'team_id'"
    with open_store(db_path) as store, pytest.raises(InvalidInput) as err:
        import_file(store, path, fmt="litellm_spend")
    assert str(err.value).startswith(f"{where}: holds a lone UTF-16 surrogate")
    assert _stored(db_path) == []  # the good record was not stored either


@pytest.mark.parametrize(
    ("old", "new", "field", "problem"),
    [
        # A spend beyond the 26 digits the store keeps.
        (",0.00123,", ",1e999,", "spend", "1E+999 is beyond the 26-digit"),
        # Half a surrogate pair in the JSON tags of a CSV cell.
        ('""search""', '""se\\ud800""', "request_tags", "holds a lone UTF-16 surrogate"),
    ],
)
def test_a_bad_csv_cell_is_refused_with_its_line_and_field(
    tmp_path: Path, db_path: Path, old: str, new: str, field: str, problem: str
) -> None:
    path = _csv(tmp_path, [ROWS[1], ROWS[0].replace(old, new)])
    with open_store(db_path) as store, pytest.raises(InvalidInput) as err:
        import_file(store, path)
    assert str(err.value).startswith(f"{path}, line 3, field '{field}': {problem}")
    assert _stored(db_path) == []
