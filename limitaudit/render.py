"""The one place results become output: a Rich table, CSV, JSON or NDJSON."""

from __future__ import annotations

import json
from functools import singledispatch
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from limitaudit.commands.scan import ScanResult

FORMATS = ("table", "json")


def dumps_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str)


@singledispatch
def render_result(result: object, fmt: str, out: TextIO, console: Console) -> None:
    raise TypeError(f"no renderer for {type(result).__name__}")


@render_result.register
def _(result: ScanResult, fmt: str, out: TextIO, console: Console) -> None:
    if fmt == "json":
        out.write(dumps_json(result.to_data()) + "\n")
        return
    table = Table(title=f"Dump: {result.totals['files']} files", title_justify="left")
    for name in ("file", "kind", "host", "first (UTC)", "last (UTC)"):
        table.add_column(name, overflow="fold")
    for name in ("lines", "records", "dup", "rejected"):
        table.add_column(name, justify="right")
    for f in result.files:
        data = f.to_data()
        kind = f.kind + ("" if f.compression == "none" else f" ({f.compression})")
        if f.encoding and f.encoding not in ("utf-8", ""):
            kind += f" [{f.encoding}]"
        table.add_row(
            f.path,
            kind,
            f.host or "",
            data["first"] or "",
            data["last"] or "",
            f"{f.counts['lines']:,}",
            f"{f.counts['records']:,}",
            f"{f.counts['duplicates']:,}",
            _red(f.counts["rejected"]),
        )
    t = result.totals
    table.add_section()
    table.add_row(
        "total",
        "",
        "",
        "",
        "",
        f"{t['lines']:,}",
        f"{t['records']:,}",
        f"{t['duplicates']:,}",
        _red(t["rejected"]),
    )
    console.print(table)
    console.print(
        f"lines {t['lines']:,} = records {t['records']:,} + continuation {t['continuation']:,}"
        f" + header/comment {t['meta']:,} + blank {t['blank']:,}"
        f" + duplicates {t['duplicates']:,} + rejected {t['rejected']:,}"
        f"   (unknown events counted in records: {t['ignored']:,}; times read in {result.tz})"
    )
    rejected = [f for f in result.files if f.top_reasons]
    if rejected:
        console.print("[bold]Rejected lines[/bold] (most frequent reasons per file)")
        for f in rejected:
            for reason, n in f.top_reasons:
                console.print(f"  {f.path}: {reason} ×{n:,}", highlight=False, markup=False)
    if result.findings:
        console.print("[bold]Findings[/bold]")
        for finding in result.findings:
            console.print(f"  [yellow]{finding.kind}[/yellow] {finding.message}", highlight=False)


def _red(n: int) -> str:
    return f"[red]{n:,}[/red]" if n else "0"
