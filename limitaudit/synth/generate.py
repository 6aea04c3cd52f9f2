"""Generate a dump with known answers: the public entry point of limitaudit.synth."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from limitaudit.synth.answers import (
    CAUSES,
    attribute,
    audit_frame,
    detail_frame,
    incidents_frame,
    owed_frame,
    with_outcome,
)
from limitaudit.synth.dump import DumpLog, DumpWriter
from limitaudit.synth.records import build_records
from limitaudit.synth.simulate import USER_ID_BASE, Sim, keep_zeroing_events, simulate
from limitaudit.synth.timeutil import iso_z, parse_start
from limitaudit.synth.world import World, build_world

LINE_KINDS = ("json_log", "text_log", "ledger_csv")

README = """\
limit-engine incident dump
==========================

拷贝自生产环境的日志与额度流水导出（事故复盘用）。
Copied from production hosts for the post-incident review.

- le-NN/            risk-engine hosts (JSON lines or logback text, rotated)
- cfg-01/           config-center (param_change)
- mdl-01/           model-platform (model_deploy)
- feed-01/          feed-gateway (feed_batch)
- ops-01/           ops-console (manual_action)
- ntf-01/           notifier (user_notice)
- ledger/           limit_history export (CSV, gzip CSV, Parquet)

Checksums: SHA256SUMS.
"""


@dataclass(frozen=True)
class SynthOptions:
    users: int = 300
    days: int = 1
    seed: int = 0
    text_share: float = 0.5
    change_ids: bool = True
    max_skew_s: float = 60.0
    dirt: bool = True
    engine_hosts: int = 6
    start: str = "2026-03-14"


@dataclass(frozen=True)
class SynthResult:
    dump_dir: Path
    answers_dir: Path
    lines: int  # text lines of the logs and CSV ledgers, as written
    zeroings: int
    parquet_rows: int = 0  # rows of the Parquet ledgers: a line each to `scan`


def _check(options: SynthOptions) -> None:
    if options.users < 1:
        raise ValueError("users must be at least 1")
    if options.days < 1:
        raise ValueError("days must be at least 1")
    if options.engine_hosts < 1:
        raise ValueError("engine_hosts must be at least 1")
    if not 0.0 <= options.text_share <= 1.0:
        raise ValueError("text_share must be within [0, 1]")
    if options.max_skew_s < 0:
        raise ValueError("max_skew_s must not be negative")
    parse_start(options.start)


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True


def generate(out: Path, answers: Path, options: SynthOptions) -> SynthResult:
    _check(options)
    out = Path(out)
    answers = Path(answers)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty directory")
    if _inside(answers, out) or _inside(out, answers):
        raise ValueError("the answers directory must be outside the dump (the tool reads it all)")
    out.mkdir(parents=True, exist_ok=True)
    answers.mkdir(parents=True, exist_ok=True)

    start = parse_start(options.start)
    world = build_world(
        seed=options.seed,
        start=start,
        days=options.days,
        engine_hosts=options.engine_hosts,
        text_share=options.text_share,
        max_skew_s=options.max_skew_s,
        dirt=options.dirt,
    )
    sim = simulate(world, options.users, options.seed)
    recs = build_records(
        world, sim, change_ids=options.change_ids, dirt=options.dirt, seed=options.seed
    )
    keep_zeroing_events(sim)
    writer = DumpWriter(out, world, sim, recs, dirt=options.dirt, seed=options.seed)
    writer.write_logs()
    writer.write_ledger(options.users)
    log = writer.log

    (out / "README.txt").write_bytes(README.encode("utf-8"))
    log.files.append(("README.txt", "other", README.count("\n")))
    sums = []
    for rel, _, _ in sorted(log.files):
        digest = log.sha256.get(rel) or hashlib.sha256((out / rel).read_bytes()).hexdigest()
        sums.append(f"{digest}  {rel}\n")
    sums_text = "".join(sums)
    (out / "SHA256SUMS").write_bytes(sums_text.encode("ascii"))
    log.files.append(("SHA256SUMS", "other", sums_text.count("\n")))

    z = attribute(world, sim, recs, log)
    _write_csv(answers / "audit.csv", audit_frame(z))
    _write_csv(answers / "zeroings.csv", detail_frame(world, z, log))
    outcome = with_outcome(z, sim, recs, log)
    _write_csv(answers / "incidents.csv", incidents_frame(outcome))
    _write_csv(answers / "owed.csv", owed_frame(outcome))
    by_line = {"file": pl.String, "line": pl.Int64, "kind": pl.String}
    for name, rows, schema in (
        ("dirt.csv", log.dirt, by_line),
        ("files.csv", log.files, {"file": pl.String, "kind": pl.String, "lines": pl.Int64}),
        ("variants.csv", log.variants, by_line),
    ):
        _write_csv(answers / name, pl.DataFrame(sorted(rows), schema=schema, orient="row"))
    lines = sum(n for _, kind, n in log.files if kind in LINE_KINDS)
    counts = dict.fromkeys(CAUSES, 0)
    for cause, n in z.group_by("cause").len().sort("cause").iter_rows():
        counts[str(cause)] = int(n)
    truth = _truth(options, world, sim, log, counts=counts, lines=lines, zeroings=z.height)
    (answers / "truth.json").write_text(
        json.dumps(truth, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    parquet = sum(n for _, kind, n in log.files if kind == "ledger_parquet")
    return SynthResult(out, answers, lines=lines, zeroings=z.height, parquet_rows=parquet)


def _write_csv(path: Path, df: pl.DataFrame) -> None:
    buf = io.BytesIO()
    df.write_csv(buf)
    path.write_bytes(buf.getvalue())


def _truth(
    options: SynthOptions,
    world: World,
    sim: Sim,
    log: DumpLog,
    *,
    counts: dict[str, int],
    lines: int,
    zeroings: int,
) -> dict[str, object]:
    hosts = [
        {
            "host": h.name,
            "service": h.service,
            "format": h.fmt,
            "time_form": h.time_form,
            "offset_s": h.offset_ms / 1000,
            "encoding": h.encoding,
            "crlf": h.crlf,
            "old_build": h.old_build,
            "extra_fields": h.extras,
            "archive": h.archive if h.engine else None,
        }
        for h in world.hosts
    ]
    incidents: list[dict[str, object]] = []
    for c in world.param_changes:
        incidents.append(
            {
                "type": "param_change",
                "role": c.role,
                "at": iso_z(c.t),
                "param": c.param,
                "old_value": str(c.old),
                "new_value": str(c.new),
                "param_version": c.version,
                "release_id": c.release_id,
                "applied_at": {
                    world.engine[i].name: iso_z(t) for i, t in enumerate(world.apply_ms[c.idx])
                },
            }
        )
    for m in world.model_deploys:
        incidents.append(
            {
                "type": "model_deploy",
                "role": m.role,
                "at": iso_z(m.t),
                "model_version": m.model_version,
                "previous_version": m.previous_version,
                "traffic_pct": m.traffic_pct,
                "release_id": m.release_id,
            }
        )
    for b in world.batches:
        if b.status != "ok":
            incidents.append(
                {
                    "type": "feed_batch",
                    "role": b.status,
                    "at": iso_z(b.t),
                    "feed": b.feed,
                    "batch_id": b.batch_id,
                    "null_records": b.null_records,
                }
            )
    for bu in world.bursts:
        incidents.append(
            {
                "type": "engine_error_burst",
                "host": world.engine[bu.host].name,
                "from": iso_z(bu.start),
                "to": iso_z(bu.end),
                "component": bu.component,
                "error": bu.error,
            }
        )
    for s in world.silences:
        incidents.append(
            {
                "type": "host_silence",
                "host": world.engine[s.host].name,
                "from": iso_z(s.start),
                "to": iso_z(s.end),
            }
        )
    incidents.sort(key=lambda x: str(x.get("at", x.get("from"))))

    def ledger_rows(df: pl.DataFrame) -> list[dict[str, object]]:
        return [
            {"change_id": cid, "user_id": str(u + USER_ID_BASE), "source": src}
            for cid, u, src in df.select("change_id", "u", "source").iter_rows()
        ]

    scen: dict[str, int] = {}
    for p in sim.plants:
        if not p.scenario.endswith((":pre", ":unfreeze")):
            scen[p.scenario] = scen.get(p.scenario, 0) + 1
    losses: dict[str, int] = {}
    for r in log.loss_reason.values():
        losses[r] = losses.get(r, 0) + 1
    cut = world.engine[world.cut_host].name if world.cut_host is not None and options.dirt else None
    return {
        "options": dataclasses.asdict(options),
        "window": {"from": iso_z(world.start), "to": iso_z(world.end)},
        "zeroings": zeroings,
        "lines": lines,
        "causes": counts,
        "hosts": hosts,
        "text_engine_hosts": [h.name for h in world.engine if h.fmt == "text"],
        "cut_gzip_host": cut,
        "multimember_gzip_host": (
            world.engine[world.multimember_host].name
            if world.multimember_host is not None
            else None
        ),
        "cut_gzip": log.cut_info,
        "incidents": incidents,
        "planted": dict(sorted(scen.items())),
        "records_lost_in_dump": dict(sorted(losses.items())),
        "chain_breaks": ledger_rows(sim.chain_breaks),
        "ledger_gaps": ledger_rows(sim.ledger_gaps),
        "conventions": {
            "user_id": "16-digit string; notifier writes it as a JSON number when dirt is on",
            "amounts": "yuan with two decimals (50000.00) in text, CSV and JSON",
            "ledger_parquet": "changed_at timestamp[ms, UTC]; amounts decimal128(18,2)",
            "rules_order": "R_FAIL_CLOSED alone, or R_NO_SCORE, R_SCORE_CUTOFF, R_OVERDUE, "
            "R_FRAUD, R_SCORE_BAND in that order",
            "old_build_hosts": "write no change_id and no rule observed values",
            "lines": "physical lines of the decompressed file as written; ledger header is 1",
        },
    }
