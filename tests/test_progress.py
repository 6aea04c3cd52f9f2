"""Progress goes to a terminal only; a pipe gets nothing."""

from __future__ import annotations

import io

from rich.console import Console

from limitaudit.output.progress import line_progress


def test_no_progress_when_not_a_terminal() -> None:
    out = io.StringIO()
    with line_progress(Console(file=out, force_terminal=False)) as advance:
        assert advance is None
    assert out.getvalue() == ""


def test_progress_counts_lines_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with line_progress(console, "reading dump") as advance:
        assert advance is not None
        advance(1_500)
        advance(2_500)
        console.file.flush()
    text = out.getvalue()
    assert "reading dump" in text
    assert "4,000 lines" in text
