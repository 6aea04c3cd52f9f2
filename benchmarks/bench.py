"""The issue 15 benchmark: ingest, audit and trace on generated dumps, next to Polars floors.

    python benchmarks/bench.py                           # about 1, 5 and 20 million lines
    python benchmarks/bench.py --lines 1000000 3000000   # chosen sizes
    python benchmarks/bench.py --lines 150000 --trace-runs 2 --out /tmp/small.md  # a quick look

For each size, `limitaudit synth` writes a dump (with its dirt) and a clean twin (--clean,
same users and seed) into --work; they are kept there and reused by later runs. Then each
step runs in its own child process, and its wall time (process start included) and peak
RSS are taken. limitaudit reads a large dump in worker processes, so the peak is that of
the whole process tree: the RSS of the child and all its descendants, summed every 50 ms
from /proc (the tree is looked up every half second, which costs about 1% of a core), or
the child's own peak from os.wait4 where that is higher:

  - limitaudit scan DUMP --format json: the dump's line count (totals.lines), which every
    lines/s figure uses;
  - limitaudit ingest DUMP --store STORE, into a fresh store, RAW_RUNS times;
  - limitaudit audit DUMP, RAW_RUNS times, and audit STORE, STORE_AUDIT_RUNS times, both with
    --format csv --fail-on none: the two CSVs must be byte-identical (the script exits 1
    when they are not);
  - limitaudit trace USER STORE --format json, --trace-runs times (median and slowest),
    and RAW_RUNS times on the raw dump; USER is the first user of the audit CSV;
  - adding files to a store: the dump but for its last risk-engine host's folder (hard
    links, in --work) is ingested into a store of its own (not timed), then the whole
    dump is ingested into that store, which reads and adds that host's files (timed);
    audit on it must give the raw dump's CSV, byte for byte;
  - a step run several times shows its median wall and its highest peak (a budget holds
    for every run): ingest's and trace's ratios to the raw audit are targets, and this
    machine's noise moves a single run by 5-10%;
  - I/O floor: every log and ledger file of the dump decompressed and split into lines
    (Polars read_csv with an unused separator and no quoting; Python zlib or zstandard
    streaming for a file Polars refuses, such as the dump's cut-off .gz; read_parquet for
    Parquet ledgers);
  - parse floor, on the clean twin: the fastest of Polars' readers parsing the records,
    at the clean twin's line count. A JSON-lines log is split into lines as for the I/O
    floor, then decoded by one str.json_decode over the column with limitaudit's JSON_DOC
    (every field of every event, leaves as strings: what limitaudit decodes); a logback
    log's lines take one str.extract_groups with limitaudit's TEXT_LINE; the ledger takes
    read_csv and read_parquet;
  - parse floor, read_ndjson (reference): the same, but the JSON-lines logs are read by
    read_ndjson with JSON_DOC's schema, Polars' slower JSON path. It is reported, not
    used for any ratio;
  - read profile, on the dump: every log file read by limitaudit's own Reader, one file
    after another in one process with POLARS_MAX_THREADS=1, with a clock around each of
    its stages (decompress and split, classify, decode, times, checks, typing), summed
    over the files. The real read runs a process per core; the profile says where a
    core's time goes;
  - the raw audit by phase, on the dump: the audit run in one child process as the
    command runs it (the read in worker processes, then settle, the audit and the CSV),
    each phase's wall time; with the parse floor, what the floor's limit leaves the read
    once the phases after it have taken theirs.

"x I/O floor" is the floor's lines/s divided by the step's (how many times slower than
merely reading the lines); "x parse floor" likewise, with the json_decode parse floor.
The dump's files are read once before the steps, so the page cache holds them where
memory allows.

Results go to --out (benchmarks/RESULTS.md), rewritten after every step, and to stdout at
the end; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import compileall
import csv
import datetime as dt
import filecmp
import functools
import inspect
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

# Importing Polars writes its allocator defaults into this process's environment
# (_RJEM_MALLOC_CONF=dirty_decay_ms:500,muzzy_decay_ms:1000), and a command started from
# here would take them as the user's own setting, which overrides limitaudit's
# (limitaudit/launch.py). The commands run with the environment as it was before.
ALLOCATOR_VAR = "_RJEM_MALLOC_CONF"
USER_ALLOCATOR = os.environ.get(ALLOCATOR_VAR)

import polars as pl
import zstandard

from limitaudit import launch
from limitaudit.analysis.facts import decisions_detailed, decisions_needed
from limitaudit.commands import audit as audit_command
from limitaudit.model.audit import AuditOptions
from limitaudit.model.dump import DEFAULT_TZ
from limitaudit.output.render import write_audit_csv
from limitaudit.read import decode, reader
from limitaudit.read.decode import JSON_DOC
from limitaudit.read.discover import discover
from limitaudit.read.parallel import read_files, read_in_processes
from limitaudit.read.parse import TEXT_LINE
from limitaudit.read.reader import Reader
from limitaudit.read.settle import settle

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_LINES = [1_000_000, 5_000_000, 20_000_000]
LINES_PER_USER = 12.2  # what `limitaudit synth` writes per user and day: 80,000 gave 974,860
CHUNK = 1 << 20
LINE_FILES = ("json_log", "text_log", "ledger_csv")

# Issue 15's targets.
RAW_LINES_PER_S = 300_000  # audit raw and scan raw, at each size
PARSE_FLOOR_FACTOR = 1.3  # audit raw's wall per line, at most this many parse floors'
INGEST_FACTOR = 1.3  # ingest's wall, at most this many audit raw's
TRACE_RAW_FACTOR = 0.9  # trace raw's wall, at most this many audit raw's
STORE_SPEEDUP = 5.0
TRACE_STORE_S = 0.5
RSS_BUDGETS = ((3_000_000, 1024.0), (20_000_000, 2560.0))  # (lines, MiB), every command
STORE_AUDIT_RUNS = 3
RAW_RUNS = 3  # ingest, audit and trace of the raw dump
NEAR = 1.25  # a size within this factor of a budget's line count stands for it


class StepFailed(Exception):
    """A command the benchmark runs failed; the message says which and how."""


# --- the floors, run in a child process (python bench.py --floor KIND DIR) -----------------


def _read_lines(path: Path) -> pl.DataFrame:
    """The file's lines as one string column: decompression and splitting only."""
    return pl.read_csv(
        path,
        separator="\x1f",
        quote_char=None,
        has_header=False,
        new_columns=["text"],
        encoding="utf8-lossy",
        infer_schema=False,
        truncate_ragged_lines=True,
    )


def _decompressed(path: Path, compression: str) -> Iterator[bytes]:
    """Stream a file's bytes decompressed; stop quietly where a cut-off stream ends."""
    with path.open("rb") as fh:
        if compression == "zstd":
            reader = zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True)
            with suppress(zstandard.ZstdError):
                while chunk := reader.read(CHUNK):
                    yield chunk
            return
        if compression == "none":
            while chunk := fh.read(CHUNK):
                yield chunk
            return
        dec = zlib.decompressobj(wbits=31)  # gzip; members restart on unused_data
        while raw := fh.read(CHUNK):
            while raw:
                try:
                    yield dec.decompress(raw)
                except zlib.error:
                    return
                raw = b""
                if dec.eof:
                    raw, dec = dec.unused_data, zlib.decompressobj(wbits=31)


def _count_lines(path: Path, compression: str) -> int:
    """Lines of a file Polars refuses: newlines, plus an unterminated last line."""
    lines, last = 0, b"\n"
    for chunk in _decompressed(path, compression):
        if chunk:
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def io_floor(directory: Path) -> int:
    """Split every log and ledger file into lines; return how many there were."""
    n = 0
    for f in discover([directory]):
        if f.kind in LINE_FILES:
            try:
                n += _read_lines(f.path).height
            except (OSError, pl.exceptions.PolarsError):  # the cut-off gzip
                n += _count_lines(f.path, f.compression)
        elif f.kind == "ledger_parquet":
            n += pl.read_parquet(f.path).height
    return n


def _decoded_json(path: Path) -> int:
    """Rows of a JSON-lines log: its lines, then one json_decode over the column."""
    lines = _read_lines(path)
    return lines.select(pl.col("text").str.json_decode(JSON_DOC)).height


def _ndjson(path: Path) -> int:
    """Rows of a JSON-lines log read by read_ndjson (every field, leaves as strings)."""
    return pl.read_ndjson(path, schema=JSON_DOC.to_schema()).height


def parse_floor(directory: Path, json_rows: Callable[[Path], int] = _decoded_json) -> int:
    """Parse every record with Polars' own readers; return how many rows they made."""
    n = 0
    for f in discover([directory]):
        if f.kind == "json_log":
            n += json_rows(f.path)
        elif f.kind == "text_log":
            lines = _read_lines(f.path)
            n += lines.select(pl.col("text").str.extract_groups(TEXT_LINE).alias("p")).height
        elif f.kind == "ledger_csv":
            n += pl.read_csv(f.path).height
        elif f.kind == "ledger_parquet":
            n += pl.read_parquet(f.path).height
    return n


# --- the read profile, run in a child process with POLARS_MAX_THREADS=1 ------------------

# Where the profile puts its clocks (on what, which function) and the stage each counts to.
# limitaudit's own Reader runs, with its blocks, its batches and its arguments, so the
# figures are its own; a clock counts the time inside its calls less that of the clocks
# inside them (json_decode inside the decoding of records, say), so the stages add up.
_KEEP = "stamps, line keys and compact copies of what is kept (`stamps_of`, `compact`)"
STAGES = (
    (reader, "read_blocks", "decompress + split into blocks (`read_blocks`)"),
    (reader, "classify", "classify the lines (`classify`)"),
    (decode, "decode", "json_decode, by exception (`decode`)"),
    (decode, "text_parts", "logback heads (`text_parts`)"),
    (decode, "_json_reasons", "reasons of the lines that fail to decode"),
    (reader, "parse_records", "the rest of decoding (event kinds, messages, hashes)"),
    (reader, "record_times", "times (`record_times`)"),
    (reader, "checked", "check the values (`checked`)"),
    (reader, "kept_by", "pick the decisions the audit keeps (`kept_by`, `action_fields`)"),
    (reader, "action_fields", "pick the decisions the audit keeps (`kept_by`, `action_fields`)"),
    (reader, "type_checked", "type what is kept (`type_checked`)"),
    (reader, "stamps_of", _KEEP),
    (reader, "compact", _KEEP),
)
REST = "the rest (pre-reasons, stack traces, line accounting, parking)"


class Clock:
    """Seconds spent inside `with clock:`, summed, less those of the clocks started inside."""

    running: ClassVar[list[Clock]] = []

    def __init__(self) -> None:
        self.seconds, self._start = 0.0, 0.0

    def __enter__(self) -> None:
        now = time.perf_counter()
        if Clock.running:
            outer = Clock.running[-1]
            outer.seconds += now - outer._start
        Clock.running.append(self)
        self._start = now

    def __exit__(self, *exc: object) -> None:
        now = time.perf_counter()
        self.seconds += now - self._start
        Clock.running.pop()
        if Clock.running:
            Clock.running[-1]._start = now


_END = object()


def _clocked(fn: Callable[..., Any], clock: Clock) -> Callable[..., Any]:
    """fn, its time counted on clock; a generator's, the time it takes to yield each item."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def items(*args: Any, **kwargs: Any) -> Iterator[Any]:
            made = fn(*args, **kwargs)
            while True:
                with clock:
                    item = next(made, _END)
                if item is _END:
                    return
                yield item

        return items

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        with clock:
            return fn(*args, **kwargs)

    return call


def read_profile(directory: Path) -> dict[str, Any]:
    """Read every log file as the audit's reader does, one after another; the seconds of
    each stage, summed over the files, and the lines read."""
    clocks = {stage: Clock() for _, _, stage in STAGES}
    for owner, name, stage in STAGES:
        setattr(owner, name, _clocked(getattr(owner, name), clocks[stage]))
    whole = Clock()
    decisions = decisions_needed(AuditOptions())  # what `audit` reads, and whole
    detail = decisions_detailed(AuditOptions())
    logs = [f for f in discover([directory]) if f.is_log]
    lines = 0
    with tempfile.TemporaryDirectory() as folder:  # where a reader parks what it keeps
        for file_id, source in enumerate(logs):
            read = Reader(DEFAULT_TZ, None, decisions, None, Path(folder), detail)
            with whole:
                read.read(file_id, source)
            lines += read.files[0].counts["lines"]
    seconds = {stage: clock.seconds for stage, clock in clocks.items()}
    seconds[REST] = whole.seconds  # what no other clock counted
    return {
        "lines": lines,
        "files": len(logs),
        "threads": pl.thread_pool_size(),
        "seconds": seconds,
    }


def audit_phases(directory: Path) -> dict[str, Any]:
    """The raw audit's phases, wall seconds each, run as the command runs them (the read in
    worker processes, the rest in this one): what the time after the read is, which the
    parse floor's limit must also hold."""
    read_in_processes(True)
    options = AuditOptions()
    clock = time.perf_counter
    seconds: dict[str, float] = {}
    start = clock()
    raw = read_files(
        discover([directory]),
        DEFAULT_TZ,
        decisions=decisions_needed(options),
        detail=decisions_detailed(options),
    )
    seconds[PHASE_READ] = clock() - start
    start = clock()
    dump = settle(raw)
    seconds[PHASE_SETTLE] = clock() - start
    start = clock()
    result = audit_command.audit(dump, options)
    seconds[PHASE_AUDIT] = clock() - start
    start = clock()
    with open(os.devnull, "w", encoding="utf-8", newline="") as out:
        write_audit_csv(result, out)
    seconds[PHASE_CSV] = clock() - start
    return {"seconds": seconds, "zeroings": result.zeroings.height}


PHASE_READ = "read the files (`read_files`, in worker processes)"
PHASE_SETTLE = "settle repeats and accounting (`settle`)"
PHASE_AUDIT = "audit facts, replay and attribution (`commands.audit`)"
PHASE_CSV = "write the CSV"

FLOORS: dict[str, Callable[[Path], Any]] = {
    "io": io_floor,
    "parse": parse_floor,
    "ndjson": functools.partial(parse_floor, json_rows=_ndjson),
    "profile": read_profile,
    "phases": audit_phases,
}


# --- measuring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    wall: float  # seconds, process start to exit
    rss: float  # peak RSS of the child's process tree, MiB


def measure(
    argv: list[str], stdout: Path | None = None, env: dict[str, str] | None = None
) -> tuple[Measurement, str]:
    """Run one child process; its wall time, its process tree's peak RSS and its stdout.

    With stdout, the output goes to that file and "" is returned in its place. env adds to
    this process's environment.
    """
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as tmp, ExitStack() as stack:
        out = stack.enter_context(stdout.open("wb")) if stdout else tmp
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=err, env=child_env(env))
        sampler = TreeRss(child.pid)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        sampler.stop()
        code = os.waitstatus_to_exitcode(status)
        child.returncode = code
        if code != 0:
            err.seek(0)
            tail = err.read().decode("utf-8", errors="replace")[-3000:]
            raise StepFailed(f"`{shlex.join(argv)}` exited with {code}:\n{tail}")
        tmp.seek(0)
        peak = max(usage.ru_maxrss / 1024, sampler.peak / 2**20)
        return Measurement(wall, peak), tmp.read().decode()


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a command, as a shell would give it (see
    USER_ALLOCATOR), with `extra` added."""
    env = {k: v for k, v in os.environ.items() if k != ALLOCATOR_VAR}
    if USER_ALLOCATOR is not None:
        env[ALLOCATOR_VAR] = USER_ALLOCATOR
    return {**env, **(extra or {})}


class TreeRss(threading.Thread):
    """The largest sum of RSS over a process and its descendants, sampled from /proc."""

    PAGE = os.sysconf("SC_PAGE_SIZE")

    def __init__(self, pid: int, every: float = 0.05, lookup: int = 10) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.lookup, self.peak = pid, every, lookup, 0
        self.done = threading.Event()

    def stop(self) -> None:
        self.done.set()
        self.join()

    def run(self) -> None:
        tree, ticks = [self.pid], 0
        while not self.done.wait(self.every):
            if ticks % self.lookup == 0:
                tree = self._tree()
            ticks += 1
            self.peak = max(self.peak, sum(self._rss(p) for p in tree))

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
        tree = [self.pid]
        for pid in tree:
            tree += children.get(pid, [])
        return tree

    def _rss(self, pid: int) -> int:
        try:
            return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * self.PAGE
        except (OSError, IndexError):
            return 0


def progress(message: str) -> None:
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def warm(directory: Path) -> None:
    """Read every file once, so the steps find it in the page cache (not measured)."""
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        with path.open("rb") as fh:
            while fh.read(8 * CHUNK):
                pass


def tree_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


# --- one size -------------------------------------------------------------------------------


@dataclass
class SizeResult:
    requested: int
    users: int
    seed: int
    trace_runs: int
    dump_bytes: int = 0
    clean_lines: int = 0
    lines: int = 0  # the dump's, from scan: every lines/s uses it
    scan: Measurement | None = None
    ingest_runs: list[Measurement] = field(default_factory=list)
    store_bytes: int = 0
    audit_raw_runs: list[Measurement] = field(default_factory=list)
    audit_store_runs: list[Measurement] = field(default_factory=list)
    csv_identical: bool | None = None
    zeroings: int = 0
    user: str = ""
    trace_store: list[Measurement] = field(default_factory=list)
    trace_raw_runs: list[Measurement] = field(default_factory=list)
    trace_identical: bool | None = None
    added_host: str = ""  # the host whose files the timed add reads
    added_files: int = 0
    add: Measurement | None = None
    add_identical: bool | None = None
    io_floor: Measurement | None = None
    io_floor_lines: int = 0
    parse_floor: Measurement | None = None
    parse_floor_rows: int = 0
    ndjson_floor: Measurement | None = None
    ndjson_floor_rows: int = 0
    profile_run: Measurement | None = None
    profile: dict[str, Any] = field(default_factory=dict)  # what read_profile printed
    phases_run: Measurement | None = None
    phases: dict[str, Any] = field(default_factory=dict)  # what audit_phases printed
    failure: str = ""
    load: list[str] = field(default_factory=list)  # 1-minute load average, start and end

    def lps(self, m: Measurement | None, lines: int | None = None) -> float | None:
        if m is None:
            return None
        return (lines if lines is not None else self.lines) / m.wall

    @property
    def io_lps(self) -> float | None:
        return self.lps(self.io_floor)

    @property
    def parse_lps(self) -> float | None:
        return self.lps(self.parse_floor, self.clean_lines)

    @property
    def trace_median(self) -> Measurement | None:
        return _median(self.trace_store)

    @property
    def ingest(self) -> Measurement | None:
        return _median_highest(self.ingest_runs)

    @property
    def audit_raw(self) -> Measurement | None:
        return _median_highest(self.audit_raw_runs)

    @property
    def trace_raw(self) -> Measurement | None:
        return _median_highest(self.trace_raw_runs)

    @property
    def audit_store(self) -> Measurement | None:
        return _median(self.audit_store_runs)

    @property
    def trace_slowest(self) -> Measurement | None:
        return max(self.trace_store, key=lambda m: m.wall, default=None)


def _median_highest(runs: list[Measurement]) -> Measurement | None:
    """The median wall, and the highest peak: a budget holds for every run."""
    if not runs:
        return None
    return Measurement(statistics.median(m.wall for m in runs), max(m.rss for m in runs))


def _median(runs: list[Measurement]) -> Measurement | None:
    if not runs:
        return None
    return Measurement(
        statistics.median(m.wall for m in runs), statistics.median(m.rss for m in runs)
    )


def generate(limitaudit: str, work: Path, lines: int, seed: int) -> tuple[Path, Path, int, int]:
    """The dump and its clean twin for this size, generated unless already in work.

    Returns (dump, clean, users, clean twin's line count).
    """
    users = max(round(lines / LINES_PER_USER), 50)
    stem = f"{lines}-s{seed}"
    dump, clean = work / f"dump-{stem}", work / f"clean-{stem}"
    done = work / f"dump-{stem}.json"
    if done.is_file() and dump.is_dir() and clean.is_dir():
        info = json.loads(done.read_text(encoding="utf-8"))
        if info.get("users") == users:
            progress(f"reusing {dump} and {clean}")
            return dump, clean, users, int(info["clean_lines"])
    work.mkdir(parents=True, exist_ok=True)
    for target in (dump, clean):
        for d in (target, Path(f"{target}-answers")):
            shutil.rmtree(d, ignore_errors=True)
    for target, extra in ((dump, []), (clean, ["--clean"])):
        progress(f"generating {target} ({users:,} users, seed {seed})")
        argv = [limitaudit, "synth", str(target), "--users", str(users), "--seed", str(seed)]
        argv += ["--answers", f"{target}-answers", *extra]
        result = subprocess.run(argv, stdout=sys.stderr, check=False)
        if result.returncode != 0:
            raise StepFailed(f"`{shlex.join(argv)}` exited with {result.returncode}")
    _, out = measure([limitaudit, "scan", str(clean), "--format", "json"])
    clean_lines = int(json.loads(out)["totals"]["lines"])
    done.write_text(
        json.dumps({"users": users, "seed": seed, "clean_lines": clean_lines}) + "\n",
        encoding="utf-8",
    )
    return dump, clean, users, clean_lines


def first_user(audit_csv: Path) -> str:
    with audit_csv.open(newline="", encoding="utf-8") as fh:
        rows = csv.reader(fh)
        header = next(rows)
        first = next(rows, None)
    if first is None:
        raise StepFailed(f"{audit_csv}: the audit found no zeroing, so there is no user to trace")
    return first[header.index("user_id")]


@dataclass(frozen=True)
class Places:
    """One size's dump and clean twin, and what its steps write into the work folder."""

    dump: Path
    clean: Path
    store: Path
    raw_csv: Path
    store_csv: Path
    trace_store: Path
    trace_raw: Path
    part: Path  # the dump without one host's folder
    part_store: Path  # its store, to which that host's files are added
    added_csv: Path

    @classmethod
    def of(cls, work: Path, stem: str, dump: Path, clean: Path) -> Places:
        return cls(
            dump,
            clean,
            work / f"store-{stem}",
            work / f"audit-raw-{stem}.csv",
            work / f"audit-store-{stem}.csv",
            work / f"trace-store-{stem}.json",
            work / f"trace-raw-{stem}.json",
            work / f"part-{stem}",
            work / f"store-part-{stem}",
            work / f"audit-added-{stem}.csv",
        )


def floor(kind: str, directory: Path, env: dict[str, str] | None = None) -> tuple[Measurement, Any]:
    """Run one floor (or the read profile) in a child process: its measurement and result."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--floor", kind, str(directory)]
    m, out = measure(argv, env=env)
    return m, json.loads(out)


def run_size(result: SizeResult, limitaudit: str, work: Path, save: Callable[[], None]) -> None:
    """Measure every step for one size into result, calling save() after each."""
    dump, clean, result.users, result.clean_lines = generate(
        limitaudit, work, result.requested, result.seed
    )
    at = Places.of(work, f"{result.requested}-s{result.seed}", dump, clean)
    result.dump_bytes = tree_bytes(dump)
    result.load.append(f"{os.getloadavg()[0]:.2f}")
    progress(f"reading {dump} once (page cache)")
    warm(dump)
    raw_steps(result, limitaudit, at, save)
    store_steps(result, limitaudit, at, save)
    trace_steps(result, limitaudit, at, save)
    add_steps(result, limitaudit, at, save)
    floors(result, at, save)
    result.load.append(f"{os.getloadavg()[0]:.2f}")
    save()


AS_CSV = ["--format", "csv", "--fail-on", "none"]


def raw_steps(r: SizeResult, limitaudit: str, at: Places, save: Callable[[], None]) -> None:
    """scan, the I/O floor, ingest and audit, on the raw dump."""
    progress("scan (raw dump)")
    r.scan, out = measure([limitaudit, "scan", str(at.dump), "--format", "json"])
    r.lines = int(json.loads(out)["totals"]["lines"])
    save()
    progress(f"I/O floor ({r.lines:,} lines)")
    r.io_floor, r.io_floor_lines = floor("io", at.dump)
    save()
    for run in range(1, RAW_RUNS + 1):
        progress(f"ingest, run {run} of {RAW_RUNS}")
        shutil.rmtree(at.store, ignore_errors=True)
        argv = [limitaudit, "ingest", str(at.dump), "--store", str(at.store)]
        r.ingest_runs.append(measure(argv)[0])
        save()
    r.store_bytes = tree_bytes(at.store)
    save()
    argv = [limitaudit, "audit", str(at.dump), *AS_CSV]
    for run in range(1, RAW_RUNS + 1):
        progress(f"audit (raw dump), run {run} of {RAW_RUNS}")
        r.audit_raw_runs.append(measure(argv, at.raw_csv)[0])
        save()
    r.zeroings = pl.scan_csv(at.raw_csv, infer_schema=False).select(pl.len()).collect().item()
    save()


def store_steps(r: SizeResult, limitaudit: str, at: Places, save: Callable[[], None]) -> None:
    """audit on the store, STORE_AUDIT_RUNS times, and its CSV against the raw dump's."""
    for run in range(1, STORE_AUDIT_RUNS + 1):
        progress(f"audit (store), run {run} of {STORE_AUDIT_RUNS}")
        argv = [limitaudit, "audit", str(at.store), *AS_CSV]
        r.audit_store_runs.append(measure(argv, at.store_csv)[0])
        save()
    r.csv_identical = filecmp.cmp(at.raw_csv, at.store_csv, shallow=False)
    save()


def trace_steps(r: SizeResult, limitaudit: str, at: Places, save: Callable[[], None]) -> None:
    """trace the audit's first user on the store, --trace-runs times, then on the raw dump."""
    r.user = first_user(at.raw_csv)
    for run in range(1, r.trace_runs + 1):
        progress(f"trace {r.user} (store), run {run} of {r.trace_runs}")
        argv = [limitaudit, "trace", r.user, str(at.store), "--format", "json"]
        r.trace_store.append(measure(argv, at.trace_store)[0])
        save()
    argv = [limitaudit, "trace", r.user, str(at.dump), "--format", "json"]
    for run in range(1, RAW_RUNS + 1):
        progress(f"trace {r.user} (raw dump), run {run} of {RAW_RUNS}")
        r.trace_raw_runs.append(measure(argv, at.trace_raw)[0])
        save()
    r.trace_identical = filecmp.cmp(at.trace_raw, at.trace_store, shallow=False)
    save()


def add_steps(r: SizeResult, limitaudit: str, at: Places, save: Callable[[], None]) -> None:
    """Add the dump's last risk-engine host to a store of the rest, and audit the store."""
    hosts = sorted(p for p in at.dump.iterdir() if p.is_dir() and p.name.startswith("le-"))
    if not hosts:
        return
    held = hosts[-1]
    r.added_host, r.added_files = held.name, sum(1 for p in held.rglob("*") if p.is_file())
    shutil.rmtree(at.part, ignore_errors=True)
    shutil.rmtree(at.part_store, ignore_errors=True)
    # Hard links: the same files (names, bytes) without a second copy of the dump.
    shutil.copytree(
        at.dump,
        at.part,
        copy_function=os.link,
        ignore=lambda d, names: [held.name] if Path(d) == at.dump else [],
    )
    progress(f"ingest the dump but {held.name} (untimed)")
    measure([limitaudit, "ingest", str(at.part), "--store", str(at.part_store)])
    progress(f"ingest adding {held.name}'s {r.added_files} files")
    argv = [limitaudit, "ingest", str(at.dump), "--store", str(at.part_store)]
    r.add = measure(argv)[0]
    save()
    progress("audit (store with files added)")
    measure([limitaudit, "audit", str(at.part_store), *AS_CSV], at.added_csv)
    r.add_identical = filecmp.cmp(at.raw_csv, at.added_csv, shallow=False)
    shutil.rmtree(at.part, ignore_errors=True)
    save()


def floors(r: SizeResult, at: Places, save: Callable[[], None]) -> None:
    """The read profile on the dump (still in the page cache), then both parse floors."""
    progress(f"read profile ({r.lines:,} lines, one process, one Polars thread)")
    # One thread of Polars work: the stages' shares are then those of a core's time.
    r.profile_run, r.profile = floor("profile", at.dump, {"POLARS_MAX_THREADS": "1"})
    save()
    progress(f"the raw audit by phase ({r.lines:,} lines)")
    # With the allocator setting the command makes for itself (launch.py), a user's after it.
    mine = f"{launch.ALLOCATOR},{USER_ALLOCATOR}" if USER_ALLOCATOR else launch.ALLOCATOR
    r.phases_run, r.phases = floor("phases", at.dump, {ALLOCATOR_VAR: mine})
    save()
    progress(f"reading {at.clean} once (page cache)")
    warm(at.clean)
    progress(f"parse floor (clean twin, {r.clean_lines:,} lines)")
    r.parse_floor, r.parse_floor_rows = floor("parse", at.clean)
    save()
    progress(f"parse floor, read_ndjson (clean twin, {r.clean_lines:,} lines)")
    r.ndjson_floor, r.ndjson_floor_rows = floor("ndjson", at.clean)
    save()


# --- the report -----------------------------------------------------------------------------


def _ratio(floor: float | None, step: float | None) -> str:
    if floor is None or step is None:
        return ""
    r = floor / step
    return f"{r:.2f}" if r < 10 else f"{r:,.1f}"


def table(r: SizeResult) -> list[str]:
    io, parse = r.io_lps, r.parse_lps
    rows = [
        "| step | lines | wall s | lines/s | peak RSS MiB | x I/O floor | x parse floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def row(
        name: str,
        m: Measurement | None,
        lines: int | None,
        io_floor: float | None = io,
        parse_floor: float | None = parse,
    ) -> None:
        if m is None:
            return
        lps = lines / m.wall if lines else None
        cells = [
            name,
            f"{lines:,}" if lines else "—",
            f"{m.wall:.2f}",
            f"{lps:,.0f}" if lps else "—",
            f"{m.rss:,.0f}",
            _ratio(io_floor, lps),
            _ratio(parse_floor, lps),
        ]
        rows.append("| " + " | ".join(cells) + " |")

    n = r.trace_runs
    row("`scan` raw dump", r.scan, r.lines)
    row(f"`ingest` raw dump → fresh store, {_runs(r.ingest_runs)}", r.ingest, r.lines)
    row(f"`audit` raw dump, {_runs(r.audit_raw_runs)}", r.audit_raw, r.lines)
    row(f"`audit` store, median of {len(r.audit_store_runs)}", r.audit_store, r.lines)
    row(f"`trace` store, median of {n}", r.trace_median, None)
    row(f"`trace` store, slowest of {n}", r.trace_slowest, None)
    row(f"`trace` raw dump, {_runs(r.trace_raw_runs)}", r.trace_raw, None)
    row(f"`ingest` adding {r.added_host} ({r.added_files} files) to a store", r.add, None)
    row("I/O floor: decompress + split, raw dump", r.io_floor, r.lines, None, None)
    row("parse floor: Polars readers, clean twin", r.parse_floor, r.clean_lines, io, None)
    row("parse floor, read_ndjson (reference)", r.ndjson_floor, r.clean_lines, io, None)
    return rows


def _runs(runs: list[Measurement]) -> str:
    return f"median of {len(runs)} (peak: highest)"


def size_section(r: SizeResult) -> list[str]:
    lines = f"{r.lines:,} lines" if r.lines else "line count not measured yet"
    out = [f"## {r.requested:,} lines requested: {lines}", ""]
    if r.dump_bytes:
        out += [
            f"Dump: seed {r.seed}, {r.users:,} users, {r.dump_bytes / 2**30:.2f} GiB on disk; "
            f"clean twin {r.clean_lines:,} lines.",
            "",
        ]
    if r.scan is not None:
        out += [*table(r), ""]
    notes = []
    if r.audit_store is not None:
        same = "byte-identical" if r.csv_identical else "**DIFFERENT**"
        notes.append(f"audit CSVs, raw dump and store: {same} ({r.zeroings:,} zeroings)")
    if r.ingest is not None:
        notes.append(f"store on disk: {r.store_bytes / 2**30:.2f} GiB")
    if r.user:
        notes.append(f"traced user: {r.user}")
    if r.trace_identical is not None:
        same = "identical" if r.trace_identical else "different"
        notes.append(f"trace JSON, raw dump and store: {same}")
    if r.add_identical is not None:
        same = "byte-identical" if r.add_identical else "**DIFFERENT**"
        notes.append(
            f"audit CSV of the store {r.added_host} was added to, and of the raw dump: {same}"
        )
    if r.io_floor is not None:
        notes.append(f"the I/O floor split {r.io_floor_lines:,} lines (scan counts {r.lines:,})")
    if r.parse_floor is not None:
        notes.append(
            f"the parse floor made {r.parse_floor_rows:,} rows from the clean twin's "
            f"{r.clean_lines:,} lines"
        )
    if r.ndjson_floor is not None:
        notes.append(f"the read_ndjson parse floor made {r.ndjson_floor_rows:,} rows")
    if r.load:
        notes.append("load average (1 min) at the start and the end: " + " / ".join(r.load))
    out += [f"- {n}" for n in notes]
    out += profile_section(r)
    out += phases_section(r)
    if r.failure:
        out += ["", "**Stopped here:**", "", "```", r.failure.rstrip(), "```"]
    out.append("")
    return out


def profile_section(r: SizeResult) -> list[str]:
    """The read profile's stages, with their seconds and shares of the read."""
    if not r.profile or r.profile_run is None:
        return []
    p, seconds = r.profile, r.profile["seconds"]
    total = sum(seconds.values())
    out = [
        "",
        f"Read profile: {p['lines']:,} lines in {p['files']} log files (the ledger's are left "
        f"out), read by limitaudit's "
        f"Reader file after file in one process with {p['threads']} Polars thread "
        f"(POLARS_MAX_THREADS=1), keeping the decisions the audit keeps: {total:.2f} s, "
        f"{p['lines'] / total:,.0f} lines/s on one core ({r.profile_run.wall:.2f} s with the "
        "process's start). This is one process on one core: the real read runs a process per "
        "core.",
        "",
        "| read profile: stage | seconds | share |",
        "| --- | ---: | ---: |",
    ]
    out += [f"| {stage} | {sec:.2f} | {sec / total:.1%} |" for stage, sec in seconds.items()]
    out.append(f"| all | {total:.2f} | 100% |")
    return out


def phases_section(r: SizeResult) -> list[str]:
    """The raw audit's phases, and what the parse floor's limit leaves the read."""
    if not r.phases or r.phases_run is None:
        return []
    seconds = r.phases["seconds"]
    total = sum(seconds.values())
    out = [
        "",
        f"The raw audit by phase: the audit run in one process as the command runs it (the read "
        f"in worker processes, then the rest), each phase's wall time: {total:.2f} s, "
        f"{r.phases_run.wall:.2f} s with the process's start and imports "
        f"({r.phases['zeroings']:,} zeroings).",
        "",
        "| raw audit: phase | wall s | share |",
        "| --- | ---: | ---: |",
    ]
    out += [f"| {phase} | {sec:.2f} | {sec / total:.1%} |" for phase, sec in seconds.items()]
    out.append(f"| all | {total:.2f} | 100% |")
    if r.parse_floor is not None and r.clean_lines:
        # The limit on the dump's lines, at the floor's lines/s.
        limit = PARSE_FLOOR_FACTOR * r.parse_floor.wall * r.lines / r.clean_lines
        after = total - seconds[PHASE_READ]
        before = r.phases_run.wall - total
        left = limit - after - before
        floor_s = r.parse_floor.wall * r.lines / r.clean_lines
        out += [
            "",
            f"The {PARSE_FLOOR_FACTOR:g}x parse-floor limit is {limit:.2f} s for this dump "
            f"(the floor: {floor_s:.2f} s at its lines/s). The phases after the read take "
            f"{after:.2f} s ({after / floor_s:.2f}x the floor) and the start "
            f"{before:.2f} s; that leaves the read {left:.2f} s, {left / floor_s:.2f}x the "
            "floor's own time, where it took "
            f"{seconds[PHASE_READ]:.2f} s ({seconds[PHASE_READ] / floor_s:.2f}x).",
        ]
    return out


def _rss_estimate(anchor: int, points: list[tuple[int, float]]) -> tuple[float | None, str]:
    """A step's peak RSS at anchor lines from the measured (lines, MiB) points."""
    near = [p for p in points if 1 / NEAR <= p[0] / anchor <= NEAR]
    if near:
        n, rss = min(near, key=lambda p: abs(math.log(p[0] / anchor)))
        return rss, f"{rss:,.0f} MiB at {n:,} lines"
    below = [p for p in points if p[0] < anchor]
    above = [p for p in points if p[0] > anchor]
    if below and above:
        (n0, r0), (n1, r1) = max(below), min(above)
        rss = r0 + (r1 - r0) * (anchor - n0) / (n1 - n0)
        return rss, (
            f"≈{rss:,.0f} MiB, interpolated between {r0:,.0f} MiB at {n0:,} lines "
            f"and {r1:,.0f} MiB at {n1:,} lines"
        )
    return None, "no size measured near enough " + ", ".join(
        f"({r:,.0f} MiB at {n:,} lines)" for n, r in points
    )


class Verdicts:
    """The targets table: each target's figure, and whether it is met, or by how much not."""

    def __init__(self) -> None:
        self.rows = ["| target | lines | measured | verdict |", "| --- | ---: | --- | --- |"]

    def check(self, target: str, lines: str, measured: str, ok: bool | None) -> None:
        verdict = "n/a" if ok is None else ("met" if ok else "**not met**")
        self.rows.append(f"| {target} | {lines} | {measured} | {verdict} |")

    def at_least(self, target: str, lines: str, measured: str, got: float, want: float) -> None:
        self._bound(target, lines, measured, got / want, got >= want, "of the target")

    def at_most(self, target: str, lines: str, measured: str, got: float, limit: float) -> None:
        self._bound(target, lines, measured, got / limit, got <= limit, "the limit")

    def _bound(
        self, target: str, lines: str, measured: str, ratio: float, ok: bool, of: str
    ) -> None:
        verdict = "met" if ok else f"**not met** ({ratio:.2f}x {of})"
        self.rows.append(f"| {target} | {lines} | {measured} | {verdict} |")


def targets(results: list[SizeResult]) -> list[str]:
    """Issue 15's targets against the figures, each met or not (and by how much)."""
    v = Verdicts()
    for r in results:
        speed_targets(v, r)
        wall_targets(v, r)
        if r.csv_identical is not None:
            same = "byte-identical" if r.csv_identical else "different"
            v.check("audit CSV raw = store", f"{r.lines:,}", same, r.csv_identical)
        if r.add_identical is not None:
            same = "byte-identical" if r.add_identical else "different"
            v.check("audit CSV raw = store with files added", f"{r.lines:,}", same, r.add_identical)
    # The budget is for all processes together, whatever the command.
    for name, step in RSS_STEPS:
        points = [(r.lines, m.rss) for r in results if (m := step(r))]
        for anchor, budget in RSS_BUDGETS:
            if not points:
                break
            rss, how = _rss_estimate(anchor, points)
            target = f"{name} peak RSS < {budget:,.0f} MiB at ~{anchor / 1e6:g}M lines"
            if rss is None:
                v.check(target, f"~{anchor:,}", how, None)
            else:
                v.at_most(target, f"~{anchor:,}", how, rss, budget)
    return v.rows


RSS_STEPS: tuple[tuple[str, Callable[[SizeResult], Measurement | None]], ...] = (
    ("`audit` raw", lambda r: r.audit_raw),
    ("`scan` raw", lambda r: r.scan),
    ("`ingest`", lambda r: r.ingest),
    ("`trace` raw", lambda r: r.trace_raw),
    ("`ingest` adding a host's files", lambda r: r.add),
    ("`audit` store (median run)", lambda r: _median(r.audit_store_runs)),
)


def speed_targets(v: Verdicts, r: SizeResult) -> None:
    """Lines/s of audit and scan on the raw dump, and audit's against the parse floor."""
    size = f"{r.lines:,}"
    for name, m in (("audit", r.audit_raw), ("scan", r.scan)):
        lps = r.lps(m)
        if lps is not None:
            target = f"`{name}` raw ≥ {RAW_LINES_PER_S:,} lines/s"
            v.at_least(target, size, f"{lps:,.0f} lines/s", lps, RAW_LINES_PER_S)
    audit, parse = r.lps(r.audit_raw), r.parse_lps
    if audit and parse:
        # Per line, as the floor reads the clean twin, which has fewer lines than the dump.
        v.at_most(
            f"`audit` raw wall ≤ {PARSE_FLOOR_FACTOR:g}x the parse floor's (per line)",
            size,
            f"{parse / audit:.2f}x ({audit:,.0f} vs {parse:,.0f} lines/s)",
            parse / audit,
            PARSE_FLOOR_FACTOR,
        )


def wall_targets(v: Verdicts, r: SizeResult) -> None:
    """ingest and trace raw against audit raw, audit store's speed-up, trace store's wall."""
    size, audit = f"{r.lines:,}", r.audit_raw
    for step, m, factor in (
        ("`ingest`", r.ingest, INGEST_FACTOR),
        ("`trace` raw", r.trace_raw, TRACE_RAW_FACTOR),
    ):
        if m and audit:
            v.at_most(
                f"{step} wall ≤ {factor:g}x `audit` raw's",
                size,
                f"{m.wall / audit.wall:.2f}x ({m.wall:.2f} s vs {audit.wall:.2f} s)",
                m.wall / audit.wall,
                factor,
            )
    if audit and r.audit_store:
        speedup = audit.wall / r.audit_store.wall
        v.at_least(
            f"`audit` store ≥ {STORE_SPEEDUP:g}x faster than `audit` raw",
            size,
            f"{speedup:.1f}x ({audit.wall:.2f} s → {r.audit_store.wall:.2f} s)",
            speedup,
            STORE_SPEEDUP,
        )
    median, slowest = r.trace_median, r.trace_slowest
    if median and slowest:
        v.at_most(
            f"`trace` on store ≤ {TRACE_STORE_S:g} s (median)",
            size,
            f"median {median.wall:.2f} s, slowest {slowest.wall:.2f} s",
            median.wall,
            TRACE_STORE_S,
        )


def machine() -> str:
    model = "unknown CPU"
    mem = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) / 2**20
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {mem:.1f} GiB memory, {model}; "
        f"{platform.system()} {platform.machine()}"
    )


def commit() -> str:
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
        )

    head = git("rev-parse", "--short", "HEAD")
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    dirty = git("diff", "--quiet", "HEAD", "--", "limitaudit").returncode != 0
    return head.stdout.strip() + (" with uncommitted changes in limitaudit/" if dirty else "")


def header(command: str) -> list[str]:
    now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return [
        "# limitaudit benchmark (issue 15)",
        "",
        f"- date: {now}",
        f"- machine: {machine()}",
        f"- Python {platform.python_version()}, Polars {version('polars')}, "
        f"Typer {version('typer')}, limitaudit {commit()}",
        f"- command: `{command}`",
        "- each step is its own process: wall time includes its start; peak RSS is that of its "
        "whole process tree (its own and its worker processes', summed from /proc every 50 ms). "
        "lines/s divides the dump's line count (`scan` totals.lines) by the wall time; "
        "x floor = the floor's lines/s ÷ the step's (x parse floor: the json_decode floor, "
        "not the read_ndjson one). The dump's files are read once before the steps, so the "
        "page cache holds them where memory allows. `ingest`, `audit` and `trace` of the raw "
        f"dump run {RAW_RUNS} times each: their median wall, and their highest peak. "
        "The package is byte-compiled first, as "
        "`pip install` leaves it. Each step gets the environment this script was started "
        f"with: {ALLOCATOR_VAR} "
        + (f"`{USER_ALLOCATOR}`" if USER_ALLOCATOR else "unset")
        + " (not the allocator defaults importing Polars writes into the script's own).",
        "",
    ]


HOW_FAR = (
    "A target not met says by how much: the measured figure as a multiple of the target "
    "(for an at-least target, below 1) or of the limit (for an at-most one, above 1)."
)


def report(head: list[str], results: list[SizeResult]) -> str:
    out = list(head)
    for r in results:
        out += size_section(r)
    rows = targets(results)
    out += ["## Targets (issue 15)", ""]
    if len(rows) > 2:
        out += [*rows, "", HOW_FAR]
    else:
        out.append("Nothing measured yet.")
    out.append("")
    return "\n".join(out)


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--lines", type=int, nargs="+", default=DEFAULT_LINES, help="dump sizes, in log lines"
    )
    parser.add_argument("--work", type=Path, default=HERE / "work", help="dumps and stores")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="the report")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--trace-runs", type=int, default=5)
    parser.add_argument("--floor", nargs=2, metavar=("KIND", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.floor:  # in a child process: one floor, its result as JSON on stdout
        kind, directory = args.floor
        if kind not in FLOORS:
            parser.error(f"--floor: no floor {kind!r}")
        print(json.dumps(FLOORS[kind](Path(directory))))
        return 0
    if args.trace_runs < 1:
        parser.error("--trace-runs must be at least 1")
    beside = Path(sys.executable).parent / "limitaudit"
    limitaudit = str(beside) if beside.is_file() else shutil.which("limitaudit")
    if limitaudit is None:
        parser.error("no `limitaudit` command: pip install -e . first")

    # An installed package starts from bytecode (pip compiles it); an editable one run with
    # PYTHONDONTWRITEBYTECODE set would compile itself at every start, which `trace` times.
    compileall.compile_dir(Path(discover.__code__.co_filename).parent, quiet=1)
    head = header(shlex.join(["python", *sys.argv]))
    results: list[SizeResult] = []

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report(head, results), encoding="utf-8")

    work = args.work.resolve()
    status = 0
    for lines in args.lines:
        result = SizeResult(lines, 0, args.seed, args.trace_runs)
        results.append(result)
        try:
            run_size(result, limitaudit, work, save)
        except StepFailed as exc:
            result.failure = str(exc)
            save()
            progress(f"stopped: {exc}")
            status = 2
            break
        if not result.csv_identical or result.add_identical is False:
            status = status or 1
    save()
    text = report(head, results)
    print(text)
    progress(f"wrote {args.out}")
    if status == 1:
        progress("the audit CSVs of the raw dump and a store differ")
    return status


if __name__ == "__main__":
    sys.exit(main())
