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

The processes that read a large dump take the setting too. At 3 million lines the
audit's peak is theirs, near the end of the read: two workers each churning through
blocks. With Polars' default it was 934-1,044 MiB, all processes together; with
muzzy_decay_ms:0 it was 881-963 MiB, in the same time (18.3-19.9 s of CPU against
18.4-20.3, three runs each, alternated).
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
    """Set jemalloc's decay, before Polars is imported, for this process and the worker
    processes it starts (they inherit the environment). A user's own setting comes after
    ours and so wins."""
    if "polars" in sys.modules:
        return  # too late: jemalloc has read its settings
    mine = os.environ.get(CONF)
    ours = f"{ALLOCATOR},{mine}" if mine else ALLOCATOR
    os.environ[CONF] = ours
    import polars  # noqa: F401, PLC0415

    # Polars writes its own defaults in front of the setting as it comes in, and will
    # again in each worker: what the workers inherit is ours.
    os.environ[CONF] = ours
