"""What every benchmark here shares: running commands, letting the machine settle before a
timed run, medians, ratios and table cells, and the second engine whose builder a cold
run may prune.

The scenario scripts (run.py, core.py, definitions.py, context.py, platforms.py,
retention.py, gc_stress.py) import it by name: ``python bench/SCRIPT.py`` puts bench/ on
``sys.path`` (bench/ is a folder of scripts, not a package).
"""

from __future__ import annotations

import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
REGISTRY = "localhost:5000"
BASE_IMAGE = f"{REGISTRY}/library/python:{{python}}-slim"


class BenchError(Exception):
    """A contender's build failed, or the engine is not there."""


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def sh(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"{shlex.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without CI, GitHub, GitLab and bake-ci variables, plus ``extra``."""
    drop = ("CI", "GITHUB_", "CI_", "BAKE_CI_")
    env = {k: v for k, v in os.environ.items() if not (k == "CI" or k.startswith(drop))}
    env.update(extra)
    return env


def bake_ci_command() -> list[str]:
    script = Path(sys.executable).with_name("bake-ci")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "bake"]


# -- letting the machine settle ---------------------------------------------------------------


def cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies of all CPUs from /proc/stat; iowait counts as busy."""
    with Path("/proc/stat").open() as fh:
        fields = [int(x) for x in fh.readline().split()[1:9]]
    return fields[3], sum(fields)


def busy_fraction(before: tuple[int, int], after: tuple[int, int]) -> float:
    idle, total = after[0] - before[0], after[1] - before[1]
    return 1.0 if total <= 0 else 1.0 - idle / total


@dataclass
class Settler:
    """Wait until the machine is idle before a timed run.

    After ``docker buildx prune`` or ``docker image rm``, containerd deletes content in
    the background and takes CPU from the next run (a cold build is CPU-bound on small
    machines). This polls /proc/stat in ``window``-second windows until one is below
    ``threshold`` busy, and gives up after ``timeout`` seconds (other work on the machine).
    """

    threshold: float = 0.15
    window: float = 0.5
    timeout: float = 30.0
    waits: list[float] = field(default_factory=list)
    gave_up: int = 0

    def __call__(self) -> float:
        started = time.monotonic()
        before = cpu_times()
        while True:
            time.sleep(self.window)  # the measuring window, not a wait for something
            after = cpu_times()
            if busy_fraction(before, after) < self.threshold:
                break
            before = after
            if time.monotonic() - started >= self.timeout:
                self.gave_up += 1
                break
        waited = time.monotonic() - started
        self.waits.append(waited)
        return waited


# -- medians, ratios, table cells -------------------------------------------------------------


def median(xs: Sequence[float]) -> float | None:
    return statistics.median(xs) if xs else None


def ratio(xs: Sequence[float], base: Sequence[float]) -> float | None:
    """Median over median; None when either side was not measured (or the base is zero)."""
    a, b = median(xs), median(base)
    if a is None or b is None or b <= 0:
        return None
    return a / b


def seconds_cell(xs: Sequence[float], digits: int = 2) -> str:
    """``12.30 s (11.90-13.00)`` (an en dash in the range): the median and the range; a
    single value has no range; nothing measured is a dash."""
    if not xs:
        return "–"
    med = statistics.median(xs)
    if len(xs) == 1:
        return f"{med:.{digits}f} s"
    return f"{med:.{digits}f} s ({min(xs):.{digits}f}–{max(xs):.{digits}f})"


def ratio_cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# -- the second engine ------------------------------------------------------------------------

ENGINE_UP = ROOT / "ci" / "engine-up"
#: the engine ``ci/engine-up --second`` starts: its own dockerd, builder, data and bridge
SECOND_ENGINE = "unix:///run/bake-ci/docker2.sock"
#: images a forget() keeps: the base images, as a fresh runner would pull them anyway (cheaply, locally)
KEEP_PREFIXES = (f"{REGISTRY}/library/",)


#: dockerd's namespace in containerd (the first engine's image store)
MOBY = "moby"


def remove_engine_images(prefixes: Sequence[str], namespace: str = MOBY) -> None:
    """Remove the images whose names start with one of ``prefixes`` from an engine's store
    (never anyone else's), and the content only they held.

    dockerd (containerd image store) runs a synchronous garbage collection for every tag it
    removes: 2 s an image with 225 images in the store, 24 s with 5,600. containerd's own
    CLI removes all the tags and collects once. Falls back to ``docker image rm`` without it.
    """
    if not prefixes:
        return
    if shutil.which("ctr"):
        try:
            refs = sh("ctr", "--namespace", namespace, "images", "ls", "--quiet").split()
            ours = sorted(r for r in refs if r.startswith(tuple(prefixes)))
            if ours:
                sh("ctr", "--namespace", namespace, "images", "rm", "--sync", *ours)
            return
        except BenchError as exc:
            say(f"ctr cannot remove images, using docker image rm: {str(exc)[:200]}")
    refs = sh("docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}").split()
    ours = sorted(r for r in refs if r.startswith(tuple(prefixes)))
    if ours:
        sh("docker", "image", "rm", *ours)


@dataclass
class SecondEngine:
    """The second engine of ``ci/engine-up --second``: its builder is no one else's, so a
    cold run may prune it (never the shared engine's). It shares containerd (namespace
    ``moby2``), the registry and the registry mirror with the first engine.

        with SecondEngine.start() as engine:
            env = engine.env()            # DOCKER_HOST for every docker/buildx/bake-ci process
            engine.forget()               # prune its builder, remove its images (bases kept)

    Started by ``start()`` when it is not running (that needs root), and then stopped again
    by ``stop()`` (``ci/engine-up --second-down``); either way ``stop()`` leaves it empty.
    """

    host: str = SECOND_ENGINE
    started: bool = False
    namespace: str = "moby2"

    @staticmethod
    def answers(host: str = SECOND_ENGINE) -> bool:
        env = {**os.environ, "DOCKER_HOST": host}
        env.pop("DOCKER_CONTEXT", None)
        return subprocess.run(["docker", "version"], env=env, capture_output=True).returncode == 0

    @classmethod
    def start(cls) -> SecondEngine:
        if cls.answers():
            return cls()
        proc = subprocess.run([str(ENGINE_UP), "--second"], capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-10:])
            raise BenchError(f"ci/engine-up --second failed ({proc.returncode}):\n{tail}")
        return cls(started=True)

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["DOCKER_HOST"] = self.host
        env.pop("DOCKER_CONTEXT", None)
        return env

    def images(self) -> list[str]:
        """Its images: ``REPOSITORY:TAG``, or the ID of an untagged one."""
        listed = sh("docker", "image", "ls", "--all", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}", env=self.env())
        pairs = (line.split() for line in listed.splitlines())
        return [image_id if "<none>" in ref else ref for image_id, ref in pairs]

    def remove_images(self, keep: tuple[str, ...] = KEEP_PREFIXES) -> None:
        ours = [ref for ref in self.images() if not ref.startswith(keep)]
        if ours:
            sh("docker", "image", "rm", "--force", *ours, env=self.env())

    def forget(self) -> None:
        """What a fresh runner would not have: this engine's build cache and its images (bases kept)."""
        sh("docker", "buildx", "prune", "--all", "--force", env=self.env())
        self.remove_images()

    def stop(self) -> None:
        """Empty it; stop it if ``start()`` started it (safe to call twice)."""
        if not self.answers(self.host):
            return
        self.forget()
        if self.started:
            self.remove_images(keep=())
            sh(str(ENGINE_UP), "--second-down")

    def __enter__(self) -> SecondEngine:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
