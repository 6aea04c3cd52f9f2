"""The issue 17 benchmark: how large a report is and how fast it opens in a browser.

    python benchmarks/report_bench.py                          # about 1 and 3 million lines
    python benchmarks/report_bench.py --lines 150000 --out /tmp/r.md   # a quick look

For each size, the dump that benchmarks/bench.py generates (and keeps in --work) is used,
or generated. Then:

  - `limitaudit report DUMP --output report.html --png timeline.png`, in its own process:
    its wall time (process start included) and peak RSS (its whole process tree), and the
    size of the page and of the image;
  - the page opened from disk in headless Chromium (Debian's, through Playwright),
    --opens times, each in a fresh tab with an empty cache: the time from navigation to
    the timeline drawn (what a reader waits for), and to every incident's chart drawn
    (they are drawn as they scroll into view; here all at once, the worst case). The
    median and the slowest are reported, and every run is listed.

The figures go to --out (benchmarks/REPORT.md) and to stdout.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import bench  # benchmarks/bench.py: the same dumps, the same measuring

HERE = Path(__file__).resolve().parent
DEFAULT_LINES = [1_000_000, 3_000_000]
# Issue 17's targets for a 3M-line dump, and issue 15's memory budget there (all
# processes together, every command).
SIZE_MB = 10.0
OPEN_S = 3.0
RSS_MIB = 1024.0
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Result:
    lines: int
    incidents: int = 0
    charts: int = 0  # an incident's, the manual actions' tickets one together
    wall: float = 0.0
    rss: float = 0.0
    page_mb: float = 0.0
    png_kb: float = 0.0
    opened: list[float] = field(default_factory=list)  # seconds to the timeline drawn
    all_drawn: list[float] = field(default_factory=list)  # ... to every chart drawn


def open_times(page: Path, runs: int, charts: int) -> tuple[list[float], list[float]]:
    from playwright.sync_api import ConsoleMessage, sync_playwright  # noqa: PLC0415

    opened, drawn = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        for _ in range(runs):
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            tab = context.new_page()
            errors: list[str] = []

            def console(message: ConsoleMessage, errors: list[str] = errors) -> None:
                if message.type == "error":
                    errors.append(message.text)

            tab.on("console", console)
            start = time.perf_counter()
            tab.goto(page.as_uri(), timeout=120_000)
            tab.wait_for_selector("#chart-timeline[data-ready]", timeout=120_000)
            opened.append(time.perf_counter() - start)
            tab.evaluate("window.limitauditDrawAll()")
            tab.wait_for_function(
                f"document.querySelectorAll('.chart.lazy[data-ready]').length === {charts}",
                timeout=300_000,
            )
            drawn.append(time.perf_counter() - start)
            if errors:
                raise bench.StepFailed(f"{page}: console errors: {errors[:3]}")
            context.close()
        browser.close()
    return opened, drawn


def run(limitaudit: str, work: Path, lines: int, seed: int, opens: int) -> Result:
    dump, _, _, _ = bench.generate(limitaudit, work, lines, seed)
    r = Result(lines=lines)
    with tempfile.TemporaryDirectory() as tmp:
        html, png = Path(tmp) / "report.html", Path(tmp) / "timeline.png"
        bench.progress(f"report of {dump}")
        argv = [limitaudit, "report", str(dump), "--output", str(html), "--png", str(png)]
        m, _ = bench.measure(argv)
        r.wall, r.rss = m.wall, m.rss
        r.page_mb = html.stat().st_size / 1e6
        r.png_kb = png.stat().st_size / 1e3
        text = html.read_text(encoding="utf-8")
        r.incidents = text.count('id="incident-')
        r.charts = text.count('class="chart lazy"')
        bench.progress(f"opening it {opens} times in Chromium")
        r.opened, r.all_drawn = open_times(html, opens, r.charts)
    return r


def markdown(results: list[Result], command: str) -> str:
    out = [
        "# limitaudit benchmark: the report page (issue 17)",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {bench.machine()}",
        f"- Python {platform.python_version()}, limitaudit {bench.commit()}, "
        f"Chromium at {CHROMIUM}",
        f"- command: `{command}`",
        "- `report` runs in its own process (wall time from its start, peak RSS of its "
        "process tree); the page is opened from disk in a fresh headless Chromium tab each "
        "time: seconds from navigation to the timeline drawn, and to every incident's chart "
        "drawn (median, slowest; every run in brackets).",
        "",
        "| lines | incidents (charts) | `report` wall | peak RSS | page | PNG | timeline drawn "
        "| every chart drawn |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        runs = ", ".join(f"{s:.2f}" for s in r.opened)
        out.append(
            f"| {r.lines:,} | {r.incidents:,} ({r.charts:,}) | {r.wall:.1f} s | {r.rss:,.0f} MiB "
            f"| {r.page_mb:.2f} MB | {r.png_kb:,.0f} kB "
            f"| {statistics.median(r.opened):.2f} s, ≤ {max(r.opened):.2f} s ({runs}) "
            f"| {statistics.median(r.all_drawn):.2f} s, ≤ {max(r.all_drawn):.2f} s |"
        )
    out += ["", "## Targets (issue 17, at 3M lines)", ""]
    near = [r for r in results if 3_000_000 / bench.NEAR <= r.lines <= 3_000_000 * bench.NEAR]
    if not near:
        out.append("No size near 3 million lines was measured.")
    for r in near:
        size_ok = "met" if r.page_mb <= SIZE_MB else f"missed ({r.page_mb / SIZE_MB:.2f}x)"
        slowest = max(r.opened)
        open_ok = "met" if slowest <= OPEN_S else f"missed ({slowest / OPEN_S:.2f}x)"
        out.append(f"- page under about {SIZE_MB:g} MB: {r.page_mb:.2f} MB, {size_ok}")
        out.append(
            f"- opens in under {OPEN_S:g} s (the timeline drawn, slowest run): "
            f"{slowest:.2f} s, {open_ok}"
        )
        rss_ok = "met" if r.rss <= RSS_MIB else f"missed ({r.rss / RSS_MIB:.2f}x)"
        out.append(
            f"- `report`'s peak memory under {RSS_MIB:,.0f} MiB, all processes: "
            f"{r.rss:,.0f} MiB, {rss_ok}"
        )
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=DEFAULT_LINES)
    parser.add_argument("--work", type=Path, default=HERE / "work", help="dumps (bench.py's)")
    parser.add_argument("--out", type=Path, default=HERE / "REPORT.md")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--opens", type=int, default=5, help="page opens per size")
    args = parser.parse_args()
    limitaudit = shutil.which("limitaudit")
    if limitaudit is None:
        sys.exit("limitaudit is not on PATH: pip install . first")
    if not Path(CHROMIUM).exists():
        sys.exit(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    command = "python benchmarks/report_bench.py " + " ".join(sys.argv[1:])
    results = [run(limitaudit, args.work, n, args.seed, args.opens) for n in args.lines]
    text = markdown(results, command.strip())
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
