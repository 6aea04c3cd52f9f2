"""Reading files on several threads or in worker processes gives exactly what reading
them one by one gives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

import limitaudit
import limitaudit.read.parallel as parallel_module
from limitaudit.cli import app
from limitaudit.model.dump import Dump
from limitaudit.read import read_dump
from limitaudit.read.discover import discover
from limitaudit.read.parallel import read_files
from limitaudit.read.settle import settle
from limitaudit.store import open_store

SAMPLE = Path(__file__).parent.parent / "sample_logs"


def _assert_same(parallel: Dump, serial: Dump) -> None:
    assert parallel.tables.keys() == serial.tables.keys()
    for name in serial.tables:
        assert_frame_equal(parallel.tables[name], serial.tables[name])
    assert_frame_equal(parallel.rejects, serial.rejects)
    assert parallel.findings == serial.findings
    assert [f.counts for f in parallel.files] == [f.counts for f in serial.files]
    assert parallel.stamps is not None and serial.stamps is not None
    assert_frame_equal(parallel.stamps, serial.stamps)


def test_threads_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    parallel = read_dump([SAMPLE])
    monkeypatch.setattr(parallel_module, "READ_THREADS", 1)
    _assert_same(parallel, read_dump([SAMPLE]))


def test_worker_processes_change_nothing() -> None:
    """What the command line does with a large dump; the workers count lines for progress."""
    sources = discover([SAMPLE])
    counted: list[int] = []
    apart = settle(read_files(sources, progress=counted.append, apart=True))
    _assert_same(apart, settle(read_files(sources, apart=False)))
    assert sum(counted) == sum(f.counts["lines"] for f in apart.files) > 0


def test_a_store_built_in_worker_processes_is_the_one_built_on_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large dump's ingest reads in worker processes, each spilling its decisions."""
    threads = limitaudit.ingest(SAMPLE, tmp_path / "threads")
    monkeypatch.setattr(parallel_module, "_processes", True)
    monkeypatch.setattr(parallel_module, "APART_BYTES", 0)
    apart = limitaudit.ingest(SAMPLE, tmp_path / "apart")
    assert apart.tables == threads.tables and apart.totals == threads.totals
    one, two = open_store(tmp_path / "apart"), open_store(tmp_path / "threads")
    for name in two.tables:
        assert_frame_equal(one.tables[name], two.tables[name])
    spilled = list((tmp_path / "apart" / "g000001" / "decision").glob("*.parquet"))
    assert len(spilled) == 16


def test_audit_is_identical_between_runs_and_on_a_store(tmp_path: Path) -> None:
    """Byte for byte, whatever order the threads finish in: what a CI job diffs."""
    runner = CliRunner()
    store = str(tmp_path / "store")
    assert runner.invoke(app, ["ingest", str(SAMPLE), "--store", store]).exit_code == 0
    outputs = {
        runner.invoke(app, ["audit", where, "--format", "csv", "--fail-on", "none"]).stdout
        for where in (str(SAMPLE), str(SAMPLE), store, store)
    }
    assert len(outputs) == 1
    assert outputs.pop().count("\n") > 1


def test_workers_run_polars_on_one_thread_unless_the_user_chose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POLARS_MAX_THREADS", raising=False)
    with parallel_module._threads_in_workers(1):
        assert os.environ["POLARS_MAX_THREADS"] == "1"
    assert "POLARS_MAX_THREADS" not in os.environ
    monkeypatch.setenv("POLARS_MAX_THREADS", "7")
    with parallel_module._threads_in_workers(1):
        assert os.environ["POLARS_MAX_THREADS"] == "7"
    assert os.environ["POLARS_MAX_THREADS"] == "7"


PROBE = """
import multiprocessing, os, signal, sys, tempfile, time

from limitaudit.cli import stop_on_terminate


def nap():
    time.sleep(60)


if __name__ == "__main__":
    stop_on_terminate()
    child = multiprocessing.get_context("spawn").Process(target=nap)
    child.start()
    with tempfile.TemporaryDirectory(dir=sys.argv[1]) as folder:
        print(folder, child.pid, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)
"""


def test_a_terminated_run_ends_its_workers_and_removes_its_files(tmp_path: Path) -> None:
    """SIGTERM (a CI job's time-out) unwinds like an interruption, with status 143."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    done = subprocess.run(
        [sys.executable, str(probe), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,  # the status is what is checked
    )
    assert done.returncode == 143, done.stderr
    assert done.stderr == ""
    folder, pid = done.stdout.split()
    assert not Path(folder).exists()
    with pytest.raises(ProcessLookupError):  # ended, and reaped by multiprocessing
        os.kill(int(pid), 0)
