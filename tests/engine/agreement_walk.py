"""A random walk of small changes over a COPY-heavy project, each judged against BuildKit.

Each step applies one random change (mode flips, byte edits, renames, new and removed
files, empty directories, symlink retargets, ``.dockerignore`` edits, no-op rewrites),
asks ``bake-ci status`` for its verdict and lets BuildKit build:

- bake-ci says build: a normal ``bake-ci build --push`` (which pushes the fingerprint tag
  of the new inputs, so a later step that returns to them can be judged too), compared
  with the previous step's image;
- bake-ci says reuse: a ``--no-reuse`` build, compared with the image reuse would ship.
  After a STALE verdict the fingerprint tag is moved to what BuildKit built, so one miss
  is reported once and not again on every later step.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .agreement import REUSE_ACTIONS, STALE, Built, Project, Verdict
from .conftest import docker

DOCKERFILE = """FROM ${BASE_IMAGE} AS app
WORKDIR /app
COPY src/ ./src/
COPY conf/*.cfg ./conf/
COPY top.txt ./
"""

FILES = {
    ".dockerignore": "**/*.pyc\n!src/keep.pyc\ndocs/\n*.log\n",
    "src/a.py": "a = 1\n",
    "src/b.py": "b = 2\n",
    "src/x.pyc": "compiled\n",
    "src/keep.pyc": "kept\n",
    "src/pkg/c.py": "c = 3\n",
    "src/pkg/same1.txt": "same\n",
    "src/pkg/same2.txt": "same\n",
    "conf/a.cfg": "[a]\n",
    "conf/b.cfg": "[b]\n",
    "conf/readme.md": "conf\n",
    "top.txt": "top\n",
    "docs/guide.md": "guide\n",
    "debug.log": "log\n",
    "notes.txt": "notes\n",
}
LINKS = {"src/link": "pkg/same1.txt"}
# never removed or renamed: COPY would fail without them, or a link would dangle
KEEP = {"top.txt", "conf/a.cfg", "src/a.py", "src/pkg/same1.txt", "src/pkg/same2.txt", "Dockerfile", ".dockerignore"}
LINK_TARGETS = ["pkg/same1.txt", "pkg/same2.txt", "a.py", "../top.txt", "pkg"]
DIRS = ["", "src", "src/pkg", "conf", "docs"]
NAMES = ["new", "other", "zz", "keep", "x", "same1"]
SUFFIXES = [".py", ".pyc", ".cfg", ".txt", ".log", ".md"]
IGNORE_POOL = [
    "**/*.pyc",
    "!src/keep.pyc",
    "docs/",
    "*.log",
    "src/pkg/*.txt",
    "!src/pkg/same1.txt",
    "conf/b.cfg",
    "src/empty*",
    "**/new*",
    "src/*/",
    "# a comment",
]


@dataclass
class Walk:
    project: Project
    rng: random.Random
    last: Built
    verdicts: list[Verdict] = field(default_factory=list)

    @classmethod
    def create(cls, root: Path, registry: str, rng: random.Random) -> Walk:
        project = Project.create(root, registry, "agreement/walk", DOCKERFILE, ("app",))
        for path, text in FILES.items():
            (project.ctx / path).parent.mkdir(parents=True, exist_ok=True)
            (project.ctx / path).write_text(text)
        for path, target in LINKS.items():
            (project.ctx / path).symlink_to(target)
        return cls(project, rng, project.build())

    # -- the changes ------------------------------------------------------------------------

    @property
    def ctx(self) -> Path:
        return self.project.ctx

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.ctx).as_posix()

    def _walk(self) -> tuple[list[str], list[str]]:
        """Regular files and directories of the context (symlinks are not followed)."""
        files: list[str] = []
        dirs: list[str] = []
        for top, subdirs, names in os.walk(self.ctx):
            rel = Path(top).relative_to(self.ctx)
            dirs += [(rel / d).as_posix() for d in subdirs if not (Path(top) / d).is_symlink()]
            files += [(rel / n).as_posix() for n in names if not (Path(top) / n).is_symlink()]
        return sorted(f for f in files if f != "Dockerfile"), sorted(dirs)

    def _files(self, movable: bool = False) -> list[str]:
        return [f for f in self._walk()[0] if not movable or f not in KEEP]

    def _dirs(self) -> list[str]:
        return self._walk()[1]

    def _new_path(self) -> str:
        folder = self.rng.choice(DIRS)
        name = self.rng.choice(NAMES) + str(self.rng.randrange(10)) + self.rng.choice(SUFFIXES)
        return f"{folder}/{name}".lstrip("/")

    def mutate(self) -> str:
        kinds = [
            self.flip_mode,
            self.edit_bytes,
            self.rewrite_same,
            self.rename,
            self.add_file,
            self.remove_file,
            self.add_empty_dir,
            self.remove_empty_dir,
            self.retarget_link,
            self.flip_dir_mode,
            self.add_ignore,
            self.remove_ignore,
        ]
        while True:
            done = self.rng.choice(kinds)()
            if done:
                return done

    def flip_mode(self) -> str:
        path = self.rng.choice([f for f in self._files() if f != ".dockerignore"])
        target = self.ctx / path
        mode = target.stat().st_mode & 0o777
        target.chmod(mode ^ 0o111)
        return f"chmod {oct(mode ^ 0o111)[2:]} {path}"

    def flip_dir_mode(self) -> str:
        path = self.rng.choice(self._dirs())
        target = self.ctx / path
        mode = target.stat().st_mode & 0o777
        target.chmod(mode ^ 0o020)
        return f"chmod {oct(mode ^ 0o020)[2:]} {path}/"

    def edit_bytes(self) -> str:
        path = self.rng.choice([f for f in self._files() if f != ".dockerignore"])
        target = self.ctx / path
        data = bytearray(target.read_bytes())
        if data and self.rng.random() < 0.5:
            at = self.rng.randrange(len(data))
            data[at] = (data[at] + 1) % 256 or 65
            change = f"byte {at} of {path} changed"
        else:
            data += b"edit\n"
            change = f"{path} appended to"
        target.write_bytes(bytes(data))
        return change

    def rewrite_same(self) -> str:
        path = self.rng.choice(self._files())
        target = self.ctx / path
        target.write_bytes(target.read_bytes())
        return f"{path} rewritten with the same bytes (only its mtime changes)"

    def rename(self) -> str:
        movable = self._files(movable=True)
        if not movable:
            return ""
        path = self.rng.choice(movable)
        new = self._new_path()
        if (self.ctx / new).exists() or (self.ctx / new).is_symlink():
            return ""
        (self.ctx / new).parent.mkdir(parents=True, exist_ok=True)
        (self.ctx / path).rename(self.ctx / new)
        return f"{path} renamed to {new}"

    def add_file(self) -> str:
        new = self._new_path()
        if (self.ctx / new).exists() or (self.ctx / new).is_symlink():
            return ""
        (self.ctx / new).parent.mkdir(parents=True, exist_ok=True)
        (self.ctx / new).write_text(self.rng.choice(["same\n", "fresh\n", ""]))
        return f"{new} added"

    def remove_file(self) -> str:
        movable = self._files(movable=True)
        if not movable:
            return ""
        path = self.rng.choice(movable)
        (self.ctx / path).unlink()
        return f"{path} removed"

    def add_empty_dir(self) -> str:
        path = f"{self.rng.choice(DIRS)}/empty{self.rng.randrange(3)}".lstrip("/")
        if (self.ctx / path).exists():
            return ""
        (self.ctx / path).mkdir(parents=True)
        return f"empty directory {path}/ added"

    def remove_empty_dir(self) -> str:
        empty = [d for d in self._dirs() if not any((self.ctx / d).iterdir())]
        if not empty:
            return ""
        path = self.rng.choice(empty)
        shutil.rmtree(self.ctx / path)
        return f"empty directory {path}/ removed"

    def retarget_link(self) -> str:
        link = self.ctx / "src/link"
        old = str(link.readlink())
        new = self.rng.choice([t for t in LINK_TARGETS if t != old])
        link.unlink()
        link.symlink_to(new)
        return f"src/link retargeted from {old} to {new}"

    def add_ignore(self) -> str:
        ignore = self.ctx / ".dockerignore"
        lines = ignore.read_text().splitlines()
        pattern = self.rng.choice([p for p in IGNORE_POOL if p not in lines] or [""])
        if not pattern:
            return ""
        ignore.write_text("\n".join([*lines, pattern]) + "\n")
        return f"{pattern!r} added to .dockerignore"

    def remove_ignore(self) -> str:
        ignore = self.ctx / ".dockerignore"
        lines = ignore.read_text().splitlines()
        if not lines:
            return ""
        pattern = self.rng.choice(lines)
        lines.remove(pattern)
        ignore.write_text("".join(line + "\n" for line in lines))
        return f"{pattern!r} removed from .dockerignore"

    # -- judging each change ----------------------------------------------------------------

    def steps(self, count: int, label: str = "walk") -> Iterator[Verdict]:
        for n in range(1, count + 1):
            change = self.mutate()
            row = self.project.status()
            action = str(row["action"])
            if action in REUSE_ACTIONS:
                tag = self.project.fingerprint_tag(str(row["fingerprint"]))
                reference = self.project.content(tag)
                after = self.project.build("--no-reuse")
            else:
                reference = self.last.content
                after = self.project.build()
            verdict = Verdict(
                name=f"{label}-{n:02d}",
                change=change,
                action=action,
                why=str(row.get("why", "")),
                uncached=after.uncached,
                steps=after.steps,
                differences=reference.differences(after.content),
            )
            if verdict.classification == STALE:
                self._repoint(tag, after.digest)
            self.last = after
            self.verdicts.append(verdict)
            yield verdict

    def _repoint(self, tag: str, digest: str) -> None:
        repo = f"{self.project.registry}/{self.project.image}"
        docker("buildx", "imagetools", "create", "-t", f"{repo}:{tag}", f"{repo}@{digest}")
