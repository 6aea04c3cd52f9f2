"""A store: a dump ingested once into Parquet, read back as the very Dump the read made.

Layout of a store directory:

    manifest.json            what is in the store (below); written last, atomically,
                             and it names the generation in use
    g000001/                 one complete generation of the data
      ledger/b00.parquet     the per-user tables (ledger, decision, manual_action,
      decision/b00.parquet   user_notice) in BUCKETS files each, by user_id; each file
      ...                    sorted by (user_id, time) in small row groups with
                             statistics, so one user's rows are found without reading
                             the rest
      param_change.parquet   the small global tables, whole (also model_deploy,
      ...                    feed_batch, engine_error)
      ledger_repeats.parquet ledger rows that repeat a change_id
      keys.parquet           the hashes of every record line (file_id, line, h1, h2,
                             ignored): later files are deduplicated against them
      stamps.parquet         time, host, event and quoted feed batch of every record
                             (clock offsets and silences need them all)
      rejects.parquet        every rejected line with its reason
      offsets.parquet        audit facts for one-user reads (see AuditFacts)
      silences.parquet
      users.parquet          every user id, to name the nearest ones to a mistyped id

The manifest holds the tool, format and Polars versions, the time zone assumed, and per
source file its name, path, size, sha256, kind, compression, encoding, host, service,
counts and time range, then the findings. A new generation is written in full before the
manifest is replaced to point at it, so a crash leaves the previous store (or none), never
half of one.

Line hashes (Polars' `Series.hash`) are not promised stable across Polars versions: a
store only takes more files from the Polars version that wrote it. Buckets are the user
id's last digits, not a hash, so any version reads them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from limitaudit.atomic import sweep
from limitaudit.errors import LimitAuditError, UsageError
from limitaudit.model.dump import BUCKET_DIGITS, BUCKETS, USER_TABLES, bucket_expr, bucket_of
from limitaudit.model.schema import EVENTS
from limitaudit.read.discover import PARTIAL_GENERATION, is_store

FORMAT_VERSION = 2  # 2: stamps.parquet
# Small row groups: a one-user read decodes only the groups whose user_id range holds it.
ROW_GROUP_ROWS = 8192
# The tables in which every row is one user's: bucketed. The others are small and global
# (engine_error apart: kept whole, but a one-user read filters it).
PER_USER = {name: "changed_at" if name == "ledger" else "ts" for name in USER_TABLES}
GLOBAL = [e for e in EVENTS if e not in PER_USER and e != "engine_error"]
__all__ = ["BUCKETS", "BUCKET_DIGITS", "bucket_expr", "bucket_of"]


class StoreError(LimitAuditError):
    """The store cannot be read or added to as asked (exit status 2)."""


def sha256_of(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def check_target(directory: Path, name: str | None = None) -> None:
    """A store is written into a store, or into a new or empty directory: nothing else (a
    first ingest that was killed left only what the next one sweeps)."""
    if is_store(directory) or not directory.exists():
        return
    if directory.is_dir():
        sweep(directory, PARTIAL_GENERATION)
    if not directory.is_dir() or any(directory.iterdir()):
        raise UsageError(
            f"{name or directory}: exists and is not a store: name a new or empty directory"
        )
