"""A store: a dump read once into Parquet, read back far faster as the same Dump (layout)."""

from limitaudit.store.layout import StoreError, sha256_of
from limitaudit.store.manifest import manifest_files, read_manifest
from limitaudit.store.merge import merge, unsettled
from limitaudit.store.open import load, open_store
from limitaudit.store.write import DecisionSpill, write_store

__all__ = [
    "DecisionSpill",
    "StoreError",
    "load",
    "manifest_files",
    "merge",
    "open_store",
    "read_manifest",
    "sha256_of",
    "unsettled",
    "write_store",
]
