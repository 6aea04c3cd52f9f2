"""The issue 4 benchmark: ingest, audit and trace on generated dumps, next to Polars floors.

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
  - limitaudit ingest DUMP --store STORE, into a fresh store;
  - limitaudit audit DUMP, once, and audit STORE, STORE_AUDIT_RUNS times (the median: a
    few seconds, where this machine's noise moves a single run by 10%), both with
    --format csv --fail-on none: the two CSVs must be byte-identical (the script exits 1
    when they are not);
  - limitaudit trace USER STORE --format json, --trace-runs times (median and slowest),
    and once on the raw dump; USER is the first user of the audit CSV;
  - I/O floor: every log and ledger file of the dump decompressed and split into lines
    (Polars read_csv with an unused separator and no quoting; Python zlib or zstandard
    streaming for a file Polars refuses, such as the dump's cut-off .gz; read_parquet for
    Parquet ledgers);
  - parse floor, on the clean twin: Polars' own readers parsing the records (read_ndjson
    of the JSON-lines logs with limitaudit's JSON_DOC schema, one str.extract_groups with
    limitaudit's TEXT_LINE over the lines of the logback logs, read_csv and read_parquet
    of the ledger), at the clean twin's line count.

"x I/O floor" is the floor's lines/s divided by the step's (how many times slower than
merely reading the lines); "x parse floor" likewise. The dump's files are read once
before the steps, so the page cache holds them where memory allows.

Results go to --out (benchmarks/RESULTS.md), rewritten after every step, and to stdout at
the end; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import compileall
import csv
import datetime as dt
import filecmp
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

import polars as pl
import zstandard

from limitaudit.read.discover import discover
from limitaudit.read.parse import JSON_DOC, TEXT_LINE

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_LINES = [1_000_000, 5_000_000, 20_000_000]
LINES_PER_USER = 12.2  # what `limitaudit synth` writes per user and day: 80,000 gave 974,860
CHUNK = 1 << 20
LINE_FILES = ("json_log", "text_log", "ledger_csv")

# Issue 4's targets.
AUDIT_RAW_LINES_PER_S = 250_000
RSS_BUDGETS = ((3_000_000, 1024.0), (20_000_000, 3072.0))  # (lines, MiB) for audit raw
STORE_SPEEDUP = 5.0
TRACE_STORE_S = 1.0
STORE_AUDIT_RUNS = 3
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


def parse_floor(directory: Path) -> int:
    """Parse every record with Polars' own readers; return how many rows they made."""
    schema = JSON_DOC.to_schema()  # every field, leaves as strings: what limitaudit decodes
    n = 0
    for f in discover([directory]):
        if f.kind == "json_log":
            n += pl.read_ndjson(f.path, schema=schema).height
        elif f.kind == "text_log":
            lines = _read_lines(f.path)
            n += lines.select(pl.col("text").str.extract_groups(TEXT_LINE).alias("p")).height
        elif f.kind == "ledger_csv":
            n += pl.read_csv(f.path).height
        elif f.kind == "ledger_parquet":
            n += pl.read_parquet(f.path).height
    return n


# --- measuring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    wall: float  # seconds, process start to exit
    rss: float  # peak RSS of the child's process tree, MiB


def measure(argv: list[str], stdout: Path | None = None) -> tuple[Measurement, str]:
    """Run one child process; its wall time, its process tree's peak RSS and its stdout.

    With stdout, the output goes to that file and "" is returned in its place.
    """
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as tmp, ExitStack() as stack:
        out = stack.enter_context(stdout.open("wb")) if stdout else tmp
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=err)
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
    ingest: Measurement | None = None
    store_bytes: int = 0
    audit_raw: Measurement | None = None
    audit_store_runs: list[Measurement] = field(default_factory=list)
    csv_identical: bool | None = None
    zeroings: int = 0
    user: str = ""
    trace_store: list[Measurement] = field(default_factory=list)
    trace_raw: Measurement | None = None
    trace_identical: bool | None = None
    io_floor: Measurement | None = None
    io_floor_lines: int = 0
    parse_floor: Measurement | None = None
    parse_floor_rows: int = 0
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
    def audit_store(self) -> Measurement | None:
        return _median(self.audit_store_runs)

    @property
    def trace_slowest(self) -> Measurement | None:
        return max(self.trace_store, key=lambda m: m.wall, default=None)


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


def run_size(result: SizeResult, limitaudit: str, work: Path, save: Callable[[], None]) -> None:
    """Measure every step for one size into result, calling save() after each."""
    dump, clean, result.users, result.clean_lines = generate(
        limitaudit, work, result.requested, result.seed
    )
    stem = f"{result.requested}-s{result.seed}"
    store = work / f"store-{stem}"
    raw_csv, store_csv = work / f"audit-raw-{stem}.csv", work / f"audit-store-{stem}.csv"
    result.dump_bytes = tree_bytes(dump)
    result.load.append(f"{os.getloadavg()[0]:.2f}")
    me = [sys.executable, str(Path(__file__).resolve()), "--floor"]

    progress(f"reading {dump} once (page cache)")
    warm(dump)
    progress("scan (raw dump)")
    result.scan, out = measure([limitaudit, "scan", str(dump), "--format", "json"])
    result.lines = int(json.loads(out)["totals"]["lines"])
    save()
    progress(f"I/O floor ({result.lines:,} lines)")
    result.io_floor, out = measure([*me, "io", str(dump)])
    result.io_floor_lines = int(out)
    save()
    progress("ingest")
    shutil.rmtree(store, ignore_errors=True)
    result.ingest, _ = measure([limitaudit, "ingest", str(dump), "--store", str(store)])
    result.store_bytes = tree_bytes(store)
    save()
    as_csv = ["--format", "csv", "--fail-on", "none"]
    progress("audit (raw dump)")
    result.audit_raw, _ = measure([limitaudit, "audit", str(dump), *as_csv], raw_csv)
    result.zeroings = pl.scan_csv(raw_csv, infer_schema=False).select(pl.len()).collect().item()
    save()
    for run in range(1, STORE_AUDIT_RUNS + 1):
        progress(f"audit (store), run {run} of {STORE_AUDIT_RUNS}")
        argv = [limitaudit, "audit", str(store), *as_csv]
        result.audit_store_runs.append(measure(argv, store_csv)[0])
        save()
    result.csv_identical = filecmp.cmp(raw_csv, store_csv, shallow=False)
    save()
    result.user = first_user(raw_csv)
    trace_store_json = work / f"trace-store-{stem}.json"
    for run in range(1, result.trace_runs + 1):
        progress(f"trace {result.user} (store), run {run} of {result.trace_runs}")
        argv = [limitaudit, "trace", result.user, str(store), "--format", "json"]
        result.trace_store.append(measure(argv, trace_store_json)[0])
        save()
    progress(f"trace {result.user} (raw dump)")
    trace_raw_json = work / f"trace-raw-{stem}.json"
    argv = [limitaudit, "trace", result.user, str(dump), "--format", "json"]
    result.trace_raw, _ = measure(argv, trace_raw_json)
    result.trace_identical = filecmp.cmp(trace_raw_json, trace_store_json, shallow=False)
    save()
    progress(f"reading {clean} once (page cache)")
    warm(clean)
    progress(f"parse floor (clean twin, {result.clean_lines:,} lines)")
    result.parse_floor, out = measure([*me, "parse", str(clean)])
    result.parse_floor_rows = int(out)
    result.load.append(f"{os.getloadavg()[0]:.2f}")
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
    row("`ingest` raw dump → fresh store", r.ingest, r.lines)
    row("`audit` raw dump", r.audit_raw, r.lines)
    row(f"`audit` store, median of {len(r.audit_store_runs)}", r.audit_store, r.lines)
    row(f"`trace` store, median of {n}", r.trace_median, None)
    row(f"`trace` store, slowest of {n}", r.trace_slowest, None)
    row("`trace` raw dump", r.trace_raw, None)
    row("I/O floor: decompress + split, raw dump", r.io_floor, r.lines, None, None)
    row("parse floor: Polars readers, clean twin", r.parse_floor, r.clean_lines, io, None)
    return rows


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
    if r.io_floor is not None:
        notes.append(f"the I/O floor split {r.io_floor_lines:,} lines (scan counts {r.lines:,})")
    if r.parse_floor is not None:
        notes.append(
            f"the parse floor made {r.parse_floor_rows:,} rows from the clean twin's "
            f"{r.clean_lines:,} lines"
        )
    if r.load:
        notes.append("load average (1 min) at the start and the end: " + " / ".join(r.load))
    out += [f"- {n}" for n in notes]
    if r.failure:
        out += ["", "**Stopped here:**", "", "```", r.failure.rstrip(), "```"]
    out.append("")
    return out


def _rss_estimate(anchor: int, points: list[tuple[int, float]]) -> tuple[float | None, str]:
    """Audit raw's peak RSS at anchor lines from the measured (lines, MiB) points."""
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


def targets(results: list[SizeResult]) -> list[str]:
    """Issue 4's targets against the figures, each met or not."""
    rows = ["| target | lines | measured | verdict |", "| --- | ---: | --- | --- |"]

    def add(target: str, lines: str, measured: str, ok: bool | None) -> None:
        verdict = "n/a" if ok is None else ("met" if ok else "**not met**")
        rows.append(f"| {target} | {lines} | {measured} | {verdict} |")

    for r in results:
        size = f"{r.lines:,}"
        raw = r.lps(r.audit_raw)
        if raw is not None:
            add(
                f"audit raw ≥ {AUDIT_RAW_LINES_PER_S:,} lines/s",
                size,
                f"{raw:,.0f} lines/s",
                raw >= AUDIT_RAW_LINES_PER_S,
            )
        if r.audit_raw and r.audit_store:
            speedup = r.audit_raw.wall / r.audit_store.wall
            add(
                f"audit store ≥ {STORE_SPEEDUP:g}x faster than audit raw",
                size,
                f"{speedup:.1f}x ({r.audit_raw.wall:.2f} s → {r.audit_store.wall:.2f} s)",
                speedup >= STORE_SPEEDUP,
            )
        median, slowest = r.trace_median, r.trace_slowest
        if median and slowest:
            add(
                f"trace on store < {TRACE_STORE_S:g} s (median)",
                size,
                f"median {median.wall:.2f} s, slowest {slowest.wall:.2f} s",
                median.wall < TRACE_STORE_S,
            )
        if r.trace_raw and r.audit_raw:
            add(
                "trace raw faster than audit raw",
                size,
                f"{r.trace_raw.wall:.2f} s vs {r.audit_raw.wall:.2f} s",
                r.trace_raw.wall < r.audit_raw.wall,
            )
        if r.csv_identical is not None:
            add(
                "audit CSV raw = store",
                size,
                "byte-identical" if r.csv_identical else "different",
                r.csv_identical,
            )
    points = [(r.lines, r.audit_raw.rss) for r in results if r.audit_raw]
    for anchor, budget in RSS_BUDGETS:
        if not points:
            break
        rss, how = _rss_estimate(anchor, points)
        add(
            f"audit raw peak RSS < {budget:,.0f} MiB at ~{anchor / 1e6:g}M lines",
            f"~{anchor:,}",
            how,
            None if rss is None else rss < budget,
        )
    return rows


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
        "# limitaudit benchmark (issue 4)",
        "",
        f"- date: {now}",
        f"- machine: {machine()}",
        f"- Python {platform.python_version()}, Polars {version('polars')}, "
        f"Typer {version('typer')}, limitaudit {commit()}",
        f"- command: `{command}`",
        "- each step is its own process: wall time includes its start; peak RSS is that of its "
        "whole process tree (its own and its worker processes', summed from /proc every 50 ms). "
        "lines/s divides the dump's line count (`scan` totals.lines) by the wall time; "
        "x floor = the floor's lines/s ÷ the step's. The dump's files are read once before "
        "the steps, so the page cache holds them where memory allows. The package is "
        "byte-compiled first, as `pip install` leaves it.",
        "",
    ]


def report(head: list[str], results: list[SizeResult]) -> str:
    out = list(head)
    for r in results:
        out += size_section(r)
    rows = targets(results)
    out += ["## Targets (issue 4)", "", *(rows if len(rows) > 2 else ["Nothing measured yet."]), ""]
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

    if args.floor:  # in a child process: one floor, its count on stdout
        kind, directory = args.floor
        print((io_floor if kind == "io" else parse_floor)(Path(directory)))
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
        if not result.csv_identical:
            status = status or 1
    save()
    text = report(head, results)
    print(text)
    progress(f"wrote {args.out}")
    if status == 1:
        progress("the audit CSVs of the raw dump and the store differ")
    return status


if __name__ == "__main__":
    sys.exit(main())
