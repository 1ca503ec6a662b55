"""Just enough Dockerfile parsing to know its stages: ``FROM IMAGE [AS NAME]``."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FROM_RE = re.compile(r"^FROM\s+(?:--\S+\s+)*(?P<image>\S+)(?:\s+AS\s+(?P<name>\S+))?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None
    base: str


def instructions(text: str) -> list[str]:
    """Logical instruction lines: comments dropped, backslash continuations joined."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        if pending.strip():
            out.append(pending.strip())
        pending = ""
    if pending.strip():
        out.append(pending.strip())
    return out


def stages(text: str) -> list[Stage]:
    """The stages of a Dockerfile, in order; names are lowercased as BuildKit does."""
    found: list[Stage] = []
    for line in instructions(text):
        match = _FROM_RE.match(line)
        if match is None:
            continue
        name = match["name"]
        found.append(Stage(len(found), name.lower() if name else None, match["image"]))
    return found
