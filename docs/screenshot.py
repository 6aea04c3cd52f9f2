"""Pictures of the report for the README: `limitaudit report` on sample_logs, opened in
headless Chromium.

    python docs/screenshot.py        # writes docs/report.png and docs/report-incident.png

Needs the project installed (pip install '.[test]': Playwright) and Debian's chromium.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        argv = ["limitaudit", "report", "sample_logs", "--output", str(page)]
        subprocess.run(argv, cwd=REPO, check=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            tab = browser.new_page(viewport={"width": 1280, "height": 1000})
            tab.goto(page.as_uri())
            tab.wait_for_selector("#chart-timeline[data-ready]")
            # The header, the timeline and the start of the incidents: what a reader sees first.
            tab.screenshot(path=str(DOCS / "report.png"))
            tab.evaluate("window.limitauditDrawAll()")
            tab.wait_for_selector("#chart-incident-1[data-ready]")
            section = tab.locator("#incident-1")
            section.screenshot(path=str(DOCS / "report-incident.png"))
            browser.close()
    print(f"wrote {DOCS / 'report.png'} and {DOCS / 'report-incident.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
