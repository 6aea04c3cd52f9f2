"""The store: a dump ingested once reads back as the very Dump ingest made, every command
answers the same on it as on the raw dump, and adding files equals ingesting them all."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

import limitaudit
import limitaudit.commands.trace as trace_module
import limitaudit.read.reader as reader_module
import limitaudit.read.settle as settle_module
import limitaudit.store as store_module
import limitaudit.store.open as store_open
import limitaudit.store.write as store_write
from limitaudit.analysis.facts import decisions_needed
from limitaudit.cli import app
from limitaudit.commands.audit import AuditResult, audit
from limitaudit.commands.ingest import ADDED, CREATED, UNCHANGED, ingest_store
from limitaudit.commands.scan import scan as scan_dump
from limitaudit.commands.trace import UnknownUser, trace
from limitaudit.model.audit import AuditOptions
from limitaudit.model.dump import Dump
from limitaudit.output.render import dumps_json, write_audit_csv
from limitaudit.read import read_dump
from limitaudit.read.discover import discover, is_store
from limitaudit.read.parallel import read_files
from limitaudit.read.settle import settle
from limitaudit.status import ExitStatus
from limitaudit.store import open_store, write_store
from limitaudit.synth import SynthOptions, generate
from tests.builders import (
    U1,
    U2,
    U3,
    decision,
    ledger_row,
    manual,
    rule,
    write_dump,
)

ENV = {"COLUMNS": "250", "NO_COLOR": "1", "LIMITAUDIT_DUMP": ""}


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env=ENV)


def assert_same_dump(got: Dump, want: Dump, *, same_place: bool = True) -> None:
    """Equal tables (schema, rows and their order), files, rejects, findings and zone.

    `same_place` False: the files were read from a copy of the dump somewhere else.
    """
    assert list(got.tables) == list(want.tables)
    for name, table in want.tables.items():
        assert_frame_equal(got.tables[name], table, check_exact=True)
    if same_place:
        assert got.files == want.files
    else:
        here = [replace(f, source=replace(f.source, path=Path())) for f in got.files]
        assert here == [replace(f, source=replace(f.source, path=Path())) for f in want.files]
    assert_frame_equal(got.rejects, want.rejects)
    assert got.findings == want.findings
    assert got.tz == want.tz


def copy_files(src: Path, dst: Path, files: list[Path]) -> None:
    for path in files:
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 users, every cause and every kind of dirt."""
    root = tmp_path_factory.mktemp("synth")
    generate(root / "dump", root / "answers", SynthOptions(users=120, seed=41))
    return root / "dump"


@pytest.fixture(scope="module")
def whole(synth: Path) -> Dump:
    # As ingest makes it, with the line hashes a store keeps.
    return settle(read_files(discover([synth])), keep=True)


@pytest.fixture(scope="module")
def store(whole: Dump, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Written from the Dump already read (the tests below ingest through the command).
    out = tmp_path_factory.mktemp("store") / "store"
    write_store(whole, out)
    return out


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """A few zeroings in two hosts' logs and a ledger."""
    records = [
        decision(U1, 20, 50000, 0, [rule("R_FRAUD")], change_id="c1", fraud=True),
        decision(U2, 21, 30000, 0, [rule("R_NO_SCORE")], change_id="c2", host="le-02", score=None),
        manual(25, U3, "OPS-1", 9000, 0, change_id="c3"),
    ]
    ledger = [
        ledger_row("c1", U1, 20.05, 50000, 0),
        ledger_row("c2", U2, 21.05, 30000, 0),
        ledger_row("c3", U3, 25.05, 9000, 0, "manual"),
    ]
    return write_dump(tmp_path / "dump", records, ledger)


# -- reading back ---------------------------------------------------------------------


def test_store_reads_back_the_dump_ingest_made(synth: Path, store: Path, whole: Dump) -> None:
    assert is_store(store)
    assert_same_dump(open_store(store), whole)
    manifest = json.loads((store / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["polars_version"] == pl.__version__
    assert manifest["time_zone"] == "Asia/Shanghai"
    for entry in manifest["files"]:
        data = (synth / entry["name"]).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    # One generation of data, and nothing else beside the manifest.
    assert sorted(p.name for p in store.iterdir()) == ["g000001", "manifest.json"]


def json_text(data: object) -> str:
    return dumps_json(data) + "\n"


def test_kept_rows_parked_on_disk_read_back_as_they_were(
    synth: Path, whole: Dump, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader_module, "PARK_ROWS", 1)  # every file's rows go to disk
    got = settle(read_files(discover([synth])), keep=True)
    assert_same_dump(got, whole)
    for name in ("stamps", "keys", "ledger_repeats"):
        assert_frame_equal(getattr(got, name), getattr(whole, name), check_exact=True)


def test_a_built_store_spills_decisions_and_holds_the_whole_dump(
    synth: Path, store: Path, whole: Dump, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ingest` puts decisions aside as it reads (a few hundred rows at a time here) and
    writes them bucket by bucket: the store holds what writing the whole Dump gives."""
    monkeypatch.setattr(reader_module, "SPILL_ROWS", 300)
    built = tmp_path / "built"
    result = ingest_store([synth], built)
    assert result.action == CREATED
    assert_same_dump(open_store(built), whole)
    manifest = json.loads((built / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["tables"] == {name: t.height for name, t in whole.tables.items()}
    for name in ("users.parquet", "stamps.parquet", "keys.parquet", "offsets.parquet"):
        data = built / manifest["generation"] / name
        assert_frame_equal(pl.read_parquet(data), pl.read_parquet(store / "g000001" / name))
    assert [p.name for p in tmp_path.iterdir()] == ["built"]  # the spill is gone


def csv_text(result: AuditResult) -> str:
    out = io.StringIO()
    write_audit_csv(result, out)
    return out.getvalue()


def test_audit_scan_and_trace_answer_the_same_on_the_store(
    synth: Path, store: Path, whole: Dump, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The raw dump's answers are computed once, in process (the command line would ingest
    # the dump for each); the store's come from the command line.
    full = audit(whole, AuditOptions())
    wide = audit(whole, AuditOptions(below_yuan=100))
    expected = {
        ("audit", "--format", "csv"): csv_text(full),
        ("audit", "--format", "json"): json_text(full.to_data()),
        ("audit", "--format", "json", "--below", "100"): json_text(wide.to_data()),
        ("scan", "--format", "json"): json_text(scan_dump(whole).to_data()),
    }
    for (command, *args), want in expected.items():
        got = invoke(command, str(store), *args)
        assert got.stdout == want, args
    monkeypatch.setattr(trace_module, "audit", lambda dump, options: full)
    for user in full.zeroings.group_by("cause").agg(pl.col("user_id").min())["user_id"]:
        got = invoke("trace", user, str(store), "--format", "json")
        assert got.exit_code == ExitStatus.OK, got.stderr
        assert got.stdout == json_text(trace(whole, user, AuditOptions()).to_data())
    monkeypatch.undo()
    # A trace of the files reads its user's decisions whole from their bucket on disk, the
    # others' as an audit does (read_dump's detail): the answers of a whole read.
    monkeypatch.setattr(settle_module, "SHARE_ROWS", 1)
    for user in full.zeroings.group_by("cause").agg(pl.col("user_id").min())["user_id"]:
        got_raw = limitaudit.trace(user, synth)
        assert got_raw.to_data() == trace(whole, user, AuditOptions()).to_data(), user
    monkeypatch.undo()
    # A table and an exit status: through the command line on both.
    user = full.zeroings["user_id"][0]
    raw, stored = invoke("trace", user, str(synth)), invoke("trace", user, str(store))
    assert (stored.exit_code, stored.stdout) == (raw.exit_code, raw.stdout)
    stored, raw = invoke("audit", str(store)), invoke("audit", str(synth))
    assert stored.exit_code == ExitStatus.FINDINGS
    # What could not be read is said alike from the store and from the dump.
    assert stored.stderr == raw.stderr
    assert stored.stderr.endswith(f"\nfailing: {full.by_cause()['unexplained']:,} unexplained\n")


def test_an_audit_reads_the_store_a_share_of_users_at_a_time(
    store: Path, whole: Dump, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the store's facts, an audit reads the per-user tables a share of buckets at a
    time (a few dozen decisions a share here), and answers as the whole dump does."""
    options = AuditOptions()
    full = audit(whole, options)
    monkeypatch.setattr(store_open, "STORE_PART_ROWS", 20)
    dump = open_store(store, decisions=decisions_needed(options), options=options)
    assert dump.parts is not None
    assert dump.tables["decision"].height == 0
    assert dump.facts is not None
    assert len(list(dump.parts(dump.facts, True, None))) > 4
    got = audit(dump, options)
    assert csv_text(got) == csv_text(full)
    assert got.to_data() == full.to_data()
    # Other options than the kept facts': the whole tables, read at once.
    assert open_store(store, options=AuditOptions(below_yuan=100)).parts is None


def test_an_audit_whose_store_an_ingest_replaces_stops_with_a_clear_error(
    store: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    options = AuditOptions()
    dump = open_store(copy, decisions=decisions_needed(options), options=options)
    shutil.rmtree(copy / "g000001")  # as an ingest does once its new generation is in place
    with pytest.raises(store_module.StoreError, match="replaced the store while this audit"):
        audit(dump, options)


def test_trace_reads_one_user_and_answers_as_the_whole_dump(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = open_store(store)
    options = AuditOptions()
    full = audit(whole, options)
    # One user of each cause, and users with no zeroing at all.
    users = [
        *full.zeroings.group_by("cause").agg(pl.col("user_id").min())["user_id"],
        *whole.ledger.join(full.zeroings, on="user_id", how="anti")["user_id"].head(3),
    ]
    got, alone = {}, {}
    for user in users:
        one = open_store(store, user)
        assert one.scope is not None
        for name in ("ledger", "decision", "manual_action", "user_notice"):
            assert set(one.tables[name]["user_id"]) <= {user}
        got[user] = trace(one, user, options)
        # A whole read traces one user alone too (Dump.for_user), with facts it makes.
        alone[user] = trace(whole, user, options)
    # Expected: trace over the whole store, with its audit computed once.
    monkeypatch.setattr(trace_module, "audit", lambda dump, opts: full)
    for user, result in got.items():
        want = trace(whole, user, options)
        for one_user in (result, alone[user]):
            assert_frame_equal(one_user.zeroings, want.zeroings, check_exact=True)
            assert_frame_equal(one_user.timeline, want.timeline, check_exact=True)


def test_trace_with_other_options_or_an_unknown_user_on_the_store(store: Path, whole: Dump) -> None:
    # Other options than the store's audit facts were made with: the whole store is read.
    options = AuditOptions(below_yuan=5000, tolerance_s=30)
    user = whole.ledger["user_id"][0]
    got = invoke("trace", user, str(store), "--tolerance", "30", "--below", "5000", "-f", "json")
    assert got.stdout == json_text(trace(whole, user, options).to_data())
    with pytest.raises(UnknownUser, match="nearest ids in the dump") as raised:
        trace(whole, "2088", AuditOptions())
    got = invoke("trace", "2088", str(store))
    assert got.exit_code == ExitStatus.ERROR
    assert got.stderr == f"limitaudit: {raised.value}\n"


# -- adding files ---------------------------------------------------------------------


def test_incremental_ingest_equals_a_full_one(synth: Path, whole: Dump, tmp_path: Path) -> None:
    files = sorted(p for p in synth.rglob("*") if p.is_file())
    dump, out = tmp_path / "dump", tmp_path / "store"
    # Every other file first: the second batch's files fall between the first's by name.
    copy_files(synth, dump, files[1::2])
    first = ingest_store([dump], out)
    assert first.action == CREATED
    copy_files(synth, dump, files[0::2])
    second = invoke("ingest", str(dump), "--store", str(out), "--format", "json")
    assert second.exit_code == ExitStatus.OK, second.stderr
    data = json.loads(second.stdout)
    assert data["action"] == ADDED
    assert [f["path"] for f in data["read"]] == [
        p.relative_to(synth).as_posix() for p in files[0::2]
    ]
    assert data["unchanged"] == len(files[1::2])
    assert_same_dump(open_store(out), whole, same_place=False)
    assert sorted(p.name for p in out.iterdir()) == ["g000002", "manifest.json"]
    # The added files' sha256, taken as they were read, are their bytes': nothing changed.
    assert ingest_store([dump], out).action == UNCHANGED


def test_a_repeat_of_an_old_line_in_a_new_file_is_still_a_duplicate(
    small: Path, tmp_path: Path
) -> None:
    out = tmp_path / "store"
    ingest_store([small], out)
    # A new host directory that sorts before le-01, repeating one of le-01's lines, and a
    # ledger export that sorts before export.csv, repeating c1 with another time.
    repeated = (small / "le-01" / "service.log").read_text(encoding="utf-8").splitlines()[0]
    (small / "a-01").mkdir()
    (small / "a-01" / "service.log").write_text(repeated + "\n", encoding="utf-8")
    (small / "ledger" / "a-export.csv").write_text(
        "change_id,user_id,changed_at,limit_before,limit_after,source\n"
        + ",".join(ledger_row("c1", U1, 20.07, 50000, 0))
        + "\n",
        encoding="utf-8",
    )
    assert ingest_store([small], out).action == ADDED
    stored, whole = open_store(out), read_dump([small])
    assert_same_dump(stored, whole)
    counts = {f.source.name: f.counts for f in stored.files}
    # The new files come first by name: their copies are kept, the old ones are repeats.
    assert counts["a-01/service.log"]["duplicates"] == 0
    assert counts["le-01/service.log"]["duplicates"] == 1
    assert counts["ledger/export.csv"]["duplicates"] == 1
    assert [f.kind for f in stored.findings] == ["ledger_conflict"]


def test_ingesting_the_same_dump_again_does_nothing(synth: Path, store: Path) -> None:
    manifest = (store / "manifest.json").read_bytes()
    result = invoke("ingest", str(synth), "--store", str(store), "--format", "json")
    assert result.exit_code == ExitStatus.OK
    assert json.loads(result.stdout)["action"] == UNCHANGED
    assert "is up to date" in result.stderr
    assert "nothing ingested" in result.stderr
    assert (store / "manifest.json").read_bytes() == manifest


def test_a_changed_file_is_reported_and_nothing_is_mixed_in(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "store"
    ingest_store([small], out)
    manifest = (out / "manifest.json").read_bytes()
    log = small / "le-01" / "service.log"
    # Same size, one byte other: only the hash tells.
    text = log.read_bytes()
    log.write_bytes(text.replace(b"50000", b"50001", 1))
    (small / "le-03").mkdir()
    (small / "le-03" / "service.log").write_text(
        (small / "le-02" / "service.log").read_text(encoding="utf-8").replace("le-02", "le-03"),
        encoding="utf-8",
    )
    result = invoke("ingest", str(small), "--store", str(out))
    assert result.exit_code == ExitStatus.ERROR
    assert "le-01/service.log (same size, other content" in result.stderr
    assert "--replace" in result.stderr
    assert (out / "manifest.json").read_bytes() == manifest
    replaced = invoke("ingest", str(small), "--store", str(out), "--replace", "--format", "json")
    assert replaced.exit_code == ExitStatus.OK, replaced.stderr
    assert json.loads(replaced.stdout)["action"] == "replaced"
    assert_same_dump(open_store(out), read_dump([small]))


def test_a_store_of_another_polars_version_takes_no_new_files(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "store"
    ingest_store([small], out)
    path = out / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["polars_version"] = "0.20.0"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    before = path.read_bytes()
    # Nothing new: nothing to hash, nothing refused.
    assert invoke("ingest", str(small), "--store", str(out)).exit_code == ExitStatus.OK
    (small / "le-09").mkdir()
    (small / "le-09" / "service.log").write_text(
        (small / "le-02" / "service.log").read_text(encoding="utf-8"), encoding="utf-8"
    )
    result = invoke("ingest", str(small), "--store", str(out))
    assert result.exit_code == ExitStatus.ERROR
    assert "Polars 0.20.0" in result.stderr
    assert "--replace" in result.stderr
    assert path.read_bytes() == before
    # Reading it is fine: the hashes only matter to files added later.
    assert invoke("audit", str(out), "--fail-on", "none").exit_code == ExitStatus.OK
    assert invoke("ingest", str(small), "--store", str(out), "--replace").exit_code == 0
    assert_same_dump(open_store(out), read_dump([small]))


def test_an_interrupted_write_leaves_the_previous_store(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "store"
    ingest_store([small], out)
    before = open_store(out)
    (small / "le-09").mkdir()
    (small / "le-09" / "service.log").write_text(
        (small / "le-02" / "service.log").read_text(encoding="utf-8"), encoding="utf-8"
    )

    def crash(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(store_write, "write_atomic", crash)
        with pytest.raises(OSError, match="disk full"):
            ingest_store([small], out)
    assert (out / "g000002").is_dir()  # written in full, but no manifest names it
    assert_same_dump(open_store(out), before)
    assert ingest_store([small], out).action == ADDED
    assert sorted(p.name for p in out.iterdir()) == ["g000003", "manifest.json"]
    assert_same_dump(open_store(out), read_dump([small]))


def test_a_read_that_an_ingest_overtakes_reads_the_new_store(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "store"
    ingest_store([small], out)
    first = store_module.read_manifest(out)
    (small / "le-09").mkdir()
    (small / "le-09" / "service.log").write_text(
        (small / "le-02" / "service.log").read_text(encoding="utf-8"), encoding="utf-8"
    )
    assert ingest_store([small], out).action == ADDED
    assert not (out / first["generation"]).exists()
    # The read took the manifest before the ingest replaced it, and its data went away.
    manifests = iter([first])
    real = store_module.read_manifest
    monkeypatch.setattr(
        store_open, "read_manifest", lambda directory: next(manifests, None) or real(directory)
    )
    assert_same_dump(open_store(out), read_dump([small]))
    monkeypatch.undo()
    # The manifest's own generation gone: damaged, and said so.
    shutil.rmtree(out / real(out)["generation"] / "decision")
    result = invoke("audit", str(out))
    assert result.exit_code == ExitStatus.ERROR
    assert result.stderr.startswith(f"limitaudit: {out}: the store is damaged: ")
    assert result.stderr.endswith("ingest the dump again with --replace\n")


# -- the command line -----------------------------------------------------------------


def test_store_usage_errors(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "store"
    assert invoke("ingest", str(small), "--store", str(out)).exit_code == ExitStatus.OK
    cases = [
        (("audit", str(out), str(small)), "name it alone"),
        (("audit", str(out), "--tz", "UTC"), "read log times in Asia/Shanghai, not UTC"),
        (("ingest", str(small), "--store", str(out), "--tz", "UTC"), "not UTC"),
        (("ingest", str(small), "--store", str(small)), "exists and is not a store"),
        (("ingest", str(out), "--store", str(tmp_path / "s2")), "is a store already"),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == ExitStatus.ERROR, args
        assert message in result.stderr, (args, result.stderr)
    assert not (tmp_path / "s2").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text('{"apiVersion": "v1"}', encoding="utf-8")
    assert not is_store(other)


def test_a_store_inside_the_dump_is_not_part_of_it(small: Path) -> None:
    scan = invoke("scan", str(small), "--format", "json").stdout
    inner = small / ".store"
    assert invoke("ingest", str(small), "--store", str(inner)).exit_code == ExitStatus.OK
    again = invoke("ingest", str(small), "--store", str(inner), "--format", "json")
    assert json.loads(again.stdout)["action"] == UNCHANGED
    assert invoke("scan", str(small), "--format", "json").stdout == scan
    assert invoke("scan", str(inner), "--format", "json").stdout == scan
