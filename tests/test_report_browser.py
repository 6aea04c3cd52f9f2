"""The report opened in a real browser: headless Chromium, driven by Playwright.

What a reader sees: the timeline drawn (not blank, one bar for each minute and cause the
data holds, one mark for each change), every incident's chart drawn, no request to the
network, no error or warning in the console. `.ci/run` installs Debian's chromium; where it is
missing, these tests skip and say so.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from limitaudit import api
from limitaudit.output import report as page
from tests.builders import U1, decision, ledger_row, write_dump

SAMPLE = Path(__file__).parent.parent / "sample_logs"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As the machine's own probe starts it: no sandbox (root), no GPU, and none of the
# background connections Chromium makes on its own, which a closed network refuses.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The share of the timeline's pixels that must not be white: axes and bars, not a
# blank box.
INKED = 0.01
# The zeroings' bars: Vega names their marks after the layer (charts.BARS), "zeroings_marks"
# or, in an incident's chart, "zeroings_0_marks".
BARS = 'g.mark-rect.role-mark[class*="zeroings"] > path'


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        pytest.skip("playwright is not installed: pip install '.[test]'")
    if not Path(CHROMIUM).exists():
        pytest.skip(
            "Chromium is not installed here (Debian: apt-get install chromium; .ci/run does it)"
        )
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    result = api.report(SAMPLE, made_at=datetime(2026, 12, 1, tzinfo=UTC))
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(page.html(result), encoding="utf-8")
    return result, path


def _open(browser: Any, path: Path) -> tuple[Any, list[str], list[str]]:
    """The page opened from disk, and what it asked of the network and said in error or
    warning (Vega warns of a chart it draws wrong, such as an axis with no extent)."""
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    errors: list[str] = []
    tab.on("request", lambda r: requests.append(r.url))
    tab.on("console", lambda m: errors.append(m.text) if m.type in {"error", "warning"} else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.goto(path.as_uri())
    tab.wait_for_selector("#chart-timeline[data-ready]", timeout=30_000)
    return tab, requests, errors


def _inked(tab: Any, selector: str) -> float:
    """The share of an element's pixels, in a screenshot, that are not near white."""
    shot = base64.b64encode(tab.locator(selector).screenshot()).decode()
    share: float = tab.evaluate(
        """async (png) => {
            const img = new Image();
            img.src = "data:image/png;base64," + png;
            await img.decode();
            const c = document.createElement("canvas");
            c.width = img.width; c.height = img.height;
            const g = c.getContext("2d");
            g.drawImage(img, 0, 0);
            const d = g.getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) {
                if (d[i] < 230 || d[i + 1] < 230 || d[i + 2] < 230) n++;
            }
            return n / (c.width * c.height);
        }""",
        shot,
    )
    return share


def _count(tab: Any, selector: str) -> int:
    n: int = tab.evaluate(f"document.querySelectorAll({selector!r}).length")
    return n


def test_timeline_is_drawn_with_a_mark_for_each_datum(browser: Any, sample: Any) -> None:
    result, path = sample
    tab, requests, errors = _open(browser, path)
    bars = result.timeline.group_by("minute", "cause").len().height
    spans = result.markers.filter(pl.col("until").is_not_null()).height
    rules = result.markers.height - spans
    assert bars > 100 and spans > 0 and rules > 0
    timeline = "#chart-timeline"
    assert _count(tab, f"{timeline} {BARS}") == bars
    assert _count(tab, f"{timeline} g.mark-rule.role-mark line") == rules
    marks = f'{timeline} g.mark-rect.role-mark:not([class*="zeroings"]) > path'
    assert _count(tab, marks) == spans
    assert _inked(tab, timeline) > INKED
    tab.screenshot(path=str(path.with_suffix(".png")))
    assert [u for u in requests if not u.startswith("file:")] == []
    assert errors == []


def test_every_incident_chart_is_drawn_without_error(browser: Any, sample: Any) -> None:
    result, path = sample
    tab, requests, errors = _open(browser, path)
    tab.evaluate("window.limitauditDrawAll()")
    causes = result.incidents.incidents["cause"]
    # A chart an incident, the manual actions' tickets one chart together.
    n = int((causes != "manual").sum()) + int((causes == "manual").any())
    assert _count(tab, ".chart.lazy") == n
    tab.wait_for_function(f"document.querySelectorAll('.chart.lazy[data-ready]').length === {n}")
    first = result.incidents.incidents.row(0, named=True)
    mine = (pl.col("cause") == first["cause"]) & (pl.col("cause_ref") == first["cause_ref"])
    bars = result.timeline.filter(mine).group_by("minute", "cause").len().height
    assert _count(tab, f"#chart-incident-1 {BARS}") == bars
    line = "#chart-incident-1 g.mark-line.role-mark path"
    assert _count(tab, line) == 1
    assert _inked(tab, "#chart-incident-1") > INKED
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert errors == []


def test_a_report_without_a_zeroing_draws_an_empty_timeline_without_warning(
    browser: Any, tmp_path: Path
) -> None:
    records = [decision(U1, 20, 50000, 40000, [])]
    dump = write_dump(tmp_path / "dump", records, [ledger_row("c1", U1, 20.05, 50000, 40000)])
    result = api.report(dump, made_at=datetime(2026, 12, 1, tzinfo=UTC))
    assert result.timeline.is_empty()
    path = tmp_path / "report.html"
    path.write_text(page.html(result), encoding="utf-8")
    tab, requests, errors = _open(browser, path)
    assert _count(tab, f"#chart-timeline {BARS}") == 0
    assert _inked(tab, "#chart-timeline") > INKED  # its axes
    assert [u for u in requests if not u.startswith("file:")] == []
    assert errors == []
