"""The audit: every zeroing of a dump attributed, a share of its users at a time, with the
facts of the whole dump (see facts), and the findings of its ledger."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import polars as pl

from limitaudit.analysis import evidence
from limitaudit.analysis.attribute import Context, explain, model_history, param_history
from limitaudit.analysis.facts import audit_actions, shifted, users_apart, whole_dump_facts
from limitaudit.analysis.match import CHANGES, corrected, ledger_rows, match_rows, with_records
from limitaudit.analysis.replay import chain_breaks, ordered_ledger, zeroings
from limitaudit.model.audit import AuditFacts, AuditOptions
from limitaudit.model.dump import Dump, Finding

NOTICE_WINDOW_MS = 24 * 3600 * 1000
T = TypeVar("T")

# Users are attributed a share at a time, each share holding about this many of the
# decisions an audit keeps: what attribution builds for a zeroing (matches, rules,
# evidence) is several times the zeroing, and would otherwise grow with the whole dump.
PART_ROWS = 250_000


@dataclass
class Attribution:
    """Every zeroing of a dump attributed, and what its reading and replay found."""

    zeroings: pl.DataFrame  # CSV_COLUMNS, sorted by zeroed_at then user_id
    findings: list[Finding]  # the files', then chain breaks and ledger gaps
    facts: AuditFacts


def attribute_dump(dump: Dump, options: AuditOptions) -> Attribution:
    """Attribute every zeroing of `dump`: whole, or a share of its users at a time."""
    dump.require_readable()
    dump.require_ledger()
    names = dump.file_names()
    # A one-user read holds too little to estimate what needs every user: it comes with them.
    known = dump.scope.facts if dump.scope else dump.facts
    facts = (
        known if known is not None and known.options == options else whole_dump_facts(dump, options)
    )
    attributed = list(
        _at_once(lambda share: _attribute(share, options, facts, names), _shares(dump, facts))
    )
    outs = [a[0] for a in attributed]
    breaks = pl.concat([a[1] for a in attributed])
    gaps = pl.concat([a[2] for a in attributed])
    attributed.clear()  # the zeroings are held by `outs` alone, which _sorted lets go
    out = _sorted(outs)
    return Attribution(out, evidence.findings_of(dump, breaks, gaps, names), facts)


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
        yield from _ahead(dump.parts(facts, dump.scope is None and users_apart(dump), None))
        return
    shares = -(-dump.tables["decision"].height // PART_ROWS)
    if dump.scope is not None or shares <= 1 or not users_apart(dump):
        yield dump
        return
    share = pl.col("user_id").hash() % shares
    for part in range(shares):
        yield dump.only(share == part, facts)


# Shares attributed at once, on threads: attributing one is a long run of small Polars
# steps with Python between them, which leaves the other core idle (2.75 -> 2.5 s for the
# attribution at 3.17M lines, same process).
AT_ONCE = 2


def _at_once(attribute: Callable[[Dump], T], shares: Iterator[Dump]) -> Iterator[T]:
    """`attribute` of each share, in order, AT_ONCE shares at a time (no more in memory)."""
    with ThreadPoolExecutor(AT_ONCE) as pool:
        pending: deque[Future[T]] = deque()
        for share in shares:
            pending.append(pool.submit(attribute, share))
            if len(pending) >= AT_ONCE:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


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
    acts = corrected(audit_actions(dump, options), offsets)
    zero_acts = acts.filter(pl.col("limit_after") <= options.below_fen)
    rows = zero.select(
        pl.col("zid").alias("row_id"), "user_id", "change_id", "changed_at", "limit_before"
    )
    matched = match_rows(rows, zero_acts, tol).rename({"row_id": "zid"})
    zero = with_records(
        zero.join(matched, on="zid", how="left"),
        acts,
        "host",
        "ts",
        "cts",
        pl.col("limit_before").alias("a_before"),
        pl.col("limit_after").alias("a_after"),
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
    manual = evidence.manual(zero, dump)
    unexplained = evidence.unexplained(zero, acts, shifted(facts.silences, offsets), tol, names)
    out = pl.concat([decided, manual, unexplained], how="diagonal_relaxed")
    out = evidence.finish(_with_notices(out, dump, offsets), names)
    return out, chain_breaks(ledger), ledger_gaps(dump.ledger, acts, tol)


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


def _with_notices(out: pl.DataFrame, dump: Dump, offsets: pl.DataFrame) -> pl.DataFrame:
    """Was the user told? A user_notice for the user within 24 h after the zeroing
    (`notified`), and after the restore (`restore_notified`)."""
    notices = corrected(dump.tables["user_notice"].select("host", "ts", "user_id"), offsets)
    for name, at in (("notified", "changed_at"), ("restore_notified", "restored_at")):
        told = (
            out.select("zid", "user_id", at)
            .drop_nulls(at)
            .join(notices.select("user_id", "cts"), on="user_id")
            .filter(
                (pl.col("cts") >= pl.col(at) - pl.duration(minutes=5))
                & ((pl.col("cts") - pl.col(at)).dt.total_milliseconds() <= NOTICE_WINDOW_MS)
            )
            .select("zid")
            .unique()
            .with_columns(pl.lit(True).alias(name))
        )
        out = out.join(told, on="zid", how="left").with_columns(pl.col(name).fill_null(False))
    return out


def ledger_gaps(ledger: pl.DataFrame, acts: pl.DataFrame, tol: int) -> pl.DataFrame:
    """Records that changed a limit but whose ledger row never arrived."""
    changes = acts.filter(CHANGES)
    matched = match_rows(ledger_rows(ledger), changes, tol)
    unmatched = changes.join(matched.select("act_id"), on="act_id", how="anti")
    # A change_id the ledger does not hold is a gap for sure; without one, no row in time.
    return unmatched.select(
        "file_id", "line", "source", "user_id", "change_id", "ts", "limit_before", "limit_after"
    )
