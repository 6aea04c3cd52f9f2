"""How times are written: UTC, ISO 8601, milliseconds, `Z` (contract section 2)."""

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
