"""The command line: Typer commands over the library (`commands`), and where they meet the
terminal (`boundary`)."""

from limitaudit.cli.boundary import stop_on_terminate
from limitaudit.cli.commands import app, main
from limitaudit.status import ExitStatus

__all__ = ["ExitStatus", "app", "main", "stop_on_terminate"]
