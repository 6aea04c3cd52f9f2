"""The command line: a thin layer that parses options, calls a command, renders its result."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console

from limitaudit import __version__, api
from limitaudit.atomic import check_writable, write_atomic
from limitaudit.commands.ingest import UNCHANGED
from limitaudit.config import resolve_dump
from limitaudit.errors import LimitAuditError, UsageError
from limitaudit.model.audit import CAUSES, FINDING_KINDS
from limitaudit.model.dump import DEFAULT_TZ
from limitaudit.output.files import write_table
from limitaudit.output.progress import line_progress
from limitaudit.output.render import render_result, write_audit_csv
from limitaudit.read.parallel import read_in_processes
from limitaudit.status import ExitStatus

app = typer.Typer(
    name="limitaudit",
    help="Reconstruct when and why credit limits went to zero, "
    "from risk-engine logs and the ledger.",
    no_args_is_help=True,
    # --install-completion / --show-completion, and _LIMITAUDIT_COMPLETE=bash_source.
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)

T = TypeVar("T")

DumpArg = Annotated[
    list[str],
    typer.Argument(help="Dump: directories, files or globs, in any mix.", show_default=False),
]
OptionalDumpArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Dump: directories, files or globs. Default: $LIMITAUDIT_DUMP or ./limitaudit.toml.",
        show_default=False,
    ),
]
TzOpt = Annotated[
    str | None,
    typer.Option(
        "--tz",
        help=f"Time zone of log times written without an offset (default {DEFAULT_TZ}; "
        "a store keeps the one it was ingested with).",
        show_default=False,
    ),
]


def _stderr() -> Console:
    # Diagnostics are single lines: never wrap them, whatever the terminal width. They quote
    # the data (paths, ids): markup off, so that `[bold]x.log` is printed as it is named.
    return Console(stderr=True, soft_wrap=True, markup=False)


class _Stdout(Console):
    """Standard output. Rich ends the program with status 1 on a closed pipe (`| head`),
    which here means findings: hand the pipe back to `_emit`, which ends the output and
    keeps the run's own status."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def _stdout() -> Console:
    # Tables and lines quote the data (tickets, reasons, file names): text, never markup.
    return _Stdout(soft_wrap=False, markup=False)


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
    _stderr().print(f"limitaudit: {printable(message)}", style="red", highlight=False, markup=False)
    raise typer.Exit(int(status)) from None


def printable(text: str) -> str:
    """`text` with its control characters escaped: a user id or file name holding ESC codes
    is shown as written, never obeyed by the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _emit(render: Callable[[], object]) -> None:
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


def _format(fmt: str, *allowed: str) -> str:
    if fmt not in allowed:
        raise UsageError(f"--format {fmt}: choose {', '.join(allowed[:-1])} or {allowed[-1]}")
    return fmt


@app.command()
def scan(
    dump: OptionalDumpArg = None,
    tz: TzOpt = None,
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
        _format(fmt, "table", "json")
        if rejects is not None:
            check_writable(rejects, "--rejects")
        with line_progress(_stderr()) as advance:
            result = api.scan(resolve_dump(dump), tz=tz, progress=advance)
        _emit(lambda: render_result(result, fmt, sys.stdout, _stdout()))
        if rejects is not None:
            write_table(result.rejects, rejects)
            _stderr().print(f"{result.rejects.height:,} rejected line(s) written to {rejects}")

    guarded(run)


FailOnOpt = Annotated[
    str,
    typer.Option(
        "--fail-on",
        help="Comma-separated causes and finding kinds that make the exit status 1 "
        f"(causes: {', '.join(CAUSES)}; findings: {', '.join(FINDING_KINDS)}; or none).",
    ),
]
BelowOpt = Annotated[
    float,
    typer.Option("--below", help="Count a limit taken to at or below this many yuan as zeroed."),
]
ToleranceOpt = Annotated[
    float,
    typer.Option("--tolerance", help="Clock tolerance in seconds for matching by time."),
]


def _fail_on(value: str) -> set[str]:
    names = {v.strip() for v in value.split(",") if v.strip()}
    if not names:
        raise UsageError("--fail-on: give causes or finding kinds, or none to never fail")
    if "none" in names:
        if names != {"none"}:
            raise UsageError("--fail-on: none never fails, so it goes alone")
        return set()
    unknown = names - set(CAUSES) - set(FINDING_KINDS)
    if unknown:
        raise UsageError(
            f"--fail-on: unknown {', '.join(sorted(unknown))}; "
            f"choose from {', '.join(CAUSES + FINDING_KINDS)} or none"
        )
    return names


@app.command()
def audit(
    dump: OptionalDumpArg = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table, csv, json or ndjson.")
    ] = "table",
    below: BelowOpt = 0.0,
    tolerance: ToleranceOpt = 120.0,
    fail_on: FailOnOpt = "unexplained",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (atomically), not stdout.")
    ] = None,
    bom: Annotated[
        bool, typer.Option("--bom", help="Start the CSV with a BOM, for Excel.")
    ] = False,
    tz: TzOpt = None,
) -> None:
    """Every zeroing: its cause, cause_ref, evidence and recovery. Exit 1 on --fail-on."""

    def run() -> int:
        _format(fmt, "table", "csv", "json", "ndjson")
        if bom and fmt != "csv":
            raise UsageError("--bom goes with --format csv")
        failing = _fail_on(fail_on)
        if output is not None:
            check_writable(output, "--output")
        with line_progress(_stderr()) as advance:
            result = api.audit(
                resolve_dump(dump), below=below, tolerance=tolerance, tz=tz, progress=advance
            )
        if output is not None:
            if fmt == "csv":
                write_atomic(output, lambda fh: write_audit_csv(result, fh, bom))
            else:
                write_atomic(
                    output,
                    lambda fh: render_result(result, fmt, fh, Console(file=fh, markup=False)),
                )
            _stderr().print(f"{result.zeroings.height:,} zeroing(s) written to {output}")
        elif fmt == "csv":
            _emit(lambda: write_audit_csv(result, sys.stdout, bom))
        else:
            _emit(lambda: render_result(result, fmt, sys.stdout, _stdout()))
        hits = result.failing(failing)
        if hits:
            _stderr().print(
                "failing: " + ", ".join(f"{n:,} {k}" for k, n in hits.items()), highlight=False
            )
            return int(ExitStatus.FINDINGS)
        return int(ExitStatus.OK)

    raise typer.Exit(guarded(run))


@app.command()
def trace(
    user: Annotated[str, typer.Argument(help="The user_id to trace.", show_default=False)],
    dump: OptionalDumpArg = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
    below: BelowOpt = 0.0,
    tolerance: ToleranceOpt = 120.0,
    tz: TzOpt = None,
) -> None:
    """One user's limit timeline: every change explained, every zeroing with its evidence."""

    def run() -> None:
        _format(fmt, "table", "json")
        # From a store, only this user's rows are read (when that gives the same answers).
        result = api.trace(user, resolve_dump(dump), below=below, tolerance=tolerance, tz=tz)
        _emit(lambda: render_result(result, fmt, sys.stdout, _stdout()))

    guarded(run)


@app.command(name="ingest")
def ingest_cmd(
    dump: DumpArg,
    store: Annotated[
        Path,
        typer.Option(
            "--store",
            help="The store: a new or empty directory, or a store to add new files to.",
            show_default=False,
        ),
    ],
    tz: TzOpt = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Rebuild the store from this dump (after a file changed, say)."
        ),
    ] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
) -> None:
    """Read a dump once into a store that scan, audit and trace read fast; add new files to it."""

    def run() -> None:
        _format(fmt, "table", "json")
        with line_progress(_stderr(), "ingesting") as advance:
            result = api.ingest(dump, store, tz=tz, replace=replace, progress=advance)
        _emit(lambda: render_result(result, fmt, sys.stdout, _stdout()))
        if result.action == UNCHANGED:
            _stderr().print(
                f"{store} is up to date: its {result.unchanged:,} file(s) of this dump are "
                "unchanged; nothing ingested",
                highlight=False,
            )
        if result.kept:
            _stderr().print(
                f"{len(result.kept):,} file(s) in the store are not in this dump, kept: "
                + ", ".join(result.kept[:5])
                + (" …" if len(result.kept) > 5 else ""),
                highlight=False,
            )

    guarded(run)


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Directory to write the dump into (new or empty).")],
    answers: Annotated[
        Path | None,
        typer.Option("--answers", help="Where the answer files go (default: OUT-answers)."),
    ] = None,
    users: Annotated[int, typer.Option("--users", min=1)] = 300,
    days: Annotated[int, typer.Option("--days", min=1)] = 1,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    text_share: Annotated[
        float, typer.Option("--text-share", min=0.0, max=1.0, help="Share of text-logging hosts.")
    ] = 0.5,
    change_ids: Annotated[
        bool, typer.Option("--change-ids/--no-change-ids", help="Log records carry change_id.")
    ] = True,
    max_skew: Annotated[
        float, typer.Option("--max-skew", min=0.0, help="Host clock skew bound, seconds.")
    ] = 60.0,
    dirt: Annotated[
        bool, typer.Option("--dirt/--clean", help="Inject the dirt real dumps hold.")
    ] = True,
) -> None:
    """Generate a realistic dump with known answers (the audit CSV a correct tool prints)."""
    # Imported here: the generator is only for `synth`, and `trace` must start fast.
    from limitaudit.synth import SynthOptions, generate  # noqa: PLC0415

    def run() -> None:
        target = answers or out.with_name(out.name + "-answers")
        try:
            result = generate(
                out,
                target,
                SynthOptions(
                    users=users,
                    days=days,
                    seed=seed,
                    text_share=text_share,
                    change_ids=change_ids,
                    max_skew_s=max_skew,
                    dirt=dirt,
                ),
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        _stderr().print(
            f"wrote {result.lines:,} lines to {result.dump_dir} "
            f"({result.zeroings:,} zeroings); answers in {result.answers_dir}",
            highlight=False,
        )

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


def _completion_order() -> None:
    """Shell completion as Click documents it (`_LIMITAUDIT_COMPLETE=bash_source`) as well as
    in Typer's order (`source_bash`), which is the one Typer reads."""
    var = "_LIMITAUDIT_COMPLETE"
    shell, _, instruction = os.environ.get(var, "").partition("_")
    if shell in ("bash", "zsh", "fish", "powershell", "pwsh") and instruction in (
        "source",
        "complete",
    ):
        os.environ[var] = f"{instruction}_{shell}"


def main() -> None:
    _completion_order()
    # The entry points guard their top-level code, as worker processes require.
    read_in_processes()
    stop_on_terminate()
    app()


__all__ = ["ExitStatus", "app", "main", "stop_on_terminate"]
