"""Time `limitaudit scan` and `audit` on a generated dump, next to what Polars alone takes.

    python benchmarks/bench_scan.py                 # 5 million lines (about 2 GB on disk)
    python benchmarks/bench_scan.py --lines 500000  # a quick look

Each measured step runs in its own process, so its peak RSS is its own. The
floors are Polars reading the same files with nothing of limitaudit's work:
  - lines: every log and ledger file split into lines (read_csv with an unused
    separator and no quoting: decompression and splitting only);
  - ndjson: the JSON-lines log files parsed by read_ndjson (a clean dump, so
    Polars' reader does not stop at the first bad line).
Results go to stdout and to benchmarks/RESULTS-scan.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LINES_PER_USER = 12  # what `limitaudit synth` writes per user and day, roughly

FLOOR_LINES = """
import sys, polars as pl
from limitaudit.discover import discover
n = 0
for f in discover([sys.argv[1]]):
    if f.kind in ("json_log", "text_log", "ledger_csv"):
        try:
            df = pl.read_csv(f.path, separator="\\x1f", quote_char=None, has_header=False,
                             encoding="utf8-lossy", infer_schema=False,
                             truncate_ragged_lines=True)
        except OSError:  # the cut-off gzip: Polars reads none of it
            continue
        n += df.height
print(n)
"""

FLOOR_NDJSON = """
import sys, polars as pl
from limitaudit.discover import discover
from limitaudit.parse import JSON_DOC
schema = JSON_DOC.to_schema()  # every field, leaves as strings: what limitaudit decodes
n = 0
for f in discover([sys.argv[1]]):
    if f.kind == "json_log":
        n += pl.read_ndjson(f.path, schema=schema).height
print(n)
"""


def measure(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MiB and stdout of one child process (its own rusage)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode not in (0, 1):
            sys.exit(f"{' '.join(argv)} failed:\n{err.read().decode()}")
        return wall, usage.ru_maxrss / 1024, out.read().decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--keep", action="store_true", help="keep the generated dump")
    args = parser.parse_args()

    users = max(args.lines // LINES_PER_USER, 50)
    dump = args.work / f"dump-{args.lines}"
    if not dump.exists():
        args.work.mkdir(parents=True, exist_ok=True)
        for extra in ([], ["--clean"]):
            target = dump if not extra else args.work / f"clean-{args.lines}"
            subprocess.run(
                [
                    "limitaudit",
                    "synth",
                    str(target),
                    "--users",
                    str(users),
                    "--seed",
                    str(args.seed),
                    "--answers",
                    str(target) + "-answers",
                    *extra,
                ],
                check=True,
            )
    clean = args.work / f"clean-{args.lines}"
    rows = []
    scan_wall, scan_rss, out = measure(["limitaudit", "scan", str(dump), "--format", "json"])
    lines = json.loads(out)["totals"]["lines"]
    rows.append(("limitaudit scan (dirty dump)", lines, scan_wall, scan_rss))
    audit_wall, audit_rss, _ = measure(
        ["limitaudit", "audit", str(dump), "--format", "csv", "--fail-on", "none"]
    )
    rows.append(("limitaudit audit (dirty dump)", lines, audit_wall, audit_rss))
    wall, rss, out = measure([sys.executable, "-c", FLOOR_LINES, str(dump)])
    rows.append(("Polars: split the same files into lines", int(out), wall, rss))
    wall, rss, out = measure(["limitaudit", "scan", str(clean), "--format", "json"])
    clean_lines = json.loads(out)["totals"]["lines"]
    rows.append(("limitaudit scan (clean dump)", clean_lines, wall, rss))
    wall, rss, out = measure([sys.executable, "-c", FLOOR_NDJSON, str(clean)])
    rows.append(("Polars: read_ndjson of its JSON logs", int(out), wall, rss))

    head = (
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}, {platform.system()}\n"
        f"dump: {lines:,} lines (seed {args.seed}, {users:,} users, 1 day)\n"
    )
    table = [
        "| step | lines | wall s | lines/s | peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, n, w, r in rows:
        table.append(f"| {name} | {n:,} | {w:.1f} | {n / w:,.0f} | {r:,.0f} |")
    text = head + "\n" + "\n".join(table) + "\n"
    print(text)
    (HERE / "RESULTS-scan.md").write_text(
        "# scan benchmark\n\nProduced by `python benchmarks/bench_scan.py "
        f"--lines {args.lines}`.\n\n" + text,
        encoding="utf-8",
    )
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
