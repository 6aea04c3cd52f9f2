"""limitaudit: reconstruct when and why credit limits went to zero.

As a library::

    import limitaudit

    result = limitaudit.audit("sample_logs")        # paths, globs, or a store
    result.zeroings                                 # a Polars DataFrame, one row a zeroing
    limitaudit.trace("2088102000000161", "sample_logs").timeline
    limitaudit.scan("sample_logs").totals

`scan`, `audit`, `incidents`, `owed`, `whatif`, `report`, `trace` and `ingest` are documented in
`limitaudit.api`. They are loaded on first use: importing limitaudit imports neither
Polars nor the rest of the package, so that the command line can set Polars' allocator
first (launch.py) and a caller pays only for what it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "__version__",
    "audit",
    "incidents",
    "ingest",
    "owed",
    "report",
    "scan",
    "trace",
    "whatif",
]

if TYPE_CHECKING:
    from limitaudit.api import audit, incidents, ingest, owed, report, scan, trace, whatif


def __getattr__(name: str) -> Any:
    if name in __all__[1:]:
        from limitaudit import api  # noqa: PLC0415

        return getattr(api, name)
    raise AttributeError(f"module 'limitaudit' has no attribute {name!r}")
