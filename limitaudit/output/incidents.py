"""Incidents, the users owed a limit and what-ifs as tables and CSV (render_result's)."""

from __future__ import annotations

import polars as pl
from rich.console import Console
from rich.text import Text

from limitaudit.analysis.incidents import DETAIL_COLUMNS, INCIDENT_COLUMNS, OWED_COLUMNS
from limitaudit.commands.incidents import IncidentsResult
from limitaudit.commands.owed import OwedResult
from limitaudit.commands.whatif import WHATIF_COLUMNS, WhatIfResult
from limitaudit.output.tables import Cell, Col, fitted
from limitaudit.output.termchart import sparkline


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


def shortfall_total(owed: pl.DataFrame) -> str:
    """The shortfalls of the users owed a limit, summed in fen, in yuan with thousands
    separators ("672,440.00")."""
    fen = owed.select(pl.col("shortfall").str.replace(".", "", literal=True).cast(pl.Int64).sum())
    total = int(fen.item() or 0)
    return f"{total // 100:,}.{total % 100:02d}"


def owed_table(result: OwedResult, console: Console) -> None:
    owed = result.owed
    what = "not of their own making" + (" or unexplained" if result.include_unexplained else "")
    if owed.height == 0:
        console.print(f"No user is still owed a limit taken by a cause {what}.", highlight=False)
        return
    title = (
        f"{owed.height:,} user(s) still owed a limit taken by a cause {what}: "
        f"{shortfall_total(owed)} yuan in all, largest shortfall first"
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


def whatif_csv(result: WhatIfResult) -> pl.DataFrame:
    return result.changes.select(WHATIF_COLUMNS)


def whatif_table(result: WhatIfResult, console: Console) -> None:
    t, what = result.totals, result.what
    asked = [f"--set {k}={v:g}" for k, v in what.settings.items()]
    asked += [f"--undo {r}" for r in what.undo]
    asked += [f"--model {v}={o}" for v, o in what.models.items()]
    console.print(
        Text.assemble(
            ("What if: ", "bold"),
            " ".join(asked) or "nothing changed",
            f" — {t['decisions']:,} decisions of {t['users_decided']:,} users replayed",
        ),
        highlight=False,
    )
    rows: list[list[Cell]] = [
        [label, f"{t[f'decisions_{key}']:,}", f"{t[f'users_{key}']:,}"]
        for key, label in (
            ("newly_zeroed", "newly zeroed"),
            ("no_longer_zeroed", "no longer zeroed"),
            ("newly_reduced", "newly reduced"),
        )
    ]
    cols = [Col("outcome"), Col("decisions", right=True), Col("users", right=True)]
    console.print(fitted(console, "Decisions whose outcome would change", cols, rows))
    if result.by_rule.height:
        rows = [
            [r["rule"], f"{r['decisions']:,}", f"{r['users']:,}", f"{r['unevaluable']:,}"]
            for r in result.by_rule.iter_rows(named=True)
        ]
        cols = [Col("rule"), Col("firing changes (decisions)", right=True)]
        cols += [Col("users", right=True), Col("not evaluable (kept as logged)", right=True)]
        console.print(fitted(console, "By rule", cols, rows))
    spared = result.spared
    console.print(
        f"Ledger zeroings that would not have happened: {t['zeroings_spared']:,}",
        highlight=False,
    )
    for r in spared.iter_rows(named=True):
        console.print(
            f"  {r['cause']}: {r['zeroings']:,} zeroing(s) of {r['users']:,} user(s), "
            f"such as {', '.join(r['sample'])}",
            highlight=False,
            markup=False,
        )
