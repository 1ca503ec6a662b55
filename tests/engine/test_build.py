"""The main path on the real engine: plan, build and push the matrix, reuse registry cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import TARGETS, Project, bake_ci, clear_builder, docker, make_project, registry_tags


def test_images_and_cache_are_in_the_registry(pushed: Project) -> None:
    short = pushed.sha[:7]
    images = registry_tags(f"{pushed.namespace}/fixture/app-ci")
    cache = registry_tags(f"{pushed.namespace}/fixture/app-ci-cache")
    for stage in ("deps", "ci"):
        for python in ("3.11", "3.13"):
            # branch tag, commit tag, and on the default branch the bare tag
            assert {f"{stage}-py{python}-main", f"{stage}-py{python}-{short}", f"{stage}-py{python}"} <= images
            assert f"{stage}-py{python}-main" in cache


@pytest.mark.parametrize("python", ["3.11", "3.13"])
def test_each_ci_image_runs_its_tests_on_its_python(pushed: Project, python: str) -> None:
    image = f"{pushed.registry}/fixture/app-ci:ci-py{python}-main"
    run = docker("run", "--rm", image, check=False)
    assert run.returncode == 0, run.stderr
    assert "Ran 2 tests" in run.stderr
    assert run.stderr.rstrip().endswith("OK")
    version = docker("run", "--rm", image, "python", "-c", "import sys; print(sys.version_info[:2])")
    assert version.stdout.strip() == str(tuple(int(p) for p in python.split(".")))


def test_rebuild_on_a_fresh_runner_imports_registry_cache(pushed: Project, second_engine: str, tmp_path: Path) -> None:
    """Another machine (the second engine, emptied): no build cache, no local images, no
    state folder (the pushed project's records stay the first engine's); every step comes
    from the registry."""
    clear_builder(second_engine)
    env = {**pushed.env, "DOCKER_HOST": second_engine, "BAKE_CI_STATE_DIR": str(tmp_path / "state")}
    # --no-reuse: the registry has images for these inputs; this is about its build cache
    result = bake_ci("build", "--push", "--no-reuse", "--log-format", "json", cwd=pushed.path, env=env)
    assert result.code == 0, result.err
    results = {event["target"]: event for event in result.events("result")}
    assert sorted(results) == sorted(TARGETS)
    for target, event in results.items():
        assert event["status"] == "built"
        assert isinstance(event["steps"], int), target
        assert event["steps"] >= 3, target
        assert event["cached"] == event["steps"], f"{target}: {event['cached']}/{event['steps']} steps cached"
    for line in result.out.splitlines()[1:]:
        cached = line.split()[3]
        steps = cached.split("/")
        assert steps[0] == steps[1], line


def test_plan_is_accepted_by_buildx_print(pushed: Project, tmp_path: Path) -> None:
    result = bake_ci("plan", "--push", cwd=pushed.path, env=pushed.env)
    assert result.code == 0, result.err
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(result.out)
    proc = docker("buildx", "bake", "-f", str(plan_file), "--print")
    resolved = json.loads(proc.stdout)
    assert sorted(resolved["target"]) == sorted(TARGETS)
    planned = json.loads(result.out)
    for name, target in resolved["target"].items():
        assert target["tags"] == planned["target"][name]["tags"]
        assert target["args"]["PYTHON_VERSION"] in ("3.11", "3.13")


def test_local_build_without_registry_loads_images_and_keeps_cache_outside_the_context(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    state = tmp_path / "state"
    env = {"BAKE_CI_STATE_DIR": str(state)}
    before = sorted(p.relative_to(project.path) for p in project.path.rglob("*") if ".git" not in p.parts)
    result = bake_ci("build", "ci-py311", "--progress", "quiet", cwd=project.path, env=env)
    assert result.code == 0, result.err
    inspect = docker("image", "inspect", "fixture/app-ci:ci-py3.11-main", "--format", "{{json .Config.Labels}}")
    assert json.loads(inspect.stdout)["dev.bake-ci.target"] == "ci-py311"
    assert (state / "cache" / "ci-py311" / "index.json").is_file()
    after = sorted(p.relative_to(project.path) for p in project.path.rglob("*") if ".git" not in p.parts)
    assert after == before, "bake-ci wrote into the build context"
    docker(
        "image",
        "rm",
        "fixture/app-ci:ci-py3.11-main",
        f"fixture/app-ci:ci-py3.11-{project.sha[:7]}",
        "fixture/app-ci:ci-py3.11",
    )


def test_targets_inherit_the_projects_bake_file(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    (project.path / "docker-bake.hcl").write_text(
        'target "bake-ci" {\n  labels = { "org.example.team" = "platform" }\n}\n'
    )
    result = bake_ci("build", "deps-py313", "--push", "--progress", "quiet", cwd=project.path, env=project.env)
    assert result.code == 0, result.err
    image = f"{project.registry}/fixture/app-ci:deps-py3.13-main"
    labels = json.loads(
        docker("buildx", "imagetools", "inspect", image, "--format", "{{json .Image.Config.Labels}}").stdout
    )
    assert labels["org.example.team"] == "platform"
    assert labels["dev.bake-ci.target"] == "deps-py313"


def test_unreachable_engine_is_an_environment_problem(project: Project) -> None:
    env = {**project.env, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    result = bake_ci("build", cwd=project.path, env=env)
    assert result.code == 3
    assert "DOCKER_HOST=unix:///nonexistent/docker.sock" in result.err
    assert "Traceback" not in result.err


def test_missing_docker_cli_is_an_environment_problem(project: Project, tmp_path: Path) -> None:
    python_only = tmp_path / "bin"
    python_only.mkdir()
    (python_only / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    result = bake_ci("build", cwd=project.path, env={**project.env, "PATH": str(python_only)})
    assert result.code == 3
    assert "docker CLI is not on PATH" in result.err
    assert "Traceback" not in result.err
