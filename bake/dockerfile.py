"""A Dockerfile's stages and what they read, as far as fingerprints and checks need it.

On top of the parser (bake/dockerfile_parser.py, which reads the instructions the way
BuildKit does): the stages, the global args and their substitution in FROM lines and
``--from`` values, what each stage depends on, and what each reads from the build
context and from outside it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from bake.dockerfile_parser import Dockerfile, Instruction, heredoc_word, parse, unquote

# -- stages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None
    base: str
    #: The stage's instructions after FROM.
    body: tuple[Instruction, ...] = field(default=(), compare=False)
    escape: str = field(default="\\", compare=False)
    #: The FROM instruction as written (its flags, e.g. ``--platform``, count).
    from_text: str = field(default="", compare=False)
    #: The line of the FROM instruction (1-based).
    line: int = field(default=0, compare=False)

    @property
    def key(self) -> str:
        """How other stages refer to it: its name, else its index."""
        return self.name or str(self.index)

    @property
    def text(self) -> str:
        first = self.from_text or f"FROM {self.base}" + (f" AS {self.name}" if self.name else "")
        return "\n".join([first, *(i.text for i in self.body)])


def _stage_of(index: int, from_: Instruction, body: list[Instruction], escape: str) -> Stage:
    args = list(from_.args)
    name = args[2].lower() if len(args) >= 3 and args[1].lower() == "as" else None
    base = args[0] if args else ""
    return Stage(index, name, base, tuple(body), escape, from_.text, from_.line)


def split_stages(parsed: Dockerfile) -> tuple[list[Instruction], list[Stage]]:
    """The instructions before the first FROM, and the stages."""
    preamble: list[Instruction] = []
    found: list[Stage] = []
    current: Instruction | None = None
    body: list[Instruction] = []
    for instruction in parsed.instructions:
        if instruction.cmd == "FROM":
            if current is not None:
                found.append(_stage_of(len(found), current, body, parsed.escape))
            current, body = instruction, []
        elif current is None:
            preamble.append(instruction)
        else:
            body.append(instruction)
    if current is not None:
        found.append(_stage_of(len(found), current, body, parsed.escape))
    return preamble, found


def stages(text: str) -> list[Stage]:
    """The stages of a Dockerfile, in order; names are lowercased as BuildKit does."""
    return split_stages(parse(text))[1]


def preamble_text(parsed: Dockerfile) -> str:
    """The parser directives and every instruction before the first FROM (global ARGs)."""
    directives = [f"# {k}={v}" for k, v in sorted(parsed.directives.items())]
    return "\n".join(directives + [i.text for i in split_stages(parsed)[0]])


def arg_defaults(preamble: list[Instruction], escape: str = "\\") -> dict[str, str]:
    """Default values of the global ``ARG``s (each may use the ones before it)."""
    defaults: dict[str, str] = {}
    for instruction in preamble:
        if instruction.cmd != "ARG":
            continue
        for word in instruction.args:
            name, eq, value = word.partition("=")
            if eq:
                plain = unquote(value, escape)
                defaults[name] = plain if plain is not None else substitute(value.strip("\"'"), defaults)
    return defaults


def global_args(preamble: list[Instruction], escape: str, build_args: Mapping[str, str]) -> dict[str, str]:
    """The args a FROM line sees: the build args, and each global ``ARG`` in order, its
    default (which may use the ones before it) unless a build arg sets it."""
    found = dict(build_args)
    for instruction in preamble:
        if instruction.cmd != "ARG":
            continue
        for word in instruction.args:
            name, eq, value = word.partition("=")
            if name in build_args or not eq:
                continue
            plain = unquote(value, escape)
            found[name] = plain if plain is not None else substitute(value.strip("\"'"), found)
    return found


_VAR_RE = re.compile(r"\$(?:\{(?P<braced>\w+)(?::-(?P<default>[^}]*))?\}|(?P<plain>\w+))")


def substitute(text: str, args: Mapping[str, str]) -> str:
    """``${VAR}`` / ``$VAR`` / ``${VAR:-default}`` with build args, as in a FROM line."""

    def repl(match: re.Match[str]) -> str:
        name = match["braced"] or match["plain"]
        value = args.get(name, "")
        if not value and match["default"] is not None:
            return match["default"]
        return value

    return _VAR_RE.sub(repl, text)


# -- what each stage reads ------------------------------------------------------------------


def _expand(text: str, args: Mapping[str, str] | None) -> str:
    """``text`` with global args substituted; as written when no args are known."""
    return text if args is None else substitute(text, args)


@dataclass(frozen=True)
class Url:
    url: str
    checksum: str | None


@dataclass(frozen=True)
class Sources:
    """What a stage reads from the build context and from outside the Dockerfile."""

    #: Context paths or patterns (quotes removed); ``"."`` where a source uses a variable.
    paths: tuple[str, ...] = ()
    #: Images (FROM, ``COPY --from``, ``RUN --mount=from``) that are not stages, args substituted.
    images: tuple[str, ...] = ()
    #: ``ADD`` of http(s) URLs.
    urls: tuple[Url, ...] = ()
    #: What no fingerprint can stand for, with the reason (``ADD`` of a git ref without a commit, ...).
    unknown: tuple[str, ...] = ()
    #: The context paths read exactly: ``paths`` without the sources that use a variable.
    exact: tuple[str, ...] = ()


def _mounts(instruction: Instruction) -> list[dict[str, str]]:
    out = []
    for value in instruction.flag_values("mount"):
        opts: dict[str, str] = {}
        try:
            fields = next(csv.reader([value]), [])
        except csv.Error:
            fields = value.split(",")
        for part in fields:
            key, _, val = part.partition("=")
            opts[key.strip().lower()] = val
        out.append(opts)
    return out


def references(stage: Stage, args: Mapping[str, str] | None = None) -> list[tuple[str | None, str]]:
    """``(from, source)`` of everything the stage reads with COPY/ADD/RUN --mount; ``from``
    is None for the build context, else the ``--from`` value (a stage key or an image,
    global args substituted)."""
    reads: list[tuple[str | None, str]] = []
    for instruction in stage.body:
        if instruction.cmd in ("COPY", "ADD"):
            source_from = instruction.flag("from")
            if source_from is not None:
                source_from = _expand(source_from, args)
            docs = {h.name for h in instruction.heredocs}
            for src in instruction.args[:-1]:
                opened = None if instruction.json else heredoc_word(src)
                if opened is not None and opened[0] in docs:
                    continue  # inline content, already part of the instruction's text
                reads.append((source_from, src))
        elif instruction.cmd == "RUN":
            for opts in _mounts(instruction):
                kind = opts.get("type", "bind")
                if kind == "bind" or (kind == "cache" and "from" in opts):
                    source_from = opts.get("from")
                    if source_from is not None:
                        source_from = _expand(source_from, args)
                    elif kind == "cache":
                        continue
                    reads.append((source_from, opts.get("source", opts.get("src", "."))))
    return reads


def dependencies(stage: Stage, args: Mapping[str, str] | None = None) -> set[str]:
    """Stage keys or images the stage reads from (its base, ``--from``), lowercased."""
    base = _expand(stage.base, args)
    return {base.lower()} | {f.lower() for f, _ in references(stage, args) if f is not None}


def _by_key(all_stages: list[Stage]) -> dict[str, Stage]:
    """Stages by how they can be referred to: name, and index (``--from=0``)."""
    found = {str(s.index): s for s in all_stages}
    found.update({s.name: s for s in all_stages if s.name})
    return found


def chain(all_stages: list[Stage], target: str, args: Mapping[str, str] | None = None) -> list[Stage]:
    """The target stage and every stage it depends on, in Dockerfile order."""
    by_key = _by_key(all_stages)
    needed: set[int] = set()
    todo = [target.lower()]
    while todo:
        stage = by_key.get(todo.pop())
        if stage is None or stage.index in needed:
            continue
        needed.add(stage.index)
        todo += sorted(dependencies(stage, args))
    return [s for s in all_stages if s.index in needed]


def _is_git(src: str) -> bool:
    if src.startswith(("git@", "git://", "ssh://")):
        return True
    return bool(re.match(r"^https?://", src)) and bool(re.search(r"\.git(?:$|#|/?$)", src.split("?", 1)[0]))


def stage_sources(stage: Stage, keys: set[str], args: Mapping[str, str] | None = None) -> Sources:
    """What one stage reads from the build context, and from outside the Dockerfile
    (``keys``: the names and indexes of the Dockerfile's stages; ``args``: global args)."""
    paths: list[str] = []
    images: list[str] = []
    urls: list[Url] = []
    unknown: list[str] = []
    exact: list[str] = []
    base = _expand(stage.base, args)
    if base.lower() not in keys and base.lower() != "scratch":
        images.append(base)
    for instruction in stage.body:
        if instruction.cmd != "ADD" or instruction.flag("from") is not None:
            continue
        checksum = instruction.flag("checksum")
        for src in instruction.args[:-1]:
            if _is_git(src):
                if not re.search(r"#[0-9a-f]{40}(?::|$)", src):
                    unknown.append(f"ADD {src}: a git ref that names no commit, whose content bake-ci cannot tell")
            elif re.match(r"^https?://", src, re.IGNORECASE):
                if "$" in src:
                    unknown.append(f"ADD {src}: a URL with a variable")
                else:
                    urls.append(Url(src, checksum))
    for source_from, src in references(stage, args):
        if source_from is None:
            if _is_git(src) or re.match(r"^[a-z][a-z0-9+.-]*://", src, re.IGNORECASE):
                continue
            plain = unquote(src, stage.escape)
            paths.append("." if plain is None else plain)
            if plain is not None:
                exact.append(plain)
        elif source_from.lower() not in keys:
            images.append(source_from)
    return Sources(
        tuple(dict.fromkeys(paths)),
        tuple(dict.fromkeys(images)),
        tuple(dict.fromkeys(urls)),
        tuple(unknown),
        tuple(dict.fromkeys(exact)),
    )
