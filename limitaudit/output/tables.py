"""Tables that never lose a column or cut a number, an id or a time.

A column is either free text, which may wrap, or a value (a count, an id, a time, a
path's name), which is shown whole. A table is drawn as a grid when its values fit the
console's width beside a little room for the text; else it is folded into a vertical
layout, a block of `header  value` lines for each row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

# A wrapping column needs at least this much room for a table to stay a grid.
TEXT_MIN = 16
Cell = str | Text


@dataclass(frozen=True)
class Col:
    header: str
    right: bool = False  # numbers: right-aligned
    wraps: bool = False  # free text: may wrap onto more lines


def fitted(
    console: Console,
    title: str,
    cols: Sequence[Col],
    rows: Sequence[Sequence[Cell]],
    total: Sequence[Cell] | None = None,
    styles: Sequence[str | None] | None = None,
) -> RenderableType:
    """`rows` (and a `total` row under a rule) as a table, or folded when too narrow;
    `styles[i]` is row i's style."""
    every = [*rows, *([total] if total is not None else [])]
    need = [_widest([c.header, *(row[i] for row in every)]) for i, c in enumerate(cols)]
    room = sum(min(n, TEXT_MIN) if c.wraps else n for c, n in zip(cols, need, strict=True))
    # Each column takes its padding and a rule; the table one rule more.
    if room + 3 * len(cols) + 1 > console.width:
        return _folded(console.width, title, cols, rows, total)
    table = Table(title=title, title_justify="left")
    for c, n in zip(cols, need, strict=True):
        if c.wraps:
            table.add_column(c.header, overflow="fold", min_width=min(n, TEXT_MIN))
        else:
            table.add_column(
                c.header, justify="right" if c.right else "left", no_wrap=True, min_width=n
            )
    for i, row in enumerate(rows):
        table.add_row(*row, style=styles[i] if styles else None)
    if total is not None:
        table.add_section()
        table.add_row(*total)
    return table


def _widest(cells: Sequence[Cell]) -> int:
    """The widest line of any cell, in terminal cells (a Chinese character takes two)."""
    texts = (Text(cell) if isinstance(cell, str) else cell for cell in cells)
    return max(line.cell_len for text in texts for line in text.split("\n"))


def _folded(
    width: int,
    title: str,
    cols: Sequence[Col],
    rows: Sequence[Sequence[Cell]],
    total: Sequence[Cell] | None,
) -> RenderableType:
    """Each row as a block of `header: value` lines; a value too wide for its header's
    line, or of several lines, goes under it, indented."""
    out: list[RenderableType] = [Text(title)]
    for row in [*rows, *([total] if total is not None else [])]:
        out.append(Text(""))
        for c, cell in zip(cols, row, strict=True):
            value = Text(cell) if isinstance(cell, str) else cell
            if not value.plain:
                continue
            lines = value.split("\n")
            head = Text.assemble((c.header, "bold"), ":")
            if len(lines) == 1 and head.cell_len + 1 + value.cell_len <= width:
                out.append(Text.assemble(head, " ", value))
            else:
                out.append(head)
                out += [Text.assemble("  ", line) for line in lines]
    return Group(*out)
