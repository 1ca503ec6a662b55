"""What git says about the checkout, when the CI's variables do not."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bake.engine import process


def _git(*args: str, cwd: Path) -> str | None:
    try:
        return process.run(["git", *args], cwd=cwd).strip() or None
    except process.CommandFailed:
        return None


def head(cwd: Path) -> tuple[str, str | None]:
    """The checked-out branch (``detached`` for a detached HEAD, ``local`` outside git or
    before the first commit) and commit, in one call."""
    said = _git("rev-parse", "HEAD", "--abbrev-ref", "HEAD", cwd=cwd)  # --abbrev-ref: for what follows it
    if said is None:
        return "local", None
    commit, _, name = said.partition("\n")
    return ("detached" if name.strip() == "HEAD" else name.strip()), commit or None


def output(args: Sequence[str], *, cwd: Path) -> str:
    """``git ARGS`` in ``cwd``: its stdout, or CommandFailed."""
    return process.run(["git", *args], cwd=cwd)
