"""Every exit code the CLI can return, in one place."""

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    # The audit found something at or above the user's failure level.
    FINDINGS = 1
    # The command was used wrongly, or the dump cannot be read at all.
    ERROR = 2
