"""How amounts and times are written (model.format)."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from limitaudit.model.format import yuan, yuan_text


@pytest.mark.parametrize(
    ("fen", "text"),
    [(5000007, "50000.07"), (0, "0.00"), (5, "0.05"), (-5, "-0.05"), (-123456, "-1234.56")],
)
def test_yuan_writes_fen_with_two_decimals(fen: int, text: str) -> None:
    assert pl.select(yuan(pl.lit(fen, pl.Int64))).item() == text
    assert yuan_text(fen) == text


@given(st.lists(st.integers(-(10**15), 10**15) | st.none(), max_size=50))
def test_yuan_reads_back_as_the_fen_it_was(values: list[int | None]) -> None:
    frame = pl.DataFrame({"fen": values}, schema={"fen": pl.Int64})
    written = frame.select(yuan("fen").alias("fen"))
    assert all(t is None or t.split(".")[1].isdigit() for t in written["fen"])
    exact = [None if t is None else int(t.replace(".", "")) for t in written["fen"]]
    assert exact == values
    assert [yuan_text(v) if v is not None else None for v in values] == written["fen"].to_list()
