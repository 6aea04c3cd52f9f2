"""Domain errors. The CLI's single error boundary turns each into one line on stderr."""

from limitaudit.status import ExitStatus


class LimitAuditError(Exception):
    """An error the user can act on; its message is shown as is."""

    exit_status = ExitStatus.ERROR


class DumpError(LimitAuditError):
    """The dump cannot be read at all (missing path, nothing readable)."""


class UsageError(LimitAuditError):
    """The command was given options that do not fit together."""
