"""Where the command line meets the terminal: the one error boundary, the consoles, the
closed pipe, signals, and the shell's completion variable."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import NoReturn, TextIO, TypeVar

import typer
from rich.console import Console

from limitaudit.errors import LimitAuditError, UsageError
from limitaudit.status import ExitStatus

T = TypeVar("T")


def stderr() -> Console:
    # Diagnostics are single lines: never wrap them, whatever the terminal width. They quote
    # the data (paths, ids): markup off, so that `[bold]x.log` is printed as it is named.
    return Console(stderr=True, soft_wrap=True, markup=False)


class _Stdout(Console):
    """Standard output. Rich ends the program with status 1 on a closed pipe (`| head`),
    which here means findings: hand the pipe back to `emit`, which ends the output and
    keeps the run's own status."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


# Piped output is as wide as its lines: a file or a pager has no width to fit.
UNBOUNDED = 100_000


def file_console(fh: TextIO) -> Console:
    """A console onto a file (`--output`): as wide as its lines, like piped output."""
    return _unbounded(Console(file=fh, markup=False, soft_wrap=False))


def stdout() -> Console:
    # Tables and lines quote the data (tickets, reasons, file names): text, never markup.
    return _unbounded(_Stdout(soft_wrap=False, markup=False))


def _unbounded(console: Console) -> Console:
    """Off a terminal, as wide as the lines are, unless COLUMNS says otherwise."""
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = UNBOUNDED
    return console


def guarded(run: Callable[[], T]) -> T:
    """The one error boundary: whatever a command raises becomes one line on stderr and
    its exit status (status.py). A domain error says what to do; an interruption ends
    quietly; anything else is a bug in limitaudit, and says so."""
    try:
        return run()
    except LimitAuditError as exc:
        _fail(str(exc), exc.exit_status)
    except KeyboardInterrupt:
        _fail("interrupted", ExitStatus.INTERRUPTED)
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except Exception as exc:
        _fail(
            f"internal error, please report it with the command that led to it: "
            f"{type(exc).__name__}: {exc}",
            ExitStatus.INTERNAL,
        )


def _fail(message: str, status: ExitStatus) -> NoReturn:
    stderr().print(f"limitaudit: {printable(message)}", style="red", highlight=False, markup=False)
    raise typer.Exit(int(status)) from None


def printable(text: str) -> str:
    """`text` with its control characters escaped: a user id or file name holding ESC codes
    is shown as written, never obeyed by the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def emit(render: Callable[[], object]) -> None:
    """Render to stdout; a reader that stopped early (`| head`) ends the output quietly and
    the run keeps the status it earned."""
    try:
        render()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again on the way out: point it where that cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def check_format(fmt: str, *allowed: str) -> str:
    if fmt not in allowed:
        raise UsageError(f"--format {fmt}: choose {', '.join(allowed[:-1])} or {allowed[-1]}")
    return fmt


def stop_on_terminate() -> None:
    """A run that is terminated (a CI job's time-out) stops as an interrupted one does:
    its worker processes are ended and its temporary files removed, with status 143.

    By default SIGTERM ends this process at once: its folders of spilled frames stay
    behind, and its workers read on until their file is done."""

    def stop(_signum: int, _frame: object) -> None:
        # Only a run that started workers has imported multiprocessing.
        mp = sys.modules.get("multiprocessing")
        for child in mp.active_children() if mp else ():
            child.terminate()
        raise SystemExit(int(ExitStatus.TERMINATED))

    signal.signal(signal.SIGTERM, stop)


def completion_order() -> None:
    """Shell completion as Click documents it (`_LIMITAUDIT_COMPLETE=bash_source`) as well as
    in Typer's order (`source_bash`), which is the one Typer reads."""
    var = "_LIMITAUDIT_COMPLETE"
    shell, _, instruction = os.environ.get(var, "").partition("_")
    if shell in ("bash", "zsh", "fish", "powershell", "pwsh") and instruction in (
        "source",
        "complete",
    ):
        os.environ[var] = f"{instruction}_{shell}"
