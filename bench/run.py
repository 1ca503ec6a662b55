"""bake-ci vs raw ``docker buildx bake`` vs sequential ``docker buildx build``, on the provisioned engine.

Builds bench/fixture (stages base/deps/ci, real pip dependencies, Python 3.11 and 3.13
from the local registry; the deps and ci images of both Pythons, pushed with registry
cache) with each contender, in six scenarios:

  cold    empty registry cache, pruned builder, no local images of the run
  warm    warm from registry: pruned builder and local images, registry cache present
  hot     nothing changed, local cache present
  source  a change to a file that is not a dependency input (stats.py)
  deps    a dependency change (mdurl==0.1.2 -> 0.1.1 in requirements.txt)
  branch  no change, on a new branch (bake-ci's reuse path vs a fully cached build)

Contenders: ``bake-ci build --push`` (and ``--no-reuse``, the build path without build
avoidance), raw bake (bench/raw/docker-bake.hcl, a hand-written HCL matrix), and
sequential (one ``docker buildx build --push`` per stage and Python, one after
another). Each contender works in a copy of the fixture and a registry namespace of
its own per repetition, going through the scenarios in order (each one starts from
the state the previous one left); contenders alternate their order between
repetitions. Scenario set-up (pruning, edits, commits, branches) is not timed, and
before each timed run the machine is left to settle (CPU idle, see Settler). A run
counts only if it exits 0 and the registry then has every tag it should have pushed.

Besides wall time, each run records the CPU time of the contender's own processes,
and bake-ci's runs when they reached their ``docker buildx bake`` call (from bake-ci's
JSON log); one extra ``-v`` run of each bake-ci variant on hot shows where its time goes.

    .venv/bin/python bench/run.py [--reps N] [--scenarios a,b] [--smoke] [--out bench/results.md] [--readme]
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import results  # bench/ is not a package: python bench/run.py (and the tests) put it on sys.path
from harness import (
    BASE_IMAGE,
    MOBY,
    REGISTRY,
    BenchError,
    SecondEngine,
    Settler,
    bake_ci_command,
    clean_env,
    median,
    ratio,
    remove_engine_images,
    say,
    seconds_cell,
    sh,
)
from results import Meta, Sample

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FIXTURE = BENCH / "fixture"
RAW_HCL = BENCH / "raw" / "docker-bake.hcl"
IMAGE = "bench/app-ci"  # bench/fixture/pyproject.toml
STAGES = ("deps", "ci")
PYTHONS = ("3.11", "3.13")
DEFAULT_BRANCH = "main"
#: Where dockerd keeps its images in containerd (containerd image store).
ATTEMPTS = 3
T = TypeVar("T")
DEPENDENCY_CHANGE = ("mdurl==0.1.2", "mdurl==0.1.1")
FAMILIES = {"bake-ci": ("bake-ci", "bake-ci-no-reuse"), "raw-bake": ("raw-bake",), "sequential": ("sequential",)}
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


# -- the engine, the registry and the fixture ----------------------------------------------------


def registry_has(repo: str, tag: str) -> bool:
    """Whether the registry has ``repo:tag`` (after a 5xx or a dropped connection, asked again, twice)."""
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repo}/manifests/{tag}", method="HEAD", headers={"Accept": ", ".join(MANIFEST_TYPES)}
    )
    for attempt in range(1, ATTEMPTS + 1):
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            problem: Exception = exc
        except OSError as exc:
            problem = exc
        else:
            return True
        say(f"registry HEAD {repo}:{tag}, attempt {attempt}: {problem}")
    raise BenchError(f"the registry does not answer for {repo}:{tag}: {problem}")


def engine_problem() -> str | None:
    """None when docker answers and the registry is up; else what is missing."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    try:
        probe = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return "the engine does not answer within 30 s"
    if probe.returncode != 0:
        return f"the engine does not answer: {probe.stderr.strip()[-300:]}"
    try:
        urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=5).close()
    except OSError as exc:
        return f"no registry at {REGISTRY}: {exc}"
    return None


def wait_for_engine(timeout: float = 120.0) -> bool:
    """Poll until docker and the registry answer again (after someone restarted them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine_problem() is None:
            return True
        time.sleep(1.0)  # polling interval
    return False


def bake_ci_revision() -> str:
    """``commit 43fbb36``, plus a mark when bake/ has uncommitted changes."""
    try:
        sha = sh("git", "rev-parse", "--short", "HEAD", cwd=ROOT).strip()
        dirty = sh("git", "status", "--porcelain", "--", "bake", cwd=ROOT).strip()
    except (BenchError, OSError):
        return ""
    return f"commit {sha}" + (" with uncommitted changes in bake/" if dirty else "")


@dataclass(frozen=True)
class Machine:
    cores: int
    memory_gib: float
    dockerd: str
    buildx: str


def pin_bake_ci(directory: Path) -> str:
    """Copy bake/ into ``directory`` and make every bake-ci this process starts import that copy.

    bake-ci is installed editable from this checkout, where others keep committing: without a
    snapshot, a change landing mid-run would mix two versions in one table. Returns which
    version was copied (``commit 43fbb36``).
    """
    revision = bake_ci_revision()
    shutil.copytree(ROOT / "bake", directory / "bake", ignore=shutil.ignore_patterns("__pycache__"))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(directory), os.environ.get("PYTHONPATH")) if p)
    found = sh(sys.executable, "-c", "import bake; print(bake.__file__)", cwd=directory.parent).strip()
    if not Path(found).is_relative_to(directory):
        raise BenchError(f"bake-ci imports {found}, not the snapshot in {directory}")
    return revision


def machine() -> Machine:
    meminfo = Path("/proc/meminfo").read_text()
    found = re.search(r"MemTotal:\s+(\d+)", meminfo)
    buildx = sh("docker", "buildx", "version").split()
    return Machine(
        cores=os.cpu_count() or 0,
        memory_gib=int(found[1]) / 1024 / 1024 if found else 0.0,
        dockerd=sh("docker", "version", "--format", "{{.Server.Version}}").strip(),
        buildx=buildx[1] if len(buildx) > 1 else " ".join(buildx),
    )


@dataclass
class Project:
    """A git-initialised copy of the fixture and the registry namespace its images go to."""

    path: Path
    namespace: str
    edits: int = 0
    branches: int = 0

    @classmethod
    def create(cls, path: Path, namespace: str) -> Project:
        shutil.copytree(FIXTURE, path)
        project = cls(path, namespace)
        project.git("init", "-q", "-b", DEFAULT_BRANCH)
        project.commit("fixture")
        return project

    @property
    def registry(self) -> str:
        return f"{REGISTRY}/{self.namespace}"

    def git(self, *args: str) -> str:
        return sh("git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args, cwd=self.path).strip()

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)

    @property
    def branch(self) -> str:
        return self.git("rev-parse", "--abbrev-ref", "HEAD")

    @property
    def sha(self) -> str:
        return self.git("rev-parse", "HEAD")

    def edit_source(self) -> None:
        """Change a file that no dependency step reads (only ``COPY . .`` of the ci stage)."""
        self.edits += 1
        with (self.path / "stats.py").open("a") as fh:
            fh.write(f"# bench edit {self.edits} {uuid.uuid4().hex[:8]}\n")
        self.commit(f"edit {self.edits}")

    def change_dependency(self) -> None:
        """Pin one dependency to another existing version (pure Python, installs on 3.11 and 3.13)."""
        path = self.path / "requirements.txt"
        old, new = DEPENDENCY_CHANGE
        text = path.read_text()
        if old not in text:
            raise BenchError(f"{path}: no {old} line to change")
        path.write_text(text.replace(old, new))
        self.commit(f"{old} -> {new}")

    def new_branch(self) -> None:
        self.branches += 1
        self.git("checkout", "-q", "-b", f"feature-{self.branches}")

    def expected_tags(self) -> list[str]:
        """What every contender pushes: branch tag, commit tag, and on the default branch the bare tag."""
        branch, short = self.branch, self.sha[:7]
        tags = []
        for stage in STAGES:
            for python in PYTHONS:
                prefix = f"{stage}-py{python}"
                tags += [f"{prefix}-{branch}", f"{prefix}-{short}"]
                if branch == DEFAULT_BRANCH:
                    tags.append(prefix)
        return tags


# -- the contenders ------------------------------------------------------------------------------


def _cache_flags(project: Project, stage: str, python: str) -> tuple[list[str], list[str], list[str]]:
    """Tags, cache-from and cache-to of one (stage, Python), as bake-ci plans them (minus its fp tag)."""
    image = f"{project.registry}/{IMAGE}"
    prefix = f"{stage}-py{python}"
    branch = project.branch
    tags = [f"{image}:{prefix}-{branch}", f"{image}:{prefix}-{project.sha[:7]}"]
    if branch == DEFAULT_BRANCH:
        tags.append(f"{image}:{prefix}")
    refs = dict.fromkeys([f"{image}-cache:{prefix}-{branch}", f"{image}-cache:{prefix}-{DEFAULT_BRANCH}"])
    cache_from = [f"type=registry,ref={ref}" for ref in refs] + [f"type=registry,ref={image}:{prefix}"]
    cache_to = [f"type=registry,ref={image}-cache:{prefix}-{branch},mode=max,ignore-error=true", "type=inline"]
    return tags, cache_from, cache_to


def commands(contender: str, project: Project, report: Path) -> tuple[list[list[str]], dict[str, str]]:
    """The command lines a contender runs (one after another) and their environment."""
    if contender in ("bake-ci", "bake-ci-no-reuse"):
        cmd = [*bake_ci_command(), "build", "--push", "--progress", "quiet", "--log-format", "json"]
        cmd += ["--report", str(report)]
        if contender == "bake-ci-no-reuse":
            cmd.append("--no-reuse")
        return [cmd], clean_env(BAKE_CI_REGISTRY=project.registry, BAKE_CI_BASE_IMAGE=BASE_IMAGE)
    if contender == "raw-bake":
        env = clean_env(REGISTRY=project.registry, BRANCH=project.branch, SHA=project.sha, BASE_IMAGE=BASE_IMAGE)
        return [["docker", "buildx", "bake", "-f", str(RAW_HCL), "--progress", "plain"]], env
    if contender == "sequential":
        cmds = []
        for python in PYTHONS:  # Pythons one after another, each stage its own build (as Airflow's Breeze does)
            for stage in STAGES:
                tags, cache_from, cache_to = _cache_flags(project, stage, python)
                cmd = ["docker", "buildx", "build", "--progress", "plain", "--target", stage]
                cmd += ["--build-arg", f"BASE_IMAGE={BASE_IMAGE.replace('{python}', python)}"]
                cmd += ["--build-arg", f"PYTHON_VERSION={python}"]
                for flag, items in (("--tag", tags), ("--cache-from", cache_from), ("--cache-to", cache_to)):
                    for item in items:
                        cmd += [flag, item]
                cmds.append([*cmd, "--push", "--file", "Dockerfile", "."])
        return cmds, clean_env()
    raise ValueError(f"unknown contender {contender!r}")


@dataclass(frozen=True)
class Outcome:
    seconds: float
    note: str = ""
    cpu: float | None = None
    before_bake: float | None = None


def children_cpu() -> float:
    """User + system CPU seconds of every child process this one has waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bake_call_start(log_text: str) -> float | None:
    """When bake-ci logged ``build`` (just before it runs ``docker buildx bake``), from its JSON log lines."""
    for line in log_text.splitlines():
        if line.startswith("{") and '"build"' in line:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "build" and isinstance(event.get("timestamp"), str):
                return dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
    return None


def bake_ci_outcome(report: Path) -> tuple[str, list[str]]:
    """From bake-ci's --report: what it did (``built 2, reused 2``) and the targets that failed."""
    targets = json.loads(report.read_text())["targets"]
    statuses = Counter(t["status"] for t in targets)
    note = ", ".join(f"{status} {count}" for status, count in sorted(statuses.items()))
    return note, [t["target"] for t in targets if t["status"] not in ("built", "reused")]


# -- the harness ---------------------------------------------------------------------------------


@dataclass
class Harness:
    workdir: Path
    run_id: str
    settle: Settler
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, str] = field(default_factory=dict)
    runs: int = 0
    #: The second engine (cold and warm prune its builder); None: the shared engine, hot runs only.
    engine: SecondEngine | None = None

    @property
    def prefix(self) -> str:
        """Every registry namespace of this run starts with this."""
        return f"bench-{self.run_id}-"

    def project(self, family: str, rep: int) -> Project:
        name = f"{family}-r{rep + 1}"
        return Project.create(self.workdir / name, f"{self.prefix}{name}")

    # state --------------------------------------------------------------------------------

    def remove_local_images(self) -> None:
        """This run's images in the local engine (never anyone else's)."""
        remove_engine_images([f"{REGISTRY}/{self.prefix}"], self.engine.namespace if self.engine else MOBY)

    def forget(self) -> None:
        """What a fresh runner would not have: build cache, and the run's local images.

        Only on the second engine (ci/engine-up --second): the shared engine's builder holds
        other people's cache and is never pruned.
        """
        engine = self.engine
        if engine is None:
            raise BenchError("cold and warm need the second engine (ci/engine-up --second)")

        def once() -> None:
            started = time.monotonic()
            engine.forget()
            say(f"pruned the bench engine's builder and removed its images in {time.monotonic() - started:.1f} s")

        self.retrying("pruning", once)

    # runs ---------------------------------------------------------------------------------

    def execute(self, contender: str, project: Project, label: str) -> Outcome:
        """Run a contender's build once, check it succeeded and pushed its images; time it."""
        self.runs += 1
        log = self.workdir / "logs" / f"{self.runs:03d}-{label}-{contender}.log"
        report = log.with_suffix(".report.json")
        log.parent.mkdir(exist_ok=True)
        cmds, env = commands(contender, project, report)
        with log.open("w") as fh:
            cpu_before, spawned = children_cpu(), time.time()
            started = time.perf_counter()
            for cmd in cmds:
                fh.write(f"$ {shlex.join(cmd)}\n")
                fh.flush()
                code = subprocess.run(cmd, cwd=project.path, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
                if code != 0:
                    break
            seconds = time.perf_counter() - started
            cpu = children_cpu() - cpu_before
        problems = [f"exit code {code}"] if code != 0 else []
        note, before_bake = "", None
        if contender.startswith("bake-ci") and report.is_file():
            note, bad = bake_ci_outcome(report)
            problems += [f"{target} neither built nor reused" for target in bad]
            bake_started = bake_call_start(log.read_text(errors="replace"))
            before_bake = None if bake_started is None else bake_started - spawned
        if not problems:
            missing = [t for t in project.expected_tags() if not registry_has(f"{project.namespace}/{IMAGE}", t)]
            problems += [f"{project.registry}/{IMAGE}:{t} was not pushed" for t in missing]
        if problems:
            lines = log.read_text(errors="replace").splitlines()
            errors = [line for line in lines if "ERROR" in line or "error" in line]
            why = f" ({errors[-1].strip()[:200]})" if errors else ""
            tail = "\n".join(lines[-25:])
            raise BenchError(f"{contender} ({label}) failed: {'; '.join(problems)}{why}; log {log}:\n{tail}")
        return Outcome(seconds, note, cpu, before_bake)

    def retrying(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, tried again (up to twice) after a failure once the engine answers: others share it,
        and their tests prune the builder and restart dockerd."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return fn()
            except BenchError as exc:
                if attempt == ATTEMPTS:
                    raise
                first = next((line for line in str(exc).splitlines() if line.strip()), str(exc))
                say(f"{what}: attempt {attempt} failed, trying again: {exc}")
                self.notes.append(f"{what}: attempt {attempt} failed ({first[:160]}), run again")
                if not wait_for_engine():
                    raise BenchError(f"{what}: the engine did not answer again within 120 s") from exc
        raise AssertionError("unreachable")

    def timed(self, scenario: str, contender: str, project: Project, rep: int) -> None:
        """Settle, then one measured run."""

        def once() -> tuple[Outcome, float]:
            waited = self.settle()
            return self.execute(contender, project, f"{scenario}-r{rep + 1}"), waited

        outcome, waited = self.retrying(f"{scenario}, {contender}, repetition {rep + 1}", once)
        sample = Sample(scenario, contender, rep, outcome.seconds, outcome.note, outcome.cpu, outcome.before_bake)
        self.samples.append(sample)
        extra = f" [{outcome.note}]" if outcome.note else ""
        say(f"{scenario:6} {contender:17} rep {rep + 1}: {outcome.seconds:6.2f} s{extra} (settled {waited:.1f} s)")

    def profile(self, contender: str, project: Project) -> str:
        """One more (untimed) run of bake-ci with its -v JSON log: when each thing it does starts."""
        self.settle()
        cmds, env = commands(contender, project, self.workdir / "profile.json")
        spawned = time.time()
        proc = subprocess.run(
            [*cmds[0], "-v", "--log-format", "json"], cwd=project.path, env=env, capture_output=True, text=True
        )
        ended = time.time()
        if proc.returncode != 0:
            raise BenchError(f"{contender} (profile) failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
        return results.timeline(events, spawned, ended)

    def chain(
        self, family: str, rep: int, scenarios: Sequence[str], contenders: Sequence[str], cold: bool, profile: bool
    ) -> None:
        """One family's pass through the scenarios, each starting from the state the last one left."""
        variants = [c for c in FAMILIES[family] if c in contenders]
        ordered = variants if rep % 2 == 0 else variants[::-1]
        first = variants[0]
        project = self.project(family, rep)
        if cold:
            self.forget()
            self.timed("cold", first, project, rep)
        else:
            self.retrying(f"set-up, {first}", lambda: self.execute(first, project, f"setup-r{rep + 1}"))  # untimed
        for scenario in scenarios:
            if scenario == "warm":
                self.forget()
                for contender in variants:  # the reuse path leaves the builder as pruned as it found it
                    self.timed("warm", contender, project, rep)
            elif scenario == "hot":
                for contender in ordered:
                    self.timed("hot", contender, project, rep)
                if rep == 0 and family == "bake-ci" and profile:
                    for contender in variants:
                        run = functools.partial(self.profile, contender, project)
                        self.profiles[contender] = self.retrying(f"profile, {contender}", run)
            elif scenario == "source":
                for contender in ordered:
                    project.edit_source()
                    self.timed("source", contender, project, rep)
            elif scenario == "deps":
                project.change_dependency()
                self.timed("deps", first, project, rep)
            elif scenario == "branch":
                for contender in ordered:
                    project.new_branch()
                    self.timed("branch", contender, project, rep)


def plan_project(directory: Path, stages: int, pythons: int) -> Path:
    """A project with ``stages`` chained stages and ``pythons`` Python versions (for ``bake-ci plan``)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["ARG BASE_IMAGE", "FROM ${BASE_IMAGE} AS s0"]
    lines += [f"FROM s{i - 1} AS s{i}\nRUN echo {i}" for i in range(1, stages)]
    (directory / "Dockerfile").write_text("\n".join(lines) + "\n")
    versions = ", ".join(f'"3.{9 + i}"' for i in range(pythons))
    names = ", ".join(f'"s{i}"' for i in range(stages))
    (directory / "pyproject.toml").write_text(
        f'[tool.bake-ci]\nimage = "acme/app-ci"\nregistry = "ghcr.io/acme"\npython = [{versions}]\nstages = [{names}]\n'
    )
    return directory


def process_times(cmd: Sequence[str], runs: int, cwd: Path) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        sh(*cmd, cwd=cwd, env=clean_env())
        times.append(time.perf_counter() - started)
    return times


def extras(
    samples: Sequence[Sample], plan_times: list[float], startup: list[float], profiles: Mapping[str, str]
) -> list[tuple[str, str]]:
    """The overhead lines under the table."""
    out: list[tuple[str, str]] = []

    def vals(sc: str, c: str) -> list[float]:
        return results.values(samples, sc, c)

    raw_hot = vals("hot", "raw-bake")
    for contender, what in (("bake-ci", "default, reuse path"), ("bake-ci-no-reuse", "--no-reuse, build path")):
        xs = vals("hot", contender)
        r = ratio(xs, raw_hot)
        if r is not None:
            delta = (median(xs) or 0) - (median(raw_hot) or 0)
            out.append((f"`bake-ci build` ({what}) vs raw bake on hot", f"{r:.2f}× ({delta:+.2f} s)"))
    for contender in ("bake-ci", "bake-ci-no-reuse"):
        cells = []
        for scenario in results.SCENARIOS:
            xs = results.before_bake(samples, scenario, contender)
            if xs:
                cells.append(f"{scenario} {median(xs):.2f} s")
        if cells:
            name = f"`{results.CONTENDERS[contender]}`: time from its start to its `docker buildx bake` call (median)"
            out.append((name, ", ".join(cells)))
    cold_bake, cold_raw = vals("cold", "bake-ci"), vals("cold", "raw-bake")
    before = results.before_bake(samples, "cold", "bake-ci")
    if cold_bake and cold_raw and before:
        gap = (median(cold_bake) or 0) - (median(cold_raw) or 0)
        out.append(
            (
                "cold: bake-ci minus raw bake (medians)",
                f"{gap:+.2f} s, of which {median(before):.2f} s pass before bake-ci starts its bake call "
                "(interpreter and imports, config, git, base image digests and fingerprint look-ups in the registry, "
                "engine check)",
            )
        )
    for contender, timeline in profiles.items():
        out.append((f"where the time of one `{results.CONTENDERS[contender]}` run on hot goes (`-v` log)", timeline))
    if plan_times:
        out.append(
            (
                f"`bake-ci plan`, 6 stages × 5 Pythons, whole process, runs: {len(plan_times)}",
                seconds_cell(plan_times),
            )
        )
    if startup:
        out.append((f"`bake-ci --version`, whole process, runs: {len(startup)}", seconds_cell(startup)))
    return out


# -- the command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--reps", type=int, default=4, help="repetitions (default 4, fewer if the budget runs out)")
    add("--cold-reps", type=int, help="repetitions that measure cold (default: all); the others start untimed")
    add("--scenarios", default=",".join(results.SCENARIOS), help="comma-separated, of: " + ", ".join(results.SCENARIOS))
    add(
        "--contenders",
        default=",".join(results.CONTENDERS),
        help="comma-separated, of: " + ", ".join(results.CONTENDERS),
    )
    add("--smoke", action="store_true", help="one repetition of hot for bake-ci and raw bake (the test suite's mode)")
    add("--out", type=Path, default=BENCH / "results.md", help="the Markdown results file (default bench/results.md)")
    add("--readme", action="store_true", help="also put the results into bench/README.md")
    add("--budget-minutes", type=float, default=17.0, help="start no repetition that would end after this (17)")
    add("--plan-runs", type=int, default=10, help="runs of `bake-ci plan` for 6 stages x 5 Pythons (10)")
    add("--settle-timeout", type=float, default=30.0, help="give up waiting for an idle machine after this (30 s)")
    add("--keep", action="store_true", help="keep the work directory (fixture copies and logs)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.reps, args.scenarios, args.contenders, args.plan_runs = 1, "hot", "bake-ci,raw-bake", 1
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    for value, known, what in (
        (args.scenarios, results.SCENARIOS, "scenario"),
        (args.contenders, results.CONTENDERS, "contender"),
    ):
        unknown = [v for v in value if v not in known]
        if unknown or not value:
            parser.error(f"unknown {what} {unknown[0] if unknown else '(none)'}: choose from {', '.join(known)}")
    args.scenarios = [s for s in results.SCENARIOS if s in args.scenarios]
    args.contenders = [c for c in results.CONTENDERS if c in args.contenders]
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    args.cold_reps = args.reps if args.cold_reps is None else args.cold_reps
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    problem = engine_problem()
    if problem:
        print(f"bench: {problem}; start the engine with ci/engine-up", file=sys.stderr)
        return 3
    started = time.monotonic()
    command = "python bench/run.py " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    workdir = Path(tempfile.mkdtemp(prefix="bake-ci-bench-"))
    harness = Harness(workdir, uuid.uuid4().hex[:6], Settler(timeout=args.settle_timeout))
    if {"cold", "warm"} & set(args.scenarios):
        try:
            harness.engine = SecondEngine.start()
        except BenchError as exc:
            print(f"bench: cold and warm prune a builder, and only the second engine's may be pruned: {exc}; "
                  "measure hot, source, deps and branch with --scenarios", file=sys.stderr)  # fmt: skip
            return 3
        os.environ["DOCKER_HOST"] = harness.engine.host  # every docker, buildx and bake-ci run
        say(f"the second engine: {harness.engine.host}")
    families = [f for f, members in FAMILIES.items() if any(c in args.contenders for c in members)]
    say(f"work directory {workdir}; registry namespaces {REGISTRY}/{harness.prefix}*")
    ok = False
    try:
        revision = pin_bake_ci(workdir / "bake-ci")
        say(f"measuring bake-ci at {revision} (a copy of bake/ in {workdir / 'bake-ci'})")
        info = machine()
        with tempfile.TemporaryDirectory() as tmp:
            big = plan_project(Path(tmp) / "plan", 6, 5)
            harness.settle()
            plan_times = process_times([*bake_ci_command(), "plan", "--branch", "main"], args.plan_runs, big)
            startup = process_times([*bake_ci_command(), "--version"], max(1, args.plan_runs // 2), big)
        say(f"bake-ci plan 6x5: {seconds_cell(plan_times)}")
        timed = [s for s in args.scenarios if s != "cold"]
        rep_times: list[float] = []
        done = 0
        for rep in range(args.reps):
            elapsed = time.monotonic() - started
            if rep_times and elapsed + max(rep_times) > args.budget_minutes * 60:
                harness.notes.append(
                    f"stopped after {rep} of {args.reps} repetitions: another one would end after the "
                    f"{args.budget_minutes:g}-minute budget (one took up to {max(rep_times) / 60:.1f} min)"
                )
                say(harness.notes[-1])
                break
            rep_started = time.monotonic()
            cold = "cold" in args.scenarios and rep < args.cold_reps
            order = families if rep % 2 == 0 else families[::-1]
            say(f"repetition {rep + 1}: {', '.join(order)}")
            for family in order:
                harness.chain(family, rep, timed, args.contenders, cold, profile=not args.smoke)
            rep_times.append(time.monotonic() - rep_started)
            done = rep + 1
            say(f"repetition {rep + 1} took {rep_times[-1]:.0f} s")
        waits = harness.settle.waits
        harness.notes += [
            f"{done} repetition(s); cold measured in {min(done, args.cold_reps) if 'cold' in args.scenarios else 0}; "
            "contenders alternate their order between repetitions",
            f"settling before each timed run (<{harness.settle.threshold:.0%} CPU busy over "
            f"{harness.settle.window:g} s): median {median(waits) or 0:.1f} s, "
            f"max {max(waits, default=0):.1f} s, "
            f"gave up after {harness.settle.timeout:g} s {harness.settle.gave_up} time(s)",
            "cold and warm run on the second engine (ci/engine-up --second: its builder is "
            "pruned, never the shared one's); local base images (localhost:5000/library/python) are kept in "
            "cold runs; the CPUs and the registry are shared with other users of this machine",
            f"this run's images stay in the registry under {REGISTRY}/{harness.prefix}*",
        ]
        meta = Meta(
            date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            cores=info.cores,
            memory_gib=info.memory_gib,
            dockerd=info.dockerd,
            buildx=info.buildx,
            command=command,
            total_seconds=time.monotonic() - started,
            notes=tuple(harness.notes),
            bake_ci=revision,
        )
        text = results.markdown(
            meta,
            harness.samples,
            args.scenarios,
            args.contenders,
            extras(harness.samples, plan_times, startup, harness.profiles),
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(results.keep_definitions(args.out.read_text() if args.out.is_file() else "", text))
        print(text)
        if args.readme:
            readme = BENCH / "README.md"
            readme.write_text(results.splice(readme.read_text(), text))
        say(f"results in {args.out}" + (" and bench/README.md" if args.readme else ""))
        ok = True
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        try:
            harness.remove_local_images()
        except BenchError as exc:
            say(f"could not remove this run's local images: {exc}")
        if harness.engine is not None:
            harness.engine.stop()
            os.environ.pop("DOCKER_HOST", None)
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"kept {workdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
