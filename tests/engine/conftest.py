"""Engine tests: the real dockerd, buildx and the registry on 127.0.0.1:5000 (ci/engine-up)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REGISTRY = "localhost:5000"
FIXTURE = Path(__file__).parent / "fixture"
#: The second engine ``ci/engine-up --second`` starts: its own dockerd, builder and bridge.
SECOND_ENGINE = "unix:///run/bake-ci/docker2.sock"
ENGINE_UP = Path(__file__).parents[2] / "ci" / "engine-up"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.engine)


def _engine_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no docker CLI"
    probe = subprocess.run(["docker", "info", "--format", "{{json .DriverStatus}}"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"the engine does not answer: {probe.stderr.strip()}"
    try:
        urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=5).close()
    except OSError as exc:
        return f"no registry at {REGISTRY}: {exc}"
    return None


@pytest.fixture(scope="session", autouse=True)
def engine() -> Iterator[None]:
    problem = _engine_problem()
    if problem is not None:
        message = f"{problem}; start the engine with ci/engine-up"
        if os.environ.get("BAKE_CI_REQUIRE_ENGINE"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    before = set(_containers())
    images = _images()
    yield
    left = [line for cid, line in _containers().items() if cid not in before and _ours(line)]
    _remove_images(_images() - images)
    assert not left, "the engine tests left containers behind:\n" + "\n".join(left)


#: the registry namespaces this session's projects push to (make_project)
NAMESPACES: set[str] = set()


def _containers() -> dict[str, str]:
    """The first engine's containers, running or not: ID -> "ID IMAGE NAME"."""
    listed = docker("ps", "--all", "--no-trunc", "--format", "{{.ID}} {{.Image}} {{.Names}}", check=False)
    return {line.split()[0]: line for line in listed.stdout.splitlines() if line.strip()}


#: dockerd's namespace in containerd, where its image store keeps the images it builds
MOBY = "moby"


def _images() -> set[str]:
    """The first engine's image names, read from containerd directly.

    The suite removes the images it built (about 230 a run) through containerd too: with
    the containerd image store, ``docker image rm`` took 2 s an image with 225 images in
    the store and 24 s with 5,600, while ``ctr images rm`` takes milliseconds. Left in
    place, a few runs' images slowed the whole engine lane by half.
    """
    listed = subprocess.run(["ctr", "-n", MOBY, "images", "ls", "-q"], capture_output=True, text=True, check=True)
    return set(listed.stdout.split())


def _remove_images(names: set[str]) -> None:
    ordered = sorted(names)
    for start in range(0, len(ordered), 200):
        batch = ordered[start : start + 200]
        subprocess.run(["ctr", "-n", MOBY, "images", "rm", *batch], capture_output=True, check=True)


def _ours(line: str) -> bool:
    """A container of this session's images: the engine is shared, others' containers are theirs."""
    image = line.split()[1]
    return image.startswith("fixture/") or any(f"/{namespace}/" in image for namespace in NAMESPACES)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def events(self, name: str) -> list[dict[str, object]]:
        """JSON log events (``--log-format json``) with the given event name."""
        found = []
        for line in self.err.splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("event") == name:
                    found.append(event)
        return found


def bake_ci(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> Result:
    """Run the real CLI as a user would, in its own process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("BAKE_CI_", "GITHUB_", "CI"))}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "bake", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=1200
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=600)


def registry_tags(repository: str) -> set[str]:
    """Tags the registry holds for ``repository`` (without the registry host)."""
    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/{repository}/tags/list", timeout=10) as resp:
            return set(json.load(resp).get("tags") or [])
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return set()
        raise


@dataclass
class Project:
    path: Path
    namespace: str
    env: dict[str, str]
    sha: str

    @property
    def registry(self) -> str:
        return f"{REGISTRY}/{self.namespace}"


def make_project(tmp: Path, source: Path = FIXTURE, branch: str = "main") -> Project:
    """A copy of a fixture project in a git repository of its own, with a fresh registry namespace."""
    path = tmp / "project"
    shutil.copytree(source, path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", branch], cwd=path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "fixture"], cwd=path, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True).stdout
    namespace = f"test-{uuid.uuid4().hex[:10]}"
    NAMESPACES.add(namespace)
    env = {
        "BAKE_CI_REGISTRY": f"{REGISTRY}/{namespace}",
        # the project's own state folder (copies of the checkout share it), not the user's cache
        "BAKE_CI_STATE_DIR": str(tmp / "state"),
    }
    return Project(path, namespace, env, sha.strip())


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path)


#: the fixture project's targets (2 stages x 2 Pythons)
TARGETS = ["deps-py311", "deps-py313", "ci-py311", "ci-py313"]


@pytest.fixture(scope="session")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The fixture project, built and pushed from ``main`` once per session, for every test
    that reads it. Tests that change it work on a copy, push other branches only, or make a
    project of their own: ``main``'s tags stay as this build left them."""
    project = make_project(tmp_path_factory.mktemp("pushed"))
    result = bake_ci("build", "--push", "--progress", "plain", cwd=project.path, env=project.env)
    assert result.code == 0, result.err
    for target in TARGETS:
        assert target in result.out
    return project


# -- a second engine: another CI runner on the same machine --------------------------------


def on_engine(host: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``docker ARGS`` against the engine at ``host``."""
    env = {**os.environ, "DOCKER_HOST": host}
    env.pop("DOCKER_CONTEXT", None)
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=600, env=env)


def clear_builder(host: str) -> None:
    """Empty the second engine's builder (build cache and images), as on a fresh CI runner.

    Only ever the second engine: the first one is shared and its cache is not the tests' to drop.
    """
    assert host == SECOND_ENGINE, f"refusing to clear the builder of {host}"
    on_engine(host, "buildx", "prune", "--all", "--force")
    on_engine(host, "image", "prune", "--all", "--force")


def _second_engine_up() -> bool:
    return on_engine(SECOND_ENGINE, "version", check=False).returncode == 0


def _engine_up(*args: str) -> str | None:
    """Run ``ci/engine-up ARGS``; the tail of its output when it fails."""
    proc = subprocess.run([str(ENGINE_UP), *args], capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode == 0:
        return None
    return f"ci/engine-up {' '.join(args)} failed:\n" + "\n".join((proc.stderr or proc.stdout).splitlines()[-15:])


@pytest.fixture(scope="session")
def second_engine(engine: None) -> Iterator[str]:
    """DOCKER_HOST of a second engine (started with ``ci/engine-up --second`` if needed).

    It shares containerd and the registry with the first engine and nothing else; its
    builder is emptied before and after the session (never the first engine's). An engine
    this fixture started is stopped again at the end of the session
    (``ci/engine-up --second-down``): the suite leaves no daemon behind.
    """
    started = False
    problem = None
    if not _second_engine_up():
        if os.geteuid() != 0:
            problem = f"no engine answers at {SECOND_ENGINE}, and starting one needs root: run ci/engine-up --second"
        else:
            problem = _engine_up("--second")
            started = problem is None
    if problem is not None:
        if os.environ.get("BAKE_CI_REQUIRE_ENGINE"):
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    try:
        clear_builder(SECOND_ENGINE)
        yield SECOND_ENGINE
        left = on_engine(SECOND_ENGINE, "ps", "--all", "--format", "{{.ID}} {{.Image}} {{.Names}}").stdout.strip()
        assert not left, f"the tests left containers on the second engine:\n{left}"
        clear_builder(SECOND_ENGINE)
    finally:
        if started:
            stopped = _engine_up("--second-down")
            assert stopped is None, stopped
            assert not _second_engine_up(), f"ci/engine-up --second-down left an engine at {SECOND_ENGINE}"
