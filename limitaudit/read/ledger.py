"""Ledger exports, CSV or Parquet, as rows of the ledger table and their lines' classes."""

from __future__ import annotations

import polars as pl

from limitaudit.model.dump import Finding, SourceFile
from limitaudit.model.schema import LEDGER_FIELDS
from limitaudit.read.frames import overrule
from limitaudit.read.normalise import type_ledger
from limitaudit.read.parse import BLANK, META, RECORD, REJECTED, LineClass

# exports quote free-text columns) or bare. Never empty, unlike a field alone, so
# the regex finds every one (it skips the place after an empty match).
_CSV_FIELD = r',(?:"(?:[^"]|"")*"|[^,"]*)'


def _csv_fields(block: pl.DataFrame) -> pl.DataFrame:
    """`block` with each line's `fields`, unquoted and trimmed, and whether the fields make
    up the whole line (`well_formed`).

    A line without quotes is split on its commas; only quoted ones take the regex, which
    costs some 30 µs a line.
    """
    text = pl.col("text")
    has_quote = text.str.contains('"', literal=True)
    plain = block.filter(~has_quote).with_columns(
        text.str.split(",").list.eval(pl.element().str.strip_chars()).alias("fields"),
        pl.lit(True).alias("well_formed"),
    )
    line = "," + text
    pieces = line.str.extract_all(_CSV_FIELD)
    field = pl.element().str.strip_prefix(",").str.strip_chars()
    size = field.str.len_chars()
    quoted = field.str.starts_with('"') & field.str.ends_with('"') & (size >= 2)
    value = pl.when(quoted).then(
        field.str.slice(1, size - 2).str.replace_all('""', '"', literal=True)
    )
    quoting = block.filter(has_quote).with_columns(
        pieces.list.eval(value.otherwise(field).str.strip_chars()).alias("fields"),
        (pieces.list.join("") == line).alias("well_formed"),
    )
    return pl.concat([plain, quoting]).sort("line")


def _ledger_rows(
    block: pl.DataFrame, header: list[str] | None
) -> tuple[list[str] | None, pl.DataFrame, pl.DataFrame]:
    """Split CSV lines into the ledger's columns; the first non-blank line is the header."""
    text = pl.col("text")
    blank = text.str.strip_chars() == ""
    block = _csv_fields(block)
    fields, well_formed = pl.col("fields"), pl.col("well_formed")
    header_line = -1
    if header is None:
        first = block.filter(~blank & pl.col("pre_reason").is_null()).head(1)
        if first.height:
            header_line = int(first["line"][0])
            header = [c.lower() for c in first["fields"][0]]
    width = len(header or [])
    cls = (
        pl.when(pl.col("pre_reason").is_not_null())
        .then(pl.lit(REJECTED))
        .when(blank)
        .then(pl.lit(BLANK))
        .when(pl.col("line") == header_line)
        .then(pl.lit(META))
        .when(~well_formed | (fields.list.len() != width))
        .then(pl.lit(REJECTED))
        .otherwise(pl.lit(RECORD))
        .cast(LineClass)
    )
    reason = pl.coalesce(
        "pre_reason",
        pl.when(~well_formed).then(pl.lit("malformed CSV quoting")),
        pl.format("expected {} fields, got {}", pl.lit(width), fields.list.len()),
    )
    lines = block.with_columns(cls.alias("cls")).with_columns(
        pl.when(pl.col("cls") == REJECTED).then(reason).alias("reason")
    )
    columns = [(i, c) for i, c in enumerate(header or []) if c in LEDGER_FIELDS]
    rows = lines.filter(pl.col("cls") == RECORD).select(
        "line", *[fields.list.get(i).alias(c) for i, c in columns]
    )
    rows = rows.with_columns(
        pl.when(pl.col(c) != "").then(pl.col(c)).name.keep() for _, c in columns
    )
    return header, lines.select("line", "cls", "reason", "text"), rows


def _as_text(frame: pl.DataFrame, column: str) -> pl.Expr:
    """A Parquet column as the string a CSV export would hold (times as UTC ISO)."""
    dtype = frame.schema[column]
    col = pl.col(column)
    if isinstance(dtype, pl.Datetime):
        utc = (
            col.dt.convert_time_zone("UTC") if dtype.time_zone else col.dt.replace_time_zone("UTC")
        )
        return utc.dt.to_string("%Y-%m-%dT%H:%M:%S%.3fZ").alias(column)
    return col.cast(pl.String).alias(column)


def csv_block(
    file_id: int, block: pl.DataFrame, header: list[str] | None
) -> tuple[list[str] | None, pl.DataFrame, pl.DataFrame]:
    """One block of a CSV export: the header so far, the ledger rows typed, and the block's
    lines with their classes (a row that does not type is rejected with its reason)."""
    header, lines, rows = _ledger_rows(block, header)
    rows = rows.with_columns(pl.lit(file_id, pl.UInt32).alias("file_id"))
    for name in LEDGER_FIELDS:
        if name not in rows.columns:
            rows = rows.with_columns(pl.lit(None, pl.String).alias(name))
    table, bad = type_ledger(rows)
    return header, table, overrule(lines, bad.select("line", "reason"))


def parquet_export(file_id: int, source: SourceFile) -> tuple[pl.DataFrame, pl.DataFrame] | Finding:
    """A Parquet export: the ledger rows typed and a line a row (its text as a CSV export
    would hold it), or the finding that says why it cannot be read."""
    try:
        frame = pl.read_parquet(source.path)
    except Exception as exc:  # a damaged Parquet file raises many kinds of errors
        return Finding("unreadable", source.name, f"{source.name}: unreadable Parquet: {exc}")
    frame = frame.rename({c: c.strip().lower() for c in frame.columns})
    missing = [c for c in ("change_id", "user_id", "changed_at") if c not in frame.columns]
    if missing:
        return Finding(
            "skipped", source.name, f"{source.name}: skipped, Parquet without {', '.join(missing)}"
        )
    present = [c for c in LEDGER_FIELDS if c in frame.columns]
    rows = frame.select(
        pl.lit(file_id, pl.UInt32).alias("file_id"),
        pl.int_range(1, frame.height + 1, dtype=pl.UInt32).alias("line"),
        *[_as_text(frame, c) for c in present],
        *[pl.lit(None, pl.String).alias(c) for c in LEDGER_FIELDS if c not in present],
    )
    table, bad = type_ledger(rows)
    lines = rows.select(
        "line",
        pl.lit(RECORD, LineClass).alias("cls"),
        pl.lit(None, pl.String).alias("reason"),
        pl.concat_str([pl.col(c).fill_null("") for c in LEDGER_FIELDS], separator=",").alias(
            "text"
        ),
    )
    return table, overrule(lines, bad.select("line", "reason"))
