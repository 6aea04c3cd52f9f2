"""Time arithmetic in integer epoch milliseconds, and fast bulk formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache

import polars as pl

SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR
# Asia/Shanghai has had no daylight saving since 1991: a fixed shift is exact.
SHANGHAI = 8 * HOUR


def parse_start(day: str) -> int:
    d = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    return int(d.timestamp() * 1000)


def dt(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def iso_z(ms: int) -> str:
    return dt(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def ymd(ms: int) -> str:
    return dt(ms).strftime("%Y%m%d")


def ymd_dash(ms: int) -> str:
    return dt(ms).strftime("%Y-%m-%d")


@cache
def _sec_ms_table() -> pl.Series:
    return pl.Series([f"{i // 1000:02d}.{i % 1000:03d}" for i in range(MIN)], dtype=pl.String)


def format_ms(w: pl.Series, sep: str, shift_ms: int) -> pl.Series:
    """`YYYY-MM-DD{sep}HH:MM:SS.mmm` of w + shift_ms.

    strftime costs about 0.3 us a value; these dumps hold tens of millions of
    stamps that share few distinct minutes, so the minute prefix and the
    seconds part are looked up in small tables instead.
    """
    if w.null_count() == w.len():
        return pl.Series(w.name, [None] * w.len(), dtype=pl.String)
    x = w.cast(pl.Int64) + shift_ms
    minutes = x // MIN
    lo = int(minutes.min())  # type: ignore[arg-type]
    hi = int(minutes.max())  # type: ignore[arg-type]
    if hi - lo > 10_000_000:
        raise ValueError("timestamps span more than 19 years")
    fmt = f"%Y-%m-%d{sep}%H:%M:"
    prefixes = pl.Series([dt(m * MIN).strftime(fmt) for m in range(lo, hi + 1)], dtype=pl.String)
    head = prefixes.gather(minutes - lo)
    tail = _sec_ms_table().gather(x % MIN)
    return (head + tail).alias(w.name)
