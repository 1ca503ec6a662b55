"""Where bake-ci keeps its own files: never inside the build context.

A project's state lives under the user's cache directory, keyed by the project's path
(``$XDG_CACHE_HOME/bake-ci/projects/NAME-HASH``), or where ``BAKE_CI_STATE_DIR`` or
``--state-dir`` says. It holds the fingerprint records of local images, the local
(registry-less) build cache, and one folder per run for the generated bake file,
buildx's metadata and the logs, so runs in the same checkout never read each other's.

A folder that cannot be written (read-only, full) is a :class:`StateFolderError` (exit 3)
wherever it is met, naming the folder, what was being written and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from bake.errors import StateFolderError

ENV = "BAKE_CI_STATE_DIR"
#: Runs whose folders are kept (logs and generated files of older runs are removed).
KEEP_RUNS = 20
#: what a check of the folder writes: a full folder fails it, not only a read-only one
PROBE = b"\0" * 4096
#: how a tool (Go's or the C library's strerror) says a folder cannot be written
_CANNOT_WRITE = re.compile(
    r"no space left on device|read-only file system|disk quota exceeded|permission denied|operation not permitted",
    re.IGNORECASE,
)


def default_root(project_root: Path, environ: Mapping[str, str]) -> Path:
    cache = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    resolved = project_root.resolve()
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", resolved.name) or "root"
    key = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    return Path(cache) / "bake-ci" / "projects" / f"{name}-{key}"


@dataclass(frozen=True)
class State:
    """A project's state folder."""

    root: Path
    #: where the folder came from, for messages: "--state-dir", "BAKE_CI_STATE_DIR" or "default"
    origin: str = "default"

    @classmethod
    def locate(cls, project_root: Path, environ: Mapping[str, str], option: Path | None = None) -> State:
        if option is not None:
            return cls(option.expanduser().absolute(), "--state-dir")
        if environ.get(ENV):
            return cls(Path(environ[ENV]).expanduser().absolute(), ENV)
        return cls(default_root(project_root, environ))

    def inside(self, context: Path) -> bool:
        """Whether this folder is inside ``context`` (then every build would see it change)."""
        return self.root.resolve().is_relative_to(context.resolve())

    def fingerprint_record(self, target: str) -> Path:
        return self.root / "fingerprints" / f"{target}.json"

    def fingerprint_parts(self, target: str) -> Path:
        return self.root / "fingerprints" / f"{target}.parts.json"

    def blob_memo(self) -> Path:
        """The blob hashes of the context's files, by lstat (:class:`bake.content.Memo`)."""
        return self.root / "blobs"

    def local_cache(self, target: str) -> Path:
        return self.root / "cache" / target

    # -- when it cannot be written ---------------------------------------------------------

    def error(self, reason: OSError | str, doing: str) -> StateFolderError:
        """The one-paragraph error for a write of ``doing`` that failed with ``reason``."""
        how = "the default" if self.origin == "default" else f"set by {self.origin}"
        said = (reason.strerror or str(reason)) if isinstance(reason, OSError) else reason
        fix = "free some space there, or point" if _full(reason) else "point"
        return StateFolderError(
            f"bake-ci's state folder {self.root} ({how}) cannot be written: {said} (while {doing}). "
            f"To fix it, {fix} {ENV} or --state-dir at a folder you can write, with room, outside the "
            "build context; nothing half-written was left there."
        )

    @contextlib.contextmanager
    def writing(self, doing: str) -> Iterator[None]:
        """Turn an OSError of the writes inside into a :class:`StateFolderError`."""
        try:
            yield
        except OSError as exc:
            raise self.error(exc, doing) from None

    def named_in(self, text: str) -> str | None:
        """The line of a tool's message (buildx's) saying it could not write into this folder, if any."""
        for line in text.splitlines():
            if str(self.root) in line and _CANNOT_WRITE.search(line):
                return line.strip()
        return None

    def check_writable(self) -> None:
        """StateFolderError unless the folder can be created and written (checked before a build)."""
        with self.writing("checking that it can be written"):
            self.root.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.root, prefix=".probe.")
            try:
                os.write(fd, PROBE)
            finally:
                os.close(fd)
                Path(name).unlink()

    def free_bytes(self) -> int | None:
        """Room left in the folder's file system (for an unprivileged writer), if it can be asked."""
        try:
            found = os.statvfs(self.root)
        except OSError:
            return None
        return found.f_bavail * found.f_frsize

    def new_run_folder(self) -> RunFolder:
        """A folder of this run's own (bake file, metadata, logs); old runs beyond KEEP_RUNS go."""
        runs = self.root / "runs"
        with self.writing("creating this run's folder"):
            runs.mkdir(parents=True, exist_ok=True)
            now = time.time_ns()
            # names sort by start time (to the nanosecond), so the oldest go first
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 1_000_000_000))
            stamp += f".{now % 1_000_000_000:09d}"
            path = Path(tempfile.mkdtemp(dir=runs, prefix=f"{stamp}-{os.getpid()}-"))
        old = sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.name)[:-KEEP_RUNS]
        for folder in old:
            shutil.rmtree(folder, ignore_errors=True)
        return RunFolder(path, self)


def _full(reason: OSError | str) -> bool:
    if isinstance(reason, OSError):
        return reason.errno in (errno.ENOSPC, errno.EDQUOT)
    return bool(re.search(r"no space left|quota", reason, re.IGNORECASE))


@dataclass(frozen=True)
class RunFolder:
    """One run's own folder in the state folder: its bake file, buildx's metadata, its logs."""

    root: Path
    state: State

    @property
    def bake_file(self) -> Path:
        return self.root / "bake.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def metadata_file(self, call: str) -> Path:
        return self.root / "metadata" / f"{call}.json"
