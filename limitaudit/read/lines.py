"""Stream a file's physical lines as Polars blocks: decompress, decode, split.

The loop here is over blocks of megabytes, never over lines: splitting and
line numbering are Polars expressions. Decompression is incremental (a file
is never inflated whole), and a compressed file that is cut off yields every
line it holds before the cut.
"""

from __future__ import annotations

import codecs
import hashlib
import itertools
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import polars as pl
import zstandard

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# pzstd and seekable-zstd writers start a file with a skippable frame: magic 0x184D2A5?,
# little-endian, whose low four bits are free.
_SKIPPABLE_TAIL = b"\x2a\x4d\x18"
RAW_CHUNK = 1 << 20
# zstd is fed this much at a time: a damaged block loses at most the output of its piece
# (zstd's decompressor cannot be copied to replay a piece, as zlib's can).
ZSTD_PIECE = 1 << 14
BLOCK_BYTES = 4 << 20


def compression_of(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC) or (
        len(head) >= 4 and head[0] & 0xF0 == 0x50 and head[1:4] == _SKIPPABLE_TAIL
    ):
        return "zstd"
    return "none"


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes) -> bytes: ...


def _new_decompressor(compression: str) -> _Decompressor:
    if compression == "gzip":
        # wbits 31: gzip framing; members are chained by restarting on unused_data.
        return zlib.decompressobj(wbits=31)
    return zstandard.ZstdDecompressor().decompressobj()


def _decompressed_chunks(
    fh: BinaryIO | _Hashing, compression: str, outcome: ReadOutcome, raw_chunk: int
) -> Iterator[bytes]:
    """Yield decompressed bytes; on a cut or corrupt stream, yield what decompresses before
    the damage, stop and say so in outcome."""
    if compression == "none":
        while chunk := fh.read(raw_chunk):
            yield chunk
        return
    if compression == "zstd":
        raw_chunk = min(raw_chunk, ZSTD_PIECE)
    dec = _new_decompressor(compression)
    pending = b""
    offset = 0  # of `raw` in the file
    while True:
        raw = pending or fh.read(raw_chunk)
        pending = b""
        if not raw:
            break
        # zlib's state can be copied: a piece that fails is replayed from the copy, a little
        # at a time, for the lines before the damage.
        before = dec.copy() if compression == "gzip" else None  # type: ignore[attr-defined]
        try:
            out = dec.decompress(raw)
        except (zlib.error, zstandard.ZstdError) as exc:
            good, at = _salvage(before, raw) if before is not None else (b"", 0)
            if good:
                yield good
            outcome.cut = f"corrupt {compression} data at byte {offset + at:,}: {exc}"
            outcome.damaged_at = offset + at
            return
        if out:
            yield out
        if dec.eof:
            # Multi-member gzip and multi-frame zstd (empty and skippable frames too): start
            # over on what is left.
            pending = dec.unused_data
            offset += len(raw) - len(pending)
            dec = _new_decompressor(compression)
            if not pending:
                pending = fh.read(raw_chunk)
                if not pending:
                    return
        else:
            offset += len(raw)
    if not dec.eof:
        outcome.cut = f"{compression} stream ends before its end marker (file cut off)"


_SALVAGE_STEP = 256


def _salvage(dec: Any, raw: bytes) -> tuple[bytes, int]:
    """What `dec` decompresses of `raw` before it fails, and where in `raw` it failed."""
    out = []
    for at in range(0, len(raw), _SALVAGE_STEP):
        try:
            out.append(dec.decompress(raw[at : at + _SALVAGE_STEP]))
        except zlib.error:
            return b"".join(out), at
    return b"".join(out), len(raw)


@dataclass
class ReadOutcome:
    """What reading a file found beyond its lines."""

    encoding: str = "utf-8"
    # Why the file stopped early, or None when it was read to its end.
    cut: str | None = None
    # The file was cut off inside its last line: that line is incomplete.
    tail_incomplete: bool = False
    lines: int = 0
    # Where a compressed stream turned out corrupt, in bytes of the file.
    damaged_at: int | None = None
    # The sha256 of the file's bytes as read (what a store records of it).
    sha256: str | None = None


class _Hashing:
    """A file read through, its bytes hashed as they go by when `hashed`: building a store
    reads a file once, not once more to hash it. An audit has no use for the hash, which
    costs a fifth of splitting a plain file."""

    def __init__(self, fh: BinaryIO, hashed: bool) -> None:
        self.fh, self.digest = fh, hashlib.sha256() if hashed else None

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        if self.digest is not None:
            self.digest.update(data)
        return data


# Polars decompresses bytes that start as gzip, zlib or zstd do, before it splits them
# (SupportedCompression::check in polars-io): a block of text starting so (a garbage line;
# only "x\x01" is also UTF-8) is never handed to it.
_SNIFFED = (GZIP_MAGIC, b"x\x01", b"x\x9c", b"x\xda", ZSTD_MAGIC)


def _lines(data: bytes, first_line: int, outcome: ReadOutcome) -> pl.DataFrame:
    """A block's lines (line, text, bad_encoding): `data` is one or more whole lines, the
    last one's newline included if it has one.

    Polars' line reader splits UTF-8 in a tenth of a microsecond a line, four times
    faster than decoding in Python and splitting a string; it strips a CR before a LF,
    as _block_frame does. It refuses a block with one byte that is not UTF-8, and such a
    block (a few in a dump, and a GBK file's every block), or one it would take for
    compressed data, is decoded and split in Python (`_decoded`)."""
    frame = None if data.startswith(_SNIFFED) else _split_by_polars(data)
    if frame is None:
        return _decoded(data, first_line, outcome)
    if not data.isascii():
        outcome.encoding = "utf-8"
    return frame.select(
        pl.int_range(first_line, first_line + frame.height, dtype=pl.UInt32).alias("line"),
        "text",
        pl.lit(False).alias("bad_encoding"),
    )


def _split_by_polars(data: bytes) -> pl.DataFrame | None:
    """The lines of `data` as one string column, or None where it is not all UTF-8."""
    try:
        return pl.scan_lines(data, name="text").collect()
    except pl.exceptions.ComputeError:
        return None


def _decoded(data: bytes, first_line: int, outcome: ReadOutcome) -> pl.DataFrame:
    """A block's lines as `_lines` gives them, decoded and split here."""
    data = data.removesuffix(b"\n")
    if data.isascii():
        return _block_frame(data.decode("ascii"), first_line, False)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        outcome.encoding, lines = _reading(data, first_line)
        return lines
    outcome.encoding = "utf-8"
    return _block_frame(text, first_line, False)


def _reading(data: bytes, first_line: int) -> tuple[str, pl.DataFrame]:
    """(encoding, lines) of a block that is not UTF-8.

    GBK text is almost never valid UTF-8. A block that is not UTF-8 is GBK (older
    hosts write it) when more of its non-ASCII lines read intact as GBK than as
    UTF-8, unless most of its non-ASCII lines are clean UTF-8: then it is UTF-8
    with a few garbled lines, and reading it as GBK would turn its Chinese into
    mojibake (much UTF-8 Chinese is also valid GBK). A line neither reading takes
    (binary garbage) is no evidence of GBK.
    Undecodable bytes become U+FFFD, and the lines holding them are rejected by
    the parser rather than guessed at.
    """
    utf8 = _block_frame(data.decode("utf-8", errors="replace"), first_line, True)
    intact_utf8, damaged_utf8 = _non_ascii_lines(utf8)
    if intact_utf8 > damaged_utf8:
        return "utf-8", utf8
    # No GBK sequence decodes to U+FFFD: one in the lossy reading marks an undecodable byte.
    text = data.decode("gbk", errors="replace")
    gbk = _block_frame(text, first_line, "\ufffd" in text)
    # GBK only where its non-ASCII lines read as GBK: a UTF-8 block with a line of binary
    # garbage that neither reading takes (most bytes pair up in GBK) stays UTF-8.
    if _non_ascii_lines(gbk)[0] > intact_utf8:
        return "gbk", gbk
    return "utf-8", utf8


def _non_ascii_lines(lines: pl.DataFrame) -> tuple[int, int]:
    """How many lines of a lossy reading hold non-ASCII text intact, and how many hold an
    undecodable byte (U+FFFD)."""
    text, damaged = pl.col("text"), pl.col("bad_encoding")
    # A line with more bytes than characters holds a non-ASCII one (a tenth of a regex).
    intact = (text.str.len_bytes() != text.str.len_chars()) & ~damaged
    counts = lines.select(intact.sum(), damaged.sum()).row(0)
    return int(counts[0]), int(counts[1])


def _block_frame(text: str, first_line: int, damaged: bool) -> pl.DataFrame:
    frame = pl.Series("text", [text]).str.split("\n").explode().to_frame()
    if "\r" in text:  # CRLF endings; looking costs a hundredth of stripping
        frame = frame.with_columns(pl.col("text").str.strip_suffix("\r"))
    return frame.with_columns(
        pl.int_range(first_line, first_line + frame.height, dtype=pl.UInt32).alias("line"),
        (pl.col("text").str.contains("\ufffd", literal=True) if damaged else pl.lit(False)).alias(
            "bad_encoding"
        ),
    ).select("line", "text", "bad_encoding")


def read_blocks(
    path: Path, outcome: ReadOutcome, compression: str | None = None, hashed: bool = False
) -> Iterator[pl.DataFrame]:
    """Yield frames of (line, text, bad_encoding), line numbers from 1, in order; with
    `hashed`, the sha256 of the file's bytes in `outcome`.

    A final line without a newline is a line; if the file was cut off, that
    partial tail is still yielded (the parser rejects it as incomplete) so the
    count of physical lines matches what decompresses. A leading byte-order mark
    is not part of the first line.
    """
    with path.open("rb") as raw:
        compression = compression or compression_of(raw.read(4))
        raw.seek(0)
        fh = _Hashing(raw, hashed)
        carry = b""
        next_line = 1
        buffered: list[bytes] = []
        size = 0
        chunks = _decompressed_chunks(fh, compression, outcome, RAW_CHUNK)
        first = next(chunks, b"").removeprefix(codecs.BOM_UTF8)
        for chunk in itertools.chain([first], chunks):
            buffered.append(chunk)
            size += len(chunk)
            if size < BLOCK_BYTES:
                continue
            data = carry + b"".join(buffered)
            buffered, size = [], 0
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            carry = data[cut + 1 :]
            frame = _lines(data[: cut + 1], next_line, outcome)
            next_line += frame.height
            yield frame
        data = carry + b"".join(buffered)
        if data:
            if not data.endswith(b"\n") and outcome.cut:
                outcome.tail_incomplete = True
            frame = _lines(data, next_line, outcome)
            next_line += frame.height
            yield frame
        outcome.lines = next_line - 1
        if fh.digest is not None:
            # What a cut-off or corrupt stream left unread is hashed too: the file's hash.
            while fh.read(RAW_CHUNK):
                pass
            outcome.sha256 = fh.digest.hexdigest()


def read_head(
    path: Path, limit: int, compression: str | None = None
) -> tuple[str, bytes, ReadOutcome]:
    """The compression and first decompressed bytes of a file, for sniffing.

    The outcome says whether the stream was cut or corrupt: a compressed file
    that yields nothing is empty only if its stream ends properly.
    """
    outcome = ReadOutcome()
    head = b""
    with path.open("rb") as fh:
        compression = compression or compression_of(fh.read(4))
        fh.seek(0)
        for chunk in _decompressed_chunks(fh, compression, outcome, raw_chunk=limit):
            head += chunk
            if len(head) >= limit:
                break
    return compression, head[:limit], outcome
