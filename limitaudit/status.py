"""Every exit status the command line can return, in one place (docs/output.md lists them)."""

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    # The audit found something at or above the user's failure level (--fail-on).
    FINDINGS = 1
    # The command was used wrongly, or the dump (or store) cannot be read at all.
    ERROR = 2
    # A bug in limitaudit: an exception it did not expect (sysexits' EX_SOFTWARE).
    INTERNAL = 70
    # Interrupted (Ctrl-C, SIGINT) or terminated (SIGTERM, as a CI job's time-out sends):
    # 128 + the signal's number, as shells report a process a signal ended.
    INTERRUPTED = 130
    TERMINATED = 143
