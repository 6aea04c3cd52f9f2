"""The physical line reader: decompression, decoding, splitting, numbering."""

from __future__ import annotations

import codecs
import gzip
import hashlib
import random
import re
import struct
from pathlib import Path

import polars as pl
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from limitaudit.read import lines as lines_module
from limitaudit.read.lines import ReadOutcome, compression_of, read_blocks, read_head
from tests.conftest import gzip_members, write, zstd_frames


def read_all(path: Path) -> tuple[pl.DataFrame, ReadOutcome]:
    outcome = ReadOutcome()
    blocks = list(read_blocks(path, outcome))
    frame = pl.concat(blocks) if blocks else pl.DataFrame()
    return frame, outcome


def expected(texts: list[str], bad: list[bool] | None = None) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "line": range(1, len(texts) + 1),
            "text": texts,
            "bad_encoding": bad or [False] * len(texts),
        },
        schema={"line": pl.UInt32, "text": pl.String, "bad_encoding": pl.Boolean},
    )


def noisy_lines(n: int, seed: int = 0) -> list[str]:
    """Lines that compress poorly, so a cut stream loses only its tail."""
    rng = random.Random(seed)
    return [f"{i:06d} {rng.getrandbits(128):032x}" for i in range(n)]


def test_lines_are_numbered_from_one_and_keep_blanks(tmp_path: Path) -> None:
    path = write(tmp_path, "a.log", b"one\n\n  \nfour\n")
    frame, outcome = read_all(path)
    assert_frame_equal(frame, expected(["one", "", "  ", "four"]))
    assert (outcome.lines, outcome.cut, outcome.tail_incomplete) == (4, None, False)


def test_a_last_line_without_newline_is_a_line(tmp_path: Path) -> None:
    frame, outcome = read_all(write(tmp_path, "a.log", b"one\ntwo"))
    assert_frame_equal(frame, expected(["one", "two"]))
    assert outcome.tail_incomplete is False


def test_crlf_is_stripped(tmp_path: Path) -> None:
    frame, _ = read_all(write(tmp_path, "a.log", b"one\r\n\r\nthree\r\n"))
    assert_frame_equal(frame, expected(["one", "", "three"]))


def test_byte_order_mark_is_not_part_of_the_first_line(tmp_path: Path) -> None:
    frame, _ = read_all(write(tmp_path, "a.log", b"\xef\xbb\xbfone\ntwo\n"))
    assert_frame_equal(frame, expected(["one", "two"]))


@pytest.mark.parametrize(
    ("data", "compression"),
    [
        (b"a\nb\nc\n", "none"),
        (gzip_members(b"a\nb\nc\n"), "gzip"),
        (gzip_members(b"a\nb", b"\nc\n"), "gzip"),
        (zstd_frames(b"a\nb\nc\n"), "zstd"),
        (zstd_frames(b"a\n", b"b\nc\n"), "zstd"),
    ],
    ids=["plain", "gzip", "gzip-multi-member", "zstd", "zstd-multi-frame"],
)
def test_every_compression_gives_the_same_lines(
    tmp_path: Path, data: bytes, compression: str
) -> None:
    path = write(tmp_path, "a.log", data)
    frame, outcome = read_all(path)
    assert_frame_equal(frame, expected(["a", "b", "c"]))
    assert outcome.cut is None
    assert compression_of(data[:4]) == compression


def test_block_edges_do_not_change_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [*noisy_lines(50), "x" * 300, "", "tail"]
    path = write(tmp_path, "a.log.gz", texts, compression="gzip")
    monkeypatch.setattr(lines_module, "RAW_CHUNK", 16)
    monkeypatch.setattr(lines_module, "BLOCK_BYTES", 64)
    outcome = ReadOutcome()
    blocks = list(read_blocks(path, outcome))
    assert len(blocks) > 10
    assert_frame_equal(pl.concat(blocks), expected(texts))
    assert outcome.lines == len(texts)


def test_truncated_gzip_yields_every_complete_line_and_the_partial_tail(tmp_path: Path) -> None:
    texts = noisy_lines(2000)
    whole = gzip_members("".join(f"{t}\n" for t in texts).encode())
    path = write(tmp_path, "a.log.gz", whole[: len(whole) // 2])
    frame, outcome = read_all(path)
    *complete, tail = frame["text"].to_list()
    assert complete == texts[: len(complete)]
    assert len(complete) > 500
    assert texts[len(complete)].startswith(tail)
    assert tail != texts[len(complete)]
    assert outcome.tail_incomplete is True
    assert outcome.cut == "gzip stream ends before its end marker (file cut off)"
    assert outcome.lines == frame.height


def test_gzip_cut_in_its_trailer_keeps_every_line(tmp_path: Path) -> None:
    whole = gzip_members(b"a\nb\n")
    frame, outcome = read_all(write(tmp_path, "a.log.gz", whole[:-4]))
    assert_frame_equal(frame, expected(["a", "b"]))
    assert outcome.tail_incomplete is False
    assert outcome.cut == "gzip stream ends before its end marker (file cut off)"


def test_truncated_zstd_yields_the_complete_blocks(tmp_path: Path) -> None:
    texts = noisy_lines(20000)
    whole = zstd_frames("".join(f"{t}\n" for t in texts).encode())
    frame, outcome = read_all(write(tmp_path, "a.zst", whole[: len(whole) * 3 // 4]))
    *complete, tail = frame["text"].to_list()
    assert complete == texts[: len(complete)]
    assert len(complete) > 5000
    assert texts[len(complete)].startswith(tail)
    assert outcome.cut == "zstd stream ends before its end marker (file cut off)"
    assert outcome.tail_incomplete is True


def test_corrupt_gzip_keeps_what_decompresses_and_says_where(tmp_path: Path) -> None:
    texts = noisy_lines(2000)
    whole = gzip_members("".join(f"{t}\n" for t in texts).encode())
    middle = len(whole) // 2
    damaged = whole[:middle] + bytes(200) + whole[middle + 200 :]
    frame, outcome = read_all(write(tmp_path, "a.log.gz", damaged))
    assert outcome.cut is not None
    at = re.fullmatch(r"corrupt gzip data at byte ([\d,]+): .+", outcome.cut)
    assert at is not None and middle <= int(at.group(1).replace(",", "")) <= len(whole)
    # Every line before the damaged member is kept, as it was written.
    kept = frame["text"].to_list()
    assert len(kept) > 500
    assert kept[:500] == texts[:500]


def test_a_bit_flipped_mid_member_loses_only_what_follows_it(tmp_path: Path) -> None:
    # One member: zlib notices the damage only at its end (the CRC), and what came before
    # the damage decompresses as it was.
    texts = noisy_lines(3000)
    one = bytearray(gzip.compress("".join(f"{t}\n" for t in texts).encode()))
    one[len(one) // 2] ^= 0x55
    frame, outcome = read_all(write(tmp_path, "flip.log.gz", bytes(one)))
    assert outcome.cut is not None and "corrupt gzip data at byte" in outcome.cut
    assert frame.height > 1000
    assert frame["text"].to_list()[:1000] == texts[:1000]


def test_skippable_frames_and_empty_members_are_read_through(tmp_path: Path) -> None:
    texts = noisy_lines(300)
    body = "".join(f"{t}\n" for t in texts).encode()
    # pzstd and seekable-zstd writers start with a skippable frame (magic 0x184D2A5?).
    skippable = struct.pack("<II", 0x184D2A53, 4) + b"\0\0\0\0"
    zstd_file = skippable + zstandard.ZstdCompressor().compress(b"") + zstd_frames(body)
    gzip_file = gzip.compress(b"") + gzip.compress(body) + gzip.compress(b"")
    for name, data in (("a.log.zst", zstd_file), ("b.log.gz", gzip_file)):
        frame, outcome = read_all(write(tmp_path, name, data))
        assert outcome.cut is None, name
        assert frame["text"].to_list() == texts, name
    assert compression_of(skippable) == "zstd"


def test_gbk_file_is_decoded_as_gbk(tmp_path: Path) -> None:
    path = write(tmp_path, "a.log", ["ok", "用户申请冻结"], encoding="gbk")
    frame, outcome = read_all(path)
    assert_frame_equal(frame, expected(["ok", "用户申请冻结"]))
    assert outcome.encoding == "gbk"


def test_undecodable_line_is_flagged_and_others_are_kept(tmp_path: Path) -> None:
    data = "客户投诉\n".encode() + b"\xff\xfe\x80\n" + "额度调整\n".encode()
    frame, outcome = read_all(write(tmp_path, "a.log", data))
    assert_frame_equal(
        frame, expected(["客户投诉", "\ufffd\ufffd\ufffd", "额度调整"], [False, True, False])
    )
    assert outcome.encoding == "utf-8"


def test_garbled_line_that_is_valid_gbk_does_not_turn_utf8_into_gbk(tmp_path: Path) -> None:
    # Much UTF-8 Chinese is also valid GBK; one cut character must not flip the block.
    data = "客户投诉\n逾期\n".encode() + b"x\xe7\x94\n" + "人工\n".encode()
    frame, outcome = read_all(write(tmp_path, "a.log", data))
    assert_frame_equal(
        frame,
        expected(["客户投诉", "逾期", "x\ufffd", "人工"], [False, False, True, False]),
    )
    assert outcome.encoding == "utf-8"


def test_empty_file_has_no_lines(tmp_path: Path) -> None:
    frame, outcome = read_all(write(tmp_path, "a.log", b""))
    assert frame.height == 0
    assert outcome.lines == 0


def test_read_head_decompresses_the_start(tmp_path: Path) -> None:
    path = write(tmp_path, "a.gz", "x" * 100_000 + "\n", compression="gzip")
    compression, head, outcome = read_head(path, limit=1000)
    assert (compression, head, outcome.cut) == ("gzip", b"x" * 1000, None)


def test_read_head_reports_a_stream_cut_before_any_output(tmp_path: Path) -> None:
    whole = zstd_frames(b"a\nb\n")
    compression, head, outcome = read_head(write(tmp_path, "a.zst", whole[:5]), 1000)
    assert (compression, head) == ("zstd", b"")
    assert outcome.cut == "zstd stream ends before its end marker (file cut off)"


def test_a_utf8_log_with_a_line_of_binary_garbage_stays_utf8(tmp_path: Path) -> None:
    # Most byte pairs are GBK: a garbage line neither reading takes is no evidence of GBK.
    data = b"plain ascii\n" + b"\xff\x81\x40\xd6\xd0\x80\x00\xfe\n" + "额度\n".encode()
    frame, outcome = read_all(write(tmp_path, "a.log", data))
    assert outcome.encoding == "utf-8"
    assert frame["bad_encoding"].to_list() == [False, True, False]
    assert frame["text"][2] == "额度"
    only_garbage = b"plain ascii\n" + b"\xff\x81\x40\xd6\xd0\x80\x00\xfe\nmore ascii\n"
    _, outcome = read_all(write(tmp_path, "b.log", only_garbage))
    assert outcome.encoding == "utf-8"


# Pieces of dirty text: what splitting, CR stripping and decoding each have to get right.
_PIECES = [
    b"a",
    b"key=value ",
    b"\n",
    b"\r",
    b"\r\n",
    b"\x00",
    b"\t",
    codecs.BOM_UTF8,
    "额度".encode(),
    "额度".encode("gbk"),
    "额度".encode()[:2],  # a character cut in two
    b"\xff\xfe",
    b"\x80",
    # What Polars would take for compressed data at the start of a block.
    b"\x1f\x8b\x08\x00",
    b"x\x01",
    b"x\x9c",
    b"\x28\xb5\x2f\xfd",
    b"BZh9",
]


@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=40))
@settings(max_examples=400, deadline=None)
def test_polars_splits_a_block_as_python_decodes_it(pieces: list[bytes]) -> None:
    # A block that Polars' line reader takes must read as the Python path reads it, and a
    # block it refuses falls back to that path: either way the same lines and encoding.
    data = b"".join(pieces)
    fast, slow = ReadOutcome(), ReadOutcome()
    got = lines_module._lines(data, 7, fast)
    assert_frame_equal(got, lines_module._decoded(data, 7, slow))
    assert fast.encoding == slow.encoding


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_the_file_is_hashed_only_when_asked(tmp_path: Path, compression: str) -> None:
    path = write(tmp_path, "a.log", ["one", "额度", "three"], compression=compression)
    outcome = ReadOutcome()
    list(read_blocks(path, outcome))
    assert outcome.sha256 is None
    outcome = ReadOutcome()
    list(read_blocks(path, outcome, hashed=True))
    assert outcome.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
