"""Build avoidance on the real engine: reuse by fingerprint, status, pull, doctor."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import TARGETS, Project, bake_ci, clear_builder, docker, make_project


def statuses(path: Path) -> dict[str, str]:
    return {t["target"]: t["status"] for t in json.loads(path.read_text())["targets"]}


def digest(ref: str) -> str:
    out = docker("buildx", "imagetools", "inspect", ref, "--format", "{{json .Manifest}}").stdout
    return str(json.loads(out)["digest"])


def test_no_change_on_a_new_branch_reuses_every_image_without_building(pushed: Project, tmp_path: Path) -> None:
    args = [
        "build",
        "--push",
        "--branch",
        "feature/reuse",
        "--log-format",
        "json",
        "--report",
        str(tmp_path / "r.json"),
    ]
    result = bake_ci(*args, cwd=pushed.path, env=pushed.env)
    assert result.code == 0, result.err
    assert statuses(tmp_path / "r.json") == dict.fromkeys(TARGETS, "reused"), result.err
    assert not [e for e in result.events("run") if "buildx bake" in str(e.get("cmd"))], "a BuildKit solve ran"
    image = f"{pushed.registry}/fixture/app-ci"
    for target in TARGETS:
        stage, python = target.split("-py")
        tag = f"{stage}-py{python[0]}.{python[1:]}"
        assert digest(f"{image}:{tag}-feature-reuse") == digest(f"{image}:{tag}-main")


def own_copy(pushed: Project, tmp_path: Path) -> Project:
    """A checkout of the pushed project of this test's own, to change without touching the others'."""
    path = tmp_path / "checkout"
    shutil.copytree(pushed.path, path, symlinks=True)
    return dataclasses.replace(pushed, path=path)


def test_a_non_input_change_rebuilds_only_what_reads_it(pushed: Project, tmp_path: Path) -> None:
    mine = own_copy(pushed, tmp_path)
    test_file = mine.path / "test_app.py"
    test_file.write_text(test_file.read_text() + "\n# a test-only change: not an input of deps\n")
    args = ["build", "--push", "--branch", "feature/tests", "--report", str(tmp_path / "r.json")]
    result = bake_ci(*args, cwd=mine.path, env=mine.env)
    assert result.code == 0, result.err
    assert statuses(tmp_path / "r.json") == {
        "deps-py311": "reused",
        "deps-py313": "reused",
        "ci-py311": "built",
        "ci-py313": "built",
    }


def test_status_names_the_changed_input_then_says_reuse_once_pushed(pushed: Project, tmp_path: Path) -> None:
    pushed = own_copy(pushed, tmp_path)
    requirements = pushed.path / "requirements.txt"
    requirements.write_text(requirements.read_text() + "# pinned again\n")
    before = bake_ci("status", "--load", "--branch", "feature/pins", "--json", cwd=pushed.path, env=pushed.env)
    assert before.code == 0, before.err
    rows = {r["target"]: r for r in json.loads(before.out)}
    for target in TARGETS:
        assert rows[target]["action"] == "build", rows[target]
        assert "requirements.txt" in rows[target]["changed"], rows[target]
        assert "requirements.txt" in rows[target]["why"]

    # another branch: the shared main tags stay as the other tests of this module expect them
    args = ["build", "--push", "--progress", "quiet", "--branch", "feature/pins"]
    built = bake_ci(*args, cwd=pushed.path, env=pushed.env)
    assert built.code == 0, built.err
    after = bake_ci("status", "--push", "--branch", "feature/next", "--json", cwd=pushed.path, env=pushed.env)
    assert after.code == 0, after.err
    assert {r["target"]: r["action"] for r in json.loads(after.out)} == dict.fromkeys(TARGETS, "reuse")


def test_pull_fetches_the_image_for_the_current_inputs(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    built = bake_ci("build", "deps-py311", "--push", "--progress", "quiet", cwd=project.path, env=project.env)
    assert built.code == 0, built.err
    image = f"{project.registry}/fixture/app-ci"
    local = f"{image}:deps-py3.11-main"
    # buildx stores the pushed image under its branch tag; the other tags exist only in the registry
    docker("image", "rm", local)

    pulled = bake_ci("pull", "deps-py311", cwd=project.path, env=project.env)
    assert pulled.code == 0, pulled.err
    assert docker("image", "inspect", local, check=False).returncode == 0

    missing = bake_ci("pull", "ci-py311", cwd=project.path, env=project.env)
    assert missing.code == 1
    assert "bake-ci build ci-py311 --load" in missing.err


def test_doctor_passes_on_the_provisioned_engine(project: Project) -> None:
    result = bake_ci("doctor", cwd=project.path, env=project.env)
    assert result.code == 0, result.out + result.err
    for name in ("docker CLI", "buildx", "engine", "builder", "config", "Dockerfile", "registry", "base image"):
        assert any(line.startswith("ok") and name in line for line in result.out.splitlines()), name


def test_doctor_names_the_fix_when_the_engine_is_unreachable(project: Project) -> None:
    env = {**project.env, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    result = bake_ci("doctor", cwd=project.path, env=env)
    assert result.code == 3
    assert "FAIL  engine" in result.out
    assert "fix: start dockerd, or point DOCKER_HOST" in result.out


@pytest.mark.parametrize("command", ["status", "pull"])
def test_status_and_pull_without_an_engine_exit_3_with_the_fix(project: Project, command: str) -> None:
    env = {**project.env, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    result = bake_ci(command, cwd=project.path, env=env)
    assert result.code == 3, result.err
    assert "Traceback" not in result.err
    assert "the Docker engine does not answer at DOCKER_HOST=unix:///nonexistent/docker.sock" in result.err


def test_after_main_reuses_a_branchs_images_a_cold_rebuild_of_main_takes_every_step_from_cache(
    tmp_path: Path, second_engine: str
) -> None:
    """main reuses what a merged branch built; main's cache ref must follow to that build's
    cache, or a fresh runner rebuilding main misses the branch's steps."""
    project = make_project(tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    assert bake_ci("build", "--push", "--progress", "quiet", cwd=project.path, env=project.env).code == 0
    subprocess.run([*git, "checkout", "-q", "-b", "feature"], cwd=project.path, check=True)
    (project.path / "app.py").write_text((project.path / "app.py").read_text() + "\n# feature\n")
    subprocess.run([*git, "commit", "-qam", "feature"], cwd=project.path, check=True)
    assert bake_ci("build", "--push", "--progress", "quiet", cwd=project.path, env=project.env).code == 0
    subprocess.run([*git, "checkout", "-q", "main"], cwd=project.path, check=True)
    subprocess.run([*git, "merge", "-q", "--ff-only", "feature"], cwd=project.path, check=True)
    args = ["build", "--push", "--progress", "quiet", "--report", str(tmp_path / "reused.json")]
    result = bake_ci(*args, cwd=project.path, env=project.env)
    assert result.code == 0, result.err
    assert statuses(tmp_path / "reused.json") == dict.fromkeys(TARGETS, "reused")
    cache = f"{project.registry}/fixture/app-ci-cache"
    for tag in ("ci-py3.11", "ci-py3.13"):
        assert digest(f"{cache}:{tag}-main") == digest(f"{cache}:{tag}-feature"), tag

    clear_builder(second_engine)  # a fresh runner: what it has comes from the registry
    args = ["build", "--push", "--no-reuse", "--report", str(tmp_path / "cold.json")]
    result = bake_ci(*args, cwd=project.path, env={**project.env, "DOCKER_HOST": second_engine})
    assert result.code == 0, result.err
    rows = {t["target"]: t for t in json.loads((tmp_path / "cold.json").read_text())["targets"]}
    for target, row in rows.items():
        assert row["status"] == "built", target
        assert row["cached"] == row["steps"], f"{target}: {row['cached']}/{row['steps']} steps cached"
