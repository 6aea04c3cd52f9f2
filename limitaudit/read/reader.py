"""Read one file into typed frames, accounting for every physical line.

A log is read in blocks: each block's lines are classified, its record lines decoded a
batch at a time (see decode) and typed, and its stack-trace lines given to the record above
them. A ledger export is split into rows (see ledger). What a file keeps waits, one frame a
kind, in memory or on disk, until `raw` hands every file's over.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import polars as pl

from limitaudit.model.dump import (
    BUCKETS,
    KEY_SCHEMA,
    KEYS_SCHEMA,
    REJECT_SCHEMA,
    STAMP_SCHEMA,
    FileReport,
    Finding,
    Progress,
    SourceFile,
    Spill,
)
from limitaudit.model.schema import ACTION_FIELDS, EVENTS, LEDGER_SCHEMA, event_schema
from limitaudit.read.decode import REJECTS, parse_records
from limitaudit.read.discover import HEADER, host_from_name, service_from_name
from limitaudit.read.frames import Kept, by_bucket, compact, lazy, overrule, stamps_of
from limitaudit.read.ledger import csv_block, parquet_export
from limitaudit.read.lines import ReadOutcome, read_blocks
from limitaudit.read.normalise import (
    action_fields,
    checked,
    kept_by,
    record_times,
    type_checked,
)
from limitaudit.read.parse import BLANK, CONTINUATION, META, RECORD, REJECTED, classify
from limitaudit.read.settle import RawDump

# A file's kept rows of one kind wait on disk from this many (see read_files). What a
# worker process keeps in memory comes back to the main one pickled, where it cost far
# more than its size while the workers were at their peak: at 3 million lines, from
# 20,000 rows, 21 MiB of frames held the main process 110 MiB above its start, and the
# audit's peak was 823-930 MiB; from 5,000, 10-20 MiB above, and 790-840 MiB.
PARK_ROWS = 5_000
# A reader hands its decisions to the spill at the end of each file, or sooner past this.
SPILL_ROWS = 50_000


class Reader:
    """Reads files one after another into the frames they keep (see `raw`)."""

    def __init__(
        self,
        tz: str,
        progress: Progress | None,
        decisions: pl.Expr | None,
        spill: Spill | None,
        folder: Path | None = None,
        detail: pl.Expr | None = None,
    ) -> None:
        self.tz = tz
        self.folder = folder
        self.progress = progress
        self.decisions = decisions
        self.detail = detail
        self.spill = spill
        self.spilling: list[pl.DataFrame] = []
        self.files: list[FileReport] = []
        self.findings: list[Finding] = []
        self.events: dict[str, Kept] = {e: [] for e in EVENTS}
        # With `detail`, the decision table keeps ACTION_FIELDS of every decision kept, and
        # the decisions `detail` keeps wait here whole, a list a bucket of their users.
        self.details: list[Kept] = [[] for _ in range(BUCKETS)]
        self.detailed: list[pl.DataFrame] = []  # the file's, until it is parked
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
        elif source.kind == "unreadable":
            self.findings.append(
                Finding("unreadable", source.name, f"{source.name}: unreadable, {source.reason}")
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
        when it is large (a small one costs more to write than it fragments); the file's
        details, a frame a bucket."""
        for name, parts in self._kept():
            frame = lazy(parts, {}).collect() if parts else None
            if frame is not None and name.startswith("event-"):
                # In line order: a block's records are decoded a kind of document at a
                # time (JSON and logback, a message's literal and regex forms).
                frame = frame.sort("line")
            if frame is None or frame.height == 0:
                parts.clear()
            elif self.folder is None or frame.height < PARK_ROWS:
                parts[:] = [frame]
            else:
                path = self.folder / f"{file_id}-{name}.arrow"
                frame.write_ipc(path)
                parts[:] = [path]
        if self.detailed:
            self._park_details(file_id, pl.concat(self.detailed).sort("line"))
            self.detailed = []

    def _park_details(self, file_id: int, details: pl.DataFrame) -> None:
        folder = self.folder if details.height >= PARK_ROWS else None
        for b, rows in by_bucket(details).items():
            if folder is None:
                self.details[b].append(rows)
            else:
                path = folder / f"{file_id}-detail-b{b:02d}.arrow"
                rows.write_ipc(path)
                self.details[b].append(path)

    def _flush_spill(self) -> None:
        if self.spill is not None and self.spilling:
            self.spill(pl.concat(self.spilling))
            self.spilling = []

    # -- text files -------------------------------------------------------------------

    def _read_lines(self, file_id: int, report: FileReport) -> None:
        source = report.source
        outcome = ReadOutcome()
        carry = _LogCarry()
        # Only a store records a file's hash (a read with a spill builds one).
        hashed = self.spill is not None
        for raw in read_blocks(source.path, outcome, source.compression, hashed):
            if self.progress:
                self.progress(raw.height)
            block = raw.with_columns(_pre_reason(outcome))
            if source.is_log:
                lines = self._read_log_block(file_id, block, carry, report)
            else:
                carry.header, table, lines = csv_block(file_id, block, carry.header)
                self.ledger.append(compact(table))
            self._account(file_id, report, lines)
        report.encoding = outcome.encoding
        report.sha256 = outcome.sha256
        if outcome.cut:
            self.findings.append(
                Finding(
                    "truncated",
                    source.name,
                    f"{source.name}: {outcome.cut}; read {outcome.lines} line(s) before the cut",
                )
            )

    def _read_log_block(
        self, file_id: int, block: pl.DataFrame, carry: _LogCarry, report: FileReport
    ) -> pl.DataFrame:
        """Classify, decode and type one block of a log; returns its lines with their final
        classes."""
        if carry.first_block:
            carry.first_block = False
            match = HEADER.match(block["text"][0] if block.height else "")
            if match:
                report.service, report.host = match.group(1), match.group(2)
            report.host = report.host or host_from_name(report.source)
            report.service = report.service or service_from_name(report.source)
            report.named_host = report.host
        lines = classify(block, carry.record_above)
        lines = lines.with_columns((pl.col("cls") == RECORD).alias("candidate"))
        candidates = lines.filter("candidate").select("line", "text", "fmt")
        carry.record_above = carry.record_above or candidates.height > 0
        records, bad = parse_records(candidates)
        lines = overrule(lines, bad)
        lines = overrule(lines, self._type_records(file_id, records, report))
        return self._attach_continuations(file_id, lines, carry)

    def _attach_continuations(
        self, file_id: int, lines: pl.DataFrame, carry: _LogCarry
    ) -> pl.DataFrame:
        """A stack-trace line belongs to the record line above it, across block edges. Under
        a rejected record it is rejected too, not handed to an earlier record."""
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
        lines = overrule(lines, orphans)
        stacks = lines.filter(pl.col("cls") == CONTINUATION)
        if stacks.height:
            self.stacks.append(
                compact(
                    stacks.select(
                        pl.lit(file_id, pl.UInt32).alias("file_id"), "owner", "line", "text"
                    )
                )
            )
        last = lines.filter("candidate").tail(1)
        if last.height:
            carry.last_record = int(last["line"][0])
            carry.last_record_ok = last["cls"][0] == RECORD
        return lines

    def _type_records(
        self, file_id: int, records: list[pl.DataFrame], report: FileReport
    ) -> pl.DataFrame:
        """Type decoded records into the event tables; returns the rejects (line, reason)."""
        rejects = [pl.DataFrame(schema=REJECTS)]
        for found in records:
            raw = found.with_columns(
                pl.lit(file_id, pl.UInt32).alias("file_id"),
                pl.col("host").fill_null(report.host),
                pl.col("service").fill_null(report.service),
            )
            raw = record_times(raw, self.tz)
            events = raw.get_column("event")
            if events.n_unique() == 1:
                parts = [(events[0], raw)]
            else:
                parts = [(e, part) for (e,), part in raw.group_by("event", maintain_order=True)]
            for event, part in parts:
                if event in EVENTS:
                    rejects.append(self._keep_event(event, part))
                    continue
                timed = pl.col("time_problem").is_null()
                if event is None:
                    reason = pl.coalesce("time_problem", pl.lit("record without event"))
                    rejects.append(part.select("line", reason.alias("reason")))
                    continue
                # An event no kind knows is counted (`ignored`), unless its time is bad.
                rejects.append(
                    part.filter(~timed).select("line", pl.col("time_problem").alias("reason"))
                )
                self.keys.append(
                    part.filter(timed).select(*KEY_SCHEMA, pl.lit(True).alias("ignored"))
                )
        return pl.concat(rejects)

    def _keep_event(self, event: str, raw: pl.DataFrame) -> pl.DataFrame:
        """Check and keep records of one event kind; returns their rejects (line, reason)."""
        good, bad = checked(raw, event)
        self.stamps.append(stamps_of(good, event))
        self.keys.append(good.select(*KEY_SCHEMA, pl.lit(False).alias("ignored")))
        if event == "decision" and self.spill is not None:
            table = type_checked(good, event)
            self.spilling.append(table)
            if sum(t.height for t in self.spilling) >= SPILL_ROWS:
                self._flush_spill()
            if self.decisions is not None:
                table = table.filter(self.decisions)
            if self.detail is not None:
                # The spill keeps them whole; the read, what the audit facts read.
                table = table.select(ACTION_FIELDS)
        elif event == "decision" and self.decisions is not None:
            # Most decisions change nothing and are left out: only what the filter reads is
            # typed for them all; of those kept, only the ones `detail` keeps are typed
            # whole, and they wait apart, by bucket (see RawDump.details).
            kept = kept_by(good, self.decisions, event)
            if self.detail is None:
                table = type_checked(kept, event)
            else:
                table = action_fields(kept, event)
                # From every decision: a what-if holds more whole than the audit reads.
                self._keep_details(type_checked(kept_by(good, self.detail, event), event))
        else:
            table = type_checked(good, event)
        if table.height:
            self.events[event].append(compact(table))
        return bad.select("line", "reason")

    def _keep_details(self, table: pl.DataFrame) -> None:
        if table.height:
            self.detailed.append(compact(table))

    # -- the ledger ---------------------------------------------------------------------

    def _read_parquet(self, file_id: int, report: FileReport) -> None:
        read = parquet_export(file_id, report.source)
        if isinstance(read, Finding):
            self.findings.append(read)
            return
        table, lines = read
        if self.progress:
            self.progress(lines.height)
        self.ledger.append(table)
        self._account(file_id, report, lines)

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
            compact(
                lines.filter(pl.col("cls") == REJECTED).select(
                    pl.lit(file_id, pl.UInt32).alias("file_id"), "line", "reason", "text"
                )
            )
        )

    def absorb(self, other: Reader) -> None:
        """Append what another reader read (its files come after this one's)."""
        self.files += other.files
        self.findings += other.findings
        for event, parts in other.events.items():
            self.events[event] += parts
        for b, theirs in enumerate(other.details):
            self.details[b] += theirs
        self.ledger += other.ledger
        self.keys += other.keys
        self.stamps += other.stamps
        self.rejects += other.rejects
        self.stacks += other.stacks

    def raw(self, folder: TemporaryDirectory[str] | None = None) -> RawDump:
        tables = {event: lazy(parts, event_schema(event)) for event, parts in self.events.items()}
        tables["engine_error"] = self._attach_stacks(tables["engine_error"])
        details = None
        if self.detail is not None and self.spill is None:
            schema = event_schema("decision")
            brief = {c: t for c, t in schema.items() if c in ACTION_FIELDS}
            tables["decision"] = lazy(self.events["decision"], brief)
            details = [lazy(parts, schema) for parts in self.details]
        return RawDump(
            tables,
            lazy(self.ledger, LEDGER_SCHEMA),
            lazy(self.keys, KEYS_SCHEMA),
            lazy(self.stamps, STAMP_SCHEMA),
            self.files,
            lazy(self.rejects, REJECT_SCHEMA).collect(),
            self.findings,
            self.tz,
            folder,
            details,
            self.detail,
        )

    def _attach_stacks(self, errors: pl.LazyFrame) -> pl.LazyFrame:
        if not self.stacks:
            return errors
        stacks = (
            lazy(self.stacks, {})
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


_COUNT_OF = {BLANK: "blank", META: "meta", CONTINUATION: "continuation"}


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
