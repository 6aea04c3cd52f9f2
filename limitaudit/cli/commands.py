"""The commands: each parses its options, calls the library, and renders the result."""

from __future__ import annotations

import math
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Annotated, TextIO, TypeVar

import typer

from limitaudit import __version__, api
from limitaudit.atomic import check_writable, sweep, write_atomic
from limitaudit.cli.boundary import (
    check_format,
    completion_order,
    emit,
    file_console,
    guarded,
    stderr,
    stdout,
    stop_on_terminate,
)
from limitaudit.config import resolve_dump
from limitaudit.errors import UsageError
from limitaudit.model.audit import CAUSES, FINDING_KINDS
from limitaudit.model.dump import DEFAULT_TZ
from limitaudit.output.ci import junit_xml, summary_json
from limitaudit.output.files import write_table
from limitaudit.output.progress import line_progress
from limitaudit.output.render import render_result, unread_lines, write_audit_csv
from limitaudit.read.parallel import READ_FOLDER, read_in_processes
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
        check_format(fmt, "table", "json")
        if rejects is not None:
            check_writable(rejects, "--rejects")
        with line_progress(stderr()) as advance:
            result = api.scan(resolve_dump(dump), tz=tz, progress=advance)
        emit(lambda: render_result(result, fmt, sys.stdout, stdout()))
        if rejects is not None:
            write_table(result.rejects, rejects)
            stderr().print(f"{result.rejects.height:,} rejected line(s) written to {rejects}")

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
    junit: Annotated[
        Path | None,
        typer.Option(
            "--junit",
            help="Also write a JUnit XML report: a test case per cause and finding kind, "
            "failing where --fail-on trips.",
        ),
    ] = None,
    summary: Annotated[
        Path | None,
        typer.Option("--summary", help="Also write a JSON summary: counts, what failed, why."),
    ] = None,
) -> None:
    """Every zeroing: its cause, cause_ref, evidence and recovery. Exit 1 on --fail-on."""

    def run() -> int:
        check_format(fmt, "table", "csv", "json", "ndjson")
        if bom and fmt != "csv":
            raise UsageError("--bom goes with --format csv")
        failing = _fail_on(fail_on)
        started, paths = time.monotonic(), resolve_dump(dump)
        for path, option in ((output, "--output"), (junit, "--junit"), (summary, "--summary")):
            if path is not None:
                check_writable(path, option)
        with line_progress(stderr()) as advance:
            result = api.audit(paths, below=below, tolerance=tolerance, tz=tz, progress=advance)
        if output is not None:
            if fmt == "csv":
                write_atomic(output, lambda fh: write_audit_csv(result, fh, bom))
            else:
                write_atomic(
                    output,
                    lambda fh: render_result(result, fmt, fh, file_console(fh)),
                )
            stderr().print(f"{result.zeroings.height:,} zeroing(s) written to {output}")
        elif fmt == "csv":
            emit(lambda: write_audit_csv(result, sys.stdout, bom))
        else:
            emit(lambda: render_result(result, fmt, sys.stdout, stdout()))
        for line in unread_lines(result):
            stderr().print(line, highlight=False)
        hits = result.failing(failing)
        status = ExitStatus.FINDINGS if hits else ExitStatus.OK
        seconds = time.monotonic() - started
        if junit is not None:
            write_atomic(junit, lambda fh: fh.write(junit_xml(result, failing, paths, seconds)))
        if summary is not None:
            text = summary_json(result, failing, int(status), paths, seconds)
            write_atomic(summary, lambda fh: fh.write(text))
        if hits:
            stderr().print(
                "failing: " + ", ".join(f"{n:,} {k}" for k, n in hits.items()), highlight=False
            )
        return int(status)

    raise typer.Exit(guarded(run))


RowsFormatOpt = Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write here (atomically), not stdout.")
]


@app.command()
def incidents(
    dump: OptionalDumpArg = None,
    fmt: RowsFormatOpt = "table",
    below: BelowOpt = 0.0,
    tolerance: ToleranceOpt = 120.0,
    output: OutputOpt = None,
    tz: TzOpt = None,
) -> None:
    """Every incident (a cause and its cause_ref): users hit, limit taken, recovery, what
    caused it, and its zeroings over time."""

    def run() -> None:
        check_format(fmt, "table", "csv", "json")
        paths = resolve_dump(dump)
        if output is not None:
            check_writable(output, "--output")
        with line_progress(stderr()) as advance:
            result = api.incidents(paths, below=below, tolerance=tolerance, tz=tz, progress=advance)
        _emit_result(result, fmt, output, f"{result.incidents.height:,} incident(s)")

    guarded(run)


@app.command()
def owed(
    dump: OptionalDumpArg = None,
    fmt: RowsFormatOpt = "table",
    include_unexplained: Annotated[
        bool,
        typer.Option(
            "--include-unexplained", help="Count unexplained zeroings too (cause: unexplained)."
        ),
    ] = False,
    below: BelowOpt = 0.0,
    tolerance: ToleranceOpt = 120.0,
    output: OutputOpt = None,
    tz: TzOpt = None,
) -> None:
    """Who is still owed a limit a cause not of their own making took, and how much: the
    compensation list, largest shortfall first."""

    def run() -> None:
        check_format(fmt, "table", "csv", "json")
        paths = resolve_dump(dump)
        if output is not None:
            check_writable(output, "--output")
        with line_progress(stderr()) as advance:
            result = api.owed(
                paths,
                include_unexplained=include_unexplained,
                below=below,
                tolerance=tolerance,
                tz=tz,
                progress=advance,
            )
        _emit_result(result, fmt, output, f"{result.owed.height:,} user(s) owed a limit")

    guarded(run)


@app.command()
def whatif(
    dump: OptionalDumpArg = None,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="PARAM=VALUE: a parameter at another value (repeatable)."),
    ] = None,
    undo: Annotated[
        list[str] | None,
        typer.Option("--undo", help="RELEASE: as if that release had never been applied."),
    ] = None,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="VERSION=OTHER: OTHER's scores for VERSION's decisions (both in the dump).",
        ),
    ] = None,
    fail_if: Annotated[
        str | None,
        typer.Option(
            "--fail-if-new-zeroings",
            help="N users, or P% of the users decided: exit 1 when more would be newly zeroed.",
        ),
    ] = None,
    fmt: RowsFormatOpt = "table",
    below: BelowOpt = 0.0,
    tolerance: ToleranceOpt = 120.0,
    output: OutputOpt = None,
    tz: TzOpt = None,
) -> None:
    """Replay every decision under another configuration: how many users it would zero or
    spare, by rule, and which ledger zeroings would not have happened."""

    def run() -> int:
        check_format(fmt, "table", "csv", "json")
        limit = _new_zeroings_limit(fail_if)
        paths = resolve_dump(dump)
        if output is not None:
            check_writable(output, "--output")
        with line_progress(stderr()) as advance:
            result = api.whatif(
                paths,
                settings={k: _number(v, k) for k, v in _pairs(settings, "--set").items()},
                undo=undo or [],
                models=_pairs(models, "--model"),
                below=below,
                tolerance=tolerance,
                tz=tz,
                progress=advance,
            )
        _emit_result(result, fmt, output, f"{result.changes.height:,} decision(s)")
        if limit is None:
            return int(ExitStatus.OK)
        count, share = limit
        allowed = count if share is None else share / 100 * result.totals["users_decided"]
        new = result.new_zeroings()
        if new > allowed:
            stderr().print(
                f"failing: {new:,} user(s) newly zeroed, more than --fail-if-new-zeroings "
                f"{fail_if}",
                highlight=False,
            )
            return int(ExitStatus.FINDINGS)
        return int(ExitStatus.OK)

    raise typer.Exit(guarded(run))


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep or not name.strip() or not rest.strip():
            raise UsageError(f"{option} {value}: write NAME=VALUE")
        pairs[name.strip()] = rest.strip()
    return pairs


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--set {name}={text}: not a number") from None


def _new_zeroings_limit(value: str | None) -> tuple[float, float | None] | None:
    """--fail-if-new-zeroings: (N, None) for N users, (0, P) for P% of those decided."""
    if value is None:
        return None
    text = value.strip()
    share = text.endswith("%")
    try:
        number = float(text.removesuffix("%"))
    except ValueError:
        number = -1.0
    if not math.isfinite(number) or number < 0 or (share and number > 100):
        raise UsageError(f"--fail-if-new-zeroings {value}: give N users or P%")
    return (0.0, number) if share else (number, None)


def _emit_result(result: object, fmt: str, output: Path | None, written: str) -> None:
    """A result to stdout, or to `output` (atomically) saying so on stderr."""
    if output is None:
        emit(lambda: render_result(result, fmt, sys.stdout, stdout()))
        return
    write_atomic(output, lambda fh: render_result(result, fmt, fh, file_console(fh)))
    stderr().print(f"{written} written to {output}", highlight=False)


@app.command()
def report(
    dump: OptionalDumpArg = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report here: one self-contained HTML page."),
    ] = None,
    png: Annotated[
        Path | None, typer.Option("--png", help="Also write the timeline as a PNG image.")
    ] = None,
    svg: Annotated[
        Path | None, typer.Option("--svg", help="Also write the timeline as an SVG image.")
    ] = None,
    below: BelowOpt = 0.0,
    tolerance: ToleranceOpt = 120.0,
    tz: TzOpt = None,
) -> None:
    """A page for an incident review: the zeroings over time with what changed, each
    incident with its users at zero and still owed, and the dump's accounting. It opens
    offline; --png/--svg write the timeline as an image for a ticket."""

    def run() -> None:
        targets = {"--output": output, "--png": png, "--svg": svg}
        if all(path is None for path in targets.values()):
            raise UsageError("say where to write the report: --output FILE.html, --png or --svg")
        for option, path in targets.items():
            if path is not None:
                check_writable(path, option)
        # Imported here: the charting libraries take a second to load, which no other
        # command should pay.
        from limitaudit.output import report as page  # noqa: PLC0415

        paths = resolve_dump(dump)
        with line_progress(stderr()) as advance:
            result = api.report(paths, below=below, tolerance=tolerance, tz=tz, progress=advance)
        written = []
        if output is not None:
            text = page.html(result)
            write_atomic(output, lambda fh: fh.write(text))
            written.append(f"{output} ({_size(len(text.encode()))})")
        for path, fmt in ((png, "png"), (svg, "svg")):
            if path is not None:
                data = page.image(result, fmt)
                write_atomic(path, partial(_write_bytes, data=data))
                written.append(f"{path} ({_size(len(data))})")
        found = result.incidents
        stderr().print(
            f"{found.incidents.height:,} incident(s) among {found.audit.zeroings.height:,} "
            f"zeroing(s); written: {', '.join(written)}",
            highlight=False,
        )

    guarded(run)


def _write_bytes(fh: TextIO, *, data: bytes) -> None:
    fh.flush()
    fh.buffer.write(data)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


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
        check_format(fmt, "table", "json")
        # From a store, only this user's rows are read (when that gives the same answers).
        result = api.trace(user, resolve_dump(dump), below=below, tolerance=tolerance, tz=tz)
        emit(lambda: render_result(result, fmt, sys.stdout, stdout()))

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

    from limitaudit.commands.ingest import UNCHANGED  # noqa: PLC0415 - as api.ingest does

    def run() -> None:
        check_format(fmt, "table", "json")
        with line_progress(stderr(), "ingesting") as advance:
            result = api.ingest(dump, store, tz=tz, replace=replace, progress=advance)
        emit(lambda: render_result(result, fmt, sys.stdout, stdout()))
        if result.action == UNCHANGED:
            stderr().print(
                f"{store} is up to date: its {result.unchanged:,} file(s) of this dump are "
                "unchanged; nothing ingested",
                highlight=False,
            )
        if result.kept:
            stderr().print(
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
        stderr().print(
            f"wrote {result.lines:,} lines and {result.parquet_rows:,} Parquet ledger rows "
            f"to {result.dump_dir} "
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


def main() -> None:
    completion_order()
    # The entry points guard their top-level code, as worker processes require.
    read_in_processes()
    stop_on_terminate()
    # Every run removes what killed ones left in $TMPDIR, whether it reads a dump or not.
    sweep(Path(tempfile.gettempdir()), READ_FOLDER)
    app()
