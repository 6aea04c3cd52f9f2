"""`limitaudit audit`: every zeroing in the dump, with its cause, evidence and recovery."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from limitaudit.attribute import Context, explain, model_history, param_history, quoted_feed
from limitaudit.ingest import Dump, Finding, as_text
from limitaudit.match import (
    CHANGES,
    actions,
    corrected,
    host_offsets,
    ledger_rows,
    match_rows,
)
from limitaudit.replay import chain_breaks, ordered_ledger, zeroings
from limitaudit.schema import Time
from limitaudit.timefmt import iso_expr

CAUSES = [
    "manual",
    "system_error",
    "data_anomaly",
    "parameter_error",
    "model_regression",
    "risk_policy",
    "unexplained",
]
FINDING_KINDS = [
    "chain_break",
    "ledger_gap",
    "rejected",
    "truncated",
    "skipped",
    "empty",
    "unreadable",
    "ledger_conflict",
]
# The columns other programs rely on, in this order (contract section 7).
CONTRACT_COLUMNS = [
    "user_id",
    "zeroed_at",
    "limit_before",
    "cause",
    "cause_ref",
    "recovery",
    "restored_at",
    "restored_limit",
]
CSV_COLUMNS = [
    *CONTRACT_COLUMNS,
    "rule_id",
    "evidence",
    "zero_duration_s",
    "notified",
    "matched_by",
    "change_id",
    "record",
    "host",
]
NOTICE_WINDOW_MS = 24 * 3600 * 1000
# A host that writes nothing for this long while the fleet is busy has gone silent.
SILENCE_MS = 15 * 60 * 1000
SILENCE_FACTOR = 10


@dataclass(frozen=True)
class AuditOptions:
    below_yuan: float = 0.0
    tolerance_s: float = 120.0

    @property
    def below_fen(self) -> int:
        return round(self.below_yuan * 100)

    @property
    def tolerance_ms(self) -> int:
        return round(self.tolerance_s * 1000)


@dataclass(frozen=True)
class AuditFacts:
    """What an audit derives from the whole dump and needs for every user.

    A store keeps them, so that `trace` can read one user's rows and still audit that
    user exactly as the whole dump would. They hold for the options they were made with.
    """

    options: AuditOptions
    offsets: pl.DataFrame  # host, offset_ms, evidence
    # host, start, end: engine hosts' silences on their own clocks (a clock offset moves a
    # silence but does not change it: gaps between one host's records are the same).
    silences: pl.DataFrame
    # The feed whose batches decisions quote: the one a decision without a bureau_batch
    # takes its latest batch from. None when the dump has no feed batch.
    data_feed: str | None


@dataclass
class AuditResult:
    zeroings: pl.DataFrame  # CSV_COLUMNS, sorted by zeroed_at then user_id
    findings: list[Finding]
    offsets: pl.DataFrame  # host, offset_ms, evidence
    accounting: dict[str, int]
    options: AuditOptions
    finding_counts: dict[str, int] = field(default_factory=dict)
    facts: AuditFacts | None = None

    def by_cause(self) -> dict[str, int]:
        counts = dict(self.zeroings.group_by("cause").len().iter_rows())
        return {c: counts.get(c, 0) for c in CAUSES}

    def to_data(self) -> dict[str, Any]:
        return {
            "zeroings": self.zeroings.to_dicts(),
            "summary": {"zeroings": self.zeroings.height, "by_cause": self.by_cause()},
            "findings": [
                {"kind": f.kind, "file": f.file, "message": f.message} for f in self.findings
            ],
            "finding_counts": self.finding_counts,
            "clock_offsets": [
                {"host": h, "offset_ms": o, "evidence": n} for h, o, n in self.offsets.iter_rows()
            ],
            "accounting": self.accounting,
        }


def yuan(col: str | pl.Expr) -> pl.Expr:
    """Fen as a yuan string with two decimals: 5000007 -> "50000.07"."""
    fen = pl.col(col) if isinstance(col, str) else col
    return pl.when(fen.is_not_null()).then(
        pl.concat_str(
            (fen // 100).cast(pl.String), pl.lit("."), (fen % 100).cast(pl.String).str.zfill(2)
        )
    )


def decisions_needed(options: AuditOptions, user_id: str | None = None) -> pl.Expr:
    """The decisions an audit reads (see ingest's `decisions`): those that change a limit
    (clock offsets, ledger gaps) or set it at or below the zeroing threshold (what can
    explain a zeroing); for a trace, every one of its user's too."""
    needed = CHANGES | (pl.col("limit_after") <= options.below_fen)
    return needed if user_id is None else needed | (pl.col("user_id") == user_id)


# Users are attributed a share at a time, each share holding about this many of the
# decisions an audit keeps: what attribution builds for a zeroing (matches, rules,
# evidence) is several times the zeroing, and would otherwise grow with the whole dump.
PART_ROWS = 250_000
# A store's share is read from its own buckets' files, where a raw dump's is cut from
# tables in memory by a pass over them all: it can be smaller, and smaller frames
# attribute faster (the store of 3.2M lines: 5.5 s with 250k a share, 4.9 s with 125k).
STORE_PART_ROWS = 125_000


def audit(dump: Dump, options: AuditOptions) -> AuditResult:
    dump.require_readable()
    names = dump.file_names()
    # A one-user read holds too little to estimate what needs every user: it comes with them.
    known = dump.scope.facts if dump.scope else dump.facts
    facts = (
        known if known is not None and known.options == options else whole_dump_facts(dump, options)
    )
    attributed = [_attribute(share, options, facts, names) for share in _shares(dump, facts)]
    outs = [a[0] for a in attributed]
    breaks = pl.concat([a[1] for a in attributed])
    gaps = pl.concat([a[2] for a in attributed])
    attributed.clear()  # the zeroings are held by `outs` alone, which _sorted lets go
    out = _sorted(outs)
    findings = _findings(dump, breaks, gaps, names)
    counts = dict.fromkeys(FINDING_KINDS, 0)
    for f in findings:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    counts["rejected"] = dump.rejects.height
    accounting = {
        c: sum(f.counts[c] for f in dump.files)
        for c in ("lines", "records", "duplicates", "rejected")
    }
    return AuditResult(out, findings, facts.offsets, accounting, options, counts, facts)


def _sorted(outs: list[pl.DataFrame]) -> pl.DataFrame:
    """The shares' zeroings as one frame, by zeroed_at then user_id (a user's rows are all
    in one share, in the order one audit of them all would give), and `outs` emptied.

    Built a column at a time, each share's column let go once it is placed: sorting the
    whole frame would hold every zeroing twice, at the end of the audit, when its memory
    is at its peak (750k zeroings from 21M lines take some 370 MB)."""
    whole = pl.concat(outs)
    outs.clear()
    order = whole.select(pl.arg_sort_by("zeroed_at", "user_id", maintain_order=True)).to_series()
    columns = []
    for name in whole.columns:
        columns.append(whole.get_column(name).gather(order))
        whole = whole.drop(name)
    return pl.DataFrame(columns)


def _shares(dump: Dump, facts: AuditFacts) -> Iterator[Dump]:
    """The dump as shares of its users (see PART_ROWS), one at a time; whole when small,
    or when users are not apart (a change_id naming two users ties them together). A store
    read for an audit gives its own shares, read one at a time."""
    if dump.parts is not None:
        yield from _ahead(dump.parts())
        return
    shares = -(-dump.tables["decision"].height // PART_ROWS)
    if dump.scope is not None or shares <= 1 or not users_apart(dump):
        yield dump
        return
    share = pl.col("user_id").hash() % shares
    for part in range(shares):
        yield dump.only(share == part, facts)


def _ahead(items: Iterator[Dump]) -> Iterator[Dump]:
    """`items`, the next one made on a thread while the one before is used: a store's
    share is read from Parquet while the share before it is attributed. Polars releases
    the GIL in both, and neither alone keeps two cores busy."""
    with ThreadPoolExecutor(1) as pool:
        coming = pool.submit(next, items, None)
        while (item := coming.result()) is not None:
            coming = pool.submit(next, items, None)
            yield item


def _attribute(
    dump: Dump, options: AuditOptions, facts: AuditFacts, names: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The dump's zeroings attributed (CSV_COLUMNS), its ledger's chain breaks and gaps."""
    tol = options.tolerance_ms
    ledger = ordered_ledger(dump)
    zero = zeroings(ledger, options.below_fen).with_row_index("zid")
    offsets = facts.offsets
    acts = corrected(_actions(dump, options), offsets)
    zero_acts = acts.filter(pl.col("limit_after") <= options.below_fen)
    rows = zero.select(
        pl.col("zid").alias("row_id"), "user_id", "change_id", "changed_at", "limit_before"
    )
    matched = match_rows(rows, zero_acts, tol).rename({"row_id": "zid"})
    zero = zero.join(matched, on="zid", how="left").join(
        acts.select(
            "act_id",
            pl.col("source").alias("act"),
            pl.col("file_id").alias("a_file"),
            pl.col("line").alias("a_line"),
            "host",
            "ts",
            "cts",
            pl.col("limit_before").alias("a_before"),
            pl.col("limit_after").alias("a_after"),
        ),
        on="act_id",
        how="left",
    )
    batches = corrected(dump.tables["feed_batch"], offsets)
    ctx = Context(
        params=param_history(corrected(dump.tables["param_change"], offsets)),
        models=model_history(corrected(dump.tables["model_deploy"], offsets)),
        errors=corrected(dump.tables["engine_error"], offsets),
        batches=batches.filter(pl.col("feed") == pl.lit(facts.data_feed, pl.String)),
        tolerance_ms=tol,
    )
    decided = _decisions(zero, dump, ctx)
    manual = _manual(zero, dump)
    unexplained = _unexplained(zero, acts, _shifted(facts.silences, offsets), tol, names)
    out = pl.concat([decided, manual, unexplained], how="diagonal_relaxed")
    out = _finish(_with_notices(out, dump, offsets), names)
    return out, chain_breaks(ledger), ledger_gaps(dump.ledger, acts, tol)


def _actions(dump: Dump, options: AuditOptions) -> pl.DataFrame:
    # What a read may have left out (ingest's `decisions`) is left out here too, whatever was
    # read: a trace, which reads all of its user's decisions, then audits as the whole dump does.
    return actions(dump).filter(decisions_needed(options)).with_row_index("act_id")


def whole_dump_facts(dump: Dump, options: AuditOptions) -> AuditFacts:
    """What an audit needs from the whole dump (AuditFacts), without attributing a zeroing:
    what lets one user be audited alone (`Dump.for_user`) as the whole dump would audit it."""
    acts = _actions(dump, options)
    quoting = (pl.col("event") == "decision") & pl.col("batch").is_not_null()
    quoted = as_text(dump.stamped("batch", where=quoting).unique().collect(engine="streaming"))[
        "batch"
    ]
    return AuditFacts(
        options,
        host_offsets(dump, acts, options.tolerance_ms),
        engine_silences(dump),
        quoted_feed(quoted, dump.tables["feed_batch"]),
    )


def users_apart(dump: Dump) -> bool:
    """Whether one user's rows audit that user as the whole dump would (with its facts).

    A change_id is matched across users, so one that names two users (corrupt data)
    ties them together: then only the whole dump gives the answer."""
    ids = pl.concat(
        [
            dump.ledger.select("change_id", "user_id"),
            actions(dump).select("change_id", "user_id"),
        ]
    ).drop_nulls("change_id")
    return (
        not ids.group_by("change_id")
        .agg(pl.col("user_id").n_unique())
        .select((pl.col("user_id") > 1).any())
        .item()
    )


def _shifted(silences: pl.DataFrame, offsets: pl.DataFrame) -> pl.DataFrame:
    """Silences on each host's own clock, moved to corrected time like the records in them."""
    shift = pl.duration(milliseconds=pl.col("offset_ms").fill_null(0))
    return (
        silences.join(offsets.select("host", "offset_ms"), on="host", how="left")
        .select("host", pl.col("start") - shift, pl.col("end") - shift)
        .rechunk()
    )


def _decisions(zero: pl.DataFrame, dump: Dump, ctx: Context) -> pl.DataFrame:
    decision = dump.tables["decision"].rename({"file_id": "a_file", "line": "a_line"})
    rows = zero.filter(pl.col("act") == "decision").select(
        "zid", "a_file", "a_line", "cts", "matched_by"
    )
    full = rows.join(
        decision.drop("limit_before", "limit_after", "change_id"), on=["a_file", "a_line"]
    )
    explained = explain(full, ctx)
    decided = zero.join(
        explained.select("zid", "cause", "cause_ref", "rule_id", "rule_notes"), on="zid"
    ).with_columns(pl.col("rule_notes").alias("why"))
    return decided


def _manual(zero: pl.DataFrame, dump: Dump) -> pl.DataFrame:
    manual = dump.tables["manual_action"].select(
        pl.col("file_id").alias("a_file"),
        pl.col("line").alias("a_line"),
        "ticket",
        "operator",
        "action",
        "reason",
    )
    rows = zero.filter(pl.col("act") == "manual_action").join(
        manual, on=["a_file", "a_line"], how="left"
    )
    return rows.with_columns(
        pl.lit("manual").alias("cause"),
        pl.col("ticket").fill_null("").alias("cause_ref"),
        pl.lit("").alias("rule_id"),
        pl.format(
            "manual {} by {} (ticket {}): {}",
            pl.col("action").fill_null("?"),
            pl.col("operator").fill_null("?"),
            pl.col("ticket").fill_null("?"),
            pl.col("reason").fill_null(""),
        ).alias("why"),
    ).drop("ticket", "operator", "action", "reason")


def _unexplained(
    zero: pl.DataFrame,
    acts: pl.DataFrame,
    silences: pl.DataFrame,
    tol: int,
    names: pl.DataFrame,
) -> pl.DataFrame:
    """Say what is missing: the user's nearest record, and any engine host silent at the time."""
    rows = zero.filter(pl.col("act_id").is_null()).drop("host", "ts", "cts")
    nearest = (
        rows.select("zid", "user_id", "changed_at")
        .join(
            acts.select(
                "user_id",
                pl.col("cts").alias("n_cts"),
                pl.col("file_id").alias("n_file"),
                pl.col("line").alias("n_line"),
                pl.col("limit_after").alias("n_after"),
                pl.col("source").alias("n_source"),
            ),
            on="user_id",
        )
        .with_columns((pl.col("n_cts") - pl.col("changed_at")).dt.total_seconds().alias("n_dt"))
        .sort("zid", pl.col("n_dt").abs())
        .group_by("zid", maintain_order=True)
        .first()
        .join(names.rename({"file_id": "n_file", "file": "n_name"}), on="n_file", how="left")
        .select(
            "zid",
            pl.format(
                "nearest record of the user: {} {}:{} {} s from the ledger time, setting {}",
                "n_source",
                "n_name",
                "n_line",
                "n_dt",
                yuan("n_after"),
            ).alias("nearest"),
        )
    )
    silent = _silent_hosts(rows, silences)
    why = pl.concat_str(
        pl.format(
            "no decision or manual action setting the limit to zero for user {} within ±{} s",
            "user_id",
            pl.lit(tol // 1000),
        ),
        pl.col("nearest"),
        pl.col("silence"),
        separator="; ",
        ignore_nulls=True,
    )
    return (
        rows.join(nearest, on="zid", how="left")
        .join(silent, on="zid", how="left")
        .with_columns(
            pl.lit("unexplained").alias("cause"),
            pl.lit("").alias("cause_ref"),
            pl.lit("").alias("rule_id"),
            why.alias("why"),
        )
        .drop("nearest", "silence")
    )


def engine_silences(dump: Dump) -> pl.DataFrame:
    """Stretches where a risk-engine host wrote nothing: host, start, end, on the host's
    own clock (an offset moves a silence but does not change it).

    A stretch counts when it is both long (SILENCE_MS) and far beyond that host's own
    rhythm (SILENCE_FACTOR times its median gap), so a quiet host in a small dump is
    not taken for a dead one.
    """
    engines = (
        dump.stamped("host", where=pl.col("event") == "decision")
        .unique()
        .collect(engine="streaming")
        .drop_nulls()
    )
    # A host at a time: finding gaps sorts a host's times, and every engine host's times
    # at once grow with the dump.
    found = [_silences(dump, host) for host in as_text(engines).sort("host")["host"]]
    return (
        pl.concat([pl.DataFrame(schema=SILENCE_SCHEMA), *found])
        # pl.format over a filtered, multi-chunk string column panics in Polars 2.1
        # ("assertion failed: i < self.len()"); one chunk avoids it.
        .rechunk()
    )


SILENCE_SCHEMA = pl.Schema({"host": pl.String(), "start": Time, "end": Time})


def _silences(dump: Dump, host: str) -> pl.DataFrame:
    times = dump.stamped("ts", where=pl.col("host") == host).collect().sort("ts")
    gaps = times.select(
        pl.lit(host).alias("host"),
        pl.col("ts").alias("start"),
        pl.col("ts").shift(-1).alias("end"),
    ).with_columns((pl.col("end") - pl.col("start")).dt.total_milliseconds().alias("gap"))
    threshold = pl.max_horizontal(pl.lit(SILENCE_MS), pl.col("gap").median() * SILENCE_FACTOR)
    return (
        gaps.filter(pl.col("gap") >= threshold).select(SILENCE_SCHEMA.keys()).cast(SILENCE_SCHEMA)
    )


def _silent_hosts(rows: pl.DataFrame, silences: pl.DataFrame) -> pl.DataFrame:
    return (
        rows.select("zid", "changed_at")
        .join(silences, how="cross")
        .filter((pl.col("start") <= pl.col("changed_at")) & (pl.col("changed_at") <= pl.col("end")))
        .rechunk()
        .with_columns(
            pl.format(
                "engine host {} wrote nothing from {} to {}",
                "host",
                iso_expr("start"),
                iso_expr("end"),
            ).alias("s")
        )
        .group_by("zid")
        .agg(pl.col("s").sort().str.join("; ").alias("silence"))
    )


def _with_notices(out: pl.DataFrame, dump: Dump, offsets: pl.DataFrame) -> pl.DataFrame:
    """Was the user told? A user_notice for the user within 24 h after the zeroing."""
    notices = corrected(dump.tables["user_notice"].select("host", "ts", "user_id"), offsets)
    told = (
        out.select("zid", "user_id", "changed_at")
        .join(notices.select("user_id", "cts"), on="user_id")
        .filter(
            (pl.col("cts") >= pl.col("changed_at") - pl.duration(minutes=5))
            & ((pl.col("cts") - pl.col("changed_at")).dt.total_milliseconds() <= NOTICE_WINDOW_MS)
        )
        .select("zid")
        .unique()
        .with_columns(pl.lit(True).alias("notified"))
    )
    return out.join(told, on="zid", how="left").with_columns(pl.col("notified").fill_null(False))


def _finish(out: pl.DataFrame, names: pl.DataFrame) -> pl.DataFrame:
    out = out.join(names.rename({"file_id": "a_file", "file": "a_name"}), on="a_file", how="left")
    record = pl.when(pl.col("a_name").is_not_null()).then(pl.format("{}:{}", "a_name", "a_line"))
    head = pl.when(pl.col("act").is_not_null()).then(
        pl.format(
            "{} {} on {} at {}{} set {}→{} (matched by {})",
            "act",
            record,
            "host",
            iso_expr("cts"),
            # Times compare across hosts only once corrected; say what the host wrote too.
            pl.when(pl.col("cts") != pl.col("ts"))
            .then(pl.format(" (its clock: {})", iso_expr("ts")))
            .otherwise(pl.lit("")),
            yuan("a_before"),
            yuan("a_after"),
            "matched_by",
        )
    )
    evidence = pl.concat_str(head, pl.col("why"), separator="; ", ignore_nulls=True)
    return (
        out.sort("changed_at", "user_id", maintain_order=True)
        .select(
            "user_id",
            iso_expr("changed_at").alias("zeroed_at"),
            yuan("limit_before").alias("limit_before"),
            "cause",
            pl.col("cause_ref").fill_null(""),
            "recovery",
            iso_expr("restored_at").alias("restored_at"),
            yuan("restored_limit").alias("restored_limit"),
            pl.col("rule_id").fill_null(""),
            evidence.fill_null("").alias("evidence"),
            "zero_duration_s",
            "notified",
            pl.col("matched_by").fill_null(""),
            "change_id",
            record.fill_null("").alias("record"),
            pl.col("host").fill_null(""),
        )
        .select(CSV_COLUMNS)
    )


def ledger_gaps(ledger: pl.DataFrame, acts: pl.DataFrame, tol: int) -> pl.DataFrame:
    """Records that changed a limit but whose ledger row never arrived."""
    changes = acts.filter(CHANGES)
    matched = match_rows(ledger_rows(ledger), changes, tol)
    unmatched = changes.join(matched.select("act_id"), on="act_id", how="anti")
    # A change_id the ledger does not hold is a gap for sure; without one, no row in time.
    return unmatched.select(
        "file_id", "line", "source", "user_id", "change_id", "ts", "limit_before", "limit_after"
    )


def _findings(
    dump: Dump, breaks: pl.DataFrame, gaps: pl.DataFrame, names: pl.DataFrame
) -> list[Finding]:
    findings = list(dump.findings)
    named = breaks.join(names, on="file_id", how="left").join(
        names.rename({"file_id": "prev_file_id", "file": "prev_file"}),
        on="prev_file_id",
        how="left",
    )
    for r in named.sort("changed_at", "user_id", maintain_order=True).iter_rows(named=True):
        findings.append(
            Finding(
                "chain_break",
                r["file"],
                f"user {r['user_id']}: {r['file']}:{r['line']} ({r['change_id']}) starts at "
                f"{_yuan(r['limit_before'])} but {r['prev_file']}:{r['prev_line']} "
                f"({r['prev_change_id']}) left {_yuan(r['prev_after'])}: rows are missing between",
            )
        )
    for r in (
        gaps.join(names, on="file_id", how="left")
        .sort("ts", "user_id", maintain_order=True)
        .iter_rows(named=True)
    ):
        findings.append(
            Finding(
                "ledger_gap",
                r["file"],
                f"user {r['user_id']}: {r['source']} {r['file']}:{r['line']} changed the limit "
                f"{_yuan(r['limit_before'])}→{_yuan(r['limit_after'])}"
                f"{' (' + r['change_id'] + ')' if r['change_id'] else ''} but no ledger row has it",
            )
        )
    return findings


def _yuan(fen: int | None) -> str:
    return "?" if fen is None else f"{fen // 100}.{fen % 100:02d}"
