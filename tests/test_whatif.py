"""`whatif`: every decision replayed under another configuration.

The release an audit blames, undone, spares exactly the zeroings it blamed on it; a raised
cutoff is held to a computation of its own here; a swapped model reads the other
version's score of the same user; exact output and exit statuses through the CLI."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import limitaudit
from limitaudit.analysis.whatif import WhatIf, replay
from limitaudit.model.schema import Rule
from limitaudit.read import read_dump
from limitaudit.status import ExitStatus
from tests.test_cli import dump, golden, invoke  # noqa: F401 - `dump` is a fixture

ROOT = Path(__file__).parent.parent


def _blamed(result: Any) -> dict[str, set[tuple[str, str]]]:
    z = result.zeroings.filter(pl.col("cause") == "parameter_error")
    blamed: dict[str, set[tuple[str, str]]] = {}
    for user, at, release in z.select("user_id", "zeroed_at", "cause_ref").iter_rows():
        blamed.setdefault(release, set()).add((user, at))
    return blamed


@pytest.mark.parametrize("where", ["sample", "world"])
def test_undoing_a_blamed_release_spares_exactly_the_zeroings_blamed_on_it(
    where: str,
    world: tuple[Path, Path, int],
) -> None:
    dump_dir = ROOT / "sample_logs" if where == "sample" else world[0]
    blamed = _blamed(limitaudit.audit(dump_dir))
    assert blamed, "no parameter_error to undo"
    for release, zeroings in blamed.items():
        result = limitaudit.whatif(dump_dir, undo=[release])
        spared = result.changes.filter(
            (pl.col("outcome_logged") == "zero") & (pl.col("outcome_whatif") != "zero")
        ).drop_nulls("zeroed_at")
        got = set(spared.select("user_id", "zeroed_at").iter_rows())
        assert got == zeroings, release
        assert {u for u, _ in got} == {u for u, _ in zeroings}
        assert result.totals["zeroings_spared"] == len(zeroings)
        assert result.totals["decisions_newly_zeroed"] == 0


def _outcome(actions: list[str]) -> str:
    for action in ("zero", "reduce", "hold"):
        if action in actions:
            return action
    return "pass"


def test_a_raised_cutoff_changes_what_a_computation_of_its_own_says() -> None:
    dump_dir = ROOT / "sample_logs"
    cutoff = 650.0
    result = limitaudit.whatif(dump_dir, settings={"score_cutoff": cutoff})
    # By hand: each decision's logged outcome from its rules; with the cutoff raised, the
    # cutoff rule fires where the score is below it (a decision without a score keeps its
    # logged firing), every other rule as logged.
    want: Counter[tuple[str, str, str]] = Counter()
    for d in read_dump([dump_dir]).tables["decision"].iter_rows(named=True):
        rules = d["rules"] or []
        logged = _outcome([r["action"] for r in rules])
        others = [r["action"] for r in rules if r["id"] != "R_SCORE_CUTOFF"]
        fired = any(r["id"] == "R_SCORE_CUTOFF" for r in rules)
        if d["score"] is not None:
            fired = d["score"] < cutoff
        later = _outcome(others + (["zero"] if fired else []))
        if later != logged:
            want[(d["user_id"], logged, later)] += 1
    got = Counter(result.changes.select("user_id", "outcome_logged", "outcome_whatif").iter_rows())
    assert got == want
    assert result.totals["users_newly_zeroed"] == len({u for u, _, w in want if w == "zero"})
    assert set(result.changes["rules"]) == {"R_SCORE_CUTOFF"}


T0 = datetime(2026, 3, 14, 2, 0, tzinfo=UTC)
CUTOFF = [{"id": "R_SCORE_CUTOFF", "param": "score_cutoff", "threshold": 600.0,
           "observed": None, "action": "zero"}]  # fmt: skip


def _decision(
    user: str, minute: int, model: str, score: float | None, rules: list[Any]
) -> dict[str, Any]:
    return {
        "file_id": 0,
        "line": minute,
        "cts": T0 + timedelta(minutes=minute),
        "user_id": user,
        "change_id": None,
        "param_version": None,
        "model_version": model,
        "score": score,
        "overdue_days": 0,
        "rules": rules,
    }


def test_a_swapped_model_reads_the_other_versions_score_of_the_same_user() -> None:
    decisions = pl.DataFrame(
        [
            _decision("1", 0, "v8.2", 700.0, []),
            _decision("1", 10, "v8.3", 550.0, CUTOFF),  # v8.2 gave user 1 a 700: passes
            _decision("2", 12, "v8.3", 580.0, CUTOFF),  # v8.2 never scored user 2
            _decision("3", 1, "v8.2", 590.0, []),
            _decision("3", 20, "v8.3", 640.0, []),  # v8.2 gave a 590: zeroes
        ],
        schema_overrides={"rules": pl.List(Rule), "line": pl.UInt32, "file_id": pl.UInt32},
    ).with_columns(pl.col("cts").dt.cast_time_unit("ms"))
    params = pl.DataFrame(
        {
            "seq": [0],
            "param": ["score_cutoff"],
            "old_value": ["550"],
            "new_value": ["600"],
            "param_version": ["pv-1"],
            "release_id": ["rel-1"],
            "cts": [T0 - timedelta(hours=1)],
        }
    ).with_columns(pl.col("cts").dt.cast_time_unit("ms"), pl.col("seq").cast(pl.UInt32))
    got = replay(decisions, params, WhatIf(models={"v8.3": "v8.2"}))
    assert got.select("user_id", "outcome_logged", "outcome_whatif", "changed").rows() == [
        ("1", "pass", "pass", []),
        ("1", "zero", "pass", ["R_SCORE_CUTOFF"]),
        ("2", "zero", "zero", []),
        ("3", "pass", "pass", []),
        ("3", "pass", "zero", ["R_SCORE_CUTOFF"]),
    ]
    assert got["unevaluable"].to_list() == [[], [], ["R_SCORE_CUTOFF", "R_NO_SCORE"], [], []]


# -- through the command line ------------------------------------------------------------


def test_whatif_matches_golden_in_each_format(dump: Path) -> None:  # noqa: F811
    table = invoke("whatif", str(dump), "--undo", "rel-bad")
    assert table.exit_code == ExitStatus.OK, table.stderr
    golden("whatif_table.txt", table.stdout)
    csv = invoke("whatif", str(dump), "--undo", "rel-bad", "--format", "csv")
    golden("whatif.csv", csv.stdout)
    assert csv.stdout.splitlines()[0].startswith(
        "user_id,decided_at,outcome_logged,outcome_whatif,rules,change_id,zeroed_at"
    )
    data = json.loads(invoke("whatif", str(dump), "--undo", "rel-bad", "--format", "json").stdout)
    golden("whatif.json", json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    assert data["totals"]["zeroings_spared"] == 1


def test_new_zeroings_past_the_limit_fail_the_run(dump: Path) -> None:  # noqa: F811
    raised = ["whatif", str(dump), "--set", "score_cutoff=800"]
    result = invoke(*raised, "--format", "json")
    new = json.loads(result.stdout)["totals"]["users_newly_zeroed"]
    assert new > 0
    failing = invoke(*raised, "--fail-if-new-zeroings", str(new - 1))
    assert failing.exit_code == ExitStatus.FINDINGS
    assert f"failing: {new:,} user(s) newly zeroed" in failing.stderr
    assert invoke(*raised, "--fail-if-new-zeroings", str(new)).exit_code == ExitStatus.OK
    assert invoke(*raised, "--fail-if-new-zeroings", "100%").exit_code == ExitStatus.OK
    assert invoke(*raised, "--fail-if-new-zeroings", "0%").exit_code == ExitStatus.FINDINGS


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--set", "max_limit=5"], "reads no parameter max_limit"),
        (["--set", "score_cutoff=high"], "not a number"),
        (["--set", "score_cutoff"], "NAME=VALUE"),
        (["--undo", "rel-none"], "no parameter change of release rel-none"),
        (["--model", "v9=credit-v8.2"], "no decision scored by v9"),
        (["--fail-if-new-zeroings", "lots"], "give N users or P%"),
        (["--format", "ndjson"], "--format"),
    ],
)
def test_a_what_if_of_what_cannot_be_is_a_usage_error(
    dump: Path,  # noqa: F811
    args: list[str],
    says: str,
) -> None:
    result = invoke("whatif", str(dump), *args)
    assert result.exit_code == ExitStatus.ERROR
    assert says in result.stderr
