"""`tokenplan export --parquet DIR` and `--source parquet:DIR`, run as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_process import run_cli

from lake_data import FILES, build_store

# Reading commands whose output must not depend on where the rows are read from.
READS = (
    ("usage", "--metric", "total_tokens", "--freq", "1d", "--by", "provider", "--since",
     "2025-08-01", "--format", "csv"),
    ("usage", "--metric", "cost_usd", "--freq", "1h", "--by", "model", "--since", "2025-08-01",
     "--until", "2025-08-03", "--format", "csv"),
    ("prices", "--missing", "--format", "json"),
    ("reconcile", "--since", "2025-08-01", "--until", "2025-08-04", "--format", "json"),
)  # fmt: skip
TOKEN = "lake-test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store file and the lake `tokenplan export` wrote from it."""
    root = tmp_path_factory.mktemp("export-cli")
    db = build_store(root / "usage.duckdb")
    out = run_cli("export", "--parquet", root / "lake", "--db", db)
    assert out.returncode == 0, out.stderr
    assert (
        out.stdout.split()
        == (
            f"Exported 155 rows (4 days in 9 files) to {root / 'lake'}; days 2023-11-16 to "
            "2025-08-03 (UTC) replaced."
        ).split()
    )
    return db, root / "lake"


def _files(lake: Path) -> list[str]:
    return sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*"))


@pytest.mark.parametrize("command", READS, ids=lambda c: " ".join(c[:2]))
def test_reading_commands_print_the_same_from_the_lake(
    exported: tuple[Path, Path], command: tuple[str, ...]
) -> None:
    db, lake = exported
    from_store = run_cli(*command, "--db", db)
    from_lake = run_cli(*command, "--source", f"parquet:{lake}")
    assert from_store.returncode == from_lake.returncode == 0, from_lake.stderr
    assert from_lake.stdout == from_store.stdout
    assert len(from_store.stdout.splitlines()) > 3


def test_tokenplan_db_may_name_a_lake(exported: tuple[Path, Path]) -> None:
    db, lake = exported
    from_store = run_cli(*READS[0], "--db", db)
    from_env = run_cli(*READS[0], env={"TOKENPLAN_DB": f"parquet:{lake}"})
    assert from_env.returncode == 0, from_env.stderr
    assert from_env.stdout == from_store.stdout


def test_a_forecast_from_the_lake_is_the_forecast_from_the_store(tmp_path: Path) -> None:
    db = tmp_path / "azure.duckdb"
    assert run_cli("import", FILES[0], "--db", db).returncode == 0
    assert run_cli("export", "--parquet", tmp_path / "lake", "--db", db).returncode == 0
    args = ("forecast", "--metric", "total_tokens", "--horizon", "10", "--out")
    assert run_cli(*args, tmp_path / "store.csv", "--db", db).returncode == 0
    out = run_cli(*args, tmp_path / "lake.csv", "--db", f"parquet:{tmp_path / 'lake'}")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "lake.csv").read_text() == (tmp_path / "store.csv").read_text()


def test_exporting_again_changes_nothing(tmp_path: Path) -> None:
    db = build_store(tmp_path / "usage.duckdb")
    lake = tmp_path / "lake"
    assert run_cli("export", "--parquet", lake, "--db", db).returncode == 0
    files, before = _files(lake), run_cli(*READS[0], "--source", f"parquet:{lake}").stdout
    again = run_cli("export", "--parquet", f"parquet:{lake}", "--db", db)
    one_day = run_cli(
        "export", "--parquet", lake, "--db", db, "--since", "2025-08-02T10:00", "--until",
        "2025-08-02T11:00",
    )  # fmt: skip
    assert again.returncode == one_day.returncode == 0, one_day.stderr
    assert "days 2025-08-02 to 2025-08-02 (UTC) replaced" in " ".join(one_day.stdout.split())
    assert _files(lake) == files
    assert run_cli(*READS[0], "--source", f"parquet:{lake}").stdout == before


@pytest.mark.parametrize(
    ("command", "env"),
    [
        (("import", str(FILES[1])), {}),
        (("reprice",), {}),
        (("pull", "anthropic"), {"ANTHROPIC_ADMIN_KEY": "sk-ant-admin01-lake-test"}),
        (("drain", "--redis", "redis://127.0.0.1:1/0", "--once"), {}),
        (("serve", "--port", "0"), {"TOKENPLAN_TOKENS": TOKEN}),
    ],
    ids=lambda v: v[0] if isinstance(v, tuple) else "",
)
def test_writing_commands_refuse_a_lake_at_once(
    exported: tuple[Path, Path], command: tuple[str, ...], env: dict[str, str]
) -> None:
    _, lake = exported
    files = _files(lake)
    out = run_cli(*command, "--source", f"parquet:{lake}", env=env, timeout=60)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"error: parquet:{lake} is a read-only source; import into a --db store file and "
        f"export it with `tokenplan export --parquet {lake}`."
    ]
    assert _files(lake) == files


def test_bad_lakes_and_targets_are_one_line_errors(
    tmp_path: Path, exported: tuple[Path, Path]
) -> None:
    db, _ = exported
    cases = [
        (("usage", "--source", f"parquet:{tmp_path / 'none'}"), f"no Parquet lake at {tmp_path}"),
        (("export", "--parquet", "ftp://host/lake", "--db", db), "a lake cannot live at a ftp://"),
        (("export", "--db", db), "Missing option '--parquet'"),
    ]
    for args, needle in cases:
        out = run_cli(*args)
        assert out.returncode == 2
        assert len(out.stderr.splitlines()) == 1, out.stderr
        assert needle in out.stderr
