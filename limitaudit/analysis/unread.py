"""What a read could not take in, and which unexplained zeroings may lack their record
because of it: the files skipped, unreadable, empty or cut off, and the lines rejected."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from limitaudit.model.audit import Unread
from limitaudit.model.dump import Dump
from limitaudit.model.format import iso_utc

# A user id as a rejected line may still show it, JSON or logback: enough to say whose
# record it might have been, not to read it.
_USER_IN_LINE = r'"?user_id"?\s*[:=]\s*"?([0-9]{6,24})'
_FILE_KINDS = ("skipped", "unreadable", "empty", "truncated")


def unread(dump: Dump, zeroings: pl.DataFrame) -> list[Unread]:
    """One entry for each kind of loss the dump shows, in the order of _FILE_KINDS, then
    rejected lines. `zeroings` are the audit's rows (CSV columns)."""
    lost = pl.col("cause") == "unexplained"
    unexplained = zeroings.filter(lost).select("user_id", "zeroed_at")
    out = []
    for kind in _FILE_KINDS:
        files = sorted({f.file for f in dump.findings if f.kind == kind})
        if files:
            hit, cut = _after_cut(dump, kind, files, unexplained)
            out.append(Unread(kind, files, 0, hit, cut))
    if dump.rejects.height:
        names = dump.file_names()
        files = sorted(
            dump.rejects.select("file_id").unique().join(names, on="file_id")["file"].to_list()
        )
        named = dump.rejects.select(
            pl.col("text").str.extract(_USER_IN_LINE).alias("user_id")
        ).drop_nulls()
        hit = unexplained.join(named.unique(), on="user_id", how="semi").height
        out.append(Unread("rejected", files, dump.rejects.height, hit, None))
    return out


def _after_cut(
    dump: Dump, kind: str, files: list[str], unexplained: pl.DataFrame
) -> tuple[int | None, str | None]:
    """For logs cut off: the unexplained zeroings later than the earliest cut (their record
    may have been past it), and when that cut's records stop. For the other kinds nothing
    can be told."""
    reports = [f for f in dump.files if f.source.name in files and f.source.is_log]
    if kind != "truncated" or not reports:
        return None, None
    cuts = [f.last for f in reports if isinstance(f.last, datetime)]
    if len(cuts) < len(reports):  # one kept nothing before its cut
        return unexplained.height, None
    times = unexplained["zeroed_at"].str.to_datetime(time_zone="UTC", time_unit="ms")
    return int((times > min(cuts)).sum()), iso_utc(min(cuts))
