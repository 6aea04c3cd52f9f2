"""Read a dump into the canonical tables, accounting for every physical line.

For every file: lines = records + continuation + meta + blank + duplicates + rejected.
Records are typed rows in a table (unknown events are records too, counted as
`ignored`); everything else is counted, and every rejected line keeps its reason.
"""

from __future__ import annotations

import os
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING

import polars as pl

from limitaudit.discover import SourceFile, discover
from limitaudit.errors import DumpError
from limitaudit.lines import ReadOutcome, read_blocks
from limitaudit.normalise import record_time, type_checked, type_event, type_ledger
from limitaudit.parse import (
    BLANK,
    CONTINUATION,
    META,
    RECORD,
    REJECTED,
    LineClass,
    classify,
    parse_records,
)
from limitaudit.schema import (
    EVENTS,
    LEDGER_FIELDS,
    LEDGER_SCHEMA,
    ORIGIN,
    DType,
    Time,
    event_schema,
)
from limitaudit.skim import skim, skimmable

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized

    from limitaudit.commands.audit import AuditFacts

DEFAULT_TZ = "Asia/Shanghai"
COUNTS = ["lines", "records", "continuation", "meta", "blank", "duplicates", "rejected", "ignored"]
_HEADER = re.compile(r"^#\s*service=(\S+)\s+host=(\S+)")
_ROTATION = re.compile(r"(\.(log|txt|json|jsonl|ndjson|gz|zst|\d+|\d{4}-\d{2}-\d{2}))+$")
REJECT_SCHEMA = {"file_id": pl.UInt32, "line": pl.UInt32, "reason": pl.String, "text": pl.String}
KEY_SCHEMA = {**ORIGIN, "h1": pl.UInt64, "h2": pl.UInt64}
# What a dump keeps of every record line to find repeats: its hashes, and whether its
# event is unknown (counted as `ignored`).
KEYS_SCHEMA = {**KEY_SCHEMA, "ignored": pl.Boolean}
# What a dump keeps of every record of a known event, whatever else it leaves out: when,
# on which host, which event, and the feed batch a decision quotes. Clock offsets, engine
# silences and files' time ranges need every record; an audit keeps whole only the
# decisions it uses (`ingest(decisions=...)`), which is what keeps its memory small.
STAMP_SCHEMA = {
    **ORIGIN,
    "ts": Time,
    "host": pl.Categorical(),
    "event": pl.Enum(list(EVENTS)),
    "batch": pl.Categorical(),
}


@dataclass(frozen=True)
class Finding:
    kind: str  # truncated | skipped | empty | unreadable | ledger_conflict
    file: str
    message: str


@dataclass
class FileReport:
    """What one file held. `first`/`last` are the UTC time range of its records."""

    source: SourceFile
    encoding: str = ""
    service: str | None = None
    host: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    first: object = None
    last: object = None
    # The host the file's header line or name gives. `host` becomes its records' own host
    # when they agree on one; a store keeps both to settle duplicates again later.
    named_host: str | None = None


# The tables of which a one-user read holds only the user's rows (see Scope).
USER_TABLES = ("ledger", "decision", "manual_action", "user_notice")


@dataclass(frozen=True)
class Scope:
    """A dump read from a store for one user: the per-user tables (ledger, decision,
    manual_action, user_notice) hold only that user's rows, engine_error only the user's
    and those sharing a trace_id with its decisions, the others are whole; no rejects.

    What an audit needs from the whole dump comes precomputed in `facts`, and
    `user_ids` reads every user id of the dump when asked (to name the nearest ones).
    """

    user_id: str
    facts: AuditFacts
    user_ids: Callable[[], pl.Series]


@dataclass
class Dump:
    """The ingested dump: typed tables, per-file accounting, rejects and findings."""

    tables: dict[str, pl.DataFrame]
    files: list[FileReport]
    rejects: pl.DataFrame  # file_id, line, reason, text
    findings: list[Finding]
    tz: str
    # STAMP_SCHEMA, one row per record (repeats settled), lazy: a dump read from its files
    # leaves them on disk, one stamp a line being what would grow with the dump. None when
    # not read (a store read whose audit facts are kept needs none).
    stamps: pl.LazyFrame | None
    # The hashes of every record line (KEYS_SCHEMA) and the ledger's repeated rows: what a
    # store keeps so that files ingested later are deduplicated against these. Only kept
    # when asked (settle(keep=True)): the hashes take some 20 bytes a record.
    keys: pl.DataFrame | None = None
    ledger_repeats: pl.DataFrame | None = None
    scope: Scope | None = None
    # Audit facts already known for the whole dump (a store keeps those of one set of
    # options); an audit with those options takes them instead of the stamps.
    facts: AuditFacts | None = None
    # A store read for an audit leaves its per-user tables empty and reads them here
    # instead, a share of its users at a time, each share as `only` gives it.
    parts: Callable[[], Iterator[Dump]] | None = None

    def require_readable(self) -> None:
        """A dump in which no file is a log or a ledger cannot be read at all."""
        if not any(f.source.kind not in ("other", "empty") for f in self.files):
            raise DumpError("nothing in the dump is a risk-engine log or a ledger export")

    def stamped(self, *columns: str, where: pl.Expr | None = None) -> pl.LazyFrame:
        """Those `columns` of the stamps `where` holds, to aggregate before collecting.
        Host, event and batch are categorical: make them strings (`as_text`) after
        aggregating, a string a record being most of what a stamp costs."""
        if self.stamps is None:
            raise ValueError("this dump was read without its record stamps")
        rows = self.stamps if where is None else self.stamps.filter(where)
        return rows.select(columns)

    def for_user(self, user_id: str, facts: AuditFacts) -> Dump:
        """This dump as a store's one-user read holds it (see Scope): what an audit of that
        user reads, so that it does none of the work of every other user."""
        whole = self.tables

        def users() -> pl.Series:
            return pl.concat(whole[name].select("user_id") for name in USER_TABLES)["user_id"]

        one = self.only(pl.col("user_id") == user_id, facts)
        one.scope = Scope(user_id, facts, users)
        return one

    def only(self, mine: pl.Expr, facts: AuditFacts, cut: bool = False) -> Dump:
        """The rows of the users `mine` holds, with the facts of the whole dump: the
        per-user tables filtered (unless `cut`: they hold those users alone already),
        engine errors those users' or sharing a trace_id with their decisions, the other
        tables whole; no rejects, no stamps."""
        tables = {
            name: table.filter(mine) if name in USER_TABLES and not cut else table
            for name, table in self.tables.items()
        }
        traces = tables["decision"]["trace_id"].drop_nulls().unique().implode()
        tables["engine_error"] = self.tables["engine_error"].filter(
            mine | pl.col("trace_id").is_in(traces)
        )
        return Dump(
            tables, self.files, self.rejects.clear(), self.findings, self.tz, None, facts=facts
        )

    @property
    def ledger(self) -> pl.DataFrame:
        return self.tables["ledger"]

    def file_names(self) -> pl.DataFrame:
        """file_id -> file (the name as the user knows it), to join onto any table."""
        return pl.DataFrame(
            {"file_id": range(len(self.files)), "file": [f.source.name for f in self.files]},
            schema={"file_id": pl.UInt32, "file": pl.String},
        )

    def file_name(self, file_id: int) -> str:
        return self.files[file_id].source.name


Progress = Callable[[int], None]
# Frames a reader keeps, or the file (see read_files) to which it has written them.
Kept = list[pl.DataFrame | Path]
# Takes every decision a reader typed (before `decisions` filters them), a file's worth
# at a time, from any reader thread: how a store is built without holding the decisions.
Spill = Callable[[pl.DataFrame], None]
# A file's kept rows of one kind wait on disk from this many (see read_files).
PARK_ROWS = 20_000
# A reader hands its decisions to the spill at the end of each file, or sooner past this.
SPILL_ROWS = 50_000
# A log's lines wait for the full path (decoding, typing) until their candidates reach
# FULL_ROWS, over at most FULL_BLOCKS blocks: its fixed cost, some 50 ms a call planning
# the typed expressions, is then paid once for the few candidates skimmed blocks leave.
FULL_ROWS = 10_000
FULL_BLOCKS = 8
# A file in flight per core: more keep no core busier (measured on 2 cores) and each
# holds a block's worth of intermediate frames.
READ_THREADS = max(2, os.cpu_count() or 1)


def ingest(
    inputs: Iterable[str | Path],
    tz: str = DEFAULT_TZ,
    progress: Progress | None = None,
    decisions: pl.Expr | None = None,
) -> Dump:
    """Read a dump. `decisions` filters the decision table (all kept when None): they are
    most of a dump, and most of them change nothing. Every record is still checked,
    counted and stamped."""
    sources = discover(inputs)
    if not sources:
        raise DumpError("the dump holds no files")
    return settle(read_files(sources, tz, progress, decisions))


@dataclass
class RawDump:
    """Files read, duplicates not yet settled: every record, each line with its hashes.

    The tables, ledger and stamps are lazy: most of them wait on disk (see read_files),
    and `settle` reads each once, leaving out its repeats as it reads.
    """

    tables: dict[str, pl.LazyFrame]  # event tables, repeats included, stack traces attached
    ledger: pl.LazyFrame  # every ledger row, repeats included
    keys: pl.LazyFrame  # KEYS_SCHEMA, for every record line of a known or unknown event
    stamps: pl.LazyFrame  # STAMP_SCHEMA, for every record line of a known event
    files: list[FileReport]  # counts before duplicates; host as the header or name gives it
    rejects: pl.DataFrame  # REJECT_SCHEMA
    findings: list[Finding]  # each file's, in file order
    tz: str
    # Where the lazy frames' files are; removed once settled.
    folder: TemporaryDirectory[str] | None = None


def read_files(
    sources: list[SourceFile],
    tz: str = DEFAULT_TZ,
    progress: Progress | None = None,
    decisions: pl.Expr | None = None,
    spill: Spill | None = None,
    apart: bool | None = None,
) -> RawDump:
    """Read files as file_id 0, 1, ... in the order given; `settle` makes the Dump.

    Files are read a few at a time, each into its own reader; the readers are merged in
    file order, so the result is the same as reading one file after another. A large
    dump is read in worker processes where `read_in_processes` allows it (or `apart`
    says so), a small one or one that spills on threads.

    What each file keeps waits on disk until every file is read: kept in memory, a few
    rows of every block sit among the freed frames of all the others, and the heap grows
    by half as much again as what it holds (measured at 3 million lines).
    """
    folder = TemporaryDirectory(prefix="limitaudit-read-")
    if apart is None:
        apart = spill is None and _processes and _large(sources)
    jobs = [
        (file_id, source, tz, decisions, Path(folder.name))
        for file_id, source in enumerate(sources)
    ]
    try:
        if apart:
            readers = _read_apart(jobs, progress)
        else:
            with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
                readers = list(pool.map(lambda job: _read_job(job, progress, spill), jobs))
    except BaseException:
        folder.cleanup()
        raise
    merged = _Reader(tz, progress, decisions, spill)
    for reader in readers:
        merged.absorb(reader)
    return merged.raw(folder)


# A dump reads in worker processes from this many bytes on disk. A process's heap goes
# when it ends; a thread's churn stays in this process's, where settle and the audit
# then allocate around it (at 3 million lines, 400 MB resident after the read for 60 MB
# of live data). Processes also leave the GIL out. Below this, starting them (each
# imports Polars) costs more than it saves.
APART_BYTES = 64 << 20
Job = tuple[int, SourceFile, str, pl.Expr | None, Path]
# Off for a library caller: a worker process starts by importing the caller's main
# module, whose top-level code must then sit under `if __name__ == "__main__"`.
_processes = False


def read_in_processes(enabled: bool = True) -> None:
    """Let large dumps be read in worker processes (the command line does)."""
    global _processes  # noqa: PLW0603 - a process-wide choice, made once at start
    _processes = enabled


def _large(sources: list[SourceFile]) -> bool:
    return (os.cpu_count() or 1) > 1 and sum(s.size for s in sources) >= APART_BYTES


def _read_job(job: Job, progress: Progress | None, spill: Spill | None) -> _Reader:
    file_id, source, tz, decisions, folder = job
    reader = _Reader(tz, progress, decisions, spill, folder)
    reader.read(file_id, source)
    return reader


def _read_apart(jobs: list[Job], progress: Progress | None) -> list[_Reader]:
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


def _read_in_worker(job: Job) -> _Reader:
    reader = _read_job(job, _count_lines if _worker_lines is not None else None, None)
    reader.progress = None  # a function of this process: nothing to send back
    return reader


def settle(raw: RawDump, keep: bool = False) -> Dump:
    """Keep the first of every repeated record line and ledger change; finish the accounting.

    The first is the first by (file_id, line): files are numbered in the dump's order,
    and the tables come in that order (the filters keep it). `keep` keeps the line
    hashes and the ledger's repeats on the Dump, for a store.

    `raw` is used up: the Dump takes its folder on disk, from which the stamps are read.
    """
    files = [replace(f, counts=dict(f.counts)) for f in raw.files]
    findings = list(raw.findings)
    dups = repeats(raw.keys)
    tables = {event: without(table, dups) for event, table in raw.tables.items()}
    stamps = _left_out(raw.stamps, dups)
    tables["ledger"], ledger_dups = _dedup_ledger(raw.ledger.collect(), files, findings)
    for file_id, n in (
        pl.concat([dups.select("file_id"), ledger_dups.select("file_id")])
        .group_by("file_id")
        .len()
        .iter_rows()
    ):
        files[file_id].counts["duplicates"] = n
        files[file_id].counts["records"] -= n
    ignored = raw.keys.filter("ignored").join(dups.lazy(), on=list(ORIGIN), how="anti").collect()
    for file_id, n in ignored.group_by("file_id").len().iter_rows():
        files[file_id].counts["ignored"] = n
    _time_ranges(stamps, tables["ledger"], files)
    dump = Dump(
        tables,
        files,
        raw.rejects.sort("file_id", "line"),
        findings,
        raw.tz,
        stamps,
        keys=raw.keys.collect() if keep else None,
        ledger_repeats=ledger_dups if keep else None,
    )
    if raw.folder is not None:
        # The stamps are read from there: it goes when the Dump goes (or the program ends).
        weakref.finalize(dump, raw.folder.cleanup)
    return dump


class _Reader:
    def __init__(
        self,
        tz: str,
        progress: Progress | None,
        decisions: pl.Expr | None,
        spill: Spill | None,
        folder: Path | None = None,
    ) -> None:
        self.tz = tz
        self.folder = folder
        self.progress = progress
        self.decisions = decisions
        self.spill = spill
        # Decisions the read leaves out are skimmed, not decoded (see skim); a spill
        # takes every decision whole.
        self.skims = decisions is not None and spill is None and skimmable(decisions)
        self.spilling: list[pl.DataFrame] = []
        self.files: list[FileReport] = []
        self.findings: list[Finding] = []
        self.events: dict[str, Kept] = {e: [] for e in EVENTS}
        self.ledger: Kept = []
        self.keys: Kept = []
        self.stamps: Kept = []
        self.rejects: Kept = []
        self.stacks: Kept = []

    def read(self, file_id: int, source: SourceFile) -> None:
        report = FileReport(source)
        self.files.append(report)
        if source.kind == "empty":
            self.findings.append(Finding("empty", source.name, f"{source.name}: empty file"))
        elif source.kind == "other":
            self.findings.append(
                Finding("skipped", source.name, f"{source.name}: skipped, {source.reason}")
            )
        elif source.kind == "ledger_parquet":
            self._read_parquet(file_id, report)
        else:
            self._read_lines(file_id, report)
        self._flush_spill()
        self._park(file_id)

    def _kept(self) -> list[tuple[str, Kept]]:
        named = [("ledger", self.ledger), ("keys", self.keys), ("stamps", self.stamps)]
        named += [("rejects", self.rejects), ("stacks", self.stacks)]
        return named + [(f"event-{e}", parts) for e, parts in self.events.items()]

    def _park(self, file_id: int) -> None:
        """Make what the file's blocks kept one frame a kind, written to the reader's folder
        when it is large (a small one costs more to write than it fragments)."""
        for name, parts in self._kept():
            frame = _lazy(parts, {}).collect() if parts else None
            if frame is not None and name == "event-decision":
                # In line order, as the full path alone would leave them: a skim reads
                # some whole as it goes, the full path the others a few blocks later.
                frame = frame.sort("file_id", "line")
            if frame is None or frame.height == 0:
                parts.clear()
            elif self.folder is None or frame.height < PARK_ROWS:
                parts[:] = [frame]
            else:
                path = self.folder / f"{file_id}-{name}.arrow"
                frame.write_ipc(path)
                parts[:] = [path]

    def _flush_spill(self) -> None:
        if self.spill is not None and self.spilling:
            self.spill(pl.concat(self.spilling))
            self.spilling = []

    # -- text files -------------------------------------------------------------------

    def _read_lines(self, file_id: int, report: FileReport) -> None:
        source = report.source
        outcome = ReadOutcome()
        carry = _LogCarry()
        waiting: list[_Sorted] = []
        for raw in read_blocks(source.path, outcome):
            if self.progress:
                self.progress(raw.height)
            block = raw.with_columns(_pre_reason(outcome))
            if not source.is_log:
                carry.header, lines = self._ledger_block(file_id, block, carry.header)
                self._account(file_id, report, lines)
                continue
            waiting.append(self._sort_block(file_id, block, carry, report))
            if sum(w.rest.height for w in waiting) >= FULL_ROWS or len(waiting) >= FULL_BLOCKS:
                self._account(file_id, report, self._full_path(file_id, waiting, carry, report))
                waiting = []
        if waiting:
            self._account(file_id, report, self._full_path(file_id, waiting, carry, report))
        report.encoding = outcome.encoding
        if outcome.cut:
            self.findings.append(
                Finding(
                    "truncated",
                    source.name,
                    f"{source.name}: {outcome.cut}; read {outcome.lines} line(s) before the cut",
                )
            )

    def _sort_block(
        self, file_id: int, block: pl.DataFrame, carry: _LogCarry, report: FileReport
    ) -> _Sorted:
        """Classify one block of a log and skim it."""
        if carry.first_block:
            carry.first_block = False
            match = _HEADER.match(block["text"][0] if block.height else "")
            if match:
                report.service, report.host = match.group(1), match.group(2)
            report.host = report.host or _host_from_name(report.source)
            report.service = report.service or _service_from_name(report.source)
            report.named_host = report.host
        lines = classify(block, carry.record_above)
        lines = lines.with_columns((pl.col("cls") == RECORD).alias("candidate"))
        candidates = lines.filter("candidate")
        carry.record_above = carry.record_above or candidates.height > 0
        if not self.skims:
            return _Sorted(lines, candidates, None)
        assert self.decisions is not None and report.host is not None
        skimmed = skim(candidates, self.decisions, self.tz, report.host)
        self._keep_skimmed(file_id, skimmed.left)
        return _Sorted(lines, skimmed.rest, skimmed.kept)

    def _full_path(
        self, file_id: int, blocks: list[_Sorted], carry: _LogCarry, report: FileReport
    ) -> pl.DataFrame:
        """Decode and type the candidates of consecutive blocks (and type the decisions
        their skims read whole); returns their lines with final classes."""
        kept = [b.kept for b in blocks if b.kept is not None]
        if kept:
            self._keep_whole(file_id, pl.concat(kept), report)
        lines = pl.concat([b.lines for b in blocks])
        records, bad = parse_records(pl.concat([b.rest for b in blocks]))
        lines = _overrule(lines, bad)
        records = records.with_columns(
            pl.lit(file_id, pl.UInt32).alias("file_id"),
            pl.col("host").fill_null(report.host),
            pl.col("service").fill_null(report.service),
        )
        lines = _overrule(lines, self._type_records(records))
        # A stack-trace line belongs to the record line above it, across block edges. Under
        # a rejected record it is rejected too, not handed to an earlier record.
        above = pl.when("candidate")
        lines = lines.with_columns(
            above.then(pl.col("line"))
            .forward_fill()
            .fill_null(pl.lit(carry.last_record, pl.UInt32))
            .alias("owner"),
            above.then(pl.col("cls") == RECORD)
            .forward_fill()
            .fill_null(carry.last_record_ok)
            .alias("owner_ok"),
        )
        orphans = lines.filter((pl.col("cls") == CONTINUATION) & ~pl.col("owner_ok")).select(
            "line",
            pl.format("stack-trace line under the rejected record at line {}", "owner").alias(
                "reason"
            ),
        )
        lines = _overrule(lines, orphans)
        self.stacks.append(
            _compact(
                lines.filter(pl.col("cls") == CONTINUATION).select(
                    pl.lit(file_id, pl.UInt32).alias("file_id"), "owner", "line", "text"
                )
            )
        )
        last = lines.filter("candidate").tail(1)
        if last.height:
            carry.last_record = int(last["line"][0])
            carry.last_record_ok = last["cls"][0] == RECORD
        return lines

    def _keep_skimmed(self, file_id: int, skimmed: pl.DataFrame) -> None:
        """A skimmed decision's stamp and key: all that a read leaving it out keeps."""
        if skimmed.height == 0:
            return
        skimmed = skimmed.with_columns(pl.lit(file_id, pl.UInt32).alias("file_id"))
        self.stamps.append(_stamps(skimmed, "decision"))
        self.keys.append(skimmed.select(*KEY_SCHEMA, pl.lit(False).alias("ignored")))

    def _keep_whole(self, file_id: int, kept: pl.DataFrame, report: FileReport) -> None:
        """Decisions the skim read whole: typed without the checks it has made."""
        if kept.height == 0:
            return
        kept = kept.with_columns(
            pl.lit(file_id, pl.UInt32).alias("file_id"),
            pl.col("service").fill_null(report.service),
        )
        table = type_checked(kept, "decision")
        self.stamps.append(_stamps(table, "decision"))
        self.events["decision"].append(_compact(table))
        self.keys.append(kept.select(*KEY_SCHEMA, pl.lit(False).alias("ignored")))

    def _type_records(self, raw: pl.DataFrame) -> pl.DataFrame:
        """Type decoded records into the event tables; returns the rejects (line, reason)."""
        ts, time_problem = record_time(self.tz)
        raw = raw.with_columns(ts.alias("ts"), time_problem.alias("time_problem"))
        known = pl.col("event").is_in(list(EVENTS))
        rejects = [
            raw.filter(pl.col("event").is_null()).select(
                "line", pl.coalesce("time_problem", pl.lit("record without event")).alias("reason")
            ),
            raw.filter(
                pl.col("event").is_not_null() & ~known & pl.col("time_problem").is_not_null()
            ).select("line", pl.col("time_problem").alias("reason")),
        ]
        ignored = raw.filter(
            pl.col("event").is_not_null() & ~known & pl.col("time_problem").is_null()
        )
        self.keys.append(ignored.select(*KEY_SCHEMA, pl.lit(True).alias("ignored")))
        for event in EVENTS:
            part = raw.filter(pl.col("event") == event)
            if part.height == 0:
                continue
            table, bad = type_event(part, event)
            rejects.append(bad.select("line", "reason"))
            self.stamps.append(_stamps(table, event))
            if event == "decision" and self.spill is not None:
                self.spilling.append(table)
                if sum(t.height for t in self.spilling) >= SPILL_ROWS:
                    self._flush_spill()
            if event == "decision" and self.decisions is not None:
                table = table.filter(self.decisions)
            self.events[event].append(_compact(table))
            self.keys.append(
                part.select(*KEY_SCHEMA, pl.lit(False).alias("ignored")).join(
                    bad.select("line"), on="line", how="anti"
                )
            )
        return pl.concat(rejects)

    # -- the ledger ---------------------------------------------------------------------

    def _ledger_block(
        self, file_id: int, block: pl.DataFrame, header: list[str] | None
    ) -> tuple[list[str] | None, pl.DataFrame]:
        header, lines, rows = _ledger_rows(block, header)
        rows = rows.with_columns(pl.lit(file_id, pl.UInt32).alias("file_id"))
        for name in LEDGER_FIELDS:
            if name not in rows.columns:
                rows = rows.with_columns(pl.lit(None, pl.String).alias(name))
        table, bad = type_ledger(rows)
        self.ledger.append(_compact(table))
        return header, _overrule(lines, bad.select("line", "reason"))

    def _read_parquet(self, file_id: int, report: FileReport) -> None:
        source = report.source
        try:
            frame = pl.read_parquet(source.path)
        except Exception as exc:  # a damaged Parquet file raises many kinds of errors
            self.findings.append(
                Finding("unreadable", source.name, f"{source.name}: unreadable Parquet: {exc}")
            )
            return
        frame = frame.rename({c: c.strip().lower() for c in frame.columns})
        missing = [c for c in ("change_id", "user_id", "changed_at") if c not in frame.columns]
        if missing:
            self.findings.append(
                Finding(
                    "skipped",
                    source.name,
                    f"{source.name}: skipped, Parquet without {', '.join(missing)}",
                )
            )
            return
        if self.progress:
            self.progress(frame.height)
        present = [c for c in LEDGER_FIELDS if c in frame.columns]
        rows = frame.select(
            pl.lit(file_id, pl.UInt32).alias("file_id"),
            pl.int_range(1, frame.height + 1, dtype=pl.UInt32).alias("line"),
            *[_as_text(frame, c) for c in present],
            *[pl.lit(None, pl.String).alias(c) for c in LEDGER_FIELDS if c not in present],
        )
        table, bad = type_ledger(rows)
        self.ledger.append(table)
        lines = rows.select(
            "line",
            pl.lit(RECORD, LineClass).alias("cls"),
            pl.lit(None, pl.String).alias("reason"),
            pl.concat_str([pl.col(c).fill_null("") for c in LEDGER_FIELDS], separator=",").alias(
                "text"
            ),
        )
        self._account(file_id, report, _overrule(lines, bad.select("line", "reason")))

    # -- accounting ---------------------------------------------------------------------

    def _account(self, file_id: int, report: FileReport, lines: pl.DataFrame) -> None:
        """Count each line's final class and keep the rejected ones with their reason."""
        counts = dict(lines.group_by("cls").len().iter_rows())
        report.counts["lines"] += lines.height
        report.counts["records"] += counts.get(RECORD, 0)
        report.counts["rejected"] += counts.get(REJECTED, 0)
        for cls in (BLANK, META, CONTINUATION):
            report.counts[_COUNT_OF[cls]] += counts.get(cls, 0)
        self.rejects.append(
            _compact(
                lines.filter(pl.col("cls") == REJECTED).select(
                    pl.lit(file_id, pl.UInt32).alias("file_id"), "line", "reason", "text"
                )
            )
        )

    def absorb(self, other: _Reader) -> None:
        """Append what another reader read (its files come after this one's)."""
        self.files += other.files
        self.findings += other.findings
        for event, parts in other.events.items():
            self.events[event] += parts
        self.ledger += other.ledger
        self.keys += other.keys
        self.stamps += other.stamps
        self.rejects += other.rejects
        self.stacks += other.stacks

    def raw(self, folder: TemporaryDirectory[str] | None = None) -> RawDump:
        tables = {event: _lazy(parts, event_schema(event)) for event, parts in self.events.items()}
        tables["engine_error"] = self._attach_stacks(tables["engine_error"])
        return RawDump(
            tables,
            _lazy(self.ledger, LEDGER_SCHEMA),
            _lazy(self.keys, KEYS_SCHEMA),
            _lazy(self.stamps, STAMP_SCHEMA),
            self.files,
            _lazy(self.rejects, REJECT_SCHEMA).collect(),
            self.findings,
            self.tz,
            folder,
        )

    def _attach_stacks(self, errors: pl.LazyFrame) -> pl.LazyFrame:
        if not self.stacks:
            return errors
        stacks = (
            _lazy(self.stacks, {})
            .sort("file_id", "line")
            .group_by("file_id", "owner", maintain_order=True)
            .agg(pl.col("text").str.join("\n").alias("stack_lines"))
            .rename({"owner": "line"})
        )
        return (
            errors.join(stacks, on=["file_id", "line"], how="left", maintain_order="left")
            .with_columns(pl.coalesce("stack", "stack_lines").alias("stack"))
            .drop("stack_lines")
        )


def _lazy(parts: Kept, schema: Mapping[str, DType]) -> pl.LazyFrame:
    if not parts:
        return pl.LazyFrame(schema=schema)
    return pl.concat(pl.scan_ipc(p) if isinstance(p, Path) else p.lazy() for p in parts)


def _dedup_ledger(
    ledger: pl.DataFrame, files: list[FileReport], findings: list[Finding]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One row per change_id, the first seen; a repeat with other values is a finding.

    Returns the rows kept and the repeated rows (whole: a store keeps them).
    """
    # The readers hand the rows over in file and line order; a sort would copy them all
    # (250 MB at 21M lines, at the read's peak) for nothing.
    if not ledger.select((_origin_key().diff() > 0).all()).item():
        ledger = ledger.sort(list(ORIGIN))
    first = ledger.select(pl.col("change_id").is_first_distinct()).to_series()
    kept, dups = ledger.filter(first), ledger.filter(~first)
    values = ["user_id", "changed_at", "limit_before", "limit_after"]
    conflicts = dups.join(kept, on="change_id", suffix="_first").filter(
        pl.any_horizontal(pl.col(v) != pl.col(f"{v}_first") for v in values)
    )
    for row in conflicts.iter_rows(named=True):
        here = f"{files[row['file_id']].source.name}:{row['line']}"
        there = f"{files[row['file_id_first']].source.name}:{row['line_first']}"
        findings.append(
            Finding(
                "ledger_conflict",
                files[row["file_id"]].source.name,
                f"{here}: change_id {row['change_id']} repeats {there} with other "
                "values; the first is kept",
            )
        )
    return kept, dups


def _compact(frame: pl.DataFrame) -> pl.DataFrame:
    """A copy that owns its strings and nothing more.

    Polars' strings are views into shared buffers: a few rows filtered out of a block
    keep the whole block's text alive, and a reader keeping a few rows of every block
    would hold the whole dump. The Arrow round trip copies only the strings in use.
    """
    if frame.height == 0:
        return frame
    copy = pl.from_arrow(frame.to_arrow())
    assert isinstance(copy, pl.DataFrame)
    return copy


def as_text(stamps: pl.DataFrame) -> pl.DataFrame:
    """Stamps with their host, event and batch as strings, to join with the tables."""
    return stamps.with_columns(pl.col(pl.Categorical, pl.Enum).cast(pl.String))


def _stamps(table: pl.DataFrame, event: str) -> pl.DataFrame:
    batch = pl.col("bureau_batch") if event == "decision" else pl.lit(None, pl.String)
    return table.select(
        *ORIGIN, "ts", "host", pl.lit(event).alias("event"), batch.alias("batch")
    ).cast(STAMP_SCHEMA)  # type: ignore[arg-type]


def _time_ranges(stamps: pl.LazyFrame, ledger: pl.DataFrame, files: list[FileReport]) -> None:
    """Each file's time range and, where its records agree on one, their host."""
    logs = (
        stamps.group_by("file_id")
        .agg(
            pl.col("ts").min().alias("first"),
            pl.col("ts").max().alias("last"),
            pl.col("host").drop_nulls().unique().alias("hosts"),
        )
        .collect(engine="streaming")
    )
    exports = ledger.group_by("file_id").agg(
        pl.col("changed_at").min().alias("first"),
        pl.col("changed_at").max().alias("last"),
        pl.lit([], pl.List(pl.String)).alias("hosts"),
    )
    for file_id, first, last, hosts in [*logs.iter_rows(), *exports.iter_rows()]:
        report = files[file_id]
        report.first, report.last = first, last
        # A JSON log names its host in every record; the file's name is only a fallback.
        if len(hosts) == 1:
            report.host = hosts[0]


_COUNT_OF = {BLANK: "blank", META: "meta", CONTINUATION: "continuation"}


@dataclass
class _Sorted:
    """A block of a log, classified and skimmed, waiting for the full path."""

    lines: pl.DataFrame
    # The record candidates for the full path, and the decisions the skim read whole.
    rest: pl.DataFrame
    kept: pl.DataFrame | None


@dataclass
class _LogCarry:
    """What one block of a file hands to the next."""

    first_block: bool = True
    # Whether a record candidate came before (a stack-trace line needs one above it).
    record_above: bool = False
    # The last record line so far (its stack trace may continue into the next block),
    # and whether it was kept.
    last_record: int | None = None
    last_record_ok: bool = False
    header: list[str] | None = None


def _pre_reason(outcome: ReadOutcome) -> pl.Expr:
    """Reasons to reject a line before parsing: bad bytes, or the cut-off tail of a file."""
    # read_blocks sets tail_incomplete before it yields the last block.
    is_tail = (pl.col("line") == pl.col("line").max()) & pl.lit(outcome.tail_incomplete)
    return (
        pl.when(is_tail)
        .then(pl.lit("incomplete last line: the file is cut off"))
        .when(pl.col("bad_encoding"))
        .then(pl.lit("undecodable bytes (neither UTF-8 nor GBK)"))
        .alias("pre_reason")
    )


# Repeats are looked for among this many line hashes at a time (see repeats).
REPEAT_ROWS = 4_000_000


def repeats(keys: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Exact repeats of a record line anywhere in the dump; the first one stays.

    Nearly every line is unique: only those whose first hash repeats are sorted and
    compared on both (a whole-dump sort and struct comparison took half a GiB at 3M lines).
    The repeated first hashes are found by sorting them, a slice of the hash range at a
    time, so that no more than REPEAT_ROWS of them are in memory whatever the dump's
    size (`is_duplicated`'s hash table took 200 MB at 2.6 million lines, the sort 30).
    """
    keys = keys.lazy()
    slices = -(-keys.select(pl.len()).collect().item() // REPEAT_ROWS)
    repeated = [pl.Series("h1", [], pl.UInt64)]
    for part in range(slices):
        h1 = keys.filter(pl.col("h1") % slices == part).select("h1").collect()["h1"].sort()
        repeated.append(h1.filter(h1 == h1.shift(1)).unique())
    maybe = (
        keys.filter(pl.col("h1").is_in(pl.concat(repeated).implode())).collect().sort(list(ORIGIN))
    )
    return maybe.filter(~pl.struct("h1", "h2").is_first_distinct()).select(list(ORIGIN))


def _origin_key() -> pl.Expr:
    return pl.col("file_id").cast(pl.UInt64) * (1 << 32) + pl.col("line")


def without(frame: pl.DataFrame | pl.LazyFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """`frame` without the rows at `rows`' (file_id, line): a filter, cheaper than an
    anti-join here (the rows are few, the frame large). A lazy frame is read filtered,
    never whole and then again without its repeats."""
    return _left_out(frame, rows).collect()


def _left_out(frame: pl.DataFrame | pl.LazyFrame, rows: pl.DataFrame) -> pl.LazyFrame:
    if rows.height == 0:
        return frame.lazy()
    keys = rows.select(_origin_key()).to_series().implode()
    return frame.lazy().filter(~_origin_key().is_in(keys))


def _overrule(lines: pl.DataFrame, bad: pl.DataFrame) -> pl.DataFrame:
    """Lines in `bad` (line, reason) become rejected with that reason."""
    if bad.height == 0:
        return lines
    lines = lines.join(
        bad.rename({"reason": "bad_reason"}), on="line", how="left", maintain_order="left"
    )
    return lines.with_columns(
        pl.when(pl.col("bad_reason").is_not_null())
        .then(pl.lit(REJECTED, LineClass))
        .otherwise(pl.col("cls"))
        .alias("cls"),
        pl.coalesce("bad_reason", "reason").alias("reason"),
    ).drop("bad_reason")


# A comma and the CSV field after it: quoted (commas and doubled quotes inside;
# exports quote free-text columns) or bare. Never empty, unlike a field alone, so
# the regex finds every one (it skips the place after an empty match).
_CSV_FIELD = r',(?:"(?:[^"]|"")*"|[^,"]*)'


def _csv_fields(block: pl.DataFrame) -> pl.DataFrame:
    """`block` with each line's `fields`, unquoted and trimmed, and whether the fields make
    up the whole line (`well_formed`).

    A line without quotes is split on its commas; only quoted ones take the regex, which
    costs some 30 µs a line.
    """
    text = pl.col("text")
    has_quote = text.str.contains('"', literal=True)
    plain = block.filter(~has_quote).with_columns(
        text.str.split(",").list.eval(pl.element().str.strip_chars()).alias("fields"),
        pl.lit(True).alias("well_formed"),
    )
    line = "," + text
    pieces = line.str.extract_all(_CSV_FIELD)
    field = pl.element().str.strip_prefix(",").str.strip_chars()
    size = field.str.len_chars()
    quoted = field.str.starts_with('"') & field.str.ends_with('"') & (size >= 2)
    value = pl.when(quoted).then(
        field.str.slice(1, size - 2).str.replace_all('""', '"', literal=True)
    )
    quoting = block.filter(has_quote).with_columns(
        pieces.list.eval(value.otherwise(field).str.strip_chars()).alias("fields"),
        (pieces.list.join("") == line).alias("well_formed"),
    )
    return pl.concat([plain, quoting]).sort("line")


def _ledger_rows(
    block: pl.DataFrame, header: list[str] | None
) -> tuple[list[str] | None, pl.DataFrame, pl.DataFrame]:
    """Split CSV lines into the ledger's columns; the first non-blank line is the header."""
    text = pl.col("text")
    blank = text.str.strip_chars() == ""
    block = _csv_fields(block)
    fields, well_formed = pl.col("fields"), pl.col("well_formed")
    header_line = -1
    if header is None:
        first = block.filter(~blank & pl.col("pre_reason").is_null()).head(1)
        if first.height:
            header_line = int(first["line"][0])
            header = [c.lower() for c in first["fields"][0]]
    width = len(header or [])
    cls = (
        pl.when(pl.col("pre_reason").is_not_null())
        .then(pl.lit(REJECTED))
        .when(blank)
        .then(pl.lit(BLANK))
        .when(pl.col("line") == header_line)
        .then(pl.lit(META))
        .when(~well_formed | (fields.list.len() != width))
        .then(pl.lit(REJECTED))
        .otherwise(pl.lit(RECORD))
        .cast(LineClass)
    )
    reason = pl.coalesce(
        "pre_reason",
        pl.when(~well_formed).then(pl.lit("malformed CSV quoting")),
        pl.format("expected {} fields, got {}", pl.lit(width), fields.list.len()),
    )
    lines = block.with_columns(cls.alias("cls")).with_columns(
        pl.when(pl.col("cls") == REJECTED).then(reason).alias("reason")
    )
    columns = [(i, c) for i, c in enumerate(header or []) if c in LEDGER_FIELDS]
    rows = lines.filter(pl.col("cls") == RECORD).select(
        "line", *[fields.list.get(i).alias(c) for i, c in columns]
    )
    rows = rows.with_columns(
        pl.when(pl.col(c) != "").then(pl.col(c)).name.keep() for _, c in columns
    )
    return header, lines.select("line", "cls", "reason", "text"), rows


def _as_text(frame: pl.DataFrame, column: str) -> pl.Expr:
    """A Parquet column as the string a CSV export would hold (times as UTC ISO)."""
    dtype = frame.schema[column]
    col = pl.col(column)
    if isinstance(dtype, pl.Datetime):
        utc = (
            col.dt.convert_time_zone("UTC") if dtype.time_zone else col.dt.replace_time_zone("UTC")
        )
        return utc.dt.to_string("%Y-%m-%dT%H:%M:%S%.3fZ").alias(column)
    return col.cast(pl.String).alias(column)


def _host_from_name(source: SourceFile) -> str:
    """Without a header line, a log's host is its directory (le-04/limit-engine.log)."""
    parent = Path(source.name).parent.name
    return parent or _service_from_name(source)


def _service_from_name(source: SourceFile) -> str:
    name = Path(source.name).name
    return _ROTATION.sub("", name) or name
