"""Dockerfile problems BuildKit rejects, found before anything is built, with the line.

Each rule here is one BuildKit (the frontend built into dockerd 26, which ``docker buildx``
uses without a ``# syntax=`` line) rejects too: a rule that refused a Dockerfile BuildKit
builds would be worse than no rule. So: unknown instructions, ``FROM``, ``COPY`` and
``ADD`` with the wrong number of words, ``ENV`` without a value, an instruction before
the first ``FROM``, invalid stage names, a blank or invalid image reference, a ``--from``
of a stage index that does not exist, a stage that copies from itself or from a stage
defined after it (which is how a stage cycle shows), and a stage chain that never uses
``BASE_IMAGE`` or ``PYTHON_VERSION`` although several Python versions are built.

A Dockerfile with a ``# syntax=`` line naming another frontend than docker/dockerfile is
not checked: that frontend decides what it accepts.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bake import dockerfile, dockerfile_parser, reference
from bake.dockerfile import Stage
from bake.dockerfile_parser import Instruction

if TYPE_CHECKING:
    from bake.registry import Resolution

INSTRUCTIONS = [
    *("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL"),
    *("MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"),
]
_STAGE_NAME_RE = re.compile(r"[a-z][a-z0-9-_.]*")
_VAR_RE = re.compile(r"\$(?:\{(\w+)|(\w+))")
PYTHON_ARGS = ("BASE_IMAGE", "PYTHON_VERSION")
#: args BuildKit sets itself
AUTOMATIC_ARGS = {f"{kind}{part}" for kind in ("BUILD", "TARGET") for part in ("PLATFORM", "OS", "ARCH", "VARIANT")} | {
    "TARGETSTAGE",
    "BUILDKIT_SBOM_SCAN_STAGE",
}


class DockerfileProblem(Exception):
    """One problem: the line it is on, and what to say about it."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Facts:
    """What the checks need to know besides the Dockerfile's text."""

    #: Stages bake-ci builds (its targets' stages).
    targets: Sequence[str]
    #: The build args of each Python version, in order (BASE_IMAGE, PYTHON_VERSION, args).
    args: Sequence[Mapping[str, str]]
    #: Whether a docker-bake.hcl may set build args bake-ci does not know of.
    other_args: bool = False


def _quoted(instruction: Instruction) -> str:
    first = instruction.text.split("\n", 1)[0].strip()
    return first if len(first) <= 80 else first[:77] + "..."


def _other_frontend(parsed: dockerfile_parser.Dockerfile) -> bool:
    syntax = parsed.directives.get("syntax", "").strip()
    if not syntax:
        return False
    name = syntax.split("@", 1)[0].split(":", 1)[0].lower()
    return name.removeprefix("docker.io/") not in ("docker/dockerfile", "docker/dockerfile-upstream")


def _syntax(instructions: Sequence[Instruction]) -> None:
    seen_from = False
    for ins in instructions:
        if ins.cmd not in INSTRUCTIONS:
            close = difflib.get_close_matches(ins.cmd, INSTRUCTIONS, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise DockerfileProblem(ins.line, f"unknown instruction {ins.cmd}{hint}")
        if ins.cmd == "FROM":
            seen_from = True
            args = ins.args
            if len(args) not in (1, 3) or (len(args) == 3 and args[1].lower() != "as"):
                raise DockerfileProblem(
                    ins.line, f"`{_quoted(ins)}`: FROM takes an image and optionally `AS name` (FROM IMAGE [AS NAME])"
                )
            if len(args) == 3 and not _STAGE_NAME_RE.fullmatch(args[2].lower()):
                raise DockerfileProblem(
                    ins.line,
                    f"`{_quoted(ins)}`: {args[2]!r} is not a stage name (a letter, then letters, digits, - _ or .)",
                )
        elif not seen_from and ins.cmd != "ARG":
            raise DockerfileProblem(ins.line, f"`{_quoted(ins)}` comes before the first FROM: only ARG may")
        if ins.cmd in ("COPY", "ADD") and len(ins.args) < 2:
            raise DockerfileProblem(
                ins.line, f"`{_quoted(ins)}`: {ins.cmd} needs at least one source and a destination"
            )
        if ins.cmd == "ENV" and (not ins.args or (len(ins.args) == 1 and "=" not in ins.args[0])):
            raise DockerfileProblem(ins.line, f"`{_quoted(ins)}`: ENV needs a value (ENV NAME=VALUE)")


def _froms(stage: Stage) -> list[tuple[Instruction, str]]:
    """``(instruction, value)`` of every ``--from`` of the stage (COPY, ADD, RUN --mount)."""
    found: list[tuple[Instruction, str]] = []
    for ins in stage.body:
        if ins.cmd in ("COPY", "ADD"):
            value = ins.flag("from")
            if value:
                found.append((ins, value))
        elif ins.cmd == "RUN":
            for opts in dockerfile._mounts(ins):
                if opts.get("from"):
                    found.append((ins, opts["from"]))
    return found


def _expanded(base: str, args: Mapping[str, str], facts: Facts) -> str | None:
    """A FROM's image with the build args in; None when it cannot be known here (an arg
    a bake file may set, a platform arg BuildKit sets, a form of ``${}`` not read here)."""
    names = {a or b for a, b in _VAR_RE.findall(base)}
    if names & AUTOMATIC_ARGS or (facts.other_args and any(n not in args for n in names)):
        return None
    expanded = dockerfile.substitute(base, args)
    return None if "$" in expanded else expanded


def _stages(stages: Sequence[Stage], metas: Sequence[Mapping[str, str]], facts: Facts) -> None:
    names = {s.name: s for s in stages if s.name}
    for stage in stages:
        earlier = {s.name for s in stages[: stage.index] if s.name}
        from_ins = Instruction("FROM", (), (), False, stage.from_text, line=stage.line)
        for meta in metas:
            base = _expanded(stage.base, meta, facts)
            if base is None or base.lower() in earlier or base.lower() == "scratch":
                continue
            if not base:
                raise DockerfileProblem(stage.line, f"`{_quoted(from_ins)}`: the image is blank once its args are in")
            try:
                reference.split(base)
            except reference.InvalidReference as exc:
                raise DockerfileProblem(
                    stage.line, f"`{_quoted(from_ins)}`: {base!r} is neither an earlier stage nor an image ({exc})"
                ) from None
        for ins, value in _froms(stage):
            key = value.lower()
            if key.isdigit():
                if int(key) >= len(stages):
                    raise DockerfileProblem(
                        ins.line, f"`{_quoted(ins)}`: there is no stage {key} (stages are numbered from 0)"
                    )
                if int(key) == stage.index:
                    raise DockerfileProblem(ins.line, f"`{_quoted(ins)}`: stage {stage.key} reads from itself")
            elif key in names:
                if names[key].index == stage.index:
                    raise DockerfileProblem(ins.line, f"`{_quoted(ins)}`: stage {stage.key} reads from itself")
            elif "$" not in value:  # BuildKit does not expand args in --from; a newer frontend may
                try:
                    reference.split(value)
                except reference.InvalidReference as exc:
                    raise DockerfileProblem(
                        ins.line, f"`{_quoted(ins)}`: {value!r} is neither a stage nor an image ({exc})"
                    ) from None


def _links(stage: Stage, stages: Sequence[Stage], args: Mapping[str, str]) -> list[tuple[Instruction | None, Stage]]:
    """The stages ``stage`` reads, as BuildKit links them: its FROM names an earlier stage
    only (a later name is an image), a ``--from`` names any stage. ``None``: the FROM."""
    by_name = {s.name: s for s in stages if s.name}
    found: list[tuple[Instruction | None, Stage]] = []
    parent = by_name.get(dockerfile.substitute(stage.base, args).lower())
    if parent is not None and parent.index < stage.index:
        found.append((None, parent))
    for ins, value in _froms(stage):
        key = value.lower()
        other = stages[int(key)] if key.isdigit() and int(key) < len(stages) else by_name.get(key)
        if other is not None:
            found.append((ins, other))
    return found


def _walk(stages: Sequence[Stage], start: Stage, args: Mapping[str, str]) -> set[int]:
    seen: set[int] = set()
    todo = [start]
    while todo:
        stage = todo.pop()
        if stage.index not in seen:
            seen.add(stage.index)
            todo += [other for _, other in _links(stage, stages, args)]
    return seen


def _reached(stages: Sequence[Stage], target: str, args: Mapping[str, str]) -> list[Stage]:
    """The stages building ``target`` reaches; a ``--from`` of a stage defined after the
    one reading it is an error (BuildKit's; it is how a cycle of stages shows)."""
    start = next((s for s in stages if s.name == target.lower()), None)
    if start is None:
        return []
    reached = _walk(stages, start, args)
    for stage in (s for s in stages if s.index in reached):
        for ins, other in _links(stage, stages, args):
            if ins is None or other.index <= stage.index:
                continue
            if stage.index in _walk(stages, other, args):
                fix = f"stage {other.key} builds on stage {stage.key}: a cycle. Make one stop reading from the other"
            else:
                fix = f"move stage {other.key} above stage {stage.key}"
            raise DockerfileProblem(
                ins.line,
                f"`{_quoted(ins)}`: stage {other.key} (line {other.line}) comes after stage {stage.key}, and "
                f"BuildKit reads only from stages defined before the current one; {fix}",
            )
    return [s for s in stages if s.index in reached]


def _uses_python(chain: Sequence[Stage], metas: Sequence[Mapping[str, str]]) -> bool:
    bases = {tuple(dockerfile.substitute(s.base, meta) for s in chain) for meta in metas}
    if len(bases) > 1:
        return True
    for stage in chain:
        for ins in stage.body:
            if ins.cmd == "ARG" and any(w.split("=", 1)[0] in PYTHON_ARGS for w in ins.args):
                return True
    return False


def _python(stages: Sequence[Stage], metas: Sequence[Mapping[str, str]], facts: Facts, python: Sequence[str]) -> None:
    if len(facts.args) < 2:
        return
    for target in facts.targets:
        chain = _reached(stages, target, metas[0])
        if not chain or _uses_python(chain, metas):
            continue
        by_name = {s.name: s for s in stages if s.name}
        root = by_name[target.lower()]
        while True:
            parent = by_name.get(dockerfile.substitute(root.base, metas[0]).lower())
            if parent is None or parent.index >= root.index:
                break
            root = parent
        image = dockerfile.substitute(root.base, metas[0])
        named = f" AS {root.name}" if root.name else ""
        ids = ", ".join(f"{target}-py{p.replace('.', '')}" for p in python[:3]) + (", ..." if len(python) > 3 else "")
        raise DockerfileProblem(
            root.line,
            f"`FROM {image}{named}` starts stage {target}, and no stage it builds from uses BASE_IMAGE or "
            f"PYTHON_VERSION: {ids} would all get this image's Python, whatever their names say. Start "
            f"from the image bake-ci passes for each version (base-image), with these two lines (the ARG "
            f"before the first FROM):\n    ARG BASE_IMAGE={image}\n    FROM ${{BASE_IMAGE}}{named}",
        )


def check(text: str, facts: Facts, python: Sequence[str]) -> None:
    """Raise :class:`DockerfileProblem` for the first problem BuildKit would refuse."""
    parsed = dockerfile_parser.parse(text)
    if _other_frontend(parsed):
        return
    _syntax(parsed.instructions)
    preamble, stages = dockerfile.split_stages(parsed)
    metas = [dockerfile.global_args(preamble, parsed.escape, args) for args in facts.args]
    _stages(stages, metas, facts)
    for target in facts.targets:
        for meta in metas:
            _reached(stages, target, meta)
    _python(stages, metas, facts, python)


# -- images that do not exist ---------------------------------------------------------------


def image_lines(text: str, metas: Sequence[Mapping[str, str]], targets: Sequence[str]) -> dict[str, list[Instruction]]:
    """Every image the targets' stages read (``FROM``, ``--from``), args substituted as
    fingerprints substitute them, with the instructions that name it."""
    parsed = dockerfile_parser.parse(text)
    preamble, stages = dockerfile.split_stages(parsed)
    keys = {s.key for s in stages} | {str(s.index) for s in stages}
    found: dict[str, list[Instruction]] = {}
    for meta in metas:
        args = dockerfile.global_args(preamble, parsed.escape, meta)
        for target in targets:
            for stage in dockerfile.chain(stages, target, args):
                images = set(dockerfile.stage_sources(stage, keys, args).images)
                from_ins = Instruction("FROM", (), (), False, stage.from_text, line=stage.line)
                named = [(from_ins, dockerfile.substitute(stage.base, args))]
                named += [(ins, dockerfile.substitute(value, args)) for ins, value in _froms(stage)]
                for ins, image in named:
                    if image in images and ins.line not in [i.line for i in found.get(image, [])]:
                        found.setdefault(image, []).append(ins)
    return found


def missing_image(
    text: str, metas: Sequence[Mapping[str, str]], targets: Sequence[str], missing: Mapping[str, Resolution]
) -> DockerfileProblem | None:
    """The first line naming an image no registry has (:attr:`bake.registry.Resolution.missing`)."""
    lines = image_lines(text, metas, targets)
    found = sorted((ins.line, image, ins) for image, named in lines.items() if image in missing for ins in named)
    if not found:
        return None
    line, image, ins = found[0]
    asked = "; ".join(
        f"{a.asked}: {a.said if len(a.said) < 80 else a.said[:77] + '...'}" for a in missing[image].answers
    )
    stage = (
        ""
        if "/" in image or ":" in image
        else f"no stage {image} is defined before this line, so it names an image, and "
    )
    return DockerfileProblem(
        line,
        f"`{_quoted(ins)}`: {stage}the image {image} does not exist ({asked}). Name an image that exists "
        "(check its spelling and tag) or a stage defined above this line",
    )
