"""What git says about the checkout, when the CI's variables do not."""

from __future__ import annotations

from pathlib import Path

from bake.engine import process


def _git(*args: str, cwd: Path) -> str | None:
    try:
        return process.run(["git", *args], cwd=cwd).strip() or None
    except process.CommandFailed:
        return None


def branch(cwd: Path) -> str:
    """The checked-out branch: ``detached`` for a detached HEAD, ``local`` outside git."""
    name = _git("rev-parse", "--abbrev-ref", "HEAD", cwd=cwd)
    if name is None:
        return "local"
    return "detached" if name == "HEAD" else name


def sha(cwd: Path) -> str | None:
    return _git("rev-parse", "HEAD", cwd=cwd)
