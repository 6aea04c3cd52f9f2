"""What an audit takes from the whole dump before it attributes any zeroing: the decisions
it reads, host clock offsets, engine silences and the data feed (AuditFacts)."""

from __future__ import annotations

import polars as pl

from limitaudit.analysis.match import CHANGES, actions, host_offsets
from limitaudit.analysis.refs import quoted_feed
from limitaudit.model.audit import AuditFacts, AuditOptions
from limitaudit.model.dump import Dump, as_text
from limitaudit.model.schema import Time

# A host that writes nothing for this long while the fleet is busy has gone silent.
SILENCE_MS = 15 * 60 * 1000
SILENCE_FACTOR = 10


def decisions_needed(options: AuditOptions, user_id: str | None = None) -> pl.Expr:
    """The decisions an audit reads (see read_dump's `decisions`): those that change a limit
    (clock offsets, ledger gaps) or set it at or below the zeroing threshold (what can
    explain a zeroing); for a trace, every one of its user's too."""
    needed = CHANGES | (pl.col("limit_after") <= options.below_fen)
    return needed if user_id is None else needed | (pl.col("user_id") == user_id)


def decisions_detailed(options: AuditOptions, user_id: str | None = None) -> pl.Expr:
    """Of the decisions an audit reads, those it reads whole (read_dump's `detail`): those
    that can explain a zeroing, and for a trace every one of its user's. Of the others it
    reads no more than `actions` does."""
    detailed = pl.col("limit_after") <= options.below_fen
    return detailed if user_id is None else detailed | (pl.col("user_id") == user_id)


# Users are attributed a share at a time, each share holding about this many of the


def audit_actions(dump: Dump, options: AuditOptions) -> pl.DataFrame:
    """The records an audit weighs (see `actions`), each with its `act_id`."""
    # What a read may have left out (read_dump's `decisions`) is left out here too, whatever was
    # read: a trace, which reads all of its user's decisions, then audits as the whole dump does.
    return actions(dump).filter(decisions_needed(options)).with_row_index("act_id")


def whole_dump_facts(dump: Dump, options: AuditOptions) -> AuditFacts:
    """What an audit needs from the whole dump (AuditFacts), without attributing a zeroing:
    what lets one user be audited alone (`Dump.for_user`) as the whole dump would audit it."""
    acts = audit_actions(dump, options)
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


def shifted(silences: pl.DataFrame, offsets: pl.DataFrame) -> pl.DataFrame:
    """Silences on each host's own clock, moved to corrected time like the records in them."""
    shift = pl.duration(milliseconds=pl.col("offset_ms").fill_null(0))
    return (
        silences.join(offsets.select("host", "offset_ms"), on="host", how="left")
        .select("host", pl.col("start") - shift, pl.col("end") - shift)
        .rechunk()
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
