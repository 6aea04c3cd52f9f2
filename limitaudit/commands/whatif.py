"""`limitaudit whatif`: how many users would another configuration zero, or spare?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from limitaudit.analysis.attribute import param_history
from limitaudit.analysis.match import corrected
from limitaudit.analysis.whatif import WhatIf, replay
from limitaudit.commands.audit import AuditResult, audit
from limitaudit.errors import UsageError
from limitaudit.model.audit import AuditOptions
from limitaudit.model.dump import Dump
from limitaudit.model.format import iso_expr

# The what-if CSV's first columns, in this order (docs/output.md).
WHATIF_COLUMNS = [
    "user_id",
    "decided_at",
    "outcome_logged",
    "outcome_whatif",
    "rules",
    "change_id",
    "zeroed_at",
    "record",
    "cause",
    "cause_ref",
]
# How many zeroings of each cause a what-if that spares them shows by name.
SAMPLE = 5


@dataclass
class WhatIfResult:
    what: WhatIf
    changes: pl.DataFrame  # WHATIF_COLUMNS: each decision whose outcome changes
    by_rule: pl.DataFrame  # rule, fires_now, fires_no_more, unevaluable (decisions), users
    spared: pl.DataFrame  # the ledger zeroings that would not have happened, by cause
    totals: dict[str, int]
    audit: AuditResult

    def new_zeroings(self) -> int:
        """Users the what-if zeroes that the log does not (what `--fail-if-new-zeroings`
        weighs)."""
        return self.totals["users_newly_zeroed"]

    def to_data(self) -> dict[str, Any]:
        return {
            "what_if": {
                "set": self.what.settings,
                "undo": list(self.what.undo),
                "model": self.what.models,
            },
            "totals": self.totals,
            "by_rule": self.by_rule.to_dicts(),
            "spared_zeroings": self.spared.to_dicts(),
            "changes": self.changes.to_dicts(),
        }


def whatif_of(dump: Dump, options: AuditOptions, what: WhatIf) -> WhatIfResult:
    """Replay every decision of `dump` under `what` (see analysis.whatif)."""
    _check(dump, what)
    result = audit(dump, options)
    facts = result.facts
    assert facts is not None
    params = param_history(corrected(dump.tables["param_change"], facts.offsets))
    # A read for an audit holds every decision whole on disk, by bucket: replayed a share
    # of the users at a time (a user's decisions are all in one, as a model swap needs).
    shares = [dump] if dump.parts is None else dump.parts(facts, True, None)
    parts, served = [], set()
    totals = {"decisions": 0, "users_decided": 0}
    # Of a share, only what changes is kept: most decisions replay as they were logged.
    moved = (
        (pl.col("outcome_logged") != pl.col("outcome_whatif"))
        | (pl.col("changed").list.len() > 0)
        | (pl.col("unevaluable").list.len() > 0)
    )
    for share in shares:
        decisions = corrected(share.tables["decision"], facts.offsets)
        served |= set(decisions["model_version"].drop_nulls())
        totals["decisions"] += decisions.height
        # A user's decisions are all in one share: the users add up.
        totals["users_decided"] += decisions["user_id"].n_unique()
        parts.append(replay(decisions, params, what).filter(moved))
    _check_models(what, served)
    replayed = pl.concat(parts).sort("file_id", "line")
    explained = _explained(result.zeroings, dump)
    rows = replayed.join(explained, on=["file_id", "line"], how="left", maintain_order="left")
    logged, later = pl.col("outcome_logged"), pl.col("outcome_whatif")
    flips = {
        "newly_zeroed": (later == "zero") & (logged != "zero"),
        "no_longer_zeroed": (logged == "zero") & (later != "zero"),
        "newly_reduced": (later == "reduce") & (logged != "reduce"),
    }
    for name, flip in flips.items():
        hit = rows.filter(flip)
        totals[f"decisions_{name}"] = hit.height
        totals[f"users_{name}"] = hit["user_id"].n_unique()
    totals["zeroings_spared"] = rows.filter(flips["no_longer_zeroed"])["zeroed_at"].count()
    changes = (
        rows.filter(logged != later)
        .sort("cts", "user_id", "file_id", "line")
        .with_columns(
            iso_expr("cts").alias("decided_at"),
            pl.col("changed").list.join(";").alias("rules"),
        )
        .select(WHATIF_COLUMNS)
    )
    return WhatIfResult(
        what,
        changes,
        _by_rule(replayed),
        _spared(rows.filter(flips["no_longer_zeroed"])),
        totals,
        result,
    )


def _check(dump: Dump, what: WhatIf) -> None:
    """A what-if that names what the dump does not hold is a usage error: it would change
    nothing, silently (a model version: see _check_models)."""
    releases = set(dump.tables["param_change"]["release_id"].drop_nulls())
    unknown = [r for r in what.undo if r not in releases]
    if unknown:
        raise UsageError(f"--undo: no parameter change of release {', '.join(unknown)} in the dump")


def _check_models(what: WhatIf, served: set[str]) -> None:
    for version, other in what.models.items():
        missing = [v for v in (version, other) if v not in served]
        if missing:
            raise UsageError(
                f"--model {version}={other}: no decision scored by {', '.join(missing)} in the "
                "dump (a swap needs scores of both, as a canary leaves)"
            )


def _explained(zeroings: pl.DataFrame, dump: Dump) -> pl.DataFrame:
    """The ledger zeroing each decision explains (as the audit matched them), by the
    decision's file_id and line."""
    # A record is `file:line`; a file's name may hold a colon, its line number not.
    return (
        zeroings.filter(pl.col("record") != "")
        .with_columns(
            pl.col("record").str.replace(r":\d+$", "").alias("file"),
            pl.col("record").str.extract(r":(\d+)$").cast(pl.UInt32).alias("line"),
        )
        .join(dump.file_names(), on="file")
        .select("file_id", "line", "zeroed_at", "record", "cause", "cause_ref")
    )


def _by_rule(replayed: pl.DataFrame) -> pl.DataFrame:
    """Per rule: the decisions (and users) for which it fires and did not, no longer fires,
    or could not be evaluated again."""
    return (
        replayed.select("user_id", "changed", "unevaluable")
        .explode("changed")
        .drop_nulls("changed")
        .group_by(pl.col("changed").alias("rule"))
        .agg(pl.len().alias("decisions"), pl.col("user_id").n_unique().alias("users"))
        .join(
            replayed.select("unevaluable")
            .explode("unevaluable")
            .drop_nulls()
            .group_by(pl.col("unevaluable").alias("rule"))
            .len()
            .rename({"len": "unevaluable"}),
            on="rule",
            how="full",
            coalesce=True,
        )
        .with_columns(pl.col("decisions", "users", "unevaluable").fill_null(0).cast(pl.Int64))
        .sort("rule")
    )


def _spared(rows: pl.DataFrame) -> pl.DataFrame:
    """The ledger zeroings whose decision would no longer zero, by cause: how many, and a
    few of them by name."""
    spared = rows.drop_nulls("zeroed_at")
    return (
        spared.sort("zeroed_at", "user_id")
        .group_by("cause", maintain_order=True)
        .agg(
            pl.len().cast(pl.Int64).alias("zeroings"),
            pl.col("user_id").n_unique().cast(pl.Int64).alias("users"),
            pl.format("{} at {} ({})", "user_id", "zeroed_at", "cause_ref")
            .head(SAMPLE)
            .alias("sample"),
        )
        .sort("zeroings", "cause", descending=[True, False])
    )
