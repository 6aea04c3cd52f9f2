"""The one place results become output: a Rich table, CSV, JSON or NDJSON."""

from __future__ import annotations

import codecs
import io
import json
import os
import re
from collections.abc import Callable
from functools import singledispatch
from typing import IO, Any, TextIO

import polars as pl
from rich.console import Console, RenderableType
from rich.text import Text

from limitaudit.commands.audit import AuditResult
from limitaudit.commands.incidents import IncidentsResult
from limitaudit.commands.ingest import IngestResult
from limitaudit.commands.owed import OwedResult
from limitaudit.commands.scan import ScanResult
from limitaudit.commands.trace import TraceResult
from limitaudit.commands.whatif import WhatIfResult
from limitaudit.model.audit import CAUSES
from limitaudit.model.dump import Finding
from limitaudit.model.format import ISO_MS
from limitaudit.output.incidents import (
    incidents_csv,
    incidents_table,
    owed_csv,
    owed_table,
    whatif_csv,
    whatif_table,
)
from limitaudit.output.tables import Cell, Col, fitted
from limitaudit.output.termchart import over_time, step_chart


def dumps_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str)


@singledispatch
def render_result(result: object, fmt: str, out: TextIO, console: Console) -> None:
    raise TypeError(f"no renderer for {type(result).__name__}")


@render_result.register
def _(result: ScanResult, fmt: str, out: TextIO, console: Console) -> None:
    if fmt == "json":
        out.write(dumps_json(result.to_data()) + "\n")
        return
    rows: list[list[Cell]] = []
    for f in result.files:
        data = f.to_data()
        kind = f.kind + ("" if f.compression == "none" else f" ({f.compression})")
        if f.encoding and f.encoding not in ("utf-8", ""):
            kind += f" [{f.encoding}]"
        rows.append(
            [
                f.path,
                kind,
                f.host or "",
                f"{data['first']}\n{data['last']}" if data["first"] else "",
                f"{f.counts['lines']:,}",
                f"{f.counts['records']:,}",
                f"{f.counts['duplicates']:,}",
                _red(f.counts["rejected"]),
            ]
        )
    t = result.totals
    total: list[Cell] = [
        "total",
        "",
        "",
        "",
        f"{t['lines']:,}",
        f"{t['records']:,}",
        f"{t['duplicates']:,}",
        _red(t["rejected"]),
    ]
    cols = [Col("file"), Col("kind"), Col("host"), Col("first / last record (UTC)")]
    cols += [Col(name, right=True) for name in ("lines", "records", "dup", "rejected")]
    table = fitted(console, f"Dump: {t['files']} files", cols, rows, total)
    console.print(table)
    console.print(
        f"lines {t['lines']:,} = records {t['records']:,} + continuation {t['continuation']:,}"
        f" + header/comment {t['meta']:,} + blank {t['blank']:,}"
        f" + duplicates {t['duplicates']:,} + rejected {t['rejected']:,}"
        f"   (unknown events counted in records: {t['ignored']:,}; times read in {result.tz})"
    )
    _print_offsets(result.offsets, console)
    rejected = [f for f in result.files if f.top_reasons]
    if rejected:
        console.print(
            Text.assemble(("Rejected lines", "bold"), " (most frequent reasons per file)")
        )
        for f in rejected:
            for reason, n in f.top_reasons:
                console.print(f"  {f.path}: {reason} ×{n:,}", highlight=False, markup=False)
    if result.findings:
        console.print(Text("Findings", style="bold"))
        for finding in result.findings:
            console.print(_finding_line(finding), highlight=False)


def _print_offsets(offsets: pl.DataFrame, console: Console) -> None:
    if offsets.height == 0:
        return
    skew = ", ".join(f"{h} {o / 1000:+.1f}s ({n:,} records)" for h, o, n in offsets.iter_rows())
    console.print(f"Host clocks ahead of the ledger (estimated): {skew}", highlight=False)


def _red(n: int) -> Text:
    return Text(f"{n:,}", style="red") if n else Text("0")


def _finding_line(finding: Finding) -> Text:
    # Messages quote the data (file names, values): text, never markup.
    return Text.assemble("  ", (finding.kind, "yellow"), " ", finding.message)


# -- audit ----------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe (OWASP CSV)."""
    text = [c for c, t in frame.schema.items() if t == pl.String]
    risky = "^[" + "".join(re.escape(c) for c in _FORMULA_START) + "]"
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(risky)).then("'" + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c in text
    )


# Rows of the audit CSV written at a time: the text of a whole large audit would be held
# three times over (Polars' bytes, the Python string, its encoding) just as the audit ends.
CSV_ROWS = 50_000


def write_audit_csv(result: AuditResult, out: TextIO, bom: bool = False) -> None:
    write_frame_csv(result.zeroings, out, bom)


def write_audit_ndjson(result: AuditResult, out: TextIO) -> None:
    _write_rows(result.zeroings, out, lambda part, to, _first: part.write_ndjson(to))


def _write_rows(
    rows: pl.DataFrame, out: TextIO, write: Callable[[pl.DataFrame, io.BytesIO, bool], None]
) -> None:
    """`rows` written CSV_ROWS at a time (never the whole text at once: 500 MB at 21
    million lines), as bytes where `out` takes UTF-8."""
    raw = _utf8_bytes(out)
    for start in range(0, max(rows.height, 1), CSV_ROWS):
        # Made in memory, then written by Python: a closed pipe (`| head`) is then the
        # BrokenPipeError the CLI ends quietly on, not Polars' own OSError.
        text = io.BytesIO()
        write(rows.slice(start, CSV_ROWS), text, start == 0)
        if raw is None:
            out.write(text.getvalue().decode("utf-8"))
        else:
            out.flush()  # what went through the text layer (a BOM) comes first
            raw.write(text.getbuffer())


def _utf8_bytes(out: TextIO) -> IO[bytes] | None:
    """The byte stream under `out`, where writing to it is what writing text would do.

    Polars writes CSV as UTF-8 bytes: through a text stream they are decoded into a str
    and encoded again, which took 0.56 s for the CSV of 112k zeroings, against 0.2 s.
    Only a UTF-8 stream qualifies, and only where no newline is translated (POSIX)."""
    buffer = getattr(out, "buffer", None)
    encoding = getattr(out, "encoding", None)
    if buffer is None or encoding is None or os.linesep != "\n":
        return None
    try:
        utf8 = codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return None
    return buffer if utf8 else None


@render_result.register
def _(result: AuditResult, fmt: str, out: TextIO, console: Console) -> None:
    if fmt == "csv":
        write_audit_csv(result, out)
    elif fmt == "json":
        out.write(dumps_json(result.to_data()) + "\n")
    elif fmt == "ndjson":
        write_audit_ndjson(result, out)
    else:
        _audit_table(result, console)


def _audit_table(result: AuditResult, console: Console) -> None:
    console.print(_causes_table(result, console))
    top = _incidents_table(result.zeroings, console)
    if top is not None:
        console.print(top)
    _print_offsets(result.offsets, console)
    _print_findings(result, console)
    a = result.accounting
    console.print(
        f"Read {a['lines']:,} lines: {a['records']:,} records, {a['duplicates']:,} duplicates, "
        f"{a['rejected']:,} rejected (`limitaudit scan` shows where).",
        highlight=False,
    )


def unread_lines(result: AuditResult) -> list[str]:
    """What the read could not take in, a line a kind, for stderr: how much, where, and
    how many unexplained zeroings may lack their record because of it."""
    lines = []
    for u in result.unread:
        where = f"{len(u.files):,} file(s), {_names(u.files)}"
        if u.kind == "rejected":
            head = f"rejected: {u.lines:,} line(s) in {where}"
            head += " (`limitaudit scan --rejects FILE` lists them)"
            tail = "are of users those lines name"
        elif u.kind == "truncated":
            stop = f" (records stop at {u.cut_at})" if u.cut_at else ""
            head, tail = f"truncated: {where}{stop}", "come after that"
        elif u.kind == "empty":
            head, tail = f"empty: {where}", ""
        else:
            head, tail = f"{u.kind}: {where} (`limitaudit scan` says why)", ""
        if u.zeroings:
            head += f"; {u.zeroings:,} unexplained zeroing(s) {tail}"
        lines.append(head)
    return lines


def _names(names: list[str], most: int = 3) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most:,} more" if len(names) > most else "")


def _causes_table(result: AuditResult, console: Console) -> RenderableType:
    z = result.zeroings
    title = f"{z.height:,} zeroing(s)"
    if result.options.below_fen:
        title += f" (limit taken to {result.options.below_yuan:g} yuan or less)"
    stats = z.group_by("cause").agg(
        pl.len().alias("n"),
        (pl.col("recovery") == "full").sum().alias("full"),
        (pl.col("recovery") == "partial").sum().alias("partial"),
        (pl.col("recovery") == "none").sum().alias("none"),
        pl.col("notified").sum().alias("notified"),
    )
    by = {row["cause"]: row for row in stats.iter_rows(named=True)}
    shown = [(cause, by[cause]) for cause in CAUSES if cause in by]
    lines, per = over_time(z)
    rows: list[list[Cell]] = [
        [
            cause,
            f"{row['n']:,}",
            f"{row['full']:,} / {row['partial']:,} / {row['none']:,}",
            f"{row['notified']:,}",
            Text(lines.get(cause, ""), style="red" if cause == "unexplained" else "cyan"),
        ]
        for cause, row in shown
    ]
    cols = [Col("cause"), Col("zeroings", right=True)]
    cols += [Col("recovered (full / partial / none)", right=True), Col("notified", right=True)]
    cols += [Col("over time")]
    if per:
        title += f"; over time, {per}"
    styles = ["red" if cause == "unexplained" else None for cause, _ in shown]
    return fitted(console, title, cols, rows, styles=styles)


def _incidents_table(z: pl.DataFrame, console: Console) -> RenderableType | None:
    groups = (
        z.filter(pl.col("cause_ref") != "")
        .group_by("cause", "cause_ref")
        .agg(
            pl.len().alias("n"),
            pl.col("zeroed_at").min().alias("first"),
            pl.col("zeroed_at").max().alias("last"),
        )
        .sort(["n", "cause", "cause_ref"], descending=[True, False, False])
        .head(10)
    )
    if not groups.height:
        return None
    cols = [Col("cause"), Col("cause_ref"), Col("zeroings", right=True)]
    cols += [Col("first (UTC)"), Col("last (UTC)")]
    rows: list[list[Cell]] = [
        [r["cause"], r["cause_ref"], f"{r['n']:,}", r["first"], r["last"]]
        for r in groups.iter_rows(named=True)
    ]
    return fitted(console, "Biggest incidents (by cause_ref)", cols, rows)


def _print_findings(result: AuditResult, console: Console) -> None:
    counts = {k: v for k, v in result.finding_counts.items() if v}
    if counts:
        console.print(
            "Findings: "
            + ", ".join(f"{k} {v:,}" for k, v in counts.items())
            + "  (--format json lists the findings; scan --rejects FILE the rejected lines)",
            highlight=False,
        )
        for finding in result.findings[:10]:
            console.print(_finding_line(finding), highlight=False)
        if len(result.findings) > 10:
            console.print(f"  … and {len(result.findings) - 10:,} more")


# -- incidents and the users owed a limit ----------------------------------------------


@render_result.register
def _(result: IncidentsResult, fmt: str, out: TextIO, console: Console) -> None:
    _rows_result(result, fmt, out, console, incidents_csv, incidents_table)


@render_result.register
def _(result: OwedResult, fmt: str, out: TextIO, console: Console) -> None:
    _rows_result(result, fmt, out, console, owed_csv, owed_table)


@render_result.register
def _(result: WhatIfResult, fmt: str, out: TextIO, console: Console) -> None:
    _rows_result(result, fmt, out, console, whatif_csv, whatif_table)


def _rows_result(
    result: IncidentsResult | OwedResult | WhatIfResult,
    fmt: str,
    out: TextIO,
    console: Console,
    rows: Callable[[Any], pl.DataFrame],
    table: Callable[[Any, Console], None],
) -> None:
    """A result of one table of rows: its CSV, its JSON, or its Rich tables."""
    if fmt == "csv":
        write_frame_csv(rows(result), out)
    elif fmt == "json":
        out.write(dumps_json(result.to_data()) + "\n")
    else:
        table(result, console)


def write_frame_csv(frame: pl.DataFrame, out: TextIO, bom: bool = False) -> None:
    """A result's rows as CSV that a spreadsheet opens without running a cell as a formula."""
    if bom:
        out.write("\ufeff")

    def csv(part: pl.DataFrame, to: io.BytesIO, first: bool) -> None:
        spreadsheet_safe(part).write_csv(to, include_header=first, datetime_format=ISO_MS)

    _write_rows(frame, out, csv)


# -- trace ----------------------------------------------------------------------------


@render_result.register
def _(result: TraceResult, fmt: str, out: TextIO, console: Console) -> None:
    if fmt == "json":
        out.write(dumps_json(result.to_data()) + "\n")
        return
    if result.limits.height:
        width = max(20, min(72, console.width - 16))
        console.print(step_chart(result.limits, width), highlight=False)
    timeline = list(result.timeline.iter_rows(named=True))
    cols = [Col("time (UTC, host clocks corrected)"), Col("kind")]
    cols += [Col("what", wraps=True), Col("record")]
    rows: list[list[Cell]] = [[r["time"], r["kind"], r["what"], r["record"]] for r in timeline]
    styles = ["bold" if r["kind"] == "ledger" else None for r in timeline]
    console.print(fitted(console, f"User {result.user_id}", cols, rows, styles=styles))
    if result.zeroings.height == 0:
        console.print("No zeroing for this user in the dump.")
    for z in result.zeroings.iter_rows(named=True):
        restored = (
            f"restored to {z['restored_limit']} at {z['restored_at']} ({z['recovery']})"
            if z["recovery"] != "none"
            else "not restored in the dump"
        )
        console.print(
            Text.assemble(
                "\n",
                (f"Zeroed at {z['zeroed_at']}", "bold"),
                f" from {z['limit_before']}: ",
                (z["cause"], "bold"),
                f" {z['cause_ref']}; {restored}; notified: {'yes' if z['notified'] else 'no'}",
            ),
            highlight=False,
        )
        for part in z["evidence"].split("; "):
            console.print(f"  - {part}", highlight=False, markup=False)


# -- ingest ---------------------------------------------------------------------------


@render_result.register
def _(result: IngestResult, fmt: str, out: TextIO, console: Console) -> None:
    if fmt == "json":
        out.write(dumps_json(result.to_data()) + "\n")
        return
    if result.read:
        cols = [Col("file"), Col("kind")]
        cols += [Col(name, right=True) for name in ("lines", "records", "dup", "rejected")]
        rows: list[list[Cell]] = [
            [
                f.path,
                f.kind,
                f"{f.counts['lines']:,}",
                f"{f.counts['records']:,}",
                f"{f.counts['duplicates']:,}",
                _red(f.counts["rejected"]),
            ]
            for f in result.read
        ]
        title = f"Store {result.store}: {result.action}, {len(result.read):,} file(s) read"
        table = fitted(console, title, cols, rows)
        console.print(table)
    else:
        console.print(f"Store {result.store}: {result.action}, no file read", highlight=False)
    t = result.totals
    console.print(
        f"The store holds {result.files:,} file(s): {t['lines']:,} lines, "
        f"{t['records']:,} records, {t['duplicates']:,} duplicates, {t['rejected']:,} rejected"
        f" (times read in {result.tz}).",
        highlight=False,
    )
