"""`incidents` and `owed`: what the audit's zeroings add up to.

Held to synth's answers (made from the simulation's facts) on fresh dumps, to exact
output for each format, to inline frames for the rules (the latest zeroing a user, who is
still owed), and to the store, which serves them as the raw dump does."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

import limitaudit
from limitaudit.analysis.incidents import INCIDENT_COLUMNS, OWED_COLUMNS, by_silence, owed
from limitaudit.commands.ingest import ingest_store
from limitaudit.model.format import ISO_MS
from limitaudit.status import ExitStatus
from tests.test_cli import dump, golden, invoke  # noqa: F401 - `dump` is a fixture

FIRST_INCIDENT_COLUMNS = INCIDENT_COLUMNS[:11]
FIRST_OWED_COLUMNS = OWED_COLUMNS[:8]


def _answers(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def _as_text(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    return frame.select(pl.col(c).cast(pl.String) for c in columns)


def test_incidents_and_owed_are_synths_answers(world: tuple[Path, Path, int]) -> None:
    dump_dir, answers, seed = world
    found = limitaudit.incidents(dump_dir)
    want = _answers(answers / "incidents.csv")
    got = _as_text(found.incidents, FIRST_INCIDENT_COLUMNS)
    assert got.to_dicts() == want.select(FIRST_INCIDENT_COLUMNS).to_dicts(), f"seed {seed}"
    owed_now = limitaudit.owed(dump_dir)
    got = _as_text(owed_now.owed, FIRST_OWED_COLUMNS).with_columns(
        pl.col("notified").str.to_lowercase()
    )
    want = _answers(answers / "owed.csv").with_columns(pl.col("notified").str.to_lowercase())
    assert got.to_dicts() == want.select(FIRST_OWED_COLUMNS).to_dicts(), f"seed {seed}"


def test_a_store_serves_incidents_owed_and_whatif_as_its_dump_does(
    world: tuple[Path, Path, int], tmp_path: Path
) -> None:
    dump_dir, _, _ = world
    store = tmp_path / "store"
    ingest_store([dump_dir], store)
    for command, *args in (("incidents",), ("owed",), ("whatif", "--set", "score_cutoff=650")):
        for fmt in ("csv", "json"):
            raw, stored = (
                invoke(command, str(dump_dir), *args, "-f", fmt),
                invoke(command, str(store), *args, "-f", fmt),
            )
            assert raw.exit_code == stored.exit_code == ExitStatus.OK, stored.stderr
            assert stored.stdout == raw.stdout, (command, fmt)


# -- exact output -------------------------------------------------------------------------


def test_incidents_match_golden_in_each_format(dump: Path) -> None:  # noqa: F811
    table = invoke("incidents", str(dump))
    assert table.exit_code == ExitStatus.OK, table.stderr
    golden("incidents_table.txt", table.stdout)
    csv = invoke("incidents", str(dump), "--format", "csv")
    golden("incidents.csv", csv.stdout)
    assert csv.stdout.splitlines()[0].startswith(",".join(INCIDENT_COLUMNS))
    data = json.loads(invoke("incidents", str(dump), "--format", "json").stdout)
    golden("incidents.json", json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    assert [(i["cause"], i["cause_ref"]) for i in data["incidents"]] == [
        ("manual", "OPS-1"),
        ("system_error", "score-service"),
        ("data_anomaly", "cb-01"),
        ("parameter_error", "rel-bad"),
        ("model_regression", "credit-v8.3"),
    ]


def test_owed_matches_golden_in_each_format(dump: Path, tmp_path: Path) -> None:  # noqa: F811
    table = invoke("owed", str(dump))
    assert table.exit_code == ExitStatus.OK, table.stderr
    golden("owed_table.txt", table.stdout)
    csv = invoke("owed", str(dump), "--format", "csv")
    golden("owed.csv", csv.stdout)
    assert csv.stdout.splitlines()[0] == ",".join(OWED_COLUMNS)
    data = json.loads(invoke("owed", str(dump), "--format", "json").stdout)
    golden("owed.json", json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    with_unexplained = invoke("owed", str(dump), "--include-unexplained", "--format", "csv")
    assert len(with_unexplained.stdout.splitlines()) == len(csv.stdout.splitlines()) + 1
    assert ",unexplained," in with_unexplained.stdout
    out = tmp_path / "owed.csv"
    written = invoke("owed", str(dump), "--format", "csv", "-o", str(out))
    assert written.exit_code == ExitStatus.OK
    assert out.read_text(encoding="utf-8") == csv.stdout
    assert written.stderr.endswith(f"written to {out}\n")


def test_a_bad_format_is_a_usage_error(dump: Path) -> None:  # noqa: F811
    for command in ("incidents", "owed"):
        result = invoke(command, str(dump), "--format", "ndjson")
        assert result.exit_code == ExitStatus.ERROR
        assert "--format" in result.stderr


# -- the rules, on inline frames ---------------------------------------------------------


def _zeroings(*rows: tuple[str, str, str, str, str, str, str]) -> pl.DataFrame:
    """Audit rows: user, zeroed_at, limit_before, cause, cause_ref, limit_now, notified."""
    frame = pl.DataFrame(
        rows,
        schema=["user_id", "zeroed_at", "limit_before", "cause", "cause_ref", "limit_now", "n"],
        orient="row",
    )
    return frame.with_columns(
        pl.lit("none").alias("recovery"),
        pl.lit(None, pl.String).alias("restored_at"),
        pl.lit(None, pl.String).alias("restored_limit"),
        (pl.col("n") == "y").alias("notified"),
    ).drop("n")


def test_a_user_is_owed_for_the_latest_zeroing_that_was_no_fault_of_theirs() -> None:
    z = _zeroings(
        ("1", "2026-03-14T01:00:00.000Z", "500.00", "system_error", "svc", "100.00", "y"),
        ("1", "2026-03-14T02:00:00.000Z", "300.00", "parameter_error", "rel-1", "100.00", "n"),
        ("1", "2026-03-14T03:00:00.000Z", "900.00", "risk_policy", "R_FRAUD", "100.00", "y"),
        ("2", "2026-03-14T01:30:00.000Z", "50.00", "data_anomaly", "cb-1", "50.00", "y"),
        ("3", "2026-03-14T01:40:00.000Z", "70.00", "unexplained", "", "0.00", "n"),
        ("4", "2026-03-14T01:50:00.000Z", "80.00", "model_regression", "v9", "0.00", "y"),
    )
    got = owed(z)
    # User 1: the latest of its two, its other named; user 2 got all back; 3 unexplained.
    assert got.select("user_id", "cause_ref", "shortfall", "notified").rows() == [
        ("1", "rel-1", "200.00", False),
        ("4", "v9", "80.00", True),
    ]
    assert got["other_zeroings"].to_list() == [
        "system_error svc at 2026-03-14T01:00:00.000Z",
        "",
    ]
    assert owed(z, include_unexplained=True)["user_id"].to_list() == ["1", "4", "3"]


def test_unexplained_zeroings_are_grouped_by_the_silence_they_fall_in() -> None:
    z = _zeroings(
        ("1", "2026-03-14T01:10:00.000Z", "10.00", "unexplained", "", "0.00", "n"),
        ("2", "2026-03-14T02:00:30.000Z", "20.00", "unexplained", "", "0.00", "n"),
        ("3", "2026-03-14T05:00:00.000Z", "30.00", "unexplained", "", "0.00", "n"),
    )
    silences = pl.DataFrame(
        {
            "host": ["le-04"],
            "start": ["2026-03-14T01:00:00.000Z"],
            "end": ["2026-03-14T02:00:00.000Z"],
        }
    ).with_columns(pl.col("start", "end").str.to_datetime(ISO_MS, time_unit="ms", time_zone="UTC"))
    got = by_silence(z, silences, 60_000)  # the second falls within a minute of the end
    assert got.select("silence", "users", "limit_removed").rows() == [
        ("le-04 silent 2026-03-14T01:00:00.000Z to 2026-03-14T02:00:00.000Z", 2, "30.00"),
        ("no engine silence", 1, "30.00"),
    ]
