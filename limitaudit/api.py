"""The library: what `import limitaudit` offers, and what the command line is a thin layer over.

Each function takes a dump (a directory, file or glob, or a list of them, or a store
directory named alone), checks its options as the command line does (a bad one raises
`limitaudit.errors.UsageError`), reads what it needs and returns a result object whose
tables are Polars frames. Nothing is printed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from limitaudit.analysis import whatif as whatif_analysis
from limitaudit.analysis.facts import decisions_detailed, decisions_needed, users_apart
from limitaudit.analysis.match import CHANGES
from limitaudit.commands import audit as audit_command
from limitaudit.commands import incidents as incidents_command
from limitaudit.commands import owed as owed_command
from limitaudit.commands import report as report_command
from limitaudit.commands import scan as scan_command
from limitaudit.commands import trace as trace_command
from limitaudit.commands import whatif as whatif_command
from limitaudit.commands.audit import AuditResult
from limitaudit.commands.incidents import IncidentsResult
from limitaudit.commands.owed import OwedResult
from limitaudit.commands.report import ReportResult
from limitaudit.commands.scan import ScanResult
from limitaudit.commands.trace import TraceResult
from limitaudit.commands.whatif import WhatIfResult
from limitaudit.errors import UsageError
from limitaudit.model.audit import AuditOptions
from limitaudit.model.dump import Dump, Progress
from limitaudit.store import load

if TYPE_CHECKING:
    from limitaudit.commands.ingest import IngestResult

DumpPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def scan(dump: DumpPaths, *, tz: str | None = None, progress: Progress | None = None) -> ScanResult:
    """What a dump holds, file by file: kind, host, time range, and every line accounted for
    (records, continuation lines, comments, blanks, duplicates, rejects with their reasons).

    `tz` is the zone of log times written without an offset (default Asia/Shanghai; a
    store keeps the zone it was made with). `progress` is called with each count of
    lines read.
    """
    check_tz(tz)
    # The clock offsets are all a scan reads of the decisions: only changes tie them.
    loaded = load(_paths(dump), tz, progress=progress, decisions=CHANGES)
    return scan_command.scan(loaded)


def audit(
    dump: DumpPaths,
    *,
    below: float = 0.0,
    tolerance: float = 120.0,
    tz: str | None = None,
    progress: Progress | None = None,
) -> AuditResult:
    """Every zeroing in the dump with its cause, cause_ref, evidence and recovery.

    `result.zeroings` is the audit's table (the CSV's columns, sorted by zeroed_at then
    user_id); `result.findings` what the read and the replay found (files skipped, ledger
    gaps, ...). `below` counts a limit taken to at or below that many yuan as zeroed;
    `tolerance` is the clock tolerance, in seconds, for matching by time.
    """
    options = audit_options(below, tolerance)
    return audit_command.audit(_audit_read(dump, below, tolerance, tz, progress), options)


def _audit_read(
    dump: DumpPaths, below: float, tolerance: float, tz: str | None, progress: Progress | None
) -> Dump:
    """The dump as an audit reads it (only the decisions it uses, most on disk)."""
    options = audit_options(below, tolerance)
    check_tz(tz)
    return load(
        _paths(dump),
        tz,
        options=options,
        progress=progress,
        decisions=decisions_needed(options),
        detail=decisions_detailed(options),
    )


def incidents(
    dump: DumpPaths,
    *,
    below: float = 0.0,
    tolerance: float = 120.0,
    tz: str | None = None,
    progress: Progress | None = None,
) -> IncidentsResult:
    """Every incident: the audit's zeroings by cause and cause_ref (but `risk_policy` and
    `unexplained`, summed apart by rule and by engine silence), each with the users it hit,
    the limit it took, how they recovered, and what caused it, as data and as a sentence.
    Options as `audit`'s."""
    return incidents_command.incidents_of(
        _audit_read(dump, below, tolerance, tz, progress), audit_options(below, tolerance)
    )


def owed(
    dump: DumpPaths,
    *,
    include_unexplained: bool = False,
    below: float = 0.0,
    tolerance: float = 120.0,
    tz: str | None = None,
    progress: Progress | None = None,
) -> OwedResult:
    """The users still owed a limit: zeroed by a cause not of their own making
    (system_error, data_anomaly, parameter_error, model_regression; `include_unexplained`
    adds unexplained zeroings) and, where the dump ends, still below the limit they had
    before; the latest such zeroing a user, largest shortfall first."""
    return owed_command.owed_of(
        _audit_read(dump, below, tolerance, tz, progress),
        audit_options(below, tolerance),
        include_unexplained,
    )


def report(
    dump: DumpPaths,
    *,
    below: float = 0.0,
    tolerance: float = 120.0,
    tz: str | None = None,
    progress: Progress | None = None,
    made_at: datetime | None = None,
) -> ReportResult:
    """What an incident review looks at: the zeroings per minute by cause, what changed
    around them (parameter changes and rollbacks, model deploys, failed feed batches,
    engine silences, error bursts), every incident with its users at zero over time and
    those still owed a limit, and the dump's accounting. `limitaudit.output.report`
    draws it as a page. `made_at` stamps it (default: now). Options as `audit`'s."""
    from limitaudit import __version__  # noqa: PLC0415

    loaded = _audit_read(dump, below, tolerance, tz, progress)
    return report_command.report_of(
        loaded, audit_options(below, tolerance), __version__, _paths(dump), made_at
    )


def whatif(
    dump: DumpPaths,
    *,
    settings: dict[str, float] | None = None,
    undo: Sequence[str] = (),
    models: dict[str, str] | None = None,
    below: float = 0.0,
    tolerance: float = 120.0,
    tz: str | None = None,
    progress: Progress | None = None,
) -> WhatIfResult:
    """Every logged decision replayed under another configuration, by the engine's rule
    catalogue: `settings` gives parameters other values (`{"score_cutoff": 650}`), `undo`
    takes releases back (as if never applied), `models` swaps a model version's scores for
    another's (`{"credit-v8.3": "credit-v8.2"}`, where the dump holds both: a canary). The
    result: each decision whose outcome changes, per rule and in all, and the ledger
    zeroings that would not have happened. Options as `audit`'s."""
    options = audit_options(below, tolerance)
    check_tz(tz)
    what = whatif_analysis.WhatIf(dict(settings or {}), tuple(undo), dict(models or {}))
    whatif_analysis.check(what)
    # Every decision whole, on disk by bucket: one that changed nothing may zero under
    # another configuration. The audit's own read besides, for the zeroings they explain.
    loaded = load(
        _paths(dump),
        tz,
        options=options,
        progress=progress,
        decisions=decisions_needed(options),
        detail=pl.lit(True),
    )
    return whatif_command.whatif_of(loaded, options, what)


def trace(
    user: str | int,
    dump: DumpPaths,
    *,
    below: float = 0.0,
    tolerance: float = 120.0,
    tz: str | None = None,
) -> TraceResult:
    """One user's limit timeline (ledger rows and the records about them, in corrected time),
    with the audit's rows for that user. From a store, only that user's rows are read.

    Raises `limitaudit.commands.trace.UnknownUser` (naming the nearest ids) when the dump
    holds nothing of the user.
    """
    options = audit_options(below, tolerance)
    check_tz(tz)
    user_id = user_id_of(user)
    paths = _paths(dump)

    def read(detail: pl.Expr) -> Dump:
        needed = decisions_needed(options, user_id)
        return load(paths, tz, user_id, options, decisions=needed, detail=detail)

    # A read of files keeps whole the user's decisions alone: the user is audited alone,
    # with the facts of the whole dump, which read no other decision whole (8-12% off the
    # trace of 3 million lines). Where a change_id ties users together (corrupt data), the
    # whole dump is audited, and that reads every zeroing whole: the files are read again.
    loaded = read(pl.col("user_id") == user_id)
    apart = loaded.scope is not None or users_apart(loaded)
    if not apart and loaded.parts is not None:
        loaded = read(decisions_detailed(options, user_id))
    return trace_command.trace(loaded, user_id, options, apart)


def ingest(
    dump: DumpPaths,
    store: str | os.PathLike[str],
    *,
    tz: str | None = None,
    replace: bool = False,
    progress: Progress | None = None,
) -> IngestResult:
    """Read a dump once into a store (a directory) that `scan`, `audit` and `trace` read far
    faster, or add the dump's new files to an existing store. `replace` rebuilds it."""
    # Imported here: building a store is the one command that writes one.
    from limitaudit.commands.ingest import ingest_store  # noqa: PLC0415

    check_tz(tz)
    return ingest_store(_paths(dump), Path(store), tz, replace, progress=progress)


def audit_options(below: float, tolerance: float) -> AuditOptions:
    for name, value in (("--below", below), ("--tolerance", tolerance)):
        if not math.isfinite(value):
            raise UsageError(f"{name} {value}: not a finite number")
    if below < 0:
        raise UsageError("--below must be 0 or more")
    if tolerance <= 0:
        raise UsageError("--tolerance must be more than 0 seconds")
    return AuditOptions(below_yuan=below, tolerance_s=tolerance)


def check_tz(tz: str | None) -> None:
    if tz is None:
        return
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz {tz}: not a known time zone (e.g. Asia/Shanghai, UTC)") from None


def user_id_of(user: str | int) -> str:
    """A user id as the dump holds it: ASCII digits (a JSON number is read as one)."""
    text = str(user).strip()
    # str.isdigit alone takes other scripts' digits too ('²', '٣'), which no id holds.
    if not (text.isascii() and text.isdigit()):
        raise UsageError(f"{user}: a user_id is a string of digits")
    return text


def _paths(dump: DumpPaths) -> list[str]:
    if isinstance(dump, (str, os.PathLike)):
        return [os.fspath(dump)]
    return [os.fspath(p) for p in dump]
