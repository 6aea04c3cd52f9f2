"""A progress line on stderr for long reads: lines read and lines/s, on a terminal only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

Advance = Callable[[int], None]


@contextmanager
def line_progress(console: Console, description: str = "reading") -> Iterator[Advance | None]:
    """Yield a callback that counts lines read, or None when stderr is not a terminal.

    Piped runs (CI, `> file`) get no progress output at all, not a degraded one.
    """
    if not console.is_terminal:
        yield None
        return
    # Imported here: rich.progress takes a tenth of a second, and piped runs and
    # `trace` never show one.
    from rich.progress import (  # noqa: PLC0415
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:>14,.0f} lines"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(description, total=None, rate="")

        def advance(lines: int) -> None:
            progress.advance(task, lines)
            speed = progress.tasks[task].speed
            progress.update(task, rate=f"{speed:,.0f} lines/s" if speed else "")

        yield advance
