"""`limitaudit trace USER`: one user's whole limit timeline, each change explained."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from limitaudit.analysis.facts import users_apart, whole_dump_facts
from limitaudit.analysis.match import actions, corrected, ledger_rows, match_rows, with_records
from limitaudit.commands.audit import AuditResult, audit
from limitaudit.errors import LimitAuditError
from limitaudit.model.audit import AuditOptions
from limitaudit.model.dump import Dump
from limitaudit.model.format import iso_expr, yuan


class UnknownUser(LimitAuditError):
    """The user has no ledger row and no record in the dump."""


@dataclass
class TraceResult:
    user_id: str
    timeline: pl.DataFrame  # time, kind, what, record
    zeroings: pl.DataFrame  # the audit rows of this user
    # time, limit (fen): the limit each of the user's ledger rows left.
    limits: pl.DataFrame

    def to_data(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "timeline": self.timeline.to_dicts(),
            "zeroings": self.zeroings.to_dicts(),
        }


def nearest_ids(ids: pl.Series, user_id: str, n: int = 3) -> list[str]:
    """Ids that sort next to the given one: a mistyped last digits lands beside the real id."""
    ids = ids.unique().sort()
    if len(ids) == 0:
        return []
    at = int(ids.search_sorted(user_id))
    window = ids.slice(max(at - n, 0), 2 * n).to_list()
    target = int(user_id)
    return sorted(window, key=lambda x: (-_common_prefix(x, user_id), abs(int(x) - target), x))[:n]


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def trace(
    dump: Dump, user_id: str, options: AuditOptions, apart: bool | None = None
) -> TraceResult:
    """One user's timeline and audit rows. `apart` is `users_apart(dump)`, where known."""
    dump.require_readable()
    known = pl.concat(
        [
            dump.ledger.select("user_id"),
            dump.tables["decision"].select("user_id"),
            dump.tables["manual_action"].select("user_id"),
        ]
    )["user_id"]
    if not (known == user_id).any():
        # A one-user read of a store knows no other user: ask the store for all of them.
        near = nearest_ids(dump.scope.user_ids() if dump.scope else known, user_id)
        hint = f"; nearest ids in the dump: {', '.join(near)}" if near else ""
        raise UnknownUser(f"user {user_id} has no ledger row and no record in this dump{hint}")
    if dump.scope is None and (users_apart(dump) if apart is None else apart):
        # What the store does at ingest, done here once: the facts every user's audit needs,
        # then this user's rows alone (the zeroings of every other user are not attributed).
        dump = dump.for_user(user_id, whole_dump_facts(dump, options))
    result = audit(dump, options)
    rows = dump
    if dump.scope is None and dump.parts is not None and result.facts is not None:
        # The whole dump, read for an audit: its decision table holds what the audit facts
        # read, and the user's decisions wait whole in the user's bucket (Dump.parts).
        rows = next(dump.parts(result.facts, False, user_id))
    return TraceResult(
        user_id,
        _timeline(rows, user_id, result, options),
        result.zeroings.filter(pl.col("user_id") == user_id),
        _limits(dump.ledger.filter(pl.col("user_id") == user_id), dump.span()[1]),
    )


def _limits(ledger: pl.DataFrame, end: datetime | None) -> pl.DataFrame:
    """The user's limit over time: what each of its ledger rows left, held to `end` (the
    dump's last record), and before the first, the limit it found (where it found one: a
    grant from nothing shows no limit before it), a twentieth of the span earlier (a
    minute at least), so that it shows."""
    rows = ledger.sort("changed_at")
    at = pl.col("changed_at")
    lead = pl.max_horizontal((at.max() - at.min()) / 20, pl.duration(minutes=1))
    before = rows.select((at.first() - lead).alias("time"), pl.col("limit_before").alias("limit"))
    after = rows.select(at.alias("time"), pl.col("limit_after").alias("limit"))
    held = after.tail(1).with_columns(
        pl.max_horizontal(pl.col("time"), pl.lit(end, dtype=after.schema["time"]))
    )
    return pl.concat([before.head(1).filter(pl.col("limit") > 0), after, held]).drop_nulls()


def _timeline(dump: Dump, user_id: str, result: AuditResult, options: AuditOptions) -> pl.DataFrame:
    names = dump.file_names()
    mine = pl.col("user_id") == user_id
    ledger = dump.ledger.filter(mine).sort("changed_at")
    acts = corrected(actions(dump).filter(mine).with_row_index("act_id"), result.offsets)
    pairs = match_rows(ledger_rows(ledger), acts, options.tolerance_ms)
    ledger_events = (
        with_records(ledger.with_row_index("row_id").join(pairs, on="row_id", how="left"), acts)
        .join(names.rename({"file_id": "a_file", "file": "a_name"}), on="a_file", how="left")
        .join(names, on="file_id", how="left")
        .select(
            pl.col("changed_at").alias("time"),
            pl.lit("ledger").alias("kind"),
            pl.format(
                "{} {}→{} ({}){}",
                "change_id",
                yuan("limit_before"),
                yuan("limit_after"),
                pl.col("source").fill_null("?"),
                pl.when(pl.col("a_name").is_not_null())
                .then(pl.format("; behind it: {} {}:{}", "act", "a_name", "a_line"))
                .otherwise(pl.lit("; no logged record behind it")),
            ).alias("what"),
            pl.format("{}:{}", "file", "line").alias("record"),
        )
    )
    events = [ledger_events]
    for event, what in _EVENT_TEXT.items():
        table = dump.tables[event]
        if "user_id" not in table.columns:
            continue
        part = corrected(table.filter(mine), result.offsets).join(names, on="file_id", how="left")
        events.append(
            part.select(
                pl.col("cts").alias("time"),
                pl.lit(event).alias("kind"),
                what.alias("what"),
                pl.format("{}:{}", "file", "line").alias("record"),
            )
        )
    return (
        pl.concat(events)
        .sort("time", "kind")
        .with_columns(iso_expr("time").alias("time"), pl.col("what").fill_null(""))
    )


def _rules_text() -> pl.Expr:
    return (
        pl.col("rules")
        .list.eval(
            pl.element().struct.field("id") + pl.lit("/") + pl.element().struct.field("action")
        )
        .list.join(",")
    )


_EVENT_TEXT = {
    "decision": pl.format(
        "{}→{} score={} model={} params={} rules=[{}]{}",
        yuan("limit_before"),
        yuan("limit_after"),
        pl.col("score").cast(pl.String).fill_null("null"),
        pl.col("model_version").fill_null("?"),
        pl.col("param_version").fill_null("?"),
        _rules_text().fill_null(""),
        pl.when(pl.col("fallback")).then(pl.lit(" FALLBACK")).otherwise(pl.lit("")),
    ),
    "manual_action": pl.format(
        "{} by {} ticket {}: {}→{} {}",
        pl.col("action"),
        pl.col("operator").fill_null("?"),
        pl.col("ticket").fill_null("?"),
        yuan("limit_before").fill_null("?"),
        yuan("limit_after").fill_null("?"),
        pl.col("reason").fill_null(""),
    ),
    "engine_error": pl.format(
        "{} in {}: {}",
        pl.col("error").fill_null("?"),
        pl.col("component").fill_null("?"),
        pl.col("message").fill_null(""),
    ),
    "user_notice": pl.format(
        "{} via {}", pl.col("template").fill_null("?"), pl.col("channel").fill_null("?")
    ),
}
