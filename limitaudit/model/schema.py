"""The canonical model: one typed table per event kind and one for the ledger.

Each field has a kind that says how its raw string is typed and checked:
`str` kept as is, `user` a string of digits, `float`/`int`/`bool` parsed,
`money` yuan to exact fen (Int64), `rules` the list of fired rules.
"""

from __future__ import annotations

import polars as pl
from polars.datatypes import DataTypeClass

DType = pl.DataType | DataTypeClass

RULE_FIELDS = ["id", "param", "threshold", "observed", "action"]
INPUT_FIELDS = ["credit_score", "overdue_days", "fraud_flag", "bureau_batch"]

EVENTS: dict[str, dict[str, str]] = {
    "decision": {
        "user_id": "user",
        "change_id": "str",
        "model_version": "str",
        "param_version": "str",
        "score": "float",
        "credit_score": "int",
        "overdue_days": "int",
        "fraud_flag": "bool",
        "bureau_batch": "str",
        "rules": "rules",
        "limit_before": "money",
        "limit_after": "money",
        "fallback": "bool",
    },
    "param_change": {
        "param": "str",
        "old_value": "str",
        "new_value": "str",
        "param_version": "str",
        "operator": "str",
        "release_id": "str",
        "comment": "str",
    },
    "model_deploy": {
        "model_version": "str",
        "previous_version": "str",
        "traffic_pct": "float",
        "release_id": "str",
        "operator": "str",
    },
    "feed_batch": {
        "feed": "str",
        "batch_id": "str",
        "records": "int",
        "null_records": "int",
        "status": "str",
    },
    "manual_action": {
        "user_id": "user",
        "operator": "str",
        "action": "str",
        "ticket": "str",
        "reason": "str",
        "change_id": "str",
        "limit_before": "money",
        "limit_after": "money",
    },
    "engine_error": {
        "component": "str",
        "error": "str",
        "message": "str",
        "user_id": "user",
    },
    "user_notice": {
        "user_id": "user",
        "channel": "str",
        "template": "str",
        "change_id": "str",
    },
}

# Without these a record of that kind says nothing we can use: it is rejected.
REQUIRED: dict[str, list[str]] = {
    "decision": ["user_id", "limit_before", "limit_after"],
    "param_change": ["param", "new_value"],
    "model_deploy": ["model_version"],
    "feed_batch": ["feed", "batch_id"],
    "manual_action": ["user_id", "action"],
    "engine_error": [],
    "user_notice": ["user_id"],
}

# Every event field any kind has, in a stable order (inputs and rules apart).
EVENT_FIELDS = list(
    dict.fromkeys(
        f for fields in EVENTS.values() for f in fields if f not in INPUT_FIELDS and f != "rules"
    )
)

Time = pl.Datetime("ms", "UTC")
Rule = pl.Struct(
    {
        "id": pl.String,
        "param": pl.String,
        "threshold": pl.Float64,
        "observed": pl.String,
        "action": pl.String,
    }
)
DTYPES: dict[str, DType] = {
    "str": pl.String,
    "user": pl.String,
    "float": pl.Float64,
    "int": pl.Int64,
    "bool": pl.Boolean,
    "money": pl.Int64,
    "rules": pl.List(Rule),
}

# What every audit reads of every record that sets a limit (a decision or a manual action):
# clock offsets, matching and ledger gaps need no more of it.
ACTION_FIELDS = [
    "file_id",
    "line",
    "ts",
    "host",
    "user_id",
    "change_id",
    "limit_before",
    "limit_after",
]

# Where every record came from, and what every record has.
ORIGIN: dict[str, DType] = {"file_id": pl.UInt32, "line": pl.UInt32}
COMMON: dict[str, DType] = {
    "ts": Time,
    "level": pl.String,
    "service": pl.String,
    "host": pl.String,
    "trace_id": pl.String,
}
EXTRA: dict[str, dict[str, DType]] = {
    "decision": {"credit_score_present": pl.Boolean},
    "engine_error": {"stack": pl.String},
}


def event_schema(event: str) -> pl.Schema:
    fields = {name: DTYPES[kind] for name, kind in EVENTS[event].items()}
    return pl.Schema({**ORIGIN, **COMMON, **fields, **EXTRA.get(event, {})})


LEDGER_FIELDS = {
    "change_id": "str",
    "user_id": "user",
    "changed_at": "time",
    "limit_before": "money",
    "limit_after": "money",
    "source": "str",
}
LEDGER_REQUIRED = ["change_id", "user_id", "changed_at", "limit_before", "limit_after"]
LEDGER_SCHEMA = pl.Schema(
    {
        **ORIGIN,
        "change_id": pl.String,
        "user_id": pl.String,
        "changed_at": Time,
        "limit_before": pl.Int64,
        "limit_after": pl.Int64,
        "source": pl.String,
    }
)
