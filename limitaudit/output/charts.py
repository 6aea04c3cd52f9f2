"""A report's charts as Vega-Lite specifications, built with Altair.

Vega-Lite, because one specification serves both places a chart goes: the page draws it
in the browser (the Vega bundle inlined, no network), and vl-convert renders the same
specification to SVG or PNG for a ticket, offline, without a browser. Altair builds the
specifications from Polars frames and checks them against Vega-Lite's schema. Times go
in as ISO 8601 with `Z` (format.iso_times): what Vega parses as UTC, whatever the
browser's own zone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final, cast

import altair as alt
import polars as pl

from limitaudit.analysis.timeline import MARKER_KINDS
from limitaudit.commands.report import ReportResult
from limitaudit.model.format import iso_times

# The Vega-Lite version Altair writes, as vl-convert names it ("6.4").
VL_VERSION = alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0]
WIDTH = 940
# Causes in the contract's order; the users' own risk muted, the unexplained red.
CAUSE_COLOURS = {
    "manual": "#8c6d31",
    "system_error": "#e6550d",
    "data_anomaly": "#9467bd",
    "parameter_error": "#3182bd",
    "model_regression": "#31a354",
    "risk_policy": "#bdbdbd",
    "unexplained": "#d62728",
}
MARKER_COLOURS = {
    "parameter change": "#08519c",
    "parameter rollback": "#6baed6",
    "model deploy": "#006d2c",
    "model rollback": "#74c476",
    "feed batch": "#54278f",
    "host silence": "#969696",
    "error burst": "#fd8d3c",
}
# The name of the layer that draws the zeroings: Vega names its marks after it
# ("zeroings_marks"), which is how a test finds and counts the bars on the page.
BARS = "zeroings"
# An incident's own timeline shows this much before its first zeroing and after its last.
MARGIN = timedelta(minutes=30)
# ... and the change its cause_ref names, if it came at most this long before.
LOOK_BACK = timedelta(hours=6)
_MINUTE: Final = "utcyearmonthdatehoursminutes"
_SECOND: Final = "utcyearmonthdatehoursminutesseconds"


def _domain(start: datetime, end: datetime) -> list[str]:
    return [start.strftime("%Y-%m-%dT%H:%M:%S.000Z"), end.strftime("%Y-%m-%dT%H:%M:%S.000Z")]


def _colour(field: str, colours: dict[str, str], title: str) -> alt.Color:
    return alt.Color(
        f"{field}:N",
        title=title,
        scale=alt.Scale(domain=list(colours), range=list(colours.values())),
        sort=list(colours),
    )


def _markers(markers: pl.DataFrame) -> list[alt.LayerChart]:
    """What changed: a rule at each point event, a shaded span for each silence and
    burst, each told in its tooltip."""
    colour = _colour("kind", {k: MARKER_COLOURS[k] for k in MARKER_KINDS}, "what changed")
    # The bars' layer sets the time scale's domain; given twice, Vega warns of a conflict.
    x = alt.X("at:T")
    tip = [alt.Tooltip("kind:N"), alt.Tooltip("label:N", title="what")]
    tip += [alt.Tooltip("at:T", title="at (UTC)", timeUnit=_SECOND)]
    spans = markers.filter(pl.col("until").is_not_null())
    points = markers.filter(pl.col("until").is_null())
    layers: list[alt.Chart] = []
    if spans.height:
        layers.append(
            alt.Chart(iso_times(spans))
            .mark_rect(opacity=0.15, clip=True)
            .encode(x=x, x2="until:T", color=colour, tooltip=tip)
        )
    if points.height:
        layers.append(
            alt.Chart(iso_times(points))
            .mark_rule(strokeWidth=2, strokeDash=[4, 2], clip=True)
            .encode(x=x, color=colour, tooltip=tip)
        )
    # One layer of their own, so that spans and rules share one legend, apart from the bars'.
    return [alt.LayerChart(layer=layers)] if layers else []


def _bars(per_minute: pl.DataFrame, domain: list[str], zoom: bool) -> alt.Chart:
    """Zeroings per minute, stacked by cause: a bar a minute and cause."""
    counted = per_minute.group_by("minute", "cause").agg(pl.col("zeroings").sum())
    bars = (
        alt.Chart(iso_times(counted.sort("minute", "cause")))
        # A minute is less than a pixel wide over a day: each bar is drawn at least 2
        # pixels wide, and a minute wide once zoomed in that far.
        .mark_bar(width={"expr": "max(2, scale('x', 60000) - scale('x', 0))"})
        .encode(
            x=alt.X(
                "minute:T",
                timeUnit=_MINUTE,
                title="time (UTC)",
                scale=alt.Scale(domain=domain, type="utc"),
                axis=alt.Axis(format="%m-%d %H:%M", labelOverlap=True),
            ),
            y=alt.Y(
                "zeroings:Q",
                title="zeroings per minute",
                stack="zero",
                # Without a bar the stack's extent is infinite (Vega warns): an axis of 0-1.
                scale=alt.Scale(domain=[0, 1]) if counted.is_empty() else alt.Undefined,
            ),
            color=_colour("cause", CAUSE_COLOURS, "cause"),
            tooltip=[
                alt.Tooltip("minute:T", timeUnit=_MINUTE, title="minute (UTC)"),
                alt.Tooltip("cause:N"),
                alt.Tooltip("zeroings:Q"),
            ],
        )
        .properties(name=BARS)
    )
    if zoom:
        bars = bars.add_params(alt.selection_interval(name="zoom", bind="scales", encodings=["x"]))
    return cast(alt.Chart, bars)


def timeline(result: ReportResult, zoom: bool = True) -> dict[str, Any]:
    """The dump's timeline: zeroings per minute stacked by cause, with what changed marked
    on it; zoomed and panned along time in the page (`zoom`)."""
    start = result.first or datetime.now()
    end = result.last or start
    domain = _domain(start, end + timedelta(minutes=1))
    layers = [_bars(result.timeline, domain, zoom), *_markers(result.markers)]
    chart = (
        alt.LayerChart(layer=layers)
        .resolve_scale(color="independent")
        .properties(
            width=WIDTH,
            height=260,
            title=alt.Title(
                "Zeroings per minute, by cause, and what changed",
                subtitle="Drag to pan, scroll to zoom; hover a bar or a marker for its details."
                if zoom
                else "",
                anchor="start",
            ),
        )
    )
    return _spec(chart)


def incident(result: ReportResult, cause: str, cause_ref: str | None) -> dict[str, Any]:
    """One incident: its zeroings per minute with what changed around them, and its users
    at zero over time, climbing as they were zeroed and falling as limits came back. With
    no `cause_ref`, every incident of the cause together (manual actions' tickets)."""
    mine = pl.col("cause") == cause
    ref = pl.col("cause_ref")
    # An empty cause_ref is one incident's (a failing component no record names); None
    # is every incident of the cause.
    whole = cause_ref is None
    per_minute = result.timeline.filter(mine & (True if whole else ref == cause_ref))
    at_zero = result.at_zero.filter(mine & (ref.is_null() if whole else ref == cause_ref))
    # The bars span the zeroings and what the incident's own cause_ref did before them
    # (a release hours earlier); the users at zero, until the last came back.
    own = result.markers.filter(pl.col("ref") == (cause_ref or ""))["at"]
    first = cast(datetime, per_minute["minute"].min())
    last = cast(datetime, per_minute["minute"].max())
    start = min([first, *own.filter(own >= first - LOOK_BACK)]) - MARGIN
    end = last + MARGIN
    domain = _domain(start, end)
    near = result.markers.filter(
        (pl.col("at") <= end) & (pl.col("until").fill_null(pl.col("at")) >= start)
    )
    bars = alt.LayerChart(layer=[_bars(per_minute, domain, zoom=False), *_markers(near)])
    line_domain = _domain(start, max(end, cast(datetime, at_zero["at"].max())))
    line = (
        alt.Chart(iso_times(at_zero))
        .mark_line(interpolate="step-after", color="#d62728", point=False)
        .encode(
            x=alt.X(
                "at:T",
                title="time (UTC)",
                scale=alt.Scale(domain=line_domain, type="utc"),
                axis=alt.Axis(format="%m-%d %H:%M", labelOverlap=True),
            ),
            y=alt.Y("at_zero:Q", title="users at zero"),
            tooltip=[
                alt.Tooltip("at:T", title="at (UTC)", timeUnit=_SECOND),
                alt.Tooltip("at_zero:Q", title="at zero"),
            ],
        )
    )
    chart = alt.vconcat(
        bars.resolve_scale(color="independent").properties(width=WIDTH - 150, height=150),
        line.properties(width=WIDTH - 150, height=110),
    )
    return _spec(chart)


def _spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    # Altair refuses inline data past 5,000 rows by default (a guard for notebooks); a
    # report's data is already aggregated and bounded by the dump's minutes.
    with alt.data_transformers.disable_max_rows():
        spec: dict[str, Any] = chart.to_dict()
    return spec
