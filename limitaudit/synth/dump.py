"""Writing the dump: rotation into files, injected dirt, encodings, compression, ledger.

Line numbers are physical, 1-based, in the decompressed file as written: a
record with a stack trace spans several lines, a CRLF ends one line, and a
`# service=... host=...` header is line 1 of its file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from limitaudit.synth.rand import Rng
from limitaudit.synth.records import Records
from limitaudit.synth.render import money, render_frame
from limitaudit.synth.simulate import USER_ID_BASE, Sim
from limitaudit.synth.timeutil import DAY, HOUR, format_ms, ymd_dash
from limitaudit.synth.world import Host, World

JSON_KINDS = ("garbled", "truncated_json", "nan_json", "non_object_json", "bad_value")
TEXT_KINDS = ("garbled", "bad_value")
# bytes that some line splitters (str.splitlines, universal newlines) treat as
# line ends: never inside a garbled line, so every tool agrees on line numbers
_LINE_BREAKERS = {0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85}
_GARBAGE_ALPHABET = bytes(b for b in range(256) if b not in _LINE_BREAKERS)
_NON_OBJECTS = ("[1,2,3]", '"hello"', "42", "null", "true", '[{"event":"decision"}]')

LEDGER_ORDER_A = (
    "user_id",
    "region",
    "change_id",
    "limit_before",
    "limit_after",
    "source",
    "changed_at",
)
LEDGER_ORDER_B = (
    "change_id",
    "changed_at",
    "user_id",
    "source",
    "limit_after",
    "limit_before",
    "region",
)
LEDGER_ORDER_PQ = (
    "changed_at",
    "change_id",
    "user_id",
    "limit_before",
    "limit_after",
    "source",
    "region",
)


@dataclass(frozen=True)
class PlannedFile:
    rel: str
    host: Host
    lo: int | None  # written-time range [lo, hi)
    hi: int | None
    compress: str  # "" | "gz" | "zst"
    header: bool
    cut: bool = False
    multimember: bool = False


@dataclass
class DumpLog:
    files: list[tuple[str, str, int]] = field(default_factory=list)  # rel, kind, lines
    dirt: list[tuple[str, int, str]] = field(default_factory=list)
    variants: list[tuple[str, int, str]] = field(default_factory=list)
    lost: set[int] = field(default_factory=set)
    loss_reason: dict[int, str] = field(default_factory=dict)
    where: dict[int, tuple[str, int]] = field(default_factory=dict)  # rec_id -> file, line
    cut_info: dict[str, object] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)


_MARK = "\x00LIMITAUDIT_GARBAGE_"


def _encode_lines(lines: pl.Series, garbage: dict[bytes, bytes], eol: str) -> bytes:
    """The file's bytes: one line per value, garbled lines spliced in as raw bytes."""
    buf = io.BytesIO()

    def put(part: pl.Series) -> None:
        if part.len():
            pl.DataFrame({"line": part}).write_csv(
                buf, include_header=False, quote_style="never", line_terminator=eol
            )

    if not garbage:
        put(lines)
        return buf.getvalue()
    at = lines.str.starts_with(_MARK).arg_true().to_list()
    prev = 0
    for i in at:
        put(lines.slice(prev, i - prev))
        buf.write(garbage[str(lines[i]).encode()] + eol.encode())
        prev = i + 1
    put(lines.slice(prev))
    return buf.getvalue()


def _insert_rows(df: pl.DataFrame, inserts: list[tuple[int, str, str]]) -> pl.DataFrame:
    """Extra lines after given rows, without re-sorting the whole file."""
    if not inserts:
        return df
    order = sorted(range(len(inserts)), key=lambda i: (inserts[i][0], i))
    extra = (
        pl.DataFrame(
            {"line": [inserts[i][1] for i in order], "dirt_kind": [inserts[i][2] for i in order]},
            schema={"line": pl.String, "dirt_kind": pl.String},
        )
        .with_columns(
            [
                pl.lit(1 if c == "nl" else None, dtype=df.schema[c]).alias(c)
                for c in df.columns
                if c not in ("line", "dirt_kind")
            ]
        )
        .select(df.columns)
    )
    pieces: list[pl.DataFrame] = []
    prev = 0
    k = 0
    while k < len(order):
        pos = inserts[order[k]][0]
        k2 = k
        while k2 < len(order) and inserts[order[k2]][0] == pos:
            k2 += 1
        pieces.append(df.slice(prev, pos + 1 - prev))
        pieces.append(extra.slice(k, k2 - k))
        prev = pos + 1
        k = k2
    pieces.append(df.slice(prev))
    return pl.concat(pieces, how="vertical")


def count_lines(data: bytes) -> int:
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def plan_files(world: World, dirt: bool) -> list[PlannedFile]:
    out: list[PlannedFile] = []
    last = world.days - 1
    for h in world.engine:
        for d in range(world.days):
            ds = world.start + d * DAY
            date = ymd_dash(ds)
            ext = h.archive
            lo = None if d == 0 else ds
            if d < last:
                out.append(
                    PlannedFile(
                        f"{h.name}/limit-engine.{date}.log.{ext}",
                        h,
                        lo,
                        ds + DAY,
                        ext,
                        False,
                        multimember=world.multimember_host == h.idx,
                    )
                )
                continue
            cut = dirt and world.cut_host == h.idx
            out.append(
                PlannedFile(
                    f"{h.name}/limit-engine.{date}.log.{ext}",
                    h,
                    lo,
                    ds + 8 * HOUR,
                    "gz" if cut else ext,
                    False,
                    cut=cut,
                    multimember=world.multimember_host == h.idx,
                )
            )
            out.append(
                PlannedFile(
                    f"{h.name}/limit-engine.log.1", h, ds + 8 * HOUR, ds + 16 * HOUR, "", False
                )
            )
            out.append(
                PlannedFile(
                    f"{h.name}/limit-engine.log",
                    h,
                    ds + 16 * HOUR,
                    None,
                    "",
                    h.fmt == "text" and h.idx % 2 == 0,
                )
            )
    ntf = world.ntf
    for d in range(world.days):
        ds = world.start + d * DAY
        lo = None if d == 0 else ds
        if d < last:
            out.append(
                PlannedFile(
                    f"{ntf.name}/notifier.{ymd_dash(ds)}.log.gz", ntf, lo, ds + DAY, "gz", False
                )
            )
        else:
            out.append(
                PlannedFile(f"{ntf.name}/notifier.log.1", ntf, lo, ds + 12 * HOUR, "", False)
            )
            out.append(
                PlannedFile(f"{ntf.name}/notifier.log", ntf, ds + 12 * HOUR, None, "", False)
            )
    for h in (world.cfg, world.mdl, world.feed, world.ops):
        out.append(
            PlannedFile(
                f"{h.name}/{h.service}.log",
                h,
                None,
                None,
                "",
                h.fmt == "text" and h.service == "feed-gateway",
            )
        )
    return out


def plan_dirt(files: list[PlannedFile], rng: Rng, total_records: int) -> dict[str, dict[str, int]]:
    """How many defects of each kind go into which file.

    Every kind lands in at least two files of a format that can carry it (one
    when only one exists), plus a few more that grow with the dump.
    """
    eligible = [
        f
        for f in files
        if not f.cut
        and f.host.encoding == "utf-8"
        and f.host.service in ("limit-engine", "notifier")
    ]
    plan: dict[str, dict[str, int]] = {f.rel: {} for f in files}
    extra = total_records // 200_000
    for fmt, kinds in (("json", JSON_KINDS), ("text", TEXT_KINDS)):
        pool = [f.rel for f in eligible if f.host.fmt == fmt]
        if not pool:
            continue
        for kind in kinds:
            chosen = rng.sample(pool, 2) + [rng.choice(pool) for _ in range(extra)]
            for rel in chosen:
                plan[rel][kind] = plan[rel].get(kind, 0) + 1
    return plan


# ---------------------------------------------------------------------------


class DumpWriter:
    def __init__(
        self, out: Path, world: World, sim: Sim, recs: Records, *, dirt: bool, seed: int
    ) -> None:
        self.out = out
        self.world = world
        self.sim = sim
        self.recs = recs
        self.dirt = dirt
        self.rng = Rng(seed, "dump")
        self.log = DumpLog()
        amounts = sim.ledger.select(
            pl.max_horizontal(pl.col("before").max(), pl.col("after").max())
        )
        self.yuan_max = int(amounts.item() or 0) // 100

    # ---- logs ----------------------------------------------------------------

    def write_logs(self) -> None:
        files = plan_files(self.world, self.dirt)
        total = sum(df.height for df in self.recs.frames().values())
        dplan = plan_dirt(files, self.rng.sub("plan"), total) if self.dirt else {}
        by_host: dict[int, list[PlannedFile]] = {}
        for f in files:
            by_host.setdefault(f.host.idx, []).append(f)
        hosts = [h for h in self.world.hosts if by_host.get(h.idx)]
        # Polars and zlib release the GIL: two hosts at a time keep both cores
        # busy.  Every host draws from its own named streams, so the bytes do
        # not depend on which thread finishes first.
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(self._write_host, h, by_host[h.idx], dplan) for h in hosts]
            for fut in futures:
                fut.result()
        if self.dirt:
            # a log that was rotated and never written to again
            self._write_raw(f"{self.world.ops.name}/ops-console.log.1", b"", "empty")

    def _write_host(
        self, host: Host, planned: list[PlannedFile], dplan: dict[str, dict[str, int]]
    ) -> None:
        lines = self._host_lines(host)
        if lines.height == 0:
            return
        for pf in planned:
            part = lines
            if pf.lo is not None:
                part = part.filter(pl.col("w") >= pf.lo)
            if pf.hi is not None:
                part = part.filter(pl.col("w") < pf.hi)
            if part.height == 0:
                continue
            self._write_log_file(pf, part, dplan.get(pf.rel, {}))

    def _host_lines(self, host: Host) -> pl.DataFrame:
        parts = []
        for kind, df in self.recs.frames().items():
            sub = df.filter((pl.col("host") == host.idx) & ~pl.col("drop"))
            if sub.height:
                parts.append(
                    render_frame(
                        kind,
                        sub,
                        host,
                        yuan_max=self.yuan_max,
                        numeric_ids=self.dirt and host.service == "notifier",
                    )
                )
        if not parts:
            return pl.DataFrame()
        lines = pl.concat(parts, how="vertical")
        # Asynchronous appenders: lines leave the buffer up to 1.5 s out of order.
        jit = self.rng.sub(f"jitter/{host.name}").ints(lines.height, 0, 1500)
        return (
            lines.with_columns(key=pl.col("w") + pl.lit(jit))
            .sort("key", "rec_id", maintain_order=True)
            .drop("key")
        )

    def _write_log_file(self, pf: PlannedFile, part: pl.DataFrame, kinds: dict[str, int]) -> None:
        rng = self.rng.sub(f"file/{pf.rel}")
        host = pf.host
        garbage: dict[bytes, bytes] = {}
        header = f"# service={host.service} host={host.name}" if pf.header else None
        frame = part.drop("w").with_columns(dirt_kind=pl.lit(None, pl.String))
        if self.dirt and not pf.cut and host.encoding == "utf-8":
            frame, lost = self._dirty(frame, host, kinds, rng, garbage)
            for rid in lost:
                self.log.lost.add(rid)
                self.log.loss_reason[rid] = "dirt"
        offset = 1 if header else 0
        frame = frame.with_columns(start=pl.col("nl").cum_sum() - pl.col("nl") + 1 + offset)
        lines = frame.get_column("line")
        if header:
            lines = pl.concat([pl.Series("line", [header]), lines])
        data = _encode_lines(lines, garbage, "\r\n" if host.crlf else "\n")
        if host.encoding != "utf-8":
            data = data.decode("utf-8").encode(host.encoding)
        written_lines = offset + int(frame.get_column("nl").sum())

        complete_lines: int | None = None
        if pf.cut:
            data_out, complete_lines, tail = self._cut(data, frame)
            nlines = complete_lines + (1 if tail else 0)
            if tail:
                self.log.dirt.append((pf.rel, complete_lines + 1, "cut_tail"))
        else:
            data_out = self._compress(data, pf)
            nlines = written_lines
        self._write_raw(pf.rel, data_out, "json_log" if host.fmt == "json" else "text_log", nlines)

        kept = frame
        if complete_lines is not None:
            last = pl.col("start") + pl.col("nl") - 1
            gone = frame.filter(last > complete_lines)
            for rid in gone.filter(pl.col("rec_id").is_not_null()).get_column("rec_id").to_list():
                self.log.lost.add(rid)
                self.log.loss_reason[rid] = "cut_gzip"
            kept = frame.filter(last <= complete_lines)
        for line_no, kind in (
            kept.filter(pl.col("dirt_kind").is_not_null()).select("start", "dirt_kind").iter_rows()
        ):
            self.log.dirt.append((pf.rel, line_no, kind))
        clean = pl.col("dirt_kind").is_null()
        z = kept.filter(pl.col("zcand").fill_null(False) & clean)
        for rid, line_no in z.select("rec_id", "start").iter_rows():
            self.log.where[rid] = (pf.rel, line_no)
        v = kept.filter(pl.col("numstr").fill_null(False) & clean)
        for (line_no,) in v.select("start").iter_rows():
            self.log.variants.append((pf.rel, line_no, "numbers_as_strings"))

    # ---- dirt ------------------------------------------------------------------

    def _dirty(
        self,
        df: pl.DataFrame,
        host: Host,
        kinds: dict[str, int],
        rng: Rng,
        garbage: dict[bytes, bytes],
    ) -> tuple[pl.DataFrame, list[int]]:
        n = df.height
        single = df.get_column("nl") == 1
        replace_ok = (df.get_column("replaceable") & single).arg_true()
        nan_ok = (df.get_column("nanable") & single).arg_true()
        used: set[int] = set()
        new_lines: dict[int, tuple[str, str]] = {}
        inserts: list[tuple[int, str, str]] = []  # (after row, line, kind)

        def take(pool: pl.Series) -> int | None:
            for _ in range(20):
                if pool.len() == 0:
                    return None
                p = int(pool[rng.randint(0, pool.len() - 1)])
                if p not in used:
                    used.add(p)
                    return p
            return None

        lines = df.get_column("line")
        is_json = host.fmt == "json"
        for kind, count in sorted(kinds.items()):
            for _ in range(count):
                if kind == "garbled" and (not is_json or rng.random() < 0.5):
                    inserts.append((rng.randint(0, n - 1), self._garbage(rng, garbage), kind))
                    continue
                if kind == "non_object_json":
                    inserts.append((rng.randint(0, n - 1), rng.choice(_NON_OBJECTS), kind))
                    continue
                p = take(nan_ok if kind == "nan_json" else replace_ok)
                if p is None:
                    src = str(lines[rng.randint(0, n - 1)])
                    inserts.append(
                        (rng.randint(0, n - 1), self._fallback_line(kind, src, host, rng), kind)
                    )
                    continue
                new_lines[p] = (self._corrupt(kind, str(lines[p]), is_json, rng), kind)
        lost: list[int] = []
        if new_lines:
            idx = pl.Series(sorted(new_lines), dtype=pl.UInt32)
            rec = df.get_column("rec_id")
            lost = [int(rec[i]) for i in idx.to_list()]
            lines = lines.scatter(idx, pl.Series([new_lines[i][0] for i in idx.to_list()]))
            dk = df.get_column("dirt_kind").scatter(
                idx, pl.Series([new_lines[i][1] for i in idx.to_list()])
            )
            df = df.with_columns(line=lines, dirt_kind=dk)

        # duplicates: shippers retry, so a line reappears right after or a bit later
        singles = (single & df.get_column("dirt_kind").is_null()).arg_true()
        n_dup = max(1, round(n * 0.0004)) if singles.len() else 0
        for _ in range(n_dup):
            p = int(singles[rng.randint(0, singles.len() - 1)])
            inserts.append((min(n - 1, p + rng.randint(0, 3)), str(lines[p]), "duplicate"))
        return _insert_rows(df, inserts), lost

    def _garbage(self, rng: Rng, garbage: dict[bytes, bytes]) -> str:
        ph = f"{_MARK}{len(garbage):06d}\x00"
        body = bytes(rng.choice(_GARBAGE_ALPHABET) for _ in range(rng.randint(12, 90)))
        garbage[ph.encode()] = b"\xff" + body + b"\xfe"
        return ph

    def _corrupt(self, kind: str, line: str, is_json: bool, rng: Rng) -> str:
        if kind == "truncated_json":
            cut = int(len(line) * rng.uniform1(0.3, 0.9))
            return line[:cut].rstrip("}")
        if kind == "garbled":
            for _ in range(10):
                a = int(len(line) * rng.uniform1(0.2, 0.45))
                b = int(len(line) * rng.uniform1(0.55, 0.8))
                cand = line[:a] + line[b:]
                try:
                    json.loads(cand)
                except ValueError:
                    return cand
            return line[: len(line) // 2]
        if kind == "nan_json":
            return re.sub(r'"score":("[^"]*"|[^,}]*)', '"score":NaN', line, count=1)
        if kind == "bad_value":
            if is_json:
                if '"score":' in line and rng.random() < 0.5:
                    return re.sub(r'"score":("[^"]*"|[^,}]*)', '"score":"abc"', line, count=1)
                return re.sub(
                    r'("@timestamp":")\d{4}-\d{2}-\d{2}', r"\g<1>2026-13-45", line, count=1
                )
            if " score=" in line and rng.random() < 0.5:
                return re.sub(r" score=\S*", " score=abc", line, count=1)
            return "2026-13-45" + line[10:]
        raise ValueError(kind)

    def _fallback_line(self, kind: str, src: str, host: Host, rng: Rng) -> str:
        """A defect with no suitable record to overwrite: an extra line instead."""
        if kind == "nan_json":
            return (
                f'{{"@timestamp":"2026-03-14T00:00:00.000Z","level":"DEBUG",'
                f'"service":"{host.service}","host":"{host.name}",'
                f'"event":"heartbeat","cpu_load":NaN}}'
            )
        if kind == "truncated_json":
            return src[: max(5, len(src) // 2)].rstrip("}")
        first = src.split("\n", maxsplit=1)[0]
        return self._corrupt(kind, first, host.fmt == "json", rng)

    # ---- compression -------------------------------------------------------------

    def _compress(self, data: bytes, pf: PlannedFile) -> bytes:
        if pf.compress == "gz":
            if pf.multimember and len(data) > 2:
                mid = data.rfind(b"\n", 0, len(data) // 2) + 1
                return gzip.compress(data[:mid], 1, mtime=0) + gzip.compress(data[mid:], 1, mtime=0)
            return gzip.compress(data, 1, mtime=0)
        if pf.compress == "zst":
            return bytes(zstandard.ZstdCompressor(level=3).compress(data))
        return data

    def _cut(self, data: bytes, frame: pl.DataFrame) -> tuple[bytes, int, bytes]:
        """Cut a gzip member midway; what zlib still inflates is what survives."""
        full = gzip.compress(data, 1, mtime=0)
        starts = set(frame.filter(pl.col("rec_id").is_not_null()).get_column("start").to_list())
        total = count_lines(data)
        rng = self.rng.sub("cut")
        pos = int(len(full) * rng.uniform1(0.55, 0.85))
        line_lens = None
        while pos > 32:
            cut = full[:pos]
            got = zlib.decompressobj(wbits=31).decompress(cut)
            complete = got.count(b"\n")
            tail = got[got.rfind(b"\n") + 1 :]
            nxt = complete + 1
            # the partial line must begin a record: a partial stack-trace line
            # would be read as part of the record above it
            begins = nxt in starts or nxt > total
            if line_lens is None:
                line_lens = data.split(b"\n")
            whole = tail and nxt - 1 < len(line_lens) and tail == line_lens[nxt - 1]
            if begins and not whole:
                self.log.cut_info = {
                    "compressed_bytes": len(full),
                    "kept_bytes": pos,
                    "complete_lines": complete,
                    "partial_tail": bool(tail),
                }
                return cut, complete, tail
            pos -= 61
        raise RuntimeError("no usable cut point")

    def _write_raw(self, rel: str, data: bytes, kind: str, lines: int | None = None) -> None:
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        # hashed now, while in memory: reading a multi-GB dump back costs seconds
        self.log.sha256[rel] = hashlib.sha256(data).hexdigest()
        self.log.files.append((rel, kind, count_lines(data) if lines is None else lines))

    # ---- ledger ------------------------------------------------------------------

    def write_ledger(self, users_n: int) -> None:
        w = self.sim.written.join(
            self.sim.users.select("u", "region"), on="u", how="left", maintain_order="left"
        ).sort("changed_at", "u", "eid")
        ts = format_ms(w.get_column("changed_at"), "T", 0)
        rows = w.select(
            user_id=(pl.col("u") + USER_ID_BASE).cast(pl.String),
            region=pl.col("region"),
            change_id=pl.col("change_id"),
            limit_before=money("before"),
            limit_after=money("after"),
            source=pl.col("source"),
            changed_at=pl.concat_str([pl.lit(ts), pl.lit("Z")]),
            changed_ms=pl.col("changed_at"),
            before_c=pl.col("before"),
            after_c=pl.col("after"),
        )
        n = rows.height
        if users_n >= 100:
            a, b = n // 3, (2 * n) // 3
            self._ledger_csv("ledger/limit_history.part-0000.csv", rows[:a], LEDGER_ORDER_A, "")
            self._ledger_csv(
                "ledger/limit_history.part-0001.csv.gz", rows[a:b], LEDGER_ORDER_B, "gz"
            )
            self._ledger_parquet("ledger/limit_history.part-0002.parquet", rows[b:])
            empty_name = "ledger/limit_history.part-0003.csv"
        else:
            self._ledger_csv("ledger/limit_history.csv", rows, LEDGER_ORDER_A, "")
            empty_name = "ledger/limit_history.delta.csv"
        if self.dirt:
            self._ledger_csv(empty_name, rows[:0], LEDGER_ORDER_A, "")

    def _ledger_csv(
        self, rel: str, rows: pl.DataFrame, order: tuple[str, ...], compress: str
    ) -> None:
        line = rows.select(pl.concat_str([pl.col(c) for c in order], separator=",").alias("line"))
        df = line.with_row_index("pos").with_columns(
            pl.col("pos").cast(pl.Int64),
            sub=pl.lit(0, pl.Int64),
            dirt_kind=pl.lit(None, pl.String),
        )
        n = df.height
        if self.dirt and n:
            rng = self.rng.sub(f"ledger/{rel}")
            ins: list[tuple[int, str, str]] = []
            lines = df.get_column("line")
            for _ in range(max(1, round(n * 0.0005))):
                p = rng.randint(0, n - 1)
                ins.append((min(n - 1, p + rng.randint(0, 3)), str(lines[p]), "ledger_duplicate"))
            for _ in range(2):
                p = rng.randint(0, n - 1)
                fields = str(lines[p]).split(",")
                bad = ",".join(fields[:4]) if rng.random() < 0.5 else str(lines[p]) + ",EXTRA"
                ins.append((rng.randint(0, n - 1), bad, "ledger_garbled"))
            extra = pl.DataFrame(
                {
                    "pos": pl.Series([a for a, _, _ in ins], dtype=pl.Int64),
                    "line": [b for _, b, _ in ins],
                    "sub": pl.Series(range(1, len(ins) + 1), dtype=pl.Int64),
                    "dirt_kind": [c for _, _, c in ins],
                }
            ).select(df.columns)
            df = pl.concat([df, extra]).sort("pos", "sub", maintain_order=True)
        df = df.with_columns(start=pl.int_range(2, df.height + 2))
        for line_no, kind in (
            df.filter(pl.col("dirt_kind").is_not_null()).select("start", "dirt_kind").iter_rows()
        ):
            self.log.dirt.append((rel, line_no, kind))
        buf = io.BytesIO()
        pl.DataFrame(
            {"line": pl.concat([pl.Series("line", [",".join(order)]), df.get_column("line")])}
        ).write_csv(buf, include_header=False, quote_style="never")
        data = buf.getvalue()
        out = gzip.compress(data, 1, mtime=0) if compress == "gz" else data
        self._write_raw(rel, out, "ledger_csv", count_lines(data))

    def _ledger_parquet(self, rel: str, rows: pl.DataFrame) -> None:
        df = rows.select(
            changed_at=pl.from_epoch("changed_ms", time_unit="ms").dt.replace_time_zone("UTC"),
            change_id=pl.col("change_id"),
            user_id=pl.col("user_id"),
            limit_before=pl.col("limit_before").str.to_decimal(scale=2).cast(pl.Decimal(18, 2)),
            limit_after=pl.col("limit_after").str.to_decimal(scale=2).cast(pl.Decimal(18, 2)),
            source=pl.col("source"),
            region=pl.col("region"),
        ).select(list(LEDGER_ORDER_PQ))
        schema = pa.schema(
            [
                ("changed_at", pa.timestamp("ms", tz="UTC")),
                ("change_id", pa.string()),
                ("user_id", pa.string()),
                ("limit_before", pa.decimal128(18, 2)),
                ("limit_after", pa.decimal128(18, 2)),
                ("source", pa.string()),
                ("region", pa.string()),
            ]
        )
        table = df.to_arrow().cast(schema)
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="zstd")
        self.log.files.append((rel, "ledger_parquet", table.num_rows))
