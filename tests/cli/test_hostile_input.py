"""Hostile and faulty input through the real CLI: exit 0 or one line and exit 2, nothing lost.

Each class of issue 13 runs `python -m tokenplan` in a subprocess and checks the exit code,
that stderr is one line without a traceback, and that the store is unchanged (or changed as
it should be). The property tests at the end call `tokenplan.cli.main` in-process (the same
entry point, without a Python start-up per example) so that enough examples fit in seconds.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from cli_process import SRC, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenplan.cli import main

ESC = "\x1b"


def _one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: "), out.stderr
    return lines[0]


def _usage_csv(db: Path, *extra: str) -> str:
    out = run_cli("usage", "--db", str(db), "--format", "csv", *extra)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _event(tmp: Path, model: str, name: str = "e.jsonl", tokens: int = 10) -> Path:
    import json

    path = tmp / name
    record = {"ts": "2025-03-01T00:00:00Z", "model": model, "input_tokens": tokens}
    path.write_text(json.dumps({**record, "output_tokens": 5}) + "\n")
    return path


# -- 1. the guard ---------------------------------------------------------------------------


def test_the_guard_turns_a_bug_into_one_line_and_debug_shows_the_traceback(
    tmp_path: Path,
) -> None:
    # Inject a bug: a tiny wrapper makes `usage` raise a plain RuntimeError, the kind of
    # unforeseen failure the guard exists for.
    script = (
        "import sys, tokenplan.cli.usage_cmd as u\n"
        "def boom(*a, **k): raise RuntimeError('synthetic bug')\n"
        "u.open_store = boom\n"
        "from tokenplan.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    args = [sys.executable, "-c", script, "usage", "--db", str(tmp_path / "s.duckdb")]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": SRC, "COLUMNS": "200"}
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    line = _one_line_error(out)
    assert "RuntimeError: synthetic bug" in line
    assert "--debug" in line
    debug = subprocess.run([*args, "--debug"], capture_output=True, text=True, env=env)
    assert "Traceback" in debug.stderr
    assert "synthetic bug" in debug.stderr


def test_ctrl_c_during_an_import_exits_130_quietly_and_rolls_back(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    assert run_cli("import", str(_event(tmp_path, "m")), "--db", str(db)).returncode == 0
    before = _usage_csv(db)
    # Ctrl-C arrives while the rows are being written, inside the import's transaction.
    script = (
        "import sys\n"
        "from tokenplan.store.duckdb_store import DuckDBStore\n"
        "real = DuckDBStore._write_one\n"
        "def interrupted(self, batch):\n"
        "    real(self, batch)\n"
        "    raise KeyboardInterrupt\n"
        "DuckDBStore._write_one = interrupted\n"
        "from tokenplan.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    event = str(_event(tmp_path, "m", name="second.jsonl", tokens=99))
    args = [sys.executable, "-c", script, "import", event, "--db", str(db)]
    out = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/bin", "PYTHONPATH": SRC},
    )
    assert out.returncode == 130
    assert out.stderr.strip() == ""
    assert _usage_csv(db) == before


# -- 1b. validated up front: the option or field named, one line, nothing written -----------


@pytest.fixture
def small_store(tmp_path: Path) -> Path:
    """A store with one event, for the commands below (they must fail before using it)."""
    db = tmp_path / "s.duckdb"
    assert run_cli("import", str(_event(tmp_path, "m")), "--db", str(db)).returncode == 0
    return db


def _refused(tmp_path: Path, db: Path, *args: str) -> str:
    """Run a command that must be refused: one line, exit 2, store and folder unchanged."""
    before, files = db.read_bytes(), sorted(tmp_path.rglob("*"))
    store = () if args[0] == "prices" else ("--db", str(db))  # prices reads no store
    line = _one_line_error(run_cli(*args, *store))
    assert db.read_bytes() == before
    assert sorted(tmp_path.rglob("*")) == files
    return line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("forecast", "--horizon", "0"), "--horizon"),
        (("forecast", "--horizon", "-5"), "--horizon"),
        (("forecast", "--horizon", "100000000"), "20000"),
        (("forecast", "--horizon", "99999999999999999999"), "--horizon"),
        (("report", "--horizon", "10000000"), "8784"),
        (("headroom", "--horizon", "0"), "--horizon"),
        *(
            (("report", "--currency", "CNY", "--fx", fx), "--fx")
            for fx in ("0", "-1", "nan", "inf", "abc", "1e999", "1e-400")
        ),
        (("prices", "claude-sonnet-4-5", "--currency", "CNY", "--fx", "1e999"), "--fx"),
    ],
)
def test_out_of_range_options_are_refused_up_front(
    tmp_path: Path, small_store: Path, args: tuple[str, ...], needle: str
) -> None:
    out = ("--out", str(tmp_path / "r.html")) if args[0] == "report" else ()
    assert needle in _refused(tmp_path, small_store, *args, *out)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'[fx]\ncurrency = "CNY"\n\xff\xfe = 1\n', "line 3: byte 0xff is not UTF-8"),
        (b"[[budget]\nname = ", "is not valid TOML"),
        (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "too deeply"),
        (None, "is a directory"),
    ],
)
@pytest.mark.parametrize(
    ("command", "option", "what"),
    [
        ("report", "--prices", "price overrides"),
        ("report", "--budgets", "budgets"),
        ("report", "--limits", "limits"),
        ("budget", "--config", "budgets"),
    ],
)
def test_a_config_file_that_cannot_be_read_is_named(
    tmp_path: Path,
    small_store: Path,
    content: bytes | None,
    needle: str,
    command: str,
    option: str,
    what: str,
) -> None:
    config = tmp_path / "config.toml"
    if content is None:
        config.mkdir()
    else:
        config.write_bytes(content)
    out = ("--out", str(tmp_path / "r.html")) if command == "report" else ()
    line = _refused(tmp_path, small_store, command, option, str(config), *out)
    assert f"the {what} file {config}" in line
    assert needle in line


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("prices.toml", '[fx]\ncurrency = "CNY"\nper_usd = 1e999\n', "'fx.per_usd'"),
        ("prices.toml", '[fx]\ncurrency = "CNY"\nper_usd = "nan"\n', "'fx.per_usd'"),
        ("budgets.toml", '[fx]\ncurrency = "CNY"\nper_usd = 0\n', "'per_usd'"),
    ],
)
def test_an_exchange_rate_in_a_config_file_is_checked_with_its_key_named(
    tmp_path: Path, small_store: Path, name: str, text: str, needle: str
) -> None:
    config = tmp_path / name
    budget = '[[budget]]\nname = "b"\nscope = "all"\namount = 1\n'
    config.write_text(text if name == "prices.toml" else text + budget)
    option = "--prices" if name == "prices.toml" else "--budgets"
    out = str(tmp_path / "r.html")
    line = _refused(tmp_path, small_store, "report", option, str(config), "--out", out)
    assert needle in line
    assert str(config) in line


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        (
            "deep.jsonl",
            '{"ts":"2025-03-01T00:00:00Z","model":"m","input_tokens":1}\n'
            + "[" * 5000
            + "]" * 5000
            + "\n",
            "line 2",
        ),
        (
            "deep_model.jsonl",
            '{"ts":"2025-03-01T00:00:00Z","model":'
            + '{"a":' * 3000
            + "1"
            + "}" * 3000
            + ',"input_tokens":1,"output_tokens":1}\n',
            "line 1",
        ),
        (
            "report.json",
            '{"data":[{"starting_at":"2025-03-01T00:00:00Z","results":'
            + "[" * 5000
            + "]" * 5000
            + '}],"has_more":false}\n',
            "line 1",
        ),
    ],
)
def test_deeply_nested_json_is_refused_with_its_line(
    tmp_path: Path, small_store: Path, name: str, text: str, where: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    line = _refused(tmp_path, small_store, "import", str(path))
    assert f"{path}, {where}: the JSON is nested too deeply" in line


@pytest.mark.parametrize(
    ("command", "target", "needle"),
    [
        (("report", "--out"), "a_file/r.html", "a_file is a file, not a folder"),
        (("report", "--out", "ok.html", "--json"), "a_file/r.json", "--json"),
        (("report", "--out"), "a_folder", "is a folder; give a file name"),
        (("forecast", "--horizon", "24", "--out"), "a_folder", "is a folder"),
        (("forecast", "--horizon", "24", "--out"), "a_file/x/f.csv", "is a file, not a folder"),
        (("demo", "--out"), "a_file", "is a file; give a folder"),
        (("report", "--out"), "/proc/tokenplan-no-such/r.html", "cannot create the folder"),
    ],
)
def test_an_unwritable_out_path_is_refused_before_any_work(
    tmp_path: Path, small_store: Path, command: tuple[str, ...], target: str, needle: str
) -> None:
    (tmp_path / "a_file").write_text("keep me\n")
    (tmp_path / "a_folder").mkdir()
    path = target if target.startswith("/") else str(tmp_path / target)
    line = _refused(tmp_path, small_store, *command, path)
    assert command[-1] in line
    assert needle in line
    assert (tmp_path / "a_file").read_text() == "keep me\n"


# -- 2. untrusted text is data --------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    ["[/x]", "[red]x", "[link=https://evil.example]x[/link]", f"m{ESC}]0;pwned\x07", "a\u202eb"],
)
def test_names_are_data_not_markup(tmp_path: Path, model: str) -> None:
    db = tmp_path / "s.duckdb"
    out = run_cli("import", str(_event(tmp_path, model)), "--db", str(db))
    assert out.returncode == 0, out.stderr
    table = run_cli("usage", "--db", str(db), "--by", "model")
    assert table.returncode == 0, table.stderr
    for text in (out.stdout, table.stdout):
        assert ESC not in text
        assert "\u202e" not in text
    if model.startswith("["):
        assert model in table.stdout  # printed literally, not styled or linked
    if ESC in model:
        assert "\\x1b]0;pwned\\x07" in table.stdout


def test_plan_commands_print_names_literally(tmp_path: Path) -> None:
    import json

    db, path = tmp_path / "s.duckdb", tmp_path / "days.jsonl"
    lines = [
        {
            "ts": f"2025-03-0{d}T{h:02d}:00:00Z",
            "model": model,
            "input_tokens": 9,
            "output_tokens": 1,
        }
        for d in range(1, 4)
        for h in range(24)
        for model in ("[/x]", "[red]y")
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert run_cli("import", str(path), "--db", str(db)).returncode == 0
    for command in (("spikes", "--by", "model"), ("headroom", "--horizon", "24")):
        out = run_cli(*command, "--db", str(db))
        assert out.returncode == 0, out.stderr
        assert "Traceback" not in out.stderr
    assert "[/x]" in out.stdout
    assert "[red]y" in out.stdout


def test_usage_csv_neutralises_formulas_but_not_numbers(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    imported = run_cli("import", str(_event(tmp_path, "=HYPERLINK(1)")), "--db", str(db))
    assert imported.returncode == 0
    text = _usage_csv(db, "--by", "model")
    assert "'=HYPERLINK(1)" in text
    assert ",15\n" in text


# -- 3. bounds ------------------------------------------------------------------------------


def test_an_overflowing_count_is_refused_with_its_line_and_the_store_unchanged(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.duckdb"
    assert run_cli("import", str(_event(tmp_path, "m")), "--db", str(db)).returncode == 0
    before = _usage_csv(db)
    bad = tmp_path / "o.csv"
    bad.write_text(
        "ts,model,input_tokens,output_tokens\n"
        "2025-03-01T00:00:00Z,m,1,1\n2025-03-01T00:00:00Z,m,9223372036854775807,10\n"
    )
    line = _one_line_error(run_cli("import", str(bad), "--db", str(db)))
    assert "line 3" in line
    assert "input_tokens" in line
    assert "ceiling" in line
    assert _usage_csv(db) == before


def test_counts_at_the_ceiling_sum_without_overflow(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    big = tmp_path / "big.csv"
    row = "2025-03-01T00:00:00Z,m,1000000000000000,1000000000000000\n"
    big.write_text("ts,model,input_tokens,output_tokens\n" + row * 5000)
    assert run_cli("import", str(big), "--db", str(db)).returncode == 0
    assert _usage_csv(db).endswith(",10000000000000000000\n")  # above INT64, exact


def test_money_in_json_is_exact(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    path = tmp_path / "c.jsonl"
    path.write_text(
        '{"ts":"2025-03-01T00:00:00Z","model":"m","input_tokens":1,"output_tokens":1,'
        '"cost_usd":0.100000000001}\n' * 3
    )
    assert run_cli("import", str(path), "--db", str(db)).returncode == 0
    assert _usage_csv(db, "--metric", "cost_usd").endswith(",0.300000000003\n")


# -- 4. store files are what they claim -----------------------------------------------------


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"a,b\n1,2\n", "CSV"),
        (b"PAR1\x00\x00\x00\x00\x00\x00\x00\x00", "Parquet"),
        (b'{"a": 1}', "JSON"),
        (b"", "empty"),
    ],
)
def test_db_refuses_a_file_that_is_not_a_store(tmp_path: Path, content: bytes, kind: str) -> None:
    target = tmp_path / "not_a_store"
    target.write_bytes(content)
    for args in (("import", str(_event(tmp_path, "m"))), ("usage",)):
        line = _one_line_error(run_cli(*args, "--db", str(target)))
        assert kind in line
        assert "not a tokenplan store" in line
    assert target.read_bytes() == content


def test_a_foreign_duckdb_file_is_refused_unless_adopted(tmp_path: Path) -> None:
    foreign = tmp_path / "other.duckdb"
    with duckdb.connect(str(foreign)) as con:
        con.execute("CREATE TABLE orders (id INTEGER)")
    event = str(_event(tmp_path, "m"))
    line = _one_line_error(run_cli("import", event, "--db", str(foreign)))
    assert "--adopt-db" in line
    with duckdb.connect(str(foreign), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert tables == {"orders"}
    assert run_cli("import", event, "--db", str(foreign), "--adopt-db").returncode == 0
    assert _usage_csv(foreign).endswith(",15\n")
    with duckdb.connect(str(foreign), read_only=True) as con:
        version = con.execute("SELECT value FROM tokenplan_meta WHERE key = 'schema_version'")
        assert version.fetchall() == [("2",)]


def test_a_read_command_never_creates_a_store(tmp_path: Path) -> None:
    missing = tmp_path / "typo.duckdb"
    line = _one_line_error(run_cli("usage", "--db", str(missing)))
    assert str(missing) in line
    assert not missing.exists()


def test_a_read_only_store_can_be_read(tmp_path: Path) -> None:
    # The store is a file no one may write, in a folder no one may write. Root ignores file
    # permissions through two capabilities; the commands run without them, and the import
    # below must really fail for the read to prove anything.
    folder, db = tmp_path / "store", tmp_path / "store" / "s.duckdb"
    folder.mkdir()
    event = _event(tmp_path, "m")
    assert run_cli("import", str(event), "--db", str(db)).returncode == 0
    before = db.read_bytes()
    db.chmod(0o444)
    folder.chmod(0o555)
    try:
        out = run_cli("usage", "--db", str(db), "--format", "csv", preexec_fn=_obey_permissions)
        assert out.returncode == 0, out.stderr
        assert out.stdout.endswith(",15\n")
        refused = run_cli("import", str(event), "--db", str(db), preexec_fn=_obey_permissions)
        assert str(db) in _one_line_error(refused)
        assert db.read_bytes() == before
        assert [p.name for p in folder.iterdir()] == ["s.duckdb"]
    finally:
        folder.chmod(0o755)
        db.chmod(0o644)


def _obey_permissions() -> None:
    """In the child before exec: drop the capabilities that let root ignore file modes.

    CAP_DAC_OVERRIDE (1), CAP_DAC_READ_SEARCH (2) and CAP_FOWNER (3) leave the bounding set
    (prctl PR_CAPBSET_DROP = 24), so the exec'd process is root that obeys permissions.
    Without root this is a no-op: permissions apply anyway.
    """
    if os.geteuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):
        if libc.prctl(24, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_a_read_command_leaves_the_store_file_untouched(tmp_path: Path) -> None:
    # Root ignores permissions, so check what read-only opening guarantees: not one byte
    # changes, and a read runs while another process reads too.
    db = tmp_path / "s.duckdb"
    assert run_cli("import", str(_event(tmp_path, "m")), "--db", str(db)).returncode == 0
    before = db.read_bytes()
    with duckdb.connect(str(db), read_only=True) as reader:
        reader.execute("SELECT count(*) FROM usage").fetchall()
        assert _usage_csv(db).endswith(",15\n")
    assert db.read_bytes() == before


# -- 5. provider exports are snapshots -----------------------------------------------------


def test_a_newer_export_replaces_the_buckets_it_changed(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    head = "timestamp,model,requests,input_tokens,output_tokens\n"
    first = tmp_path / "first.csv"
    first.write_text(head + "2025-03-01T00:00:00Z,m,1,10,5\n2025-03-01T01:00:00Z,m,1,3,1\n")
    later = tmp_path / "later.csv"  # the last hour was partial in the first export
    later.write_text(head + "2025-03-01T00:00:00Z,m,1,10,5\n2025-03-01T01:00:00Z,m,4,30,10\n")
    assert run_cli("import", str(first), "--db", str(db)).returncode == 0
    out = run_cli("import", str(later), "--db", str(db))
    assert "1 replaced" in out.stdout, out.stdout
    assert _usage_csv(db).splitlines()[1:] == [
        "total,2025-03-01T00:00:00Z,15",
        "total,2025-03-01T01:00:00Z,40",
    ]
    again = run_cli("import", str(later), "--db", str(db))
    assert "0 new, 2 already present" in again.stdout


def test_a_bucket_is_named_by_its_start_not_by_the_width_inferred_from_its_file(
    tmp_path: Path,
) -> None:
    # Both files export the same 00:00 and 01:00 buckets; the later one also holds a :30
    # row, so its width is inferred as 30 minutes. The hours must not be counted twice.
    db = tmp_path / "s.duckdb"
    head = "timestamp,model,requests,input_tokens,output_tokens\n"
    hourly = tmp_path / "hourly.csv"
    hourly.write_text(head + "2025-03-01T00:00:00Z,m,1,10,5\n2025-03-01T01:00:00Z,m,1,3,1\n")
    with_half = tmp_path / "with_half.csv"
    with_half.write_text(
        head
        + "2025-03-01T00:00:00Z,m,1,10,5\n2025-03-01T01:00:00Z,m,2,6,2\n"
        + "2025-03-01T01:30:00Z,m,1,7,1\n"
    )
    assert run_cli("import", str(hourly), "--db", str(db)).returncode == 0
    out = run_cli("import", str(with_half), "--db", str(db))
    assert "1 new, 1 already present, 1 replaced by this newer export" in out.stdout, out.stdout
    assert _usage_csv(db, "--freq", "1h").splitlines()[1:] == [
        "total,2025-03-01T00:00:00Z,15",
        "total,2025-03-01T01:00:00Z,16",
    ]
    assert "WARNING" not in out.stdout
    again = run_cli("import", str(hourly), "--db", str(db))  # the older export, once more
    assert "0 new, 1 already present, 1 replaced" in again.stdout, again.stdout
    # Its 01:00 hour now holds the stored 01:30 row: an honest sum cannot be told, so it warns.
    assert "WARNING: 1 buckets of this file overlap" in again.stdout, again.stdout
    assert _usage_csv(db, "--freq", "1h").splitlines()[1:] == [
        "total,2025-03-01T00:00:00Z,15",
        "total,2025-03-01T01:00:00Z,12",
    ]


def test_an_export_at_another_width_is_counted_and_warned_about(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    head = "timestamp,model,requests,input_tokens,output_tokens\n"
    hourly = tmp_path / "hourly.csv"
    hourly.write_text(
        head + "".join(f"2025-03-0{d}T{h:02d}:00:00Z,m,1,10,0\n" for d in (1, 2) for h in range(24))
    )
    daily = tmp_path / "daily.csv"
    daily.write_text(head + "2025-03-01T00:00:00Z,m,24,240,0\n2025-03-02T00:00:00Z,m,24,240,0\n")
    assert "WARNING" not in run_cli("import", str(hourly), "--db", str(db)).stdout
    out = run_cli("import", str(daily), "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert "WARNING: 46 buckets of this file overlap" in out.stdout, out.stdout
    assert "86,400 s here, 3,600 s stored" in out.stdout


def test_a_raw_file_imported_twice_is_warned_about(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    event = str(_event(tmp_path, "m"))
    assert "WARNING" not in run_cli("import", event, "--db", str(db)).stdout
    again = run_cli("import", event, "--db", str(db))
    assert again.returncode == 0
    assert "WARNING" in again.stdout
    assert "counted" in again.stdout


# -- 6. outliers in time --------------------------------------------------------------------


def test_a_stray_timestamp_is_reported_and_can_be_trimmed(tmp_path: Path) -> None:
    import json

    from tokenplan.store import open_store

    db = tmp_path / "s.duckdb"
    path = tmp_path / "stray.jsonl"
    stamps = [f"2025-03-0{d}T00:00:00Z" for d in range(1, 9)] + ["1970-01-01T00:00:00Z"]
    path.write_text(
        "".join(
            json.dumps({"ts": ts, "model": "m", "input_tokens": 1, "output_tokens": 1}) + "\n"
            for ts in stamps
        )
    )
    out = run_cli("import", str(path), "--db", str(db))
    assert "1 events lie far outside" in out.stdout, out.stdout
    assert "1970-01-01T00:00:00Z" in out.stdout
    with open_store(db, mode="read") as store:
        whole = store.series("total_tokens", "1d")
        trimmed = store.series("total_tokens", "1d", trim_outliers=True)
    assert whole["ds"].min().year == 1970
    assert trimmed["ds"].min().isoformat() == "2025-03-01T00:00:00"
    assert len(trimmed) == 8
    assert trimmed["y"].sum() == 16


# -- random input (property tests, in-process) ----------------------------------------------


def _call(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
        else:  # pragma: no cover - main always exits
            code = 0
    return code, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def _columns() -> Iterator[None]:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "200"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


_names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20
)
_cells = st.one_of(
    _names,
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["2025-03-01T00:00:00Z", "1970-01-01T00:00:00Z", "", "nan", "1e400"]),
)


def _csv_text(rows: list[list[str]]) -> bytes:
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["ts", "model", "input_tokens", "output_tokens", "cost_usd"])
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8", "surrogatepass")


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _names,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_names, inner, max_size=3),
    max_leaves=8,
)
_payloads = st.one_of(
    st.binary(max_size=200),
    st.lists(st.lists(_cells, min_size=5, max_size=5), min_size=1, max_size=4).map(_csv_text),
    st.lists(
        st.fixed_dictionaries(
            {"ts": _cells, "model": _names, "input_tokens": _json_values},
            optional={"output_tokens": _json_values, "cost_usd": _json_values},
        ),
        min_size=1,
        max_size=3,
    ).map(lambda rows: "\n".join(__import__("json").dumps(r) for r in rows).encode()),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=_payloads, suffix=st.sampled_from([".csv", ".jsonl", ".json", ".txt"]))
def test_random_files_import_cleanly_and_leave_the_store_queryable(
    tmp_path: Path, payload: bytes, suffix: str
) -> None:
    db = tmp_path / "random.duckdb"
    path = tmp_path / f"input{suffix}"
    path.write_bytes(payload)
    with _columns():
        code, _, err = _call("import", str(path), "--db", str(db))
        assert code in (0, 2), err
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) <= 1
        if db.exists():
            code, _, err = _call("usage", "--db", str(db), "--format", "csv")
            assert code == 0, err


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(model=_names, team=_names)
def test_random_names_go_through_usage_and_report(tmp_path: Path, model: str, team: str) -> None:
    import json

    from markupsafe import escape

    from tokenplan.untrusted import visible

    # A fresh folder per example: tmp_path is shared by all of them, and a store holding
    # earlier examples' names would pool this one into "(other)" in the report.
    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))
    db = tmp_path / "names.duckdb"
    path = tmp_path / "names.jsonl"
    record = {"ts": "2025-03-01T00:00:00Z", "model": model, "team": team}
    path.write_text(json.dumps({**record, "input_tokens": 3, "output_tokens": 4}) + "\n")
    html, data = tmp_path / "names.html", tmp_path / "names.json"
    with _columns():
        imported, out, err = _call("import", str(path), "--db", str(db))
        assert imported in (0, 2), err
        assert "Traceback" not in err
        for fmt in ("table", "csv", "json"):
            code, out, err = _call("usage", "--db", str(db), "--by", "model", "--format", fmt)
            assert code == 0, err
            if fmt == "table":
                assert ESC not in out
        code, out, err = _call("report", "--db", str(db), "--out", str(html), "--json", str(data))
        assert code == 0, err
        assert "Traceback" not in err
        code, out, err = _call("usage", "--db", str(db), "--by", "team", "--format", "csv")
        assert code == 0, err  # no query broken afterwards
    page = html.read_text(encoding="utf-8")
    # Nothing that drives a terminal, reorders or hides text reaches the page as itself.
    assert not any(visible(ch) != ch and ch != "\n" for ch in page)
    if imported == 0:
        for name in (model, team):
            if name.strip():
                assert str(escape(visible(name))) in page, (model, team)
