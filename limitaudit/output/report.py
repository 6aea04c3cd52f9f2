"""A report as one self-contained HTML page, and its timeline as an image.

The page is a Jinja2 template (templates/report.html.j2) filled with the report's tables,
already worded and formatted here, and the Vega-Lite specifications of its charts
(output.charts). The Vega bundle that draws them comes from vl-convert and is inlined,
with the data: the page opens with no network, attached to a ticket or a mail.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import polars as pl
import vl_convert
from jinja2 import Environment, PackageLoader, StrictUndefined

from limitaudit.analysis.incidents import NOT_OWN_RISK
from limitaudit.analysis.timeline import GROUPED
from limitaudit.commands.report import ReportResult
from limitaudit.model.audit import CAUSES
from limitaudit.model.format import iso_utc
from limitaudit.output import charts
from limitaudit.output.incidents import shortfall_total

# An incident's section lists at most this many of the users it still owes a limit,
# largest shortfall first: the page stays small; `limitaudit owed` lists them all.
OWED_SHOWN = 50


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("limitaudit.output", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@cache
def vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one script, from vl-convert (no download)."""
    # Its stub calls `snippet` required; None is its documented default (the globals
    # vegaEmbed, vega and vegaLite).
    return str(vl_convert.javascript_bundle(None, vl_version=charts.VL_VERSION))  # type: ignore[arg-type]


def script_json(data: Any) -> str:
    """JSON to sit inside a <script> element: no `<` in it, so that no text of the logs
    (a parameter named `</script>`) can end the element or open another."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def html(result: ReportResult) -> str:
    """The report as one HTML page, with everything it needs inline."""
    specs = {"timeline": charts.timeline(result)}
    sections, tickets = [], []
    for n, row in enumerate(result.incidents.incidents.iter_rows(named=True), start=1):
        if row["cause"] in GROUPED:
            tickets.append(_section(result, n, row, "manual"))
            continue
        chart_id = f"incident-{n}"
        specs[chart_id] = charts.incident(result, row["cause"], row["cause_ref"])
        sections.append(_section(result, n, row, chart_id))
    if tickets:
        specs["manual"] = charts.incident(result, "manual", None)
    page = _environment().get_template("report.html.j2")
    return page.render(
        made=result.provenance.to_data(),
        span={"first": iso_utc(result.first) or "?", "last": iso_utc(result.last) or "?"},
        causes=_by_cause(result),
        markers=[_marker(m) for m in result.markers.iter_rows(named=True)],
        incidents=sections,
        tickets=tickets,
        ticket_users=_users(result, "manual"),
        rules=result.incidents.rules.to_dicts(),
        silences=result.incidents.silences.to_dicts(),
        accounting=_accounting(result),
        owed=_owed_total(result.owed),
        specs=script_json(specs),
        bundle=vega_bundle(),
    )


def image(result: ReportResult, fmt: str) -> bytes:
    """The dump's timeline as a PNG or SVG image (rendered by vl-convert, offline)."""
    spec = charts.timeline(result, zoom=False)
    if fmt == "svg":
        return str(vl_convert.vegalite_to_svg(spec, vl_version=charts.VL_VERSION)).encode()
    if fmt == "png":
        return bytes(vl_convert.vegalite_to_png(spec, vl_version=charts.VL_VERSION, scale=2))
    raise ValueError(f"no image format {fmt}")


def _users(result: ReportResult, cause: str) -> str:
    z = result.incidents.audit.zeroings
    return f"{z.filter(pl.col('cause') == cause)['user_id'].n_unique():,}"


def _by_cause(result: ReportResult) -> list[dict[str, Any]]:
    counts = result.incidents.audit.by_cause()
    return [{"cause": c, "zeroings": f"{counts[c]:,}"} for c in CAUSES if counts[c]]


def _marker(m: dict[str, Any]) -> dict[str, str]:
    until = f" to {iso_utc(m['until'])}" if m["until"] is not None else ""
    return {"at": f"{iso_utc(m['at'])}{until}", "kind": m["kind"], "label": m["label"]}


def _section(result: ReportResult, n: int, row: dict[str, Any], chart_id: str) -> dict[str, Any]:
    mine = (pl.col("cause") == row["cause"]) & (pl.col("cause_ref") == row["cause_ref"])
    owed = result.owed.filter(mine)
    seconds = [row[f"zero_{s}_s"] for s in ("median", "p95", "max")]
    return {
        "n": n,
        "anchor": chart_id,
        "cause": row["cause"],
        "cause_ref": row["cause_ref"],
        "what": row["what"] or "",
        "users": f"{row['users']:,}",
        "zeroings": f"{row['zeroings']:,}",
        "limit_removed": row["limit_removed"],
        "recovered": (
            f"{row['recovered_full']:,} / {row['recovered_partial']:,} / {row['recovered_none']:,}"
        ),
        "still_at_zero": f"{row['still_at_zero']:,}",
        "first": row["first_zeroed_at"],
        "last": row["last_zeroed_at"],
        "at_zero": " / ".join(_duration(s) for s in seconds),
        "notified": f"{row['notified_decrease']:,} / {row['notified_restore']:,}",
        "owes": row["cause"] in NOT_OWN_RISK,
        "owed": owed.head(OWED_SHOWN).to_dicts(),
        "owed_total": _owed_total(owed),
        "chart": chart_id,
    }


def _owed_total(owed: pl.DataFrame) -> dict[str, str]:
    return {"users": f"{owed.height:,}", "yuan": shortfall_total(owed)}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"


def _accounting(result: ReportResult) -> dict[str, Any]:
    t = result.totals
    hosts = sorted({f.host for f in result.files if f.host})
    return {
        "totals": {k: f"{v:,}" for k, v in t.items()},
        "hosts": hosts,
        "files": [
            {
                "path": f.path,
                "kind": f.kind + ("" if f.compression == "none" else f" ({f.compression})"),
                "host": f.host or "",
                "lines": f"{f.counts['lines']:,}",
                "records": f"{f.counts['records']:,}",
                "duplicates": f"{f.counts['duplicates']:,}",
                "rejected": f"{f.counts['rejected']:,}",
                "rejected_n": f.counts["rejected"],
            }
            for f in result.files
        ],
        "reasons": [{"reason": r, "lines": f"{n:,}"} for r, n in result.reasons.iter_rows()],
        "offsets": [
            {"host": h, "offset": f"{o / 1000:+.1f} s", "evidence": f"{n:,}"}
            for h, o, n in result.offsets.iter_rows()
        ],
    }
