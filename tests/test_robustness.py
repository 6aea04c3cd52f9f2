"""Bad input, damaged stores and killed runs: a one-line message and a status, never a
traceback, and never a confident wrong answer (issue 14's cases, each by number)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from limitaudit.cli import app
from limitaudit.status import ExitStatus

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_logs"
ENV = {"COLUMNS": "160", "NO_COLOR": "1", "LIMITAUDIT_DUMP": ""}
COMMANDS = (["audit"], ["scan"], ["trace", "2088102000000161"])


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env=ENV)


def one_line(result, status: ExitStatus, fragment: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == status, result.output
    assert fragment in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("store") / "s.store"
    assert invoke("ingest", str(SAMPLE), "--store", str(store)).exit_code == 0
    return store


def copy_of(store: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy.store"
    shutil.copytree(store, target)
    return target


# -- 1, 2: damaged stores -------------------------------------------------------------


def store_files(store: Path) -> list[str]:
    return sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file())


@pytest.mark.parametrize("damage", ["truncated", "emptied", "deleted"])
def test_every_file_of_a_damaged_store_is_said_damaged(
    sample_store: Path, tmp_path: Path, damage: str
) -> None:
    files = store_files(sample_store)
    assert "manifest.json" in files and len(files) > 60
    for name in files:
        store = copy_of(sample_store, tmp_path)
        path = store / name
        if damage == "deleted":
            path.unlink()
        else:
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
        # audit and trace read a store in two ways (whole, or one user's rows); every
        # command checks it the same way first, so scan and ingest are tried on a few.
        every = name in ("manifest.json", files[0], files[-1])
        for command in COMMANDS if every else (["audit"], ["trace", "2088102000000161"]):
            result = invoke(*command, str(store))
            one_line(result, ExitStatus.ERROR, "the store is damaged")
            assert result.stdout == "", (name, damage, command)
        if every:
            ingest = invoke("ingest", str(SAMPLE), "--store", str(store))
            one_line(ingest, ExitStatus.ERROR, "the store is damaged")
        shutil.rmtree(store)
    # --replace rebuilds a damaged store: the repair (the last one damaged stands for all).
    store = copy_of(sample_store, tmp_path)
    (store / files[0]).unlink()
    assert invoke("ingest", str(SAMPLE), "--store", str(store), "--replace").exit_code == 0
    assert invoke("audit", str(store), "--fail-on", "none").exit_code == ExitStatus.OK


def test_a_store_whose_manifest_is_cut_short_is_not_read_as_a_dump(
    sample_store: Path, tmp_path: Path
) -> None:
    store = copy_of(sample_store, tmp_path)
    manifest = store / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:500])
    result = invoke("audit", str(store), "--fail-on", "none")
    one_line(result, ExitStatus.ERROR, "manifest.json cannot be read")
    # Inside a dump's directory, what is left of a store is still no part of the dump.
    dump = tmp_path / "dump"
    shutil.copytree(SAMPLE, dump)
    shutil.move(store, dump / "old.store")
    (dump / "old.store" / "manifest.json").unlink()
    assert (
        invoke("audit", str(dump), "--format", "csv", "--fail-on", "none").stdout
        == invoke("audit", str(SAMPLE), "--format", "csv", "--fail-on", "none").stdout
    )


# -- 3, 5: values that pass a naive check ----------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--below", "nan"], "--below nan: not a finite number"),
        (["--tolerance", "nan"], "--tolerance nan: not a finite number"),
        (["--below", "inf"], "--below inf: not a finite number"),
        (["--below", "1e400"], "--below inf: not a finite number"),
    ],
)
def test_non_finite_numbers_are_usage_errors(args: list[str], fragment: str) -> None:
    one_line(invoke("audit", str(SAMPLE), *args), ExitStatus.ERROR, fragment)


def test_a_user_id_is_ascii_digits() -> None:
    one_line(invoke("trace", "²³", str(SAMPLE)), ExitStatus.ERROR, "a user_id is a string")


# -- 4, 13: where output goes ----------------------------------------------------------


def test_output_paths_are_checked_before_the_read(tmp_path: Path) -> None:
    started = time.monotonic()
    one_line(invoke("audit", str(SAMPLE), "-o", str(tmp_path)), ExitStatus.ERROR, "is a directory")
    one_line(
        invoke("scan", str(SAMPLE), "--rejects", str(tmp_path / "no" / "r.csv")),
        ExitStatus.ERROR,
        "does not exist",
    )
    # Said before reading: far sooner than a read of the sample takes.
    assert time.monotonic() - started < 5


def test_written_files_follow_the_umask_or_keep_their_mode(tmp_path: Path) -> None:
    fresh, kept = tmp_path / "fresh.csv", tmp_path / "kept.csv"
    kept.write_text("old\n")
    kept.chmod(0o640)
    old = os.umask(0o022)
    try:
        for path in (fresh, kept):
            result = invoke("audit", str(SAMPLE), "--format", "csv", "-o", str(path))
            assert result.exit_code == ExitStatus.FINDINGS
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    assert kept.read_text().startswith("user_id,")


# -- 6: data is text, never markup ------------------------------------------------------


def test_markup_and_control_characters_in_the_data_are_printed_as_written(
    tmp_path: Path,
) -> None:
    dump = tmp_path / "dump"
    shutil.copytree(SAMPLE, dump)
    (dump / "[bold]x.log").write_text("not a log at all\n")
    ops = next(dump.rglob("ops-01/*"))
    text = ops.read_bytes()
    assert b"OPS-20417" in text
    ops.write_bytes(text.replace(b"OPS-20417", b"OPS-[/x]"))
    scan = invoke("scan", str(dump))
    assert scan.exit_code == 0 and "[bold]x.log" in scan.stdout
    audit = invoke("audit", str(dump), "--format", "csv", "--fail-on", "none").stdout
    (user,) = [row.split(",")[0] for row in audit.splitlines() if ",manual,OPS-[/x]," in row]
    traced = invoke("trace", user, str(dump))
    assert traced.exit_code == 0 and "ticket OPS-[/x]" in traced.stdout
    escaped = invoke("trace", "\x1b[31m123", str(dump))
    one_line(escaped, ExitStatus.ERROR, "\\x1b[31m123: a user_id is a string of digits")
    assert "\x1b" not in escaped.stderr


# -- 7: files that are not files --------------------------------------------------------


def test_fifos_broken_links_and_link_loops_are_listed_as_unreadable(tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    shutil.copytree(SAMPLE, dump)
    os.mkfifo(dump / "pipe.log")
    (dump / "broken.log").symlink_to(tmp_path / "nowhere")
    (dump / "loop-a").symlink_to(dump / "loop-b")
    (dump / "loop-b").symlink_to(dump / "loop-a")
    data = json.loads(invoke("scan", str(dump), "--format", "json").stdout)
    kinds = {f["path"]: f["kind"] for f in data["files"]}
    odd = ("pipe.log", "broken.log", "loop-a", "loop-b")
    assert {name: kinds.get(name) for name in odd} == dict.fromkeys(odd, "unreadable")
    found = {f["file"]: f["message"] for f in data["findings"] if f["kind"] == "unreadable"}
    assert found["pipe.log"] == "pipe.log: unreadable, not a regular file"
    assert set(found) == set(odd)
    audit = invoke("audit", str(dump), "--fail-on", "unreadable")
    assert audit.exit_code == ExitStatus.FINDINGS
    assert audit.stderr.endswith("failing: 4 unreadable\n")


# -- 8: a ledger without its columns -----------------------------------------------------


def test_a_ledger_without_a_column_says_which_and_an_audit_of_none_fails(tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    (dump / "ledger").mkdir(parents=True)
    (dump / "ledger" / "export.csv").write_text(
        "change_id,user_id,limit_before,limit_after,source\n"
        "chg-1,2088102000000001,5000.00,0.00,risk_engine\n"
    )
    shutil.copytree(SAMPLE / "le-01", dump / "le-01")
    scan = json.loads(invoke("scan", str(dump), "--format", "json").stdout)
    (skipped,) = [f for f in scan["findings"] if f["file"] == "ledger/export.csv"]
    assert skipped["message"] == (
        "ledger/export.csv: skipped, a ledger export without its column(s) changed_at"
    )
    one_line(
        invoke("audit", str(dump), "--fail-on", "none"),
        ExitStatus.ERROR,
        "no ledger export in the dump could be read: ledger/export.csv: skipped",
    )


# -- 11, 12: pipes and shells --------------------------------------------------------------


# The installed command, as a user runs it (completion keys on its name).
LIMITAUDIT = str(Path(sys.executable).parent / "limitaudit")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LIMITAUDIT, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV, **(env or {})},
        cwd=ROOT,
        check=False,
    )


@pytest.mark.parametrize(("fail_on", "status"), [("none", 0), ("unexplained", 1)])
def test_a_closed_pipe_keeps_the_status_the_run_earned(fail_on: str, status: int) -> None:
    shell = (
        f"{sys.executable} -m limitaudit audit sample_logs --fail-on {fail_on} | head -1;"
        " exit ${PIPESTATUS[0]}"
    )
    done = subprocess.run(
        ["bash", "-c", shell],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **ENV},
        check=False,
    )
    assert done.returncode == status, done.stderr
    assert done.stdout.startswith("168 zeroing(s)")
    assert "Traceback" not in done.stderr and "Broken pipe" not in done.stderr


def test_dash_h_and_shell_completion() -> None:
    assert invoke("-h").exit_code == 0
    assert "--install-completion" in invoke("--help").stdout
    assert invoke("audit", "-h").stdout == invoke("audit", "--help").stdout
    for instruction in ("bash_source", "source_bash"):
        done = run(env={"_LIMITAUDIT_COMPLETE": instruction})
        assert done.returncode == 0 and "_limitaudit_completion()" in done.stdout, instruction


# -- 14: what a killed run leaves ------------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_next_run_sweeps_what_dead_runs_left_and_spares_live_ones(tmp_path: Path) -> None:
    temp, out = tmp_path / "tmp", tmp_path / "out"
    temp.mkdir()
    out.mkdir()
    dead, alive = _dead_pid(), os.getppid()
    left = [
        temp / f"limitaudit-read-{dead}-abc",
        out / f".a.csv.{dead}-xyz",
        tmp_path / f".limitaudit-spill-{dead}-q",
    ]
    spared = [temp / f"limitaudit-read-{alive}-abc", temp / "limitaudit-read-other"]
    for path in [*left, *spared]:
        path.mkdir() if "read" in path.name or "spill" in path.name else path.write_text("x")
    done = run(
        "audit", str(SAMPLE), "--format", "csv", "-o", str(out / "a.csv"), env={"TMPDIR": str(temp)}
    )
    assert done.returncode == ExitStatus.FINDINGS, done.stderr
    store = tmp_path / "s.store"
    assert (
        run("ingest", str(SAMPLE), "--store", str(store), env={"TMPDIR": str(temp)}).returncode == 0
    )
    assert [p for p in left if p.exists()] == []
    assert all(p.exists() for p in spared)
    assert sorted(p.name for p in out.iterdir()) == ["a.csv"]


def test_a_store_sweeps_the_generation_a_killed_ingest_half_wrote(
    sample_store: Path, tmp_path: Path
) -> None:
    store = copy_of(sample_store, tmp_path)
    half = store / f".generation-{_dead_pid()}-g000009"
    (half / "ledger").mkdir(parents=True)
    assert invoke("audit", str(store), "--fail-on", "none").exit_code == 0
    assert not half.exists()


def test_sigkill_mid_read_leaves_nothing_once_the_next_run_has_started(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, **ENV, "TMPDIR": str(temp)}
    store = tmp_path / "k.store"
    victim = subprocess.Popen(
        [sys.executable, "-m", "limitaudit", "ingest", str(SAMPLE), "--store", str(store)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not list(temp.glob("limitaudit-read-*")) and victim.poll() is None:
        assert time.monotonic() < deadline, "the read folder never appeared"
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert list(temp.glob("limitaudit-read-*")), "killed after its read: nothing to sweep"
    # The next run, the same ingest again, starts by removing all that the killed one left.
    done = run("ingest", str(SAMPLE), "--store", str(store), env={"TMPDIR": str(temp)})
    assert done.returncode == 0, done.stderr
    assert list(temp.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.store", "tmp"]
    assert sorted(p.name for p in store.iterdir()) == ["g000001", "manifest.json"]


# -- 10: width -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def as_data() -> tuple[dict[str, object], list[dict[str, str]]]:
    """What scan and trace say as JSON: the values every table must show whole."""
    runner = CliRunner()
    scan = json.loads(runner.invoke(app, ["scan", str(SAMPLE), "--format", "json"]).stdout)
    trace = ["trace", "2088102000000161", str(SAMPLE), "--format", "json"]
    return scan, json.loads(runner.invoke(app, trace).stdout)["timeline"]


@pytest.mark.parametrize("columns", ["40", "80", None])
def test_tables_never_lose_a_column_or_cut_a_value(
    columns: str | None, as_data: tuple[dict[str, Any], list[dict[str, str]]]
) -> None:
    env = {**ENV, "COLUMNS": columns} if columns else {"NO_COLOR": "1", "LIMITAUDIT_DUMP": ""}
    if columns is None:  # piped at the default width: no COLUMNS at all
        env = {k: v for k, v in {**os.environ, **env}.items() if k != "COLUMNS"}
    runner = CliRunner()
    data, timeline = as_data
    scan = runner.invoke(app, ["scan", str(SAMPLE)], env=env).stdout
    for f in data["files"]:
        assert f["path"] in scan
        for value in (f["first"], f["last"]):
            assert value is None or value in scan
    totals = data["totals"]
    for key in ("lines", "records", "duplicates", "rejected"):
        assert f"{totals[key]:,}" in scan
    for header in ("file", "kind", "host", "lines", "records", "dup", "rejected"):
        assert header in scan
    audit = runner.invoke(app, ["audit", str(SAMPLE), "--fail-on", "none"], env=env).stdout
    for cause, n in (("parameter_error", "50"), ("unexplained", "13"), ("risk_policy", "27")):
        assert cause in audit and n in audit
    for ref in ("rel-20260314-01", "cb-20260314-03", "credit-v8.3", "score-service"):
        assert ref in audit
    trace = runner.invoke(app, ["trace", "2088102000000161", str(SAMPLE)], env=env).stdout
    for row in timeline:
        assert row["time"] in trace
    # Rich's own mark of a cut cell: a value's last character replaced by an ellipsis.
    assert not re.search(r"\w…[ │┃]", scan + audit + trace)


def test_a_table_written_to_a_file_is_as_wide_as_its_lines(tmp_path: Path) -> None:
    out = tmp_path / "audit.txt"
    env = {k: v for k, v in {**os.environ, **ENV}.items() if k != "COLUMNS"}
    result = CliRunner().invoke(
        app, ["audit", str(SAMPLE), "-o", str(out), "--fail-on", "none"], env=env
    )
    assert result.exit_code == 0
    header = next(line for line in out.read_text().splitlines() if "recovered" in line)
    assert "cause" in header and "notified" in header


@pytest.mark.parametrize("key", ["generation", "files", "findings", "facts", "polars_version"])
def test_a_manifest_missing_a_key_is_damaged(sample_store: Path, tmp_path: Path, key: str) -> None:
    store = copy_of(sample_store, tmp_path)
    manifest = json.loads((store / "manifest.json").read_text())
    del manifest[key]
    (store / "manifest.json").write_text(json.dumps(manifest))
    for command in (*COMMANDS, ["ingest", str(SAMPLE), "--store"]):
        one_line(invoke(*command, str(store)), ExitStatus.ERROR, "manifest.json is incomplete")


def test_a_compressed_log_damaged_at_its_start_is_skipped_not_read_as_text(
    tmp_path: Path,
) -> None:
    import zstandard  # noqa: PLC0415

    line = '{"@timestamp":"2026-03-14T10:12:03.481+08:00","event":"feed_batch","host":"f-1"}\n'
    packed = bytearray(zstandard.compress(line.encode() * 50))
    packed[4] ^= 0xFF  # the frame header, just past the magic number
    (tmp_path / "a.log.zst").write_bytes(bytes(packed))
    (tmp_path / "b.log").write_bytes(b"\x28\xb5\x2f\xfd garbled first line\n" + line.encode())
    data = json.loads(invoke("scan", str(tmp_path), "--format", "json").stdout)
    kinds = {f["path"]: (f["kind"], f["compression"]) for f in data["files"]}
    assert kinds == {"a.log.zst": ("other", "zstd"), "b.log": ("json_log", "none")}
    (skipped,) = [f["message"] for f in data["findings"] if f["file"] == "a.log.zst"]
    assert "corrupt zstd data at byte 0" in skipped


def test_every_run_sweeps_the_temporary_directory_even_one_reading_a_store(
    sample_store: Path, tmp_path: Path
) -> None:
    left = tmp_path / f"limitaudit-read-{_dead_pid()}-x"
    left.mkdir()
    done = run("audit", str(sample_store), "--fail-on", "none", env={"TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert not left.exists()
