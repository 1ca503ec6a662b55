"""Just enough Dockerfile parsing: stages, what each depends on, what it copies from the context."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field

_FROM_RE = re.compile(r"^FROM\s+(?:--\S+\s+)*(?P<image>\S+)(?:\s+AS\s+(?P<name>\S+))?\s*$", re.IGNORECASE)
_FLAG_RE = re.compile(r"^--(?P<key>[a-z-]+)(?:=(?P<value>\S*))?$")


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None
    base: str
    #: The stage's instructions after FROM, as written (continuations joined).
    body: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> str:
        """How other stages refer to it: its name, else its index."""
        return self.name or str(self.index)

    @property
    def text(self) -> str:
        return "\n".join([f"FROM {self.base}" + (f" AS {self.name}" if self.name else ""), *self.body])


def instructions(text: str) -> list[str]:
    """Logical instruction lines: comments dropped, backslash continuations joined."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # BuildKit skips both, also inside a continuation
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


def preamble(text: str) -> list[str]:
    """Instructions before the first FROM (global ARGs and parser-relevant lines)."""
    out = []
    for line in instructions(text):
        if _FROM_RE.match(line):
            break
        out.append(line)
    return out


def stages(text: str) -> list[Stage]:
    """The stages of a Dockerfile, in order; names are lowercased as BuildKit does."""
    found: list[Stage] = []
    body: list[str] = []
    for line in instructions(text):
        match = _FROM_RE.match(line)
        if match is None:
            if found:
                body.append(line)
            continue
        if found:
            found[-1] = Stage(found[-1].index, found[-1].name, found[-1].base, tuple(body))
            body = []
        name = match["name"]
        found.append(Stage(len(found), name.lower() if name else None, match["image"]))
    if found:
        found[-1] = Stage(found[-1].index, found[-1].name, found[-1].base, tuple(body))
    return found


def _flags(words: list[str]) -> tuple[dict[str, str], list[str]]:
    flags: dict[str, str] = {}
    rest = list(words)
    while rest and (match := _FLAG_RE.match(rest[0])):
        flags[match["key"]] = match["value"] or ""
        rest.pop(0)
    return flags, rest


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError:
        return line.split()


@dataclass(frozen=True)
class Sources:
    """What a stage reads from the build context, as far as the Dockerfile says."""

    #: Context paths or patterns of COPY/ADD/RUN --mount=type=bind without --from.
    paths: tuple[str, ...]
    #: References the context cannot tell about (ADD URLs, COPY --from=image).
    external: tuple[str, ...]


def _mount_sources(mounts: list[str]) -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = []
    for mount in mounts:
        opts = {}
        for part in mount.split(","):
            key, _, value = part.partition("=")
            opts[key] = value
        if opts.get("type", "bind") == "bind":
            out.append((opts.get("from"), opts.get("source", opts.get("src", "."))))
    return out


def analyse(stage: Stage) -> tuple[set[str], list[tuple[str | None, str]]]:
    """The stage keys/images it reads from (``--from``), and (from, path) of what it reads."""
    reads: list[tuple[str | None, str]] = []
    parents: set[str] = set()
    for line in stage.body:
        words = _split(line)
        if not words:
            continue
        op = words[0].upper()
        if op in ("COPY", "ADD"):
            flags, rest = _flags(words[1:])
            json_form = line.split(None, 1)[1].lstrip() if " " in line else ""
            while json_form.startswith("--"):
                json_form = json_form.split(None, 1)[1].lstrip() if " " in json_form else ""
            if json_form.startswith("["):
                try:
                    rest = [str(w) for w in json.loads(json_form)]
                except ValueError:
                    rest = [w.strip('[]",') for w in rest if w.strip('[]",')]
            source_from = flags.get("from")
            if source_from:
                parents.add(source_from.lower())
            reads += [(source_from, src) for src in rest[:-1]]
        elif op == "RUN":
            mounts = [w.split("=", 1)[1] for w in words[1:] if w.startswith("--mount=")]
            for source_from, src in _mount_sources(mounts):
                if source_from:
                    parents.add(source_from.lower())
                reads.append((source_from, src))
    return parents, reads


def _by_key(all_stages: list[Stage]) -> dict[str, Stage]:
    """Stages by how they can be referred to: name, and index (``--from=0``)."""
    found = {str(s.index): s for s in all_stages}
    found.update({s.name: s for s in all_stages if s.name})
    return found


def chain(all_stages: list[Stage], target: str) -> list[Stage]:
    """The target stage and every stage it depends on, in Dockerfile order."""
    by_key = _by_key(all_stages)
    needed: set[int] = set()
    todo = [target]
    while todo:
        stage = by_key.get(todo.pop())
        if stage is None or stage.index in needed:
            continue
        needed.add(stage.index)
        parents, _ = analyse(stage)
        todo += [stage.base.lower(), *parents]
    return [s for s in all_stages if s.index in needed]


def stage_sources(stage: Stage, keys: set[str]) -> Sources:
    """What one stage reads from the build context, and what it reads from outside the
    Dockerfile (``keys``: the names and indexes of the Dockerfile's stages)."""
    paths: list[str] = []
    external: list[str] = []
    if stage.base.lower() not in keys:
        external.append(f"FROM {stage.base}")
    for source_from, src in analyse(stage)[1]:
        if source_from is None:
            if re.match(r"^[a-z]+://", src) or src.startswith("git@"):
                external.append(src)
            else:
                paths.append(src)
        elif source_from.lower() not in keys:
            external.append(f"--from={source_from}")
    return Sources(tuple(dict.fromkeys(paths)), tuple(dict.fromkeys(external)))


def context_sources(all_stages: list[Stage], target: str) -> Sources:
    """What the target's stages read from the build context, and what lies outside it."""
    keys = set(_by_key(all_stages))
    found = [stage_sources(stage, keys) for stage in chain(all_stages, target)]
    paths = (p for s in found for p in s.paths)
    external = (e for s in found for e in s.external)
    return Sources(tuple(dict.fromkeys(paths)), tuple(dict.fromkeys(external)))
