"""The entry point sets jemalloc's decay for its process and its workers, before Polars is
imported.

Each case runs a fresh interpreter: jemalloc reads its settings once per process. Its
`stats_print` option prints them at exit, which is how the case reads them back.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from limitaudit.launch import CONF

PROBE = """
import os, sys
from limitaudit.launch import tune_allocator
tune_allocator()
import polars
polars.DataFrame({"a": [1]})
print(os.environ.get(sys.argv[1], "<unset>"))
"""

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="Polars' wheels use jemalloc on Linux (mimalloc elsewhere)"
)


def _probe(user_conf: str | None) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k != CONF}
    env[CONF] = "stats_print:true" + ("," + user_conf if user_conf else "")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, CONF],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip(), done.stderr


def test_the_process_hands_freed_pages_back_at_once() -> None:
    env_after, stats = _probe(None)
    assert "opt.muzzy_decay_ms: 0 " in stats
    # Left in the environment: the worker processes that read a dump inherit it.
    assert env_after == "muzzy_decay_ms:0,stats_print:true"


def test_a_setting_of_the_users_wins() -> None:
    env_after, stats = _probe("muzzy_decay_ms:2000")
    assert "opt.muzzy_decay_ms: 2000 " in stats
    assert env_after == "muzzy_decay_ms:0,stats_print:true,muzzy_decay_ms:2000"
