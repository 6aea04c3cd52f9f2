"""The dump as every layer sees it: its files, typed tables, accounting and findings.

For every file: lines = records + continuation + meta + blank + duplicates + rejected.
Records are typed rows in a table (unknown events are records too, counted as
`ignored`); everything else is counted, and every rejected line keeps its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from limitaudit.errors import DumpError
from limitaudit.model.schema import EVENTS, ORIGIN, Time

if TYPE_CHECKING:
    from limitaudit.model.audit import AuditFacts

DEFAULT_TZ = "Asia/Shanghai"
# The kinds of file a dump is read from; the others are empty, skipped or unreadable.
READ_KINDS = ("json_log", "text_log", "ledger_csv", "ledger_parquet")
# How a CSV meant as a ledger export but lacking some of its columns is skipped.
LEDGER_REFUSED = "a ledger export without its column(s)"
COUNTS = ["lines", "records", "continuation", "meta", "blank", "duplicates", "rejected", "ignored"]
REJECT_SCHEMA = {"file_id": pl.UInt32, "line": pl.UInt32, "reason": pl.String, "text": pl.String}
KEY_SCHEMA = {**ORIGIN, "h1": pl.UInt64, "h2": pl.UInt64}
# What a dump keeps of every record line to find repeats: its hashes, and whether its
# event is unknown (counted as `ignored`).
KEYS_SCHEMA = {**KEY_SCHEMA, "ignored": pl.Boolean}
# What a dump keeps of every record of a known event, whatever else it leaves out: when,
# on which host, which event, and the feed batch a decision quotes. Clock offsets, engine
# silences and files' time ranges need every record; an audit keeps whole only the
# decisions it uses (`read_dump(decisions=...)`), which is what keeps its memory small.
STAMP_SCHEMA = {
    **ORIGIN,
    "ts": Time,
    "host": pl.Categorical(),
    "event": pl.Enum(list(EVENTS)),
    "batch": pl.Categorical(),
}


@dataclass(frozen=True)
class SourceFile:
    path: Path
    # The path as the user will recognise it in messages: relative to the
    # directory they named, or as they typed it.
    name: str
    kind: str  # one of READ_KINDS, or other (skipped), empty or unreadable
    compression: str  # none | gzip | zstd
    size: int
    reason: str = ""  # why an `other` file is skipped

    @property
    def is_log(self) -> bool:
        return self.kind in ("json_log", "text_log")


@dataclass(frozen=True)
class Finding:
    kind: str  # one of FINDING_KINDS
    file: str
    message: str

    def to_data(self) -> dict[str, str]:
        return {"kind": self.kind, "file": self.file, "message": self.message}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Finding:
        return cls(data["kind"], data["file"], data["message"])


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
    # The sha256 of the file's bytes, where the read hashed them as it went: how the read
    # went, not what the file holds (a store's reports of the same files have none).
    sha256: str | None = field(default=None, compare=False)


# The tables of which a one-user read holds only the user's rows (see Scope).
USER_TABLES = ("ledger", "decision", "manual_action", "user_notice")
# Users are split into BUCKETS by their id (a store's files, an audit's shares). A bucket is
# the user id's last digits modulo BUCKETS: stable across Polars versions (unlike
# Series.hash), and ids are handed out in sequence, so the digits spread evenly.
BUCKETS = 16
BUCKET_DIGITS = 9


def bucket_of(user_id: str, buckets: int = BUCKETS) -> int:
    """The bucket of a user id, as bucket_expr puts it."""
    tail = user_id[-BUCKET_DIGITS:]
    # Ids are digit strings, but normalise's \d also lets other scripts' digits through:
    # those go to bucket 0 on both sides.
    return int(tail) % buckets if tail.isascii() and tail.isdigit() else 0


def bucket_expr(buckets: int = BUCKETS) -> pl.Expr:
    tail = pl.col("user_id").str.slice(-BUCKET_DIGITS).cast(pl.UInt64, strict=False)
    return tail.fill_null(0) % buckets


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
    # when asked (settle(keep=True)): the hashes take some 20 bytes a record, so a read
    # leaves them lazy, on its disk as its stamps are, and the store sinks them there
    # (held whole, they were 500 MB of a 21-million-line ingest's 3 GiB peak).
    keys: pl.DataFrame | pl.LazyFrame | None = None
    ledger_repeats: pl.DataFrame | None = None
    # With the keys: where the record lines that repeat an earlier one are (file_id, line),
    # as settle found them; a store leaves them out of the decisions it spilled.
    repeats: pl.DataFrame | None = None
    scope: Scope | None = None
    # Audit facts already known for the whole dump (a store keeps those of one set of
    # options); an audit with those options takes them instead of the stamps.
    facts: AuditFacts | None = None
    # A store read for an audit leaves its per-user tables empty, and a read of files for
    # an audit keeps only ACTION_FIELDS of the decisions in them: each reads its users here
    # instead, a share at a time, each share as `only` gives it with the facts given (all
    # at once where the users are not apart: see analysis.facts.users_apart); given a
    # user id, a read of files gives the share of that user's bucket alone.
    parts: Callable[[AuditFacts, bool, str | None], Iterator[Dump]] | None = None

    @property
    def readable(self) -> bool:
        """Whether any file is a log or a ledger: a dump without one cannot be read at all."""
        return any(f.source.kind in READ_KINDS for f in self.files)

    def require_readable(self) -> None:
        if not self.readable:
            raise DumpError("nothing in the dump is a risk-engine log or a ledger export")

    def require_ledger(self) -> None:
        """A dump whose every ledger export was refused cannot be audited: its zeroings
        are unknown, not none."""
        sources = {f.source.name: f.source for f in self.files}
        refused = {
            f.file: f.message
            for f in self.findings
            if f.kind in ("skipped", "unreadable") and _meant_as_ledger(sources.get(f.file))
        }
        kept = [
            f
            for f in self.files
            if f.source.kind.startswith("ledger_") and f.source.name not in refused
        ]
        if refused and not kept:
            first = next(iter(refused.values()))
            more = f" (and {len(refused) - 1:,} more)" if len(refused) > 1 else ""
            raise DumpError(f"no ledger export in the dump could be read: {first}{more}")

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

        # A read for an audit holds its decisions whole by bucket, apart: the user's.
        rows = next(self.parts(facts, True, user_id)) if self.parts is not None else self
        one = rows.only(pl.col("user_id") == user_id, facts)
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

    def span(self) -> tuple[datetime | None, datetime | None]:
        """The first and the last record of the whole dump (None where it has none)."""
        firsts = [f.first for f in self.files if isinstance(f.first, datetime)]
        lasts = [f.last for f in self.files if isinstance(f.last, datetime)]
        return min(firsts, default=None), max(lasts, default=None)

    def file_names(self) -> pl.DataFrame:
        """file_id -> file (the name as the user knows it), to join onto any table."""
        return pl.DataFrame(
            {"file_id": range(len(self.files)), "file": [f.source.name for f in self.files]},
            schema={"file_id": pl.UInt32, "file": pl.String},
        )

    def file_name(self, file_id: int) -> str:
        return self.files[file_id].source.name


Progress = Callable[[int], None]
# Takes every decision a reader typed (before `decisions` filters them), a file's worth
# at a time, from any reader thread: how a store is built without holding the decisions.
Spill = Callable[[pl.DataFrame], None]


def as_text(stamps: pl.DataFrame) -> pl.DataFrame:
    """Stamps with their host, event and batch as strings, to join with the tables."""
    return stamps.with_columns(pl.col(pl.Categorical, pl.Enum).cast(pl.String))


def _meant_as_ledger(source: SourceFile | None) -> bool:
    return source is not None and (
        source.kind.startswith("ledger_") or source.reason.startswith(LEDGER_REFUSED)
    )
