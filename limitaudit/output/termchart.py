"""Small charts in the terminal, in block characters: a sparkline, a user's limit as a
step chart, and a dump's zeroings over time by cause. Rich styles them (colour only on
a terminal); piped, they are plain text."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import groupby

import polars as pl
from rich.text import Text

from limitaudit.model.format import from_iso

BARS = "▁▂▃▄▅▆▇█"
# A sparkline is at most this wide: a longer series sums several bins into a character.
SPARK_WIDTH = 24


def sparkline(
    counts: list[int], width: int = SPARK_WIDTH, top: int | None = None
) -> tuple[str, int]:
    """`counts` as bars, and how many bins each bar sums (more than one when they would be
    wider than `width`). An empty bin is a space: pauses show. `top` is the count of a
    full bar (default: the largest), so that several lines share one scale."""
    step = max(1, -(-len(counts) // width))
    sums = [sum(counts[i : i + step]) for i in range(0, len(counts), step)]
    top = top or max(sums, default=0)
    if top == 0:
        return "", step
    bars = [" " if n == 0 else BARS[min(len(BARS) - 1, (n * len(BARS) - 1) // top)] for n in sums]
    return "".join(bars), step


def over_time(zeroings: pl.DataFrame, bins: int = SPARK_WIDTH) -> tuple[dict[str, str], str]:
    """Each cause's zeroings over the audit's span as a sparkline, all on one scale and
    one axis, and what a character stands for."""
    at = from_iso("zeroed_at")
    span = zeroings.select(at.min().alias("start"), at.max().alias("end"))
    start, end = span.row(0)
    if start is None:
        return {}, ""
    span_ms = int((end - start).total_seconds() * 1000) + 1
    width_ms = max(60_000, -(-span_ms // bins))
    counted = (
        zeroings.group_by("cause", ((at - start).dt.total_milliseconds() // width_ms).alias("bin"))
        .len()
        .sort("cause", "bin")
    )
    series: dict[str, list[int]] = {}
    for cause, b, n in counted.iter_rows():
        series.setdefault(cause, [0] * bins)[b] = n
    top = max(max(s) for s in series.values())
    used = -(-span_ms // width_ms)  # a short span fills fewer than `bins` characters
    lines = {cause: sparkline(s, bins, top)[0][:used] for cause, s in series.items()}
    return lines, f"{_span(timedelta(milliseconds=width_ms))} a character from {_minute(start)} UTC"


def step_chart(limits: pl.DataFrame, width: int = 60, height: int = 5) -> Text:
    """A user's limit over time (`limits`: time, limit in fen, one row a change) as a
    step chart `width` characters wide: each column the lowest limit in its stretch of
    time, so that a zeroing of minutes still shows; a red mark under the columns at zero."""
    if limits.height == 0:
        return Text("")
    start = limits["time"].min()
    end = limits["time"].max()
    assert isinstance(start, datetime) and isinstance(end, datetime)
    # Two columns wholly after the last change, so that where the limit ended shows.
    span_ms = int((end - start).total_seconds() * 1000)
    step_ms = max(1000, -(-span_ms // max(1, width - 2)))
    column = ((pl.col("time") - start).dt.total_milliseconds() // step_ms).alias("column")
    inside = limits.group_by(column).agg(pl.col("limit").min().alias("inside"))
    columns = pl.DataFrame({"column": pl.int_range(0, width, eager=True)}).with_columns(
        (pl.lit(start) + pl.duration(milliseconds=pl.col("column") * step_ms))
        .cast(limits.schema["time"])
        .alias("time")
    )
    sampled = (
        columns.join_asof(limits.sort("time"), on="time", strategy="backward")
        .join(inside, on="column", how="left")
        .select(pl.min_horizontal("limit", "inside").alias("v"))["v"]
        .to_list()
    )
    top = max((v for v in sampled if v is not None), default=0) or 1
    levels = [None if v is None else round(v * height * 8 / top) for v in sampled]
    label = f"{top / 100:,.0f}"
    pad = len(label)
    text = Text()
    for row in range(height - 1, -1, -1):
        text.append((label if row == height - 1 else "0" if row == 0 else "").rjust(pad) + " ┤")
        fills = [0 if level is None else level - row * 8 for level in levels]
        cells = (" " if f <= 0 else "█" if f >= 8 else BARS[f - 1] for f in fills)
        text.append("".join(cells), style="cyan")
        text.append("\n")
    text.append(" " * pad + " └")
    for at_zero, run in groupby(sampled, key=lambda v: v == 0):
        n = len(list(run))
        text.append("▲" * n if at_zero else "─" * n, style="bold red" if at_zero else "dim")
    text.append("\n")
    left, right = _minute(start), _minute(end)
    text.append(" " * (pad + 2) + left + right.rjust(max(len(right) + 1, width - len(left))))
    each = _span(timedelta(milliseconds=step_ms))
    text.append(f"\n{' ' * (pad + 2)}limit (yuan), lowest in each {each}; ▲ at zero")
    return text


def _minute(at: datetime) -> str:
    return at.strftime("%m-%d %H:%M")


def _span(width: timedelta) -> str:
    seconds = width.total_seconds()
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"
