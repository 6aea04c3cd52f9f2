"""Garbage mixed into a valid log never breaks ingest, loses a valid record, or the accounting."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from limitaudit.model.schema import EVENTS
from limitaudit.read import lines as lines_module
from tests.conftest import (
    PARTS,
    as_bytes,
    decision,
    gzip_members,
    read,
    text_record,
    zstd_frames,
)

HEADER = b"# service=limit-engine host=le-03"
PACKERS: list[Callable[[bytes], bytes]] = [bytes, gzip_members, zstd_frames]


def _one_line(text: str) -> str:
    return text.replace("\n", " ")


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = sorted({f for fields in EVENTS.values() for f in fields} | {"inputs", "ts_ms", "level"})
recordish = st.fixed_dictionaries(
    {"event": st.sampled_from([*EVENTS, "heartbeat", ""])},
    optional={
        "@timestamp": st.sampled_from(["2026-03-14T10:12:03.481+08:00", "2026-03-14", "x"])
        | json_values,
        **dict.fromkeys(FIELDS, json_values),
    },
)
garbage: st.SearchStrategy[bytes] = st.one_of(
    # Random bytes: NUL, invalid UTF-8, stray CR, valid GBK pairs.
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")),
    st.text(max_size=40).map(lambda s: as_bytes("{" + _one_line(s))),
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    recordish.map(lambda d: json.dumps(d, ensure_ascii=False).encode()),
    st.text(max_size=60).map(lambda s: text_record(_one_line(s)).encode()),
    st.text(max_size=60).map(lambda s: text_record("event=decision " + _one_line(s)).encode()),
    st.sampled_from(
        [b"", b"   ", b"\r", b"# comment", b"\tat a.B.c(B.java:1)", b"java.lang.Error: x", b"\x00"]
    ),
)


@dataclass
class Mixed:
    data: bytes
    # Line number of each valid line, and the user id it carries.
    valid: dict[int, str]


def _valid_line(fmt: str, n: int) -> str:
    user = str(2088100000000000 + n)
    if fmt == "json":
        return decision(user_id=user, reason="客户投诉", limit_before=50000.07)
    return text_record(f"event=decision user_id={user} limit_before=50000.07 limit_after=0")


@st.composite
def mixed_logs(draw: st.DrawFn, segments: int, ratio: int) -> Mixed:
    """Valid decision lines in order, garbage shuffled in, at most `ratio` per valid line."""
    fmt = draw(st.sampled_from(["json", "text"]))
    rng = draw(st.randoms(use_true_random=False))
    lines: list[bytes | tuple[int, bytes]] = [HEADER] if fmt == "text" else []
    count = 0
    for _ in range(draw(st.integers(1, segments))):
        n_valid = draw(st.integers(1, 5))
        part: list[bytes | tuple[int, bytes]] = []
        for _ in range(n_valid):
            part.append((count, _valid_line(fmt, count).encode()))
            count += 1
        part.extend(draw(st.lists(garbage, max_size=ratio * n_valid)))
        rng.shuffle(part)
        # Valid lines stay in order; only garbage moves around them.
        slots = iter(sorted(p for p in part if isinstance(p, tuple)))
        lines.extend(next(slots) if isinstance(p, tuple) else p for p in part)
    valid = {
        i + 1: str(2088100000000000 + item[0])
        for i, item in enumerate(lines)
        if isinstance(item, tuple)
    }
    raw = b"".join((item[1] if isinstance(item, tuple) else item) + b"\n" for item in lines)
    if draw(st.booleans()):
        raw = raw[:-1]  # no newline after the last line
    packer = draw(st.sampled_from(PACKERS))
    return Mixed(packer(raw), valid)


def check(mixed: Mixed) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "le-03").mkdir()
        (root / "le-03" / "limit-engine.log").write_bytes(mixed.data)
        dump = read(root)  # also checks the identity for every file
    (file,) = dump.files
    assert file.source.kind in ("json_log", "text_log")
    counts = file.counts
    assert counts["lines"] == sum(counts[p] for p in PARTS)
    assert counts["lines"] >= max(mixed.valid)
    assert dump.rejects.height == counts["rejected"]
    assert dump.rejects["reason"].null_count() == 0
    decisions = dump.tables["decision"]
    found = dict(decisions.select("line", "user_id").iter_rows())
    assert {line: found.get(line) for line in mixed.valid} == mixed.valid
    kept = decisions.filter(decisions["line"].is_in(list(mixed.valid)))
    assert kept["limit_before"].to_list() == [5_000_007] * len(mixed.valid)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_logs(segments=3, ratio=2))
def test_garbage_never_breaks_ingest_or_loses_valid_records(mixed: Mixed) -> None:
    check(mixed)


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_logs(segments=25, ratio=1), st.integers(40, 400))
def test_garbage_across_block_edges(mixed: Mixed, block_bytes: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lines_module, "RAW_CHUNK", 64)
        mp.setattr(lines_module, "BLOCK_BYTES", block_bytes)
        check(mixed)
