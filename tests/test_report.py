"""`limitaudit report`: what the page is drawn from, the page itself, its images, and the
terminal's charts. The page is opened in a real browser by tests/test_report_browser.py.

Set UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from rich.console import Console

from limitaudit import api
from limitaudit.analysis.timeline import at_zero, per_minute
from limitaudit.output import report as page
from limitaudit.output.termchart import over_time, sparkline, step_chart
from limitaudit.status import ExitStatus
from tests.builders import (
    U1,
    U2,
    U3,
    decision,
    engine_error,
    feed_batch,
    ledger_row,
    model_deploy,
    param_change,
    rule,
    write_dump,
)
from tests.test_cli import golden, invoke

SAMPLE = Path(__file__).parent.parent / "sample_logs"
MADE = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
T = pl.Datetime("ms", "UTC")


def cutoff(score: float) -> dict[str, object]:
    return rule("R_SCORE_CUTOFF", "score_cutoff", 6000, score)


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    """A release and its rollback, a model canary rolled back, a partial feed batch, a
    burst of engine errors (and a lone one, no burst), and zeroings under them."""
    records = [
        feed_batch(1, "cb-01", status="partial", nulls=12),
        feed_batch(2, "cb-02"),
        model_deploy(5, "credit-v8.3", "credit-v8.2", 10, "rel-m"),
        param_change(10, "score_cutoff", "600", "6000", "pv-2", "rel-bad"),
        decision(U1, 20, 50000, 0, [cutoff(712.4)], pv="pv-2", score=712.4),
        decision(U2, 20.5, 30000, 0, [cutoff(640.0)], pv="pv-2", score=640.0),
        *(engine_error(30 + i * 0.5, f"t{i}", "feature-store") for i in range(6)),
        engine_error(40, "lone", "score-service"),
        model_deploy(45, "credit-v8.2", "credit-v8.3", 100, "rel-m-back"),
        param_change(50, "score_cutoff", "6000", "600", "pv-3", "rel-fix"),
    ]
    ledger = [
        ledger_row("c1", U1, 20, 50000, 0, "risk_engine"),
        ledger_row("c2", U2, 20.5, 30000, 0, "risk_engine"),
        ledger_row("c3", U1, 55, 0, 50000, "risk_engine"),
        ledger_row("c4", U3, 60, 0, 20000, "campaign"),
    ]
    return write_dump(tmp_path / "dump", records, ledger)


# -- what the page is drawn from -----------------------------------------------------


def test_markers_name_each_change_rollback_failed_batch_and_burst(dump: Path) -> None:
    result = api.report(dump, made_at=MADE)
    kinds = result.markers.select("kind", "ref").rows()
    assert kinds == [
        ("feed batch", "cb-01"),
        ("model deploy", "credit-v8.3"),
        ("parameter change", "rel-bad"),
        ("error burst", "feature-store"),
        ("model rollback", "credit-v8.2"),
        ("parameter rollback", "rel-fix"),
    ]
    labels = dict(zip(result.markers["kind"], result.markers["label"], strict=True))
    assert labels["parameter change"] == "rel-bad: score_cutoff 600→6000 by zhang.wei"
    assert labels["model deploy"].startswith("credit-v8.3 at 10% traffic (replacing credit-v8.2)")
    assert labels["feed batch"].startswith("credit_bureau batch cb-01 partial, 12 of")
    assert labels["error burst"].startswith("feature-store: 6 engine errors, mostly java.net.")
    burst = result.markers.filter(pl.col("kind") == "error burst")
    assert (burst["until"] - burst["at"]).dt.total_seconds().to_list() == [150]


def test_per_minute_counts_zeroings_by_minute_cause_and_ref() -> None:
    z = pl.DataFrame(
        {
            "zeroed_at": [
                "2026-03-14T05:16:51.522Z",
                "2026-03-14T05:16:59.000Z",
                "2026-03-14T05:17:00.000Z",
                "2026-03-14T05:16:10.000Z",
            ],
            "cause": ["parameter_error", "parameter_error", "parameter_error", "risk_policy"],
            "cause_ref": ["rel-1", "rel-1", "rel-1", "R_FRAUD"],
        }
    )
    expected = pl.DataFrame(
        {
            "minute": [datetime(2026, 3, 14, 5, 16, tzinfo=UTC)] * 2
            + [datetime(2026, 3, 14, 5, 17, tzinfo=UTC)],
            "cause": ["parameter_error", "risk_policy", "parameter_error"],
            "cause_ref": ["rel-1", "R_FRAUD", "rel-1"],
            "zeroings": [2, 1, 1],
        },
        schema_overrides={"minute": T},
    )
    assert_frame_equal(per_minute(z), expected)


def test_at_zero_climbs_as_users_are_zeroed_and_falls_as_limits_come_back() -> None:
    z = pl.DataFrame(
        {
            "cause": ["data_anomaly"] * 3 + ["risk_policy"] + ["manual"] * 2,
            "cause_ref": ["cb-1"] * 3 + ["R_FRAUD", "OPS-1", "OPS-2"],
            "zeroed_at": [
                "2026-03-14T01:00:00.000Z",
                "2026-03-14T01:05:00.000Z",
                "2026-03-14T01:06:00.000Z",
                "2026-03-14T01:00:00.000Z",
                "2026-03-14T01:10:00.000Z",
                "2026-03-14T01:20:00.000Z",
            ],
            "restored_at": [
                "2026-03-14T02:00:00.000Z",
                None,
                "2026-03-14T01:30:00.000Z",
                None,
                "2026-03-14T01:40:00.000Z",
                None,
            ],
        }
    )
    end = datetime(2026, 3, 14, 3, 0, tzinfo=UTC)
    got = at_zero(z, end).sort("cause", "at")

    def times(*hm: tuple[int, int]) -> list[datetime]:
        return [datetime(2026, 3, 14, h, m, tzinfo=UTC) for h, m in hm]

    expected = pl.DataFrame(
        {
            "cause": ["data_anomaly"] * 6 + ["manual"] * 4,
            # Manual actions together: a ticket is mostly one user.
            "cause_ref": ["cb-1"] * 6 + [None] * 4,
            "at": times((1, 0), (1, 5), (1, 6), (1, 30), (2, 0), (3, 0))
            + times((1, 10), (1, 20), (1, 40), (3, 0)),
            "at_zero": [1, 2, 3, 2, 1, 1, 1, 2, 1, 1],
        },
        schema_overrides={"at": T},
    )
    assert_frame_equal(got, expected)


def test_report_of_a_store_equals_that_of_its_raw_dump(tmp_path: Path) -> None:
    store = tmp_path / "store"
    api.ingest(SAMPLE, store)
    raw = api.report(SAMPLE, made_at=MADE)
    stored = api.report(store, made_at=MADE)
    assert stored.provenance.sources == [str(store)]
    stored = dataclasses.replace(stored, provenance=raw.provenance)
    assert stored.to_data() == raw.to_data()
    assert page.html(stored) == page.html(raw)


# -- the page --------------------------------------------------------------------------


def _without_scripts(html: str) -> str:
    """The page as a golden file holds it: its charts' specifications and the Vega bundle
    left out (they are Altair's and Vega's; the browser test checks what they draw)."""
    html = html.replace(page.vega_bundle(), "/* the Vega bundle */")
    return re.sub(
        r'(<script type="application/json" id="specs">).*?(</script>)', r"\1…\2", html, flags=re.S
    )


def test_page_matches_golden_and_is_self_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(SAMPLE.parent)  # the page names its sources as given: "sample_logs"
    result = api.report("sample_logs", made_at=MADE)
    html = page.html(result)
    golden("report.html", _without_scripts(html))
    # Nothing is fetched: no external script, style, image or font (what the bundle
    # itself does in a browser, the browser test sees).
    outside = _without_scripts(html)
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", outside)
    assert "@import" not in outside and "url(" not in outside
    specs = json.loads(re.search(r'id="specs">(.*?)</script>', html, re.S)[1])  # type: ignore[index]
    # A chart an incident, the manual actions' tickets one chart together.
    assert set(specs) == {"timeline", "manual"} | {f"incident-{n}" for n in range(1, 7)}


def test_text_of_the_logs_cannot_break_out_of_the_page(tmp_path: Path) -> None:
    evil = "</script><script>alert(1)</script>"
    records = [
        param_change(10, evil, "1", "2", "pv-2", "rel-<b>"),
        decision(U1, 20, 50000, 0, [rule("R_SCORE_CUTOFF", "score_cutoff", 6000, 712.4)]),
    ]
    root = write_dump(tmp_path / "d", records, [ledger_row("c1", U1, 20, 50000, 0, "x")])
    html = page.html(api.report(root, made_at=MADE))
    assert evil not in html and "rel-<b>" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in html  # the markers' table, escaped
    assert html.count("<script") == 3  # the specs, the bundle, the page's own


def test_cli_writes_the_page_and_both_images(dump: Path, tmp_path: Path) -> None:
    out, png, svg = tmp_path / "r.html", tmp_path / "t.png", tmp_path / "t.svg"
    result = invoke("report", str(dump), "-o", str(out), "--png", str(png), "--svg", str(svg))
    assert result.exit_code == ExitStatus.OK, result.output
    assert result.stdout == ""
    assert re.fullmatch(
        r"1 incident\(s\) among 2 zeroing\(s\); written: \S+r\.html \(\d\.\d MB\), "
        r"\S+t\.png \(\d[.\d]* [kM]B\), \S+t\.svg \(\d+ kB\)\n",
        result.stderr,
    ), result.stderr
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert svg.read_text(encoding="utf-8").startswith("<svg")


def test_cli_asks_where_to_write(dump: Path, tmp_path: Path) -> None:
    result = invoke("report", str(dump))
    assert result.exit_code == ExitStatus.ERROR
    assert result.stderr == (
        "limitaudit: say where to write the report: --output FILE.html, --png or --svg\n"
    )
    missing = tmp_path / "no" / "r.html"
    result = invoke("report", str(dump), "--output", str(missing))
    assert result.exit_code == ExitStatus.ERROR
    assert f"--output {missing}: the directory {missing.parent} does not exist" in result.stderr
    result = invoke("report", str(tmp_path / "nothing-here"), "-o", str(tmp_path / "r.html"))
    assert result.exit_code == ExitStatus.ERROR
    assert not (tmp_path / "r.html").exists()


# -- the terminal's charts --------------------------------------------------------------


def test_sparkline_shares_a_scale_when_asked() -> None:
    assert sparkline([0, 1, 2, 4]) == (" ▂▄█", 1)
    assert sparkline([0, 1, 2, 4], top=8) == (" ▁▂▄", 1)
    assert sparkline([1] * 48, width=24) == ("█" * 24, 2)


def test_over_time_draws_each_cause_on_one_axis() -> None:
    z = pl.DataFrame(
        {
            "zeroed_at": ["2026-03-14T00:00:00.000Z", "2026-03-14T00:10:00.000Z"] * 2
            + ["2026-03-14T00:23:59.000Z"],
            "cause": ["risk_policy", "risk_policy", "manual", "risk_policy", "manual"],
        }
    )
    lines, per = over_time(z)
    assert per == "1 min a character from 03-14 00:00 UTC"
    assert lines == {
        "manual": "▄" + " " * 22 + "▄",
        "risk_policy": "▄" + " " * 9 + "█" + " " * 13,
    }


def test_step_chart_shows_the_limit_and_marks_the_time_at_zero() -> None:
    limits = pl.DataFrame(
        {
            "time": [datetime(2026, 3, 14, 0, m, tzinfo=UTC) for m in (0, 4, 8)],
            "limit": [800_000, 0, 400_000],
        },
        schema_overrides={"time": T},
    )
    console = Console(width=80, no_color=True, force_terminal=False)
    with console.capture() as captured:
        console.print(step_chart(limits, width=10, height=2))
    assert captured.get() == (
        "8,000 ┤████      \n"
        "    0 ┤████    ██\n"
        "      └────▲▲▲▲──\n"
        "       03-14 00:00 03-14 00:08\n"
        "       limit (yuan), lowest in each 1 min; ▲ at zero\n"
    )


def test_terminal_charts_are_coloured_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    user = "2088102000000102"
    coloured = invoke("trace", user, str(SAMPLE), env={"NO_COLOR": "", "FORCE_COLOR": "1"})
    assert "\x1b[36m█" in coloured.stdout  # the limit, cyan
    assert "\x1b[1;31m▲" in coloured.stdout  # the time at zero, red
    audit = invoke("audit", str(SAMPLE), env={"NO_COLOR": "", "FORCE_COLOR": "1"})
    assert "\x1b[36m" in audit.stdout and "▁" in audit.stdout
    # NO_COLOR takes the colours away (bold stays, as no-color.org asks); piped, no style.
    asked = invoke("trace", user, str(SAMPLE), env={"NO_COLOR": "1", "FORCE_COLOR": "1"})
    assert "\x1b[36m" not in asked.stdout and "31m" not in asked.stdout
    assert "\x1b[1m▲" in asked.stdout
    piped = invoke("trace", user, str(SAMPLE), env={"NO_COLOR": ""})
    assert "\x1b[" not in piped.stdout
    assert piped.stdout.splitlines()[0].startswith("79,600 ┤█")


def test_an_incident_without_a_cause_ref_is_drawn_alone(tmp_path: Path) -> None:
    # Fail-closed decisions with no engine error logged: system_error, cause_ref empty.
    records = [
        decision(U1, 20, 50000, 0, [], fallback=True),
        decision(U2, 40, 30000, 0, [], fallback=True),
        engine_error(70, "t1", "feature-store", user=U3),
        decision(U3, 70, 20000, 0, [], fallback=True, trace="t1"),
    ]
    ledger = [
        ledger_row("c1", U1, 20, 50000, 0, "risk_engine"),
        ledger_row("c2", U2, 40, 30000, 0, "risk_engine"),
        ledger_row("c3", U3, 70, 20000, 0, "risk_engine"),
    ]
    result = api.report(write_dump(tmp_path / "d", records, ledger), made_at=MADE)
    found = result.incidents.incidents.select("cause", "cause_ref", "zeroings").rows()
    assert sorted(found) == [("system_error", "", 2), ("system_error", "feature-store", 1)]
    html = page.html(result)
    specs = json.loads(re.search(r'id="specs">(.*?)</script>', html, re.S)[1])  # type: ignore[index]
    bars = {
        k: sum(len(d) for n, d in v["datasets"].items() if "zeroings" in d[0])
        for k, v in specs.items()
        if k.startswith("incident-")
    }
    assert sorted(bars.values()) == [1, 2]  # each incident its own minutes, not the cause's
