"""Input fingerprints: a target's identity before it is built.

A target's fingerprint hashes everything its image is made from: the Dockerfile text
of its stage and of every stage it depends on, the resolved build args, the base
image's digest, the platforms, the path and bytes of each input file, and a schema
version. Two machines with the same inputs compute the same fingerprint; a change to
any part changes it. The parts are kept too, so that ``status`` can say which one
changed.

Input files: ``[tool.bake-ci.stages.NAME] inputs`` (globs relative to the context) for
each stage of the target's chain, else the paths that stage COPYs/ADDs/bind-mounts
from the context, else (when a source cannot be resolved) the whole context; always
minus ``.dockerignore``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bake import dockerfile

SCHEMA = "bake-ci-fingerprint/1"
SHORT = 12


# -- .dockerignore ------------------------------------------------------------------------


def _translate(pattern: str) -> str:
    """A dockerignore pattern (Go filepath.Match plus ``**``) as a regex over posix paths."""
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.find("]", i)
            if end == -1:
                out += re.escape(c)
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
                i = end
        else:
            out += re.escape(c)
        i += 1
    return out


@dataclass(frozen=True)
class Ignore:
    """Compiled .dockerignore rules: the last matching rule wins, ``!`` re-includes."""

    rules: tuple[tuple[bool, re.Pattern[str]], ...]

    @classmethod
    def parse(cls, text: str) -> Ignore:
        rules = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keep = line.startswith("!")
            pattern = os.path.normpath(line[1:].strip() if keep else line).lstrip("/")
            if pattern in ("", "."):
                continue
            # a pattern matches the path itself or anything below it
            rules.append((keep, re.compile(_translate(pattern) + "(?:/.*)?")))
        return cls(tuple(rules))

    def ignored(self, path: str) -> bool:
        result = False
        for keep, regex in self.rules:
            if regex.fullmatch(path):
                result = not keep
        return result

    @property
    def has_exceptions(self) -> bool:
        return any(keep for keep, _ in self.rules)


def read_ignore(context: Path, dockerfile_path: Path) -> Ignore:
    """``Dockerfile.dockerignore`` next to the Dockerfile wins over the context's ``.dockerignore``."""
    for candidate in (dockerfile_path.with_name(dockerfile_path.name + ".dockerignore"), context / ".dockerignore"):
        if candidate.is_file():
            return Ignore.parse(candidate.read_text(encoding="utf-8", errors="replace"))
    return Ignore(())


def context_files(context: Path, ignore: Ignore) -> list[str]:
    """Every file of the build context that is sent to BuildKit, as sorted posix paths."""
    files: list[str] = []
    for top, dirs, names in os.walk(context):
        rel_top = os.path.relpath(top, context)
        rel_top = "" if rel_top == "." else rel_top.replace(os.sep, "/") + "/"
        if not ignore.has_exceptions:
            dirs[:] = [d for d in dirs if not ignore.ignored(rel_top + d)]
        files += [rel_top + n for n in names if not ignore.ignored(rel_top + n)]
    return sorted(files)


# -- choosing input files -----------------------------------------------------------------


def _matches(path: str, pattern: str) -> bool:
    pattern = os.path.normpath(pattern).lstrip("/").replace(os.sep, "/")
    if pattern in (".", ""):
        return True
    # COPY semantics: a file, a directory (everything below it), or a glob of either;
    # ``*`` and ``?`` never cross ``/`` (Go's filepath.Match), ``**`` does
    return re.fullmatch(_translate(pattern) + "(?:/.*)?", path) is not None


def select(files: Sequence[str], patterns: Iterable[str]) -> list[str]:
    """The files that any of ``patterns`` covers."""
    patterns = list(patterns)
    return [f for f in files if any(_matches(f, p) for p in patterns)]


def _resolvable(path: str) -> bool:
    return "$" not in path


def input_patterns(
    stages: list[dockerfile.Stage], target: str, configured: Mapping[str, Sequence[str]]
) -> tuple[list[str], list[str]]:
    """Input patterns for the target's chain of stages, and external references."""
    keys = {s.key for s in stages} | {str(s.index) for s in stages}
    patterns: list[str] = []
    external: list[str] = []
    for stage in dockerfile.chain(stages, target):
        sources = dockerfile.stage_sources(stage, keys)
        external += sources.external
        if stage.name and stage.name in configured:
            patterns += configured[stage.name]
        elif all(_resolvable(p) for p in sources.paths):
            patterns += sources.paths
        else:
            patterns.append(".")  # a variable in a source: the whole context
    return list(dict.fromkeys(patterns)), sorted(set(external))


# -- the fingerprint itself -----------------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_hashes(context: Path, paths: Iterable[str]) -> dict[str, str]:
    return {p: _sha((context / p).read_bytes()) for p in sorted(paths)}


@dataclass(frozen=True)
class Fingerprint:
    value: str
    parts: dict[str, str]

    @property
    def short(self) -> str:
        return self.value[:SHORT]

    def changed_since(self, old: Mapping[str, str]) -> list[str]:
        """Names of the parts that differ from an earlier fingerprint's parts."""
        names = sorted(set(self.parts) | set(old))
        return [
            n.removeprefix("file:") if n.startswith("file:") else n for n in names if self.parts.get(n) != old.get(n)
        ]

    def to_json(self) -> str:
        return json.dumps({"fingerprint": self.value, "parts": self.parts}, sort_keys=True, indent=1)


def compute(
    *,
    stage_texts: Sequence[str],
    args: Mapping[str, str],
    base_digests: Mapping[str, str],
    files: Mapping[str, str],
    platforms: Sequence[str],
    external: Sequence[str] = (),
    extra: Mapping[str, str] | None = None,
) -> Fingerprint:
    """Hash the parts of a target (pure)."""
    parts = {
        "schema": SCHEMA,
        "dockerfile": _sha("\n\n".join(stage_texts).encode()),
        "build args": _sha(json.dumps(dict(sorted(args.items()))).encode()),
        "base image": _sha(json.dumps(dict(sorted(base_digests.items()))).encode()),
        "platforms": _sha(json.dumps(sorted(platforms)).encode()),
        "external sources": _sha(json.dumps(sorted(external)).encode()),
        **{f"file:{path}": digest for path, digest in files.items()},
        **(extra or {}),
    }
    value = _sha(json.dumps(parts, sort_keys=True).encode())
    return Fingerprint(value, parts)


def substitute(text: str, args: Mapping[str, str]) -> str:
    """``${VAR}`` / ``$VAR`` / ``${VAR:-default}`` with build args, as in a FROM line."""

    def repl(match: re.Match[str]) -> str:
        name = match["braced"] or match["plain"]
        value = args.get(name, "")
        if not value and match["default"] is not None:
            return match["default"]
        return value

    return re.sub(r"\$(?:\{(?P<braced>\w+)(?::-(?P<default>[^}]*))?\}|(?P<plain>\w+))", repl, text)


def arg_defaults(preamble: Sequence[str]) -> dict[str, str]:
    defaults = {}
    for line in preamble:
        match = re.match(r"^ARG\s+(\w+)(?:=(.*))?$", line, re.IGNORECASE)
        if match and match[2] is not None:
            defaults[match[1]] = match[2].strip().strip('"')
    return defaults
