"""The command line: a thin layer that parses options, calls a command, renders its result."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from limitaudit import __version__
from limitaudit.commands.scan import scan as scan_dump
from limitaudit.errors import LimitAuditError, UsageError
from limitaudit.ingest import DEFAULT_TZ
from limitaudit.render import render_result
from limitaudit.status import ExitStatus
from limitaudit.writeout import write_table

app = typer.Typer(
    name="limitaudit",
    help="Reconstruct when and why credit limits went to zero, from risk-engine logs and the ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")

DumpArg = Annotated[
    list[str],
    typer.Argument(help="Dump: directories, files or globs, in any mix.", show_default=False),
]
TzOpt = Annotated[
    str,
    typer.Option("--tz", help="Time zone of log times written without an offset."),
]


def _stderr() -> Console:
    return Console(stderr=True)


def _stdout() -> Console:
    return Console(soft_wrap=False)


def guarded(run: Callable[[], T]) -> T:
    """The one error boundary: a domain error becomes one line on stderr and its exit code."""
    try:
        return run()
    except LimitAuditError as exc:
        _stderr().print(f"limitaudit: {exc}", style="red", highlight=False, markup=False)
        raise typer.Exit(int(exc.exit_status)) from None


def _check_tz(tz: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz {tz}: not a known time zone (e.g. Asia/Shanghai, UTC)") from None


@app.command()
def scan(
    dump: DumpArg,
    tz: TzOpt = DEFAULT_TZ,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            help="Write every rejected line (file, line, reason, text) here; "
            ".csv, or .jsonl / .ndjson.",
        ),
    ] = None,
) -> None:
    """What the dump holds, file by file: kinds, hosts, times, and every line accounted for."""

    def run() -> None:
        if fmt not in ("table", "json"):
            raise UsageError(f"--format {fmt}: choose table or json")
        _check_tz(tz)
        result = scan_dump(dump, tz)
        render_result(result, fmt, sys.stdout, _stdout())
        if rejects is not None:
            write_table(result.rejects, rejects)
            _stderr().print(f"{result.rejects.height:,} rejected line(s) written to {rejects}")

    guarded(run)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"limitaudit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """limitaudit: why did this user's credit limit go to zero?"""


def main() -> None:
    app()


__all__ = ["ExitStatus", "app", "main"]
