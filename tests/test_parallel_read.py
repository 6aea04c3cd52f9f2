"""Reading files on several threads gives exactly what reading them one by one gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

import limitaudit.ingest as ingest_module
from limitaudit.ingest import ingest

SAMPLE = Path(__file__).parent.parent / "sample_logs"


def test_threads_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    parallel = ingest([SAMPLE])
    monkeypatch.setattr(ingest_module, "READ_THREADS", 1)
    serial = ingest([SAMPLE])
    assert parallel.tables.keys() == serial.tables.keys()
    for name in serial.tables:
        assert_frame_equal(parallel.tables[name], serial.tables[name])
    assert_frame_equal(parallel.rejects, serial.rejects)
    assert parallel.findings == serial.findings
    assert [f.counts for f in parallel.files] == [f.counts for f in serial.files]
