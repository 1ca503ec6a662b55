"""What git says about the checkout, when the CI's variables do not."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bake.engine import process
from bake.engine.process import Runner


def _git(runner: Runner, *args: str, cwd: Path) -> str | None:
    try:
        return runner.run(["git", *args], cwd=cwd).strip() or None
    except process.CommandFailed:
        return None


def head(runner: Runner, cwd: Path) -> tuple[str, str | None]:
    """The checked-out branch (``detached`` for a detached HEAD, ``local`` outside git or
    before the first commit) and commit, in one call."""
    said = _git(runner, "rev-parse", "HEAD", "--abbrev-ref", "HEAD", cwd=cwd)  # --abbrev-ref: for what follows it
    if said is None:
        return "local", None
    commit, _, name = said.partition("\n")
    return ("detached" if name.strip() == "HEAD" else name.strip()), commit or None


def output(runner: Runner, args: Sequence[str], *, cwd: Path) -> str:
    """``git ARGS`` in ``cwd``: its stdout, or CommandFailed."""
    return runner.run(["git", *args], cwd=cwd)


# -- what gc asks: live branches and commit dates ------------------------------------------------


def remotes(runner: Runner, cwd: Path) -> list[str]:
    """The checkout's remotes (none outside git)."""
    said = _git(runner, "remote", cwd=cwd)
    return said.split() if said else []


def remote_heads(runner: Runner, remote: str, cwd: Path, timeout: float = 60) -> dict[str, str]:
    """``git ls-remote --heads REMOTE``: each branch of the remote and its head commit
    (CommandFailed when the remote cannot be asked)."""
    out = runner.run(["git", "ls-remote", "--heads", remote], cwd=cwd, timeout=timeout)
    heads = {}
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref.startswith("refs/heads/"):
            heads[ref.removeprefix("refs/heads/")] = sha.strip()
    return heads


def local_heads(runner: Runner, cwd: Path) -> dict[str, tuple[str, float]]:
    """The checkout's own branches: head commit and its committer time."""
    out = _git(
        runner,
        "for-each-ref",
        "--format=%(refname:short)%09%(objectname)%09%(committerdate:unix)",
        "refs/heads",
        cwd=cwd,
    )
    heads = {}
    for line in (out or "").splitlines():
        name, sha, when = [*line.split("\t"), "", ""][:3]
        if name and sha and when.isdigit():
            heads[name] = (sha, float(when))
    return heads


def commit_times(runner: Runner, names: Sequence[str], cwd: Path) -> dict[str, float]:
    """Committer time of each commit git knows among ``names`` (full or abbreviated hashes),
    by the name asked; names git does not know (or finds ambiguous) are left out."""
    if not names:
        return {}
    try:
        checked = runner.run(
            ["git", "cat-file", "--batch-check=%(objectname) %(objecttype)"], cwd=cwd, input="\n".join(names) + "\n"
        )
    except process.CommandFailed:
        return {}
    full: dict[str, str] = {}
    for name, line in zip(names, checked.splitlines(), strict=False):
        parts = line.split()
        if len(parts) == 2 and parts[1] == "commit":
            full[name] = parts[0]
    if not full:
        return {}
    try:
        out = runner.run(["git", "log", "--no-walk=unsorted", "--format=%H %ct", *set(full.values())], cwd=cwd)
    except process.CommandFailed:
        return {}
    times = {}
    for line in out.splitlines():
        sha, _, when = line.partition(" ")
        if when.strip().isdigit():
            times[sha] = float(when)
    return {name: times[sha] for name, sha in full.items() if sha in times}


def reachable(runner: Runner, heads: Sequence[str], cwd: Path) -> set[str] | None:
    """Every commit reachable from ``heads`` (full hashes; heads git does not have are
    skipped), or None when git knows none of them."""
    known = commit_times(runner, list(heads), cwd)
    if not known:
        return None
    full = runner.run(["git", "cat-file", "--batch-check=%(objectname)"], cwd=cwd, input="\n".join(known) + "\n")
    try:
        out = runner.run(["git", "rev-list", *full.split()], cwd=cwd)
    except process.CommandFailed:
        return None
    return set(out.split())
