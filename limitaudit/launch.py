"""The program's entry point: what has to happen before Polars is first imported, then the CLI.

Polars allocates with jemalloc, which gives freed memory back to the system only after a
delay: Polars sets dirty_decay_ms:500 and muzzy_decay_ms:1000 (`_RJEM_MALLOC_CONF=
stats_print:true` shows them), and pages in either state still count in the RSS. An
audit's main process builds and drops large frames in quick steps (settling the read,
attributing a share, sorting the result), so on a 21-million-line dump its RSS stood some
150-250 MiB above what it held, close to the 3 GiB the audit has to stay under.
muzzy_decay_ms:0 hands a page back for good once it has waited out the dirty decay: the
peak fell from 2,940-3,050 to 2,780 MiB, in the same time (190 s against 197). Shorter
dirty decays lowered it a little more but cost time: 10% on a store's audit at 100 ms,
and 10% on the raw audit at 0. The trade-off is discussed in pola-rs/polars#23128.
jemalloc reads the setting once, on Polars' first allocation, hence this module.
"""

from __future__ import annotations

import os
import sys

CONF = "_RJEM_MALLOC_CONF"
ALLOCATOR = "muzzy_decay_ms:0"


def main() -> None:
    tune_allocator()
    # Imported here, not above: it imports Polars, which must come after the setting.
    from limitaudit.cli import main as cli_main  # noqa: PLC0415

    cli_main()


def tune_allocator() -> None:
    """Set jemalloc's decay for this process alone, before Polars is imported.

    A user's own setting comes after ours and so wins. The environment is put back once
    Polars is in: the worker processes that read a dump keep Polars' default, which made
    their reading faster, and their peaks are not the large ones."""
    if "polars" in sys.modules:
        return  # too late: jemalloc has read its settings
    mine = os.environ.get(CONF)
    os.environ[CONF] = f"{ALLOCATOR},{mine}" if mine else ALLOCATOR
    try:
        import polars  # noqa: F401, PLC0415
    finally:
        if mine is None:
            del os.environ[CONF]
        else:
            os.environ[CONF] = mine
