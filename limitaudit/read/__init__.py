"""Bytes to typed tables: find and sniff files, split lines, parse and type records, read
ledger exports, read many files at once, and settle repeats (see `read_dump`).

The reading functions are loaded on first use: a store's reader needs only `discover`
from here, and `trace` on a store must start in half a second."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from limitaudit.read.parallel import read_dump, read_files, read_in_processes

__all__ = ["read_dump", "read_files", "read_in_processes"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from limitaudit.read import parallel  # noqa: PLC0415

        return getattr(parallel, name)
    raise AttributeError(f"module 'limitaudit.read' has no attribute {name!r}")
