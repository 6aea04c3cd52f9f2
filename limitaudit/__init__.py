"""limitaudit: reconstruct when and why credit limits went to zero."""

__version__ = "0.1.0"
