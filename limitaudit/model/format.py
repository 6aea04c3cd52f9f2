"""How times and amounts are written: times in UTC, ISO 8601 with milliseconds and `Z`;
amounts, held as exact fen, in yuan with two decimals."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

ISO_MS = "%Y-%m-%dT%H:%M:%S%.3fZ"


def iso_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[:-3] + "Z"


def iso_expr(column: str | pl.Expr) -> pl.Expr:
    col = pl.col(column) if isinstance(column, str) else column
    return col.dt.convert_time_zone("UTC").dt.to_string(ISO_MS)


def iso_times(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with every time column written as `iso_expr` writes one."""
    times = [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime)]
    return frame.with_columns(iso_expr(pl.col(times)))


def from_iso(column: str | pl.Expr) -> pl.Expr:
    """A time as `iso_expr` writes it, read back (UTC, milliseconds)."""
    col = pl.col(column) if isinstance(column, str) else column
    return col.str.to_datetime(ISO_MS, time_unit="ms", time_zone="UTC")


def yuan(col: str | pl.Expr) -> pl.Expr:
    """Fen as a yuan string with two decimals: 5000007 -> "50000.07", -5 -> "-0.05"."""
    fen = pl.col(col) if isinstance(col, str) else col
    # On the absolute value: floor division would write -5 fen as "-1.95".
    size = fen.abs()
    return pl.when(fen.is_not_null()).then(
        pl.concat_str(
            pl.when(fen < 0).then(pl.lit("-")).otherwise(pl.lit("")),
            (size // 100).cast(pl.String),
            pl.lit("."),
            (size % 100).cast(pl.String).str.zfill(2),
        )
    )


def yuan_text(fen: int | None) -> str:
    """`yuan` for one value; "?" where it is unknown."""
    if fen is None:
        return "?"
    return f"{'-' if fen < 0 else ''}{abs(fen) // 100}.{abs(fen) % 100:02d}"
