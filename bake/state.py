"""Where bake-ci keeps its own files: never inside the build context.

A project's state lives under the user's cache directory, keyed by the project's path
(``$XDG_CACHE_HOME/bake-ci/projects/NAME-HASH``), or where ``BAKE_CI_STATE_DIR`` or
``--state-dir`` says. It holds the fingerprint records of local images, the local
(registry-less) build cache, and one folder per run for the generated bake file,
buildx's metadata and the logs, so runs in the same checkout never read each other's.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bake.errors import UsageError

ENV = "BAKE_CI_STATE_DIR"
#: Runs whose folders are kept (logs and generated files of older runs are removed).
KEEP_RUNS = 20


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
        """The blob hashes of the context's files, by lstat (:class:`bake.fingerprint.Memo`)."""
        return self.root / "blobs"

    def local_cache(self, target: str) -> Path:
        return self.root / "cache" / target

    def check_writable(self) -> None:
        """UsageError unless the folder can be created and written (checked before a build)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe."):
                pass
        except OSError as exc:
            how = "the default" if self.origin == "default" else f"set by {self.origin}"
            raise UsageError(
                f"bake-ci's state folder {self.root} ({how}) is not writable: {exc.strerror}. "
                f"Point {ENV} or --state-dir at a folder you can write, outside the build context."
            ) from None

    def new_run(self) -> Run:
        """A folder of this run's own (bake file, metadata, logs); old runs beyond KEEP_RUNS go."""
        runs = self.root / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        now = time.time_ns()
        # names sort by start time (to the nanosecond), so the oldest go first
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 1_000_000_000)) + f".{now % 1_000_000_000:09d}"
        path = Path(tempfile.mkdtemp(dir=runs, prefix=f"{stamp}-{os.getpid()}-"))
        old = sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.name)[:-KEEP_RUNS]
        for folder in old:
            shutil.rmtree(folder, ignore_errors=True)
        return Run(path)


@dataclass(frozen=True)
class Run:
    """One run's own files."""

    root: Path

    @property
    def bake_file(self) -> Path:
        return self.root / "bake.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def metadata_file(self, call: str) -> Path:
        return self.root / "metadata" / f"{call}.json"
