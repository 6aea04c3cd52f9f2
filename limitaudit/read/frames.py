"""Frames the readers keep: compacted, parked on disk or read back, stamped, overruled."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from limitaudit.model.dump import STAMP_SCHEMA, bucket_expr
from limitaudit.model.schema import ORIGIN, DType
from limitaudit.read.parse import REJECTED, LineClass

# Frames a reader keeps, or the files (see Reader._park) to which it has written them:
# a large file's wait on disk until every file is read (see read_files).
Kept = list[pl.DataFrame | Path]


def lazy(parts: Kept, schema: Mapping[str, DType]) -> pl.LazyFrame:
    if not parts:
        return pl.LazyFrame(schema=schema)
    return pl.concat(pl.scan_ipc(p) if isinstance(p, Path) else p.lazy() for p in parts)


def compact(frame: pl.DataFrame) -> pl.DataFrame:
    """A copy that owns its strings and nothing more.

    Polars' strings are views into shared buffers: a few rows filtered out of a block
    keep the whole block's text alive, and a reader keeping a few rows of every block
    would hold the whole dump. The Arrow round trip copies only the strings in use.
    """
    if frame.height == 0:
        return frame
    copy = pl.from_arrow(frame.to_arrow())
    assert isinstance(copy, pl.DataFrame)
    return copy


def by_bucket(frame: pl.DataFrame) -> dict[int, pl.DataFrame]:
    """A frame's rows by the bucket of their user (model.dump.bucket_expr)."""
    parts = frame.with_columns(bucket_expr().alias("_bucket")).partition_by(
        "_bucket", as_dict=True, include_key=False
    )
    return {int(b): rows for (b,), rows in parts.items()}


def stamps_of(table: pl.DataFrame, event: str) -> pl.DataFrame:
    batch = pl.col("bureau_batch") if event == "decision" else pl.lit(None, pl.String)
    return table.select(
        *ORIGIN, "ts", "host", pl.lit(event).alias("event"), batch.alias("batch")
    ).cast(STAMP_SCHEMA)  # type: ignore[arg-type]


def overrule(lines: pl.DataFrame, bad: pl.DataFrame) -> pl.DataFrame:
    """Lines in `bad` (line, reason) become rejected with that reason."""
    if bad.height == 0:
        return lines
    lines = lines.join(
        bad.rename({"reason": "bad_reason"}), on="line", how="left", maintain_order="left"
    )
    return lines.with_columns(
        pl.when(pl.col("bad_reason").is_not_null())
        .then(pl.lit(REJECTED, LineClass))
        .otherwise(pl.col("cls"))
        .alias("cls"),
        pl.coalesce("bad_reason", "reason").alias("reason"),
    ).drop("bad_reason")
