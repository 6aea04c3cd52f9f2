"""Incidents and the users owed a limit as tables, CSV and JSON (render_result's)."""

from __future__ import annotations

import polars as pl
from rich.console import Console
from rich.text import Text

from limitaudit.analysis.incidents import DETAIL_COLUMNS, INCIDENT_COLUMNS, OWED_COLUMNS
from limitaudit.commands.incidents import IncidentsResult
from limitaudit.commands.owed import OwedResult
from limitaudit.output.tables import Cell, Col, fitted

BARS = "▁▂▃▄▅▆▇█"
# A sparkline is at most this wide: a longer incident sums several bins into a character.
SPARK_WIDTH = 24


def sparkline(counts: list[int], width: int = SPARK_WIDTH) -> tuple[str, int]:
    """`counts` as bars, and how many bins each bar sums (more than one when they would be
    wider than `width`). An empty bin is a space: an incident's pauses show."""
    step = max(1, -(-len(counts) // width))
    sums = [sum(counts[i : i + step]) for i in range(0, len(counts), step)]
    top = max(sums, default=0)
    if top == 0:
        return "", step
    bars = [" " if n == 0 else BARS[min(len(BARS) - 1, (n * len(BARS) - 1) // top)] for n in sums]
    return "".join(bars), step


def incidents_csv(result: IncidentsResult) -> pl.DataFrame:
    return result.incidents.select(*INCIDENT_COLUMNS, *DETAIL_COLUMNS)


def owed_csv(result: OwedResult) -> pl.DataFrame:
    return result.owed.select(OWED_COLUMNS)


def incidents_table(result: IncidentsResult, console: Console) -> None:
    found = result.incidents
    z = result.audit.zeroings
    title = f"{found.height:,} incident(s) among {z.height:,} zeroing(s), most users first"
    if found.height == 0:
        console.print(title, highlight=False)
    rows: list[list[Cell]] = []
    steps = set()
    for n, r in enumerate(found.iter_rows(named=True), start=1):
        line, step = sparkline(r["per_5min"])
        steps.add(step)
        rows.append(
            [
                f"{n}. {r['cause']}\n{r['cause_ref']}",
                f"{r['users']:,}",
                f"{r['zeroings']:,}",
                r["limit_removed"],
                f"{r['recovered_full']:,}/{r['recovered_partial']:,}/{r['recovered_none']:,}",
                f"{r['still_at_zero']:,}",
                f"{r['first_zeroed_at']}\n{r['last_zeroed_at']}",
                Text(line, style="red"),
            ]
        )
    if rows:
        per = ", ".join(f"{5 * s} min" for s in sorted(steps))
        cols = [Col("incident"), Col("users", right=True), Col("zeroings", right=True)]
        cols += [Col("limit\nremoved", right=True), Col("recovered\nfull/part/none")]
        cols += [Col("still\nat zero", right=True), Col("first / last zeroed (UTC)")]
        cols += [Col(f"zeroings\nper {per}")]
        console.print(fitted(console, title, cols, rows))
        console.print(Text("What caused each", style="bold"))
        for n, what in enumerate(found["what"], start=1):
            console.print(f"  {n}. {what or '?'}", highlight=False, markup=False)
    _context(result, console)


def _context(result: IncidentsResult, console: Console) -> None:
    """The zeroings that are no incident, summed apart."""
    for frame, key, title in (
        (result.rules, "rule", "Not incidents: the users' own risk (risk_policy), by rule"),
        (result.silences, "silence", "Not incidents: unexplained zeroings, by engine silence"),
    ):
        if frame.height == 0:
            continue
        rows: list[list[Cell]] = [
            [
                r[key],
                f"{r['users']:,}",
                f"{r['zeroings']:,}",
                r["limit_removed"],
                f"{r['first_zeroed_at']}\n{r['last_zeroed_at']}",
            ]
            for r in frame.iter_rows(named=True)
        ]
        cols = [Col(key, wraps=key == "silence"), Col("users", right=True)]
        cols += [Col("zeroings", right=True), Col("limit removed", right=True)]
        cols += [Col("first / last zeroed (UTC)")]
        console.print(fitted(console, title, cols, rows))


def owed_table(result: OwedResult, console: Console) -> None:
    owed = result.owed
    what = "not of their own making" + (" or unexplained" if result.include_unexplained else "")
    if owed.height == 0:
        console.print(f"No user is still owed a limit taken by a cause {what}.", highlight=False)
        return
    total = owed.select(
        pl.col("shortfall").str.replace(".", "", literal=True).cast(pl.Int64).sum()
    ).item()
    title = (
        f"{owed.height:,} user(s) still owed a limit taken by a cause {what}: "
        f"{total // 100:,}.{total % 100:02d} yuan in all, largest shortfall first"
    )
    rows: list[list[Cell]] = [
        [
            r["user_id"],
            f"{r['cause']}\n{r['cause_ref']}",
            r["zeroed_at"],
            r["limit_before"],
            r["limit_now"],
            Text(r["shortfall"], style="bold"),
            "yes" if r["notified"] else "no",
            r["other_zeroings"],
        ]
        for r in owed.iter_rows(named=True)
    ]
    cols = [Col("user_id"), Col("cause / cause_ref"), Col("zeroed at (UTC)")]
    cols += [Col("limit before", right=True), Col("limit now", right=True)]
    cols += [Col("shortfall", right=True), Col("notified"), Col("also zeroed by", wraps=True)]
    console.print(fitted(console, title, cols, rows))
