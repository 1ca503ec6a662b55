"""The building commands with a state folder that cannot be written, on the real engine.

A 64 KiB tmpfs (the records of a 1,500-file context do not fit in it) and a read-only
one. Every run ends with exit 3 and one paragraph naming the folder, never an internal
error; when images were built, the summary comes first; nothing half-written is left.
Mounting needs root: without it these tests are skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import Project, bake_ci, make_project, registry_tags

TARGET = "ci-py311"
Mount = Callable[..., Path]


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Mount]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def make(*, ro: bool = False) -> Path:
        where = tmp_path / f"state-{len(mounted)}"
        where.mkdir()
        options = "size=64k,ro" if ro else "size=64k"
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
        mounted.append(where)
        return where

    yield make
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def big(tmp_path: Path) -> Project:
    """The fixture project with 1,500 more files, which its ci stage copies."""
    project = make_project(tmp_path)
    src = project.path / "src"
    src.mkdir()
    for i in range(1500):
        (src / f"module_{i:04}.py").write_text(f"VALUE = {i}\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "add", "-A"], cwd=project.path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "more files"], cwd=project.path, check=True)
    return project


def run(project: Project, state: Path, *args: str) -> tuple[int, str, str]:
    env = {**project.env, "BAKE_CI_STATE_DIR": str(state)}
    result = bake_ci(*args, cwd=project.path, env=env)
    return result.code, result.out, result.err


def assert_clear_exit_3(code: int, err: str, state: Path) -> None:
    assert code == 3, err[-3000:]
    assert "internal error" not in err
    assert "Traceback" not in err
    message = err[err.rindex("bake-ci: ") :]
    assert message.startswith("bake-ci: state folder problem: "), message
    assert str(state) in message
    assert "--state-dir" in message
    leftovers = [p for p in state.rglob(".*") if p.is_file()]
    assert leftovers == [], f"half-written files left: {leftovers}"


@pytest.mark.parametrize("command", ["build --load", "build --push", "warm"])
def test_a_full_state_folder_ends_a_build_with_its_summary_and_exit_3(
    big: Project, mount: Mount, tmp_path: Path, command: str
) -> None:
    state = mount()
    report = tmp_path / "report.json"
    code, out, err = run(big, state, *command.split(), TARGET, "--progress", "plain", "--report", str(report))
    assert_clear_exit_3(code, err, state)
    assert "No space left on device" in err
    assert TARGET in out  # the summary table
    assert "built" in out
    document = json.loads(report.read_text())
    assert [t["status"] for t in document["targets"]] == ["built"]
    if command != "build --load":
        assert "ci-py3.11" in registry_tags(f"{big.namespace}/fixture/app-ci")  # pushed and fully tagged


def test_a_read_only_state_folder_stops_a_build_before_anything_is_built(big: Project, mount: Mount) -> None:
    state = mount(ro=True)
    code, _, err = run(big, state, "build", "--push", TARGET, "--progress", "plain")
    assert_clear_exit_3(code, err, state)
    assert "Read-only file system" in err
    assert "docker buildx bake" not in err
    assert registry_tags(f"{big.namespace}/fixture/app-ci") == set()


def test_pull_with_a_state_folder_that_cannot_be_written(big: Project, mount: Mount) -> None:
    pushed = bake_ci("build", "--push", TARGET, "--progress", "quiet", cwd=big.path, env=big.env)
    assert pushed.code == 0, pushed.err[-3000:]
    for state in (mount(ro=True), mount()):  # read-only: refused before pulling; full: the record does not fit
        code, _, err = run(big, state, "pull", TARGET)
        assert_clear_exit_3(code, err, state)
