"""Where the dump is when the command line does not say: LIMITAUDIT_DUMP, then limitaudit.toml."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from pathlib import Path

from limitaudit.errors import UsageError

ENV_VAR = "LIMITAUDIT_DUMP"
CONFIG_FILE = "limitaudit.toml"


def resolve_dump(given: Sequence[str] | None, cwd: Path | None = None) -> list[str]:
    if given:
        return list(given)
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return [p for p in env.split(os.pathsep) if p]
    config = (cwd or Path.cwd()) / CONFIG_FILE
    if config.is_file():
        try:
            data = tomllib.loads(config.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{config}: not valid TOML: {exc}") from None
        dump = data.get("dump")
        paths = [dump] if isinstance(dump, str) else dump
        if isinstance(paths, list) and paths and all(isinstance(p, str) for p in paths):
            # Relative paths in the file are relative to the file, not to where we run.
            return [str(config.parent / p) for p in paths]
        raise UsageError(f'{config}: expected dump = "PATH" or dump = ["PATH", ...]')
    raise UsageError(
        f"no dump given: name it on the command line, set {ENV_VAR}, "
        f'or put dump = "PATH" in ./{CONFIG_FILE}'
    )
