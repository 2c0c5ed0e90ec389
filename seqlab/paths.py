"""Paths the user gives: `~` expanded, relative ones taken against the directory the command ran from (Hydra may
run a job in another directory)."""

from __future__ import annotations

from pathlib import Path


def user_path(value: str | Path) -> Path:
    from hydra.utils import to_absolute_path  # outside a Hydra app it resolves against the current directory

    return Path(to_absolute_path(str(Path(str(value)).expanduser())))
