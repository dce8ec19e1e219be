"""`tokenplan prices MODEL`: the table, JSON, overrides, FX and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tokenplan
from tokenplan.cli import main

EXAMPLE = Path(tokenplan.__file__).parent / "data" / "prices.example.toml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(["prices", *args])
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_table_shows_rates_tiers_and_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "claude-sonnet-4-5", "--provider", "anthropic", "--at", "2025-10-01",
        "--cache-read", "6000", "--cache-write", "2000", "--currency", "CNY", "--fx", "7.3",
    )  # fmt: skip
    assert code == 0
    for text in ("3.75", "22.5", "200,000", "$0.0303", "0.22119 CNY", "in CNY", "genai-prices"):
        assert text in out


def test_json_prices_history(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "o3", "--at", "2025-06-01", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["per_mtok"][0]["input"] == "10"
    assert data["example"]["cost_usd"] == "0.14"  # 10k x $10 + 1k x $40 per MTok
    _, out, _ = run(capsys, "o3", "--at", "2025-06-10", "--format", "json")
    assert json.loads(out)["per_mtok"][0]["input"] == "2"


def test_overrides_file_and_relay_currency(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "claude-sonnet-4-5", "--provider", "myrelay", "--prices", str(EXAMPLE),
        "--at", "2025-10-01", "--format", "json",
    )  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert data["currency"] == "CNY"
    assert data["example"]["cost_usd"] == "0.006164383562"  # 0.045 CNY at 7.3
    assert data["example"]["batch_cost_usd"] == "0.003082191781"


def test_unknown_model_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "no-such-model-xyz")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "no price known for model 'no-such-model-xyz'" in err
    assert "overrides file" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["gpt-4o", "--at", "someday"], "--at"),
        (["gpt-4o", "--fx", "7.3"], "--currency"),
        (["gpt-4o", "--currency", "CNY", "--fx", "-1"], "--fx"),
        (["gpt-4o", "--currency", "EUR"], "no exchange rate"),
        (["gpt-4o", "--input", "10", "--cache-read", "11"], "exceed"),
    ],
)
def test_bad_arguments_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    assert needle in err


def test_bad_overrides_file_exits_2_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[prices]]\nmodel = "x"\ninput = "cheap"\noutput = 1\n', encoding="utf-8")
    code, _, err = run(capsys, "x", "--prices", str(bad))
    assert code == 2
    assert "bad.toml" in err
    assert "input" in err
