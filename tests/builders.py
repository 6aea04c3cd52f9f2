"""Tiny dumps written from inline records, for audit and trace tests.

Times are minutes after 2026-03-14T02:00:00Z (10:00 in Shanghai); records are
written as JSON lines with a `Z` timestamp, one file per host.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BASE = datetime(2026, 3, 14, 2, 0, 0, tzinfo=UTC)
U1, U2, U3 = "2088100000000001", "2088100000000002", "2088100000000003"


def at(minutes: float) -> str:
    t = BASE + timedelta(minutes=minutes)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def rule(
    rule_id: str,
    param: str | None = None,
    threshold: float | None = None,
    observed: Any = None,
    action: str = "zero",
) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rule_id, "action": action}
    if param is not None:
        out["param"] = param
    if threshold is not None:
        out["threshold"] = threshold
    if observed is not None:
        out["observed"] = observed
    return out


def decision(
    user: str,
    minutes: float,
    before: float,
    after: float,
    rules: list[dict[str, Any]],
    *,
    change_id: str | None = None,
    host: str = "le-01",
    model: str = "credit-v8.2",
    pv: str = "pv-1",
    score: float | None = 700.0,
    credit_score: Any = 700,
    overdue: int = 0,
    fraud: bool = False,
    batch: str | None = None,
    fallback: bool = False,
    trace: str | None = None,
) -> dict[str, Any]:
    inputs: dict[str, Any] = {"overdue_days": overdue, "fraud_flag": fraud}
    if credit_score != "absent":
        inputs["credit_score"] = credit_score
    if batch is not None:
        inputs["bureau_batch"] = batch
    rec: dict[str, Any] = {
        "@timestamp": at(minutes),
        "level": "INFO",
        "service": "limit-engine",
        "host": host,
        "event": "decision",
        "user_id": user,
        "model_version": model,
        "param_version": pv,
        "score": score,
        "inputs": inputs,
        "rules": rules,
        "limit_before": before,
        "limit_after": after,
        "fallback": fallback,
    }
    if change_id is not None:
        rec["change_id"] = change_id
    if trace is not None:
        rec["trace_id"] = trace
    return rec


def event(kind: str, minutes: float, host: str, **fields: Any) -> dict[str, Any]:
    return {
        "@timestamp": at(minutes),
        "level": "INFO",
        "service": host,
        "host": host,
        "event": kind,
        **fields,
    }


def param_change(
    minutes: float,
    param: str,
    old: str,
    new: str,
    pv: str,
    release: str,
    operator: str = "zhang.wei",
) -> dict[str, Any]:
    return event(
        "param_change",
        minutes,
        "config-center",
        param=param,
        old_value=old,
        new_value=new,
        param_version=pv,
        operator=operator,
        release_id=release,
    )


def model_deploy(
    minutes: float, version: str, previous: str, pct: int, release: str
) -> dict[str, Any]:
    return event(
        "model_deploy",
        minutes,
        "model-platform",
        model_version=version,
        previous_version=previous,
        traffic_pct=pct,
        release_id=release,
        operator="li.na",
    )


def feed_batch(minutes: float, batch: str, status: str = "ok", nulls: int = 0) -> dict[str, Any]:
    return event(
        "feed_batch",
        minutes,
        "feed-gateway",
        feed="credit_bureau",
        batch_id=batch,
        records=1000,
        null_records=nulls,
        status=status,
    )


def manual(
    minutes: float,
    user: str,
    ticket: str,
    before: float,
    after: float,
    reason: str = "客户申请冻结",
    change_id: str | None = None,
) -> dict[str, Any]:
    rec = event(
        "manual_action",
        minutes,
        "ops-console",
        user_id=user,
        operator="wang.fang",
        action="freeze" if after == 0 else "set_limit",
        ticket=ticket,
        reason=reason,
        limit_before=before,
        limit_after=after,
    )
    if change_id is not None:
        rec["change_id"] = change_id
    return rec


def engine_error(
    minutes: float,
    trace: str,
    component: str = "score-service",
    user: str | None = None,
    host: str = "le-01",
) -> dict[str, Any]:
    rec = event(
        "engine_error",
        minutes,
        host,
        component=component,
        error="java.net.SocketTimeoutException",
        message="timed out",
        trace_id=trace,
    )
    rec["level"] = "ERROR"
    if user is not None:
        rec["user_id"] = user
    return rec


def notice(minutes: float, user: str) -> dict[str, Any]:
    return event(
        "user_notice", minutes, "notifier", user_id=user, channel="sms", template="LIMIT_DECREASE"
    )


def ledger_row(
    change_id: str,
    user: str,
    minutes: float,
    before: float,
    after: float,
    source: str = "risk_engine",
) -> tuple[str, str, str, str, str, str]:
    return (change_id, user, at(minutes), f"{before:.2f}", f"{after:.2f}", source)


def write_dump(
    root: Path, records: list[dict[str, Any]], ledger: list[tuple[str, str, str, str, str, str]]
) -> Path:
    """Records go to <host>/<service>.log in the order given; the ledger to ledger/export.csv."""
    root.mkdir(parents=True, exist_ok=True)
    by_host: dict[str, list[str]] = {}
    for rec in records:
        by_host.setdefault(rec["host"], []).append(json.dumps(rec, ensure_ascii=False))
    for host, lines in by_host.items():
        (root / host).mkdir(exist_ok=True)
        (root / host / "service.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "ledger").mkdir(exist_ok=True)
    header = "change_id,user_id,changed_at,limit_before,limit_after,source\n"
    body = "".join(",".join(row) + "\n" for row in ledger)
    (root / "ledger" / "export.csv").write_text(header + body, encoding="utf-8")
    return root
