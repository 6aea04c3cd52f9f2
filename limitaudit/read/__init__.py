"""Bytes to typed tables: find and sniff files, split lines, parse and type records, read
ledger exports, read many files at once, and settle repeats (see `read_dump`)."""

from limitaudit.read.parallel import read_dump, read_files, read_in_processes

__all__ = ["read_dump", "read_files", "read_in_processes"]
