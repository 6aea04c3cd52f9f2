"""Shared helpers: small dumps written into tmp_path, and the accounting identity.

Records are built from keyword fields so a test shows only what it is about;
`ABSENT` drops a key that a builder would otherwise write.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import zstandard

from limitaudit.model.dump import COUNTS, Dump, FileReport
from limitaudit.read import read_dump
from limitaudit.synth import SynthOptions, generate

ABSENT: Any = object()
# 10:12:03.481 in Shanghai.
UTC_TIME = datetime(2026, 3, 14, 2, 12, 3, 481000, tzinfo=UTC)
ISO_TIME = "2026-03-14T10:12:03.481+08:00"
TEXT_TIME = "2026-03-14 10:12:03.481"
USER = "2088102000000123"
# The accounting identity: every physical line is exactly one of these.
PARTS = ["records", "continuation", "meta", "blank", "duplicates", "rejected"]


def _drop_absent(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not ABSENT}


def json_record(event: str = "decision", **fields: Any) -> str:
    """One JSON log line; `at` gives the `@timestamp`."""
    record = {
        "@timestamp": fields.pop("at", ISO_TIME),
        "level": "INFO",
        "service": "limit-engine",
        "host": "le-07",
        "event": event,
        **fields,
    }
    return json.dumps(_drop_absent(record), ensure_ascii=False, separators=(",", ":"))


def decision(**fields: Any) -> str:
    """A JSON `decision` line with the required fields filled in."""
    defaults = {"user_id": USER, "limit_before": 50000.0, "limit_after": 0.0}
    return json_record("decision", **{**defaults, **fields})


def text_record(
    message: str,
    *,
    at: str = TEXT_TIME,
    level: str = "INFO",
    trace: str = "9f2c1a7b",
    logger: str = "c.a.r.limit.DecisionLogger",
) -> str:
    """One logback line in the engine's pattern."""
    return f"{at} {level:<5} [limit-exec-12] [traceId={trace}] {logger} - {message}"


def as_bytes(content: str | bytes | Sequence[str], encoding: str = "utf-8") -> bytes:
    """Text, raw bytes, or lines (each ended by a newline)."""
    if isinstance(content, bytes):
        return content
    if not isinstance(content, str):
        content = "".join(f"{line}\n" for line in content)
    return content.encode(encoding)


def gzip_members(*parts: bytes) -> bytes:
    return b"".join(gzip.compress(p, mtime=0) for p in parts)


def zstd_frames(*parts: bytes) -> bytes:
    compressor = zstandard.ZstdCompressor()
    return b"".join(compressor.compress(p) for p in parts)


def write(
    root: Path,
    name: str,
    content: str | bytes | Sequence[str],
    *,
    compression: str | None = None,
    encoding: str = "utf-8",
) -> Path:
    """Write a file of a dump under `root`, creating its directories."""
    data = as_bytes(content, encoding)
    if compression == "gzip":
        data = gzip_members(data)
    elif compression == "zstd":
        data = zstd_frames(data)
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def csv_lines(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return [",".join(columns), *(",".join(str(v) for v in row) for row in rows)]


LEDGER_COLUMNS = ["change_id", "user_id", "changed_at", "limit_before", "limit_after", "source"]


def report(dump: Dump, name: str) -> FileReport:
    (found,) = [f for f in dump.files if f.source.name == name]
    return found


def assert_identity(file: FileReport) -> None:
    c = file.counts
    assert c["lines"] == sum(c[p] for p in PARTS), c


def assert_counts(file: FileReport, **expected: int) -> None:
    """The file's counts are exactly `expected` (others zero), and they add up."""
    assert file.counts == {k: expected.get(k, 0) for k in COUNTS}
    assert_identity(file)


def rejects_of(dump: Dump) -> list[tuple[str, int, str]]:
    """(file, line, reason) of every rejected line, in order."""
    return [(dump.file_name(f), line, reason) for f, line, reason, _ in dump.rejects.iter_rows()]


@pytest.fixture
def dump_dir(tmp_path: Path) -> Path:
    root = tmp_path / "dump"
    root.mkdir()
    return root


def read(root: Path | Sequence[Path], tz: str = "Asia/Shanghai") -> Dump:
    dump = read_dump([root] if isinstance(root, Path) else list(root), tz=tz)
    for file in dump.files:
        assert_identity(file)
    return dump


def _seed() -> int:
    return int(os.environ.get("LIMITAUDIT_TEST_SEED") or random.SystemRandom().randrange(10**6))


FLEETS = [
    {"text_share": 0.5},
    {"text_share": 1.0, "change_ids": False, "max_skew_s": 110.0},
    {"text_share": 0.0, "max_skew_s": 110.0},
]


# Synth worlds of three fleets, on a fresh seed each run (LIMITAUDIT_TEST_SEED repeats one):
# read, never written to, by every test that holds a command to synth's answers.
@pytest.fixture(scope="session", params=range(len(FLEETS)), ids=["mixed", "text-no-ids", "json"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, int]:
    seed = _seed() + request.param
    users = 250 + seed % 300
    root = tmp_path_factory.mktemp(f"synth{seed}")
    options = SynthOptions(users=users, seed=seed, **FLEETS[request.param])
    generate(root / "dump", root / "answers", options)
    return root / "dump", root / "answers", seed
