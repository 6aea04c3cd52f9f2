"""Read the files of a dump a few at a time, on threads or in worker processes, and
hand over their readers in file order."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING

import polars as pl

from limitaudit.atomic import owned, sweep
from limitaudit.errors import DumpError
from limitaudit.model.dump import DEFAULT_TZ, Dump, Progress, SourceFile, Spill
from limitaudit.read.discover import discover
from limitaudit.read.settle import RawDump, settle

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized

    from limitaudit.read.reader import Reader

# A file in flight per core: more keep no core busier (measured on 2 cores) and each
# holds a block's worth of intermediate frames.
READ_THREADS = max(2, os.cpu_count() or 1)
# Where a read parks what large files keep: $TMPDIR/limitaudit-read-PID-...
READ_FOLDER = "limitaudit-read-"


def read_dump(
    inputs: Iterable[str | Path],
    tz: str = DEFAULT_TZ,
    progress: Progress | None = None,
    decisions: pl.Expr | None = None,
    detail: pl.Expr | None = None,
) -> Dump:
    """Read a dump. `decisions` filters the decision table (all kept when None): they are
    most of a dump, and most of them change nothing. Every record is still checked,
    counted and stamped.

    With `detail`, the read is an audit's: its decision table holds ACTION_FIELDS alone of
    every decision kept (what the audit facts read), and the decisions `detail` keeps (of
    all, kept or not) wait on disk whole, by bucket, for the audit to read its users a
    share at a time (`Dump.parts`): at 20 million lines they would take a gigabyte of
    memory at once."""
    sources = discover(inputs)
    if not sources:
        raise DumpError("the dump holds no files")
    return settle(read_files(sources, tz, progress, decisions, detail=detail))


def read_files(
    sources: list[SourceFile],
    tz: str = DEFAULT_TZ,
    progress: Progress | None = None,
    decisions: pl.Expr | None = None,
    spill: Spill | None = None,
    apart: bool | None = None,
    detail: pl.Expr | None = None,
) -> RawDump:
    """Read files as file_id 0, 1, ... in the order given; `settle` makes the Dump.

    Files are read a few at a time, each into its own reader; the readers are merged in
    file order, so the result is the same as reading one file after another. A large
    dump is read in worker processes where `read_in_processes` allows it (or `apart`
    says so), a small one on threads.

    What each file keeps waits on disk until every file is read: kept in memory, a few
    rows of every block sit among the freed frames of all the others, and the heap grows
    by half as much again as what it holds (measured at 3 million lines).
    """
    # What a killed read left in the temporary directory goes first.
    sweep(Path(tempfile.gettempdir()), READ_FOLDER)
    folder = TemporaryDirectory(prefix=owned(READ_FOLDER))
    if apart is None:
        apart = _processes and _large(sources)
    # A spill goes with every job, to a worker process too (it pickles: see DecisionSpill).
    jobs = [
        (file_id, source, tz, decisions, detail, Path(folder.name), spill)
        for file_id, source in enumerate(sources)
    ]
    try:
        if apart:
            readers = _read_apart(jobs, progress)
        else:
            with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
                readers = list(pool.map(lambda job: _read_job(job, progress), jobs))
    except BaseException:
        folder.cleanup()
        raise
    from limitaudit.read.reader import Reader  # noqa: PLC0415 - see _read_job

    merged = Reader(tz, progress, decisions, spill, detail=detail)
    for reader in readers:
        merged.absorb(reader)
    return merged.raw(folder)


# A dump reads in worker processes from this many bytes on disk. A process's heap goes
# when it ends; a thread's churn stays in this process's, where settle and the audit
# then allocate around it (at 3 million lines, 400 MB resident after the read for 60 MB
# of live data). Processes also leave the GIL out. Below this, starting them (each
# imports Polars) costs more than it saves.
APART_BYTES = 64 << 20
Job = tuple[int, SourceFile, str, pl.Expr | None, pl.Expr | None, Path, Spill | None]
# Off for a library caller: a worker process starts by importing the caller's main
# module, whose top-level code must then sit under `if __name__ == "__main__"`.
_processes = False


def read_in_processes(enabled: bool = True) -> None:
    """Let large dumps be read in worker processes (the command line does)."""
    global _processes  # noqa: PLW0603 - a process-wide choice, made once at start
    _processes = enabled


def _large(sources: list[SourceFile]) -> bool:
    return (os.cpu_count() or 1) > 1 and sum(s.size for s in sources) >= APART_BYTES


def _read_job(job: Job, progress: Progress | None) -> Reader:
    # Imported when a dump is read: the command line starts without the readers, which a
    # store's `trace` never uses.
    from limitaudit.read.reader import Reader  # noqa: PLC0415

    file_id, source, tz, decisions, detail, folder, spill = job
    reader = Reader(tz, progress, decisions, spill, folder, detail)
    reader.read(file_id, source)
    return reader


def _read_apart(jobs: list[Job], progress: Progress | None) -> list[Reader]:
    """Each file read in a worker process; what it keeps comes back as its reader (the
    large frames as files in the shared folder). Workers count lines in a shared
    counter, which a thread here hands to `progress`."""
    # Imported here: they take some 30 ms, and `trace` on a store has a second in all.
    import multiprocessing  # noqa: PLC0415
    from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415
    from concurrent.futures.process import BrokenProcessPool  # noqa: PLC0415

    context = multiprocessing.get_context("spawn")
    lines = context.Value("q", 0) if progress else None
    done = threading.Event()

    def report() -> None:
        assert progress is not None and lines is not None
        seen = 0
        while True:
            finished = done.wait(0.25)
            now = lines.value
            if now > seen:
                progress(now - seen)
                seen = now
            if finished:
                return

    watcher = threading.Thread(target=report, daemon=True) if progress else None
    if watcher:
        watcher.start()
    try:
        with ProcessPoolExecutor(
            max_workers=min(READ_THREADS, len(jobs)),
            mp_context=context,
            initializer=_start_worker,
            initargs=(lines,),
        ) as pool:
            # Longest first, so that no worker is left with a large file when the others
            # are done; every job is submitted at once: the workers start now, with this
            # setting.
            order = sorted(range(len(jobs)), key=lambda i: -_work(jobs[i][1]))
            with _threads_in_workers(1):
                futures = {i: pool.submit(_read_in_worker, jobs[i]) for i in order}
            # Not pool.map: on the way out of an interrupted read it cancels the futures
            # left, and once the workers are ended (cli.stop_on_terminate) the pool's own
            # thread then fails on them, noisily (CPython gh-107219, fixed in 3.12).
            return [futures[i].result() for i in range(len(jobs))]
    except BrokenProcessPool as exc:
        raise DumpError(
            "a process reading the dump ended without finishing (killed, or out of memory)"
        ) from exc
    finally:
        done.set()
        if watcher:
            watcher.join()


# How many times its size on disk a compressed log inflates to, about (the dump's logs
# compress 7 to 12 times): for ordering reads only.
INFLATES = 8


def _work(source: SourceFile) -> int:
    """A file's share of the read, roughly: the bytes it decompresses to."""
    return source.size * (INFLATES if source.compression != "none" else 1)


@contextmanager
def _threads_in_workers(n: int) -> Iterator[None]:
    """Worker processes started inside run Polars on `n` threads (unless the user chose):
    one worker a core is the parallelism, and Polars' own threads in each only contend
    (the read of 3 million lines took 8% less on 2 cores). Polars reads the setting as
    it is imported, which a spawned worker does afresh."""
    if "POLARS_MAX_THREADS" in os.environ:
        yield
        return
    os.environ["POLARS_MAX_THREADS"] = str(n)
    try:
        yield
    finally:
        del os.environ["POLARS_MAX_THREADS"]


_worker_lines: Synchronized[int] | None = None


def _start_worker(lines: Synchronized[int] | None) -> None:
    global _worker_lines  # noqa: PLW0603 - one counter per worker process, set as it starts
    _worker_lines = lines


def _count_lines(n: int) -> None:
    assert _worker_lines is not None
    with _worker_lines.get_lock():
        _worker_lines.value += n


def _read_in_worker(job: Job) -> Reader:
    reader = _read_job(job, _count_lines if _worker_lines is not None else None)
    # Functions of this process: nothing to send back.
    reader.progress = reader.spill = None
    return reader
