"""The build context as BuildKit receives it: its ``.dockerignore``, a scan of its paths,
and which of them a stage's sources name.

A path is described by ``lstat`` alone (a symlink is never followed): its type, its
permission bits, a symlink's target, a file's size and identity. What a file holds is
hashed in :mod:`bake.content`; a target's fingerprint is made in :mod:`bake.fingerprint`.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from stat import S_ISREG
from typing import NamedTuple

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


class Ignore(NamedTuple):
    """Compiled .dockerignore rules: the last matching rule wins, ``!`` re-includes."""

    rules: tuple[tuple[bool, re.Pattern[str]], ...]

    @classmethod
    def parse(cls, text: str) -> Ignore:
        rules = []
        for raw in text.splitlines():
            if raw.startswith("#"):  # as BuildKit: a comment only where `#` is the first character
                continue
            line = raw.strip()
            if not line:
                continue
            keep = line.startswith("!")
            pattern = os.path.normpath(line[1:].strip() if keep else line).lstrip("/")
            if pattern in ("", "."):
                continue
            # a pattern matches the path itself or anything below it
            rules.append((keep, re.compile(_translate(pattern) + "(?:/.*)?", re.DOTALL)))
        return cls(tuple(rules))

    def ignored(self, path: str) -> bool:
        result = False
        for keep, regex in self.rules:
            if result == keep and regex.fullmatch(path):
                result = not keep
        return result

    @property
    def has_exceptions(self) -> bool:
        return any(keep for keep, _ in self.rules)

    def matcher(self) -> Callable[[str], object] | None:
        """:meth:`ignored` as fast as the rules allow (its truth is what counts): None
        when nothing is ignored, one regex when no ``!`` rule re-includes anything."""
        if not self.rules:
            return None
        if self.has_exceptions:
            return self.ignored
        return re.compile("|".join(f"(?:{r.pattern})" for _, r in self.rules), re.DOTALL).fullmatch


def read_ignore(context: Path, dockerfile_path: Path) -> Ignore:
    """``Dockerfile.dockerignore`` next to the Dockerfile wins over the context's ``.dockerignore``."""
    for candidate in (dockerfile_path.with_name(dockerfile_path.name + ".dockerignore"), context / ".dockerignore"):
        if candidate.is_file():
            return Ignore.parse(candidate.read_text(encoding="utf-8", errors="replace"))
    return Ignore(())


# -- the context as BuildKit receives it ----------------------------------------------------

_KINDS = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "dir",
    stat.S_IFLNK: "link",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "char-device",
    stat.S_IFBLK: "block-device",
}


_new = tuple.__new__


class Entry(NamedTuple):
    """One path of the context, from ``lstat`` (a symlink is never followed)."""

    kind: str
    mode: int  # permission bits, setuid/setgid/sticky included
    size: int = 0
    target: str = ""  # a symlink's target, as written
    #: (mtime ns, ctime ns, inode) of a file: to tell whether git's index still describes it
    identity: tuple[int, int, int] = (0, 0, 0)

    @classmethod
    def of(cls, path: str | os.PathLike[str], st: os.stat_result) -> Entry:
        mode = st.st_mode
        if S_ISREG(mode):  # most paths: made without NamedTuple's __new__, which costs more
            return _new(cls, ("file", mode & 0o7777, st.st_size, "", (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)))
        kind = _KINDS.get(stat.S_IFMT(mode), "other")
        target = ""
        if kind == "link":
            try:
                target = os.readlink(path)  # noqa: PTH115 - str paths: cheaper for 20k entries
            except OSError as exc:
                target = f"<unreadable: {errno.errorcode.get(exc.errno or 0, exc.errno)}>"
        return cls(kind, stat.S_IMODE(st.st_mode), 0, target)

    def record(self, content: str | None = None) -> str:
        """What the fingerprint holds for this path (``content``: a file's blob hash)."""
        if self.kind == "link":
            return f"link -> {self.target}"
        if self.kind == "file":
            return f"file {self.mode:04o} {content}"
        return f"{self.kind} {self.mode:04o}"


def scan(context: Path, ignore: Ignore) -> dict[str, Entry]:
    """Every path of the build context sent to BuildKit (directories too), by posix path
    (in no particular order: nothing that uses them depends on it).

    Ignored directories are not read, unless a ``!`` rule may re-include something below
    them; such a directory is then part of the context only if something below it is.
    """
    found: dict[str, Entry] = {}
    exceptions = ignore.has_exceptions
    ignored = ignore.matcher()
    of = Entry.of

    def walk(directory: str, prefix: str) -> bool:
        try:
            with os.scandir(directory) as it:
                children = list(it)
        except OSError:
            return False
        any_kept = False
        for child in children:
            rel = prefix + child.name
            try:
                st = child.stat(follow_symlinks=False)
            except OSError:
                continue  # gone since it was listed
            entry = of(child.path, st)
            skipped = ignored is not None and bool(ignored(rel))
            if entry.kind == "dir":
                if skipped and not exceptions:
                    continue
                found[rel] = entry
                below = walk(child.path, rel + "/")
                if skipped and not below:
                    del found[rel]
                    continue
                any_kept = True
            elif not skipped:
                found[rel] = entry
                any_kept = True
        return any_kept

    walk(os.fspath(context), "")
    return found


def context_files(context: Path, ignore: Ignore) -> list[str]:
    """Every non-directory path of the build context sent to BuildKit, sorted."""
    return sorted(p for p, e in scan(context, ignore).items() if e.kind != "dir")


# -- choosing input paths -----------------------------------------------------------------


def normalize(pattern: str) -> str:
    pattern = os.path.normpath(pattern).replace(os.sep, "/")
    pattern = pattern.lstrip("/")
    return "" if pattern == "." else pattern


def compile_patterns(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regex for COPY sources: a file, a directory (everything below it), or a glob of
    either; ``*`` and ``?`` never cross ``/`` (Go's filepath.Match), ``**`` does. None
    when there are no patterns."""
    normalized = [normalize(p) for p in patterns]
    if not normalized:
        return None
    if "" in normalized:
        return re.compile(".*", re.DOTALL)
    body = "|".join(f"(?:{_translate(p)})" for p in dict.fromkeys(normalized))
    return re.compile(f"(?:{body})(?:/.*)?", re.DOTALL)


def select(files: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """The paths that any of ``patterns`` covers, in their order."""
    regex = compile_patterns(patterns)
    if regex is None:
        return []
    match = regex.fullmatch
    return [f for f in files if match(f)]


_GLOB = re.compile(r"[*?\[]")


def through_link(entries: Mapping[str, Entry], patterns: Iterable[str]) -> bool:
    """Whether a pattern names a symlink or goes through one: BuildKit follows those, so
    what is behind them (somewhere else in the context) is read too."""
    links = [p for p, e in entries.items() if e.kind == "link"]
    if not links:
        return False
    for pattern in patterns:
        normalized = normalize(pattern)
        if not normalized:
            continue
        literal = _GLOB.split(normalized, 1)[0]
        parts = literal.split("/")
        prefixes = {"/".join(parts[: i + 1]) for i in range(len(parts)) if parts[i]}
        if any(link in prefixes for link in links):
            return True
        exact = re.compile(_translate(normalized), re.DOTALL)
        if _GLOB.search(normalized) and any(exact.fullmatch(link) for link in links):
            return True
    return False
