"""limitaudit against `synth` dumps it has never seen: a fresh seed on every run.

The seed is drawn at random and printed on failure (rerun one with
LIMITAUDIT_TEST_SEED=N). Checks: every physical line of every file accounted for,
counted independently of the tool; every injected defect rejected or counted as
a duplicate; and the audit against the generator's answers.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import polars as pl
import pytest
import zstandard
from polars.testing import assert_frame_equal

from limitaudit.analysis import audit as audit_module
from limitaudit.analysis.facts import decisions_detailed, decisions_needed
from limitaudit.analysis.match import CHANGES
from limitaudit.commands.audit import audit
from limitaudit.commands.scan import scan as scan_dump
from limitaudit.model.audit import AuditOptions
from limitaudit.model.schema import ACTION_FIELDS, ORIGIN
from limitaudit.read import read_dump
from limitaudit.read import settle as settle_module

REJECTED_KINDS = {
    "garbled",
    "truncated_json",
    "nan_json",
    "non_object_json",
    "bad_value",
    "cut_tail",
    "ledger_garbled",
}
DUPLICATE_KINDS = {"duplicate", "ledger_duplicate"}


def physical_lines(path: Path) -> int:
    """Newlines in the decompressed bytes, plus a last line without one; what survives a cut."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        data = b""
        while raw:
            dec = zlib.decompressobj(wbits=31)
            try:
                data += dec.decompress(raw)
            except zlib.error:
                break
            raw = dec.unused_data if dec.eof else b""
    elif raw[:4] == b"\x28\xb5\x2f\xfd":
        data = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    else:
        data = raw
    assert gzip  # the stdlib reader refuses a cut file; zlib above does not
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def test_every_line_is_accounted_for(world: tuple[Path, Path, int]) -> None:
    dump_dir, answers, seed = world
    result = scan_dump(read_dump([dump_dir]))
    files = {f.path: f for f in result.files}
    expected = pl.read_csv(answers / "files.csv")
    for name, kind, lines in expected.iter_rows():
        got = files[name]
        msg = f"seed {seed}, {name}"
        if kind in ("other", "empty"):
            assert got.kind in ("other", "empty"), msg
            continue
        c = got.counts
        assert c["lines"] == lines, msg
        if kind != "ledger_parquet":
            assert physical_lines(dump_dir / name) == lines, msg
        assert c["lines"] == (
            c["records"]
            + c["continuation"]
            + c["meta"]
            + c["blank"]
            + c["duplicates"]
            + c["rejected"]
        ), msg


def test_every_injected_defect_is_rejected_or_counted(world: tuple[Path, Path, int]) -> None:
    dump_dir, answers, seed = world
    dump = read_dump([dump_dir])
    names = [f.source.name for f in dump.files]
    rejected = {(names[f], line) for f, line in dump.rejects.select("file_id", "line").iter_rows()}
    dirt = pl.read_csv(answers / "dirt.csv")
    injected = {(f, line) for f, line, kind in dirt.iter_rows() if kind in REJECTED_KINDS}
    assert injected <= rejected, f"seed {seed}: not rejected: {sorted(injected - rejected)[:5]}"
    # Nothing else is rejected: the rest of the dump is clean by construction.
    assert rejected == injected, f"seed {seed}: rejected too: {sorted(rejected - injected)[:5]}"
    dups = dirt.filter(pl.col("kind").is_in(list(DUPLICATE_KINDS))).group_by("file").len()
    counted = {f.source.name: f.counts["duplicates"] for f in dump.files}
    for name, n in dups.iter_rows():
        assert counted[name] == n, f"seed {seed}, {name}"
    assert sum(counted.values()) == dups["len"].sum(), f"seed {seed}"


def test_audit_agrees_with_the_answers(world: tuple[Path, Path, int]) -> None:
    dump_dir, answers, seed = world
    got = audit(read_dump([dump_dir]), AuditOptions()).zeroings
    want = pl.read_csv(answers / "audit.csv", infer_schema=False)
    key = ["user_id", "zeroed_at"]
    assert got.height == want.height, f"seed {seed}"
    assert got.select(key).is_duplicated().sum() == 0
    both = want.join(got, on=key, how="inner", suffix="_got")
    assert both.height == want.height, f"seed {seed}: zeroings missing"
    cause_ok = both.filter(
        (pl.col("cause") == pl.col("cause_got"))
        & (pl.col("cause_ref").fill_null("") == pl.col("cause_ref_got"))
    ).height
    recovery_ok = both.filter(
        (pl.col("recovery") == pl.col("recovery_got"))
        & (pl.col("restored_at").fill_null("") == pl.col("restored_at_got").fill_null(""))
        & (pl.col("restored_limit").fill_null("") == pl.col("restored_limit_got").fill_null(""))
    ).height
    assert cause_ok / want.height >= 0.995, f"seed {seed}: {cause_ok}/{want.height}"
    assert recovery_ok / want.height >= 0.999, f"seed {seed}: {recovery_ok}/{want.height}"


@pytest.mark.parametrize("below", [0.0, 500.0])
def test_a_lean_read_audits_as_a_whole_one(
    world: tuple[Path, Path, int], below: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `audit` reads (only the decisions it uses, ingest's `decisions`) changes no answer."""
    dump_dir, _, seed = world
    options = AuditOptions(below_yuan=below)
    whole = read_dump([dump_dir])
    lean = read_dump([dump_dir], decisions=decisions_needed(options))
    assert lean.tables["decision"].height < whole.tables["decision"].height
    # The decisions it keeps are those a whole read makes, row for row, most read by the
    # skim; and every line is accounted for alike.
    kept = whole.tables["decision"].filter(decisions_needed(options))
    assert_frame_equal(lean.tables["decision"], kept)
    assert_frame_equal(lean.rejects, whole.rejects)
    assert [f.counts for f in lean.files] == [f.counts for f in whole.files]
    # A lean read skims the decisions it leaves out: their stamps come in another order.
    assert whole.stamps is not None and lean.stamps is not None
    assert_frame_equal(whole.stamps.sort(list(ORIGIN)), lean.stamps.sort(list(ORIGIN)))
    known = sum(f.counts["records"] - f.counts["ignored"] for f in whole.files)
    assert whole.stamps.collect().height == known - whole.ledger.height, f"seed {seed}"
    want, got = audit(whole, options), audit(lean, options)
    assert_frame_equal(got.zeroings, want.zeroings)
    assert got.findings == want.findings
    assert_frame_equal(got.offsets, want.offsets)

    # What `audit` reads: ACTION_FIELDS of every decision it keeps, and whole, on disk, the
    # decisions that can explain a zeroing, read a share of the users at a time.
    monkeypatch.setattr(settle_module, "SHARE_ROWS", 1)  # as many shares as buckets
    detail = decisions_detailed(options)
    brief = read_dump([dump_dir], decisions=decisions_needed(options), detail=detail)
    assert_frame_equal(brief.tables["decision"], kept.select(ACTION_FIELDS))
    assert brief.parts is not None and got.facts is not None
    shares = list(brief.parts(got.facts, True, None))
    assert len(shares) == 16
    parts = pl.concat(s.tables["decision"] for s in shares).sort(list(ORIGIN))
    detailed = kept.select(detail).to_series()
    assert_frame_equal(parts.filter(detail), kept.filter(detailed))
    left = parts.filter(~detail)
    assert_frame_equal(left.select(ACTION_FIELDS), kept.filter(~detailed).select(ACTION_FIELDS))
    assert left.drop(ACTION_FIELDS).null_count().sum_horizontal().item() == left.height * (
        left.width - len(ACTION_FIELDS)
    )
    assert len(list(brief.parts(got.facts, False, None))) == 1  # users not apart: all at once
    for reading in (
        brief,
        read_dump([dump_dir], decisions=decisions_needed(options), detail=detail),
    ):
        got = audit(reading, options)
        assert_frame_equal(got.zeroings, want.zeroings)
        assert got.findings == want.findings
    assert (
        scan_dump(whole).to_data() == scan_dump(read_dump([dump_dir], decisions=CHANGES)).to_data()
    )


def test_users_attributed_in_shares_audit_as_all_at_once(
    world: tuple[Path, Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large dump's users are attributed a share at a time (PART_ROWS): the same answers,
    in the same order, as attributing them all at once."""
    dump_dir, _, seed = world
    dump = read_dump([dump_dir])
    options = AuditOptions()
    at_once = audit(dump, options)
    monkeypatch.setattr(audit_module, "PART_ROWS", 97)  # a dozen shares or more
    in_shares = audit(dump, options)
    assert at_once.facts is not None
    assert len(list(audit_module._shares(dump, at_once.facts))) > 10, f"seed {seed}"
    assert_frame_equal(in_shares.zeroings, at_once.zeroings)
    assert in_shares.findings == at_once.findings
    assert in_shares.finding_counts == at_once.finding_counts
    assert_frame_equal(in_shares.offsets, at_once.offsets)
