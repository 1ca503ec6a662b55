"""Execution that survives failures, on the real engine: keep-going, interrupts, warm, retries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Project, bake_ci, clear_builder, make_project, registry_tags

TARGETS = ["deps-py311", "deps-py313", "ci-py311", "ci-py313"]
FAILING_STEP = (
    "RUN python -c \"import sys; print('checking', sys.version); "
    "sys.exit('not supported on 3.13' if sys.version_info[:2] == (3, 13) else 0)\"\n"
)


def report(path: Path) -> dict[str, dict[str, object]]:
    return {t["target"]: t for t in json.loads(path.read_text())["targets"]}


@pytest.fixture
def failing(tmp_path: Path) -> Project:
    """The fixture project whose ci stage fails on Python 3.13 only, inside a RUN step."""
    project = make_project(tmp_path)
    with (project.path / "Dockerfile").open("a") as fh:
        fh.write(FAILING_STEP)
    return project


def test_fail_fast_by_default(failing: Project, tmp_path: Path) -> None:
    result = bake_ci("build", "--push", "--report", str(tmp_path / "r.json"), cwd=failing.path, env=failing.env)
    assert result.code == 1
    rows = report(tmp_path / "r.json")
    assert rows["ci-py313"]["status"] == "failed"
    assert "--keep-going" in result.err


def test_keep_going_builds_and_pushes_everything_else(failing: Project, tmp_path: Path) -> None:
    args = ["build", "--push", "--keep-going", "--progress", "plain", "--report", str(tmp_path / "r.json")]
    result = bake_ci(*args, cwd=failing.path, env=failing.env)
    assert result.code == 1
    rows = report(tmp_path / "r.json")
    not_built = {t: (r["status"], r["error"]) for t, r in rows.items() if r["status"] != "built"}
    assert list(not_built) == ["ci-py313"], not_built
    failed = rows["ci-py313"]
    assert str(failed["failed_step"]).startswith("[ci 2/2] RUN python -c")
    assert "not supported on 3.13" in failed["log_tail"]
    assert failed["attempts"] == 1  # a RUN failure is never retried
    images = registry_tags(f"{failing.namespace}/fixture/app-ci")
    assert {"deps-py3.11-main", "deps-py3.13-main", "ci-py3.11-main"} <= images
    assert "ci-py3.13-main" not in images
    # the failed target's full log is kept and printed
    log = Path(str(failed["log_file"]))
    assert "not supported on 3.13" in log.read_text()
    assert f"log of ci-py313 ({log})" in result.err


def _steps_shown(stderr: str, target: str) -> tuple[int, int]:
    lines = [line for line in stderr.splitlines() if line.startswith(f"[{target}] step ")]
    return sum(line.endswith(": CACHED") for line in lines), len(lines)


def test_cached_counts_follow_what_changed(project: Project, tmp_path: Path, second_engine: str) -> None:
    first = bake_ci("build", "--push", cwd=project.path, env=project.env)
    assert first.code == 0, first.err
    (project.path / "app.py").write_text((project.path / "app.py").read_text() + "\n# a source-only change\n")
    clear_builder(second_engine)  # a fresh runner: what it has comes from the registry
    args = ["build", "--push", "--no-reuse", "--progress", "plain", "--report", str(tmp_path / "r.json")]
    result = bake_ci(*args, cwd=project.path, env={**project.env, "DOCKER_HOST": second_engine})
    assert result.code == 0, result.err
    rows = report(tmp_path / "r.json")
    for target in ("deps-py311", "deps-py313"):
        assert rows[target]["cached"] == rows[target]["steps"], target
    for target in ("ci-py311", "ci-py313"):
        steps = rows[target]["steps"]
        assert isinstance(steps, int)
        assert rows[target]["cached"] == steps - 1, target  # only COPY . . was rebuilt
    for target, row in rows.items():
        # the plain progress shows each step's final state; the summary counts the same
        assert _steps_shown(result.err, target) == (row["cached"], row["steps"]), target


def _children_of(state: Path) -> list[str]:
    """buildx processes running a bake of the run folders under ``state``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(state) in cmdline and "buildx" in cmdline:
            found.append(cmdline)
    return found


def test_interrupt_stops_every_child_and_exits_130(project: Project) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAKE_CI_", "CI", "GITHUB_"))}
    env.update(project.env)
    args = ["build", "--push", "--keep-going", "--no-cache", "--progress", "plain"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bake", *args],
        cwd=project.path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C reaches bake-ci as on a terminal, even when this suite runs as a script's
        # background job (which inherits SIGINT ignored, and passes that on to its children)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "RUN python3 -m venv" in line:  # the builds are under way
            break
    state = Path(project.env["BAKE_CI_STATE_DIR"])
    assert _children_of(state), "no buildx child was running"
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert "interrupted" in rest
    assert _children_of(state) == []


def test_warm_fills_the_default_branch_cache_that_new_branches_reuse(
    project: Project, tmp_path: Path, second_engine: str
) -> None:
    result = bake_ci("warm", "--progress", "quiet", cwd=project.path, env=project.env)
    assert result.code == 0, result.err
    cache = registry_tags(f"{project.namespace}/fixture/app-ci-cache")
    assert {f"{t.split('-py')[0]}-py3.{t[-2:]}-main" for t in TARGETS} <= cache

    clear_builder(second_engine)  # a fresh runner on a new branch
    args = ["build", "--push", "--no-reuse", "--branch", "feature/new", "--report", str(tmp_path / "r.json")]
    result = bake_ci(*args, cwd=project.path, env={**project.env, "DOCKER_HOST": second_engine})
    assert result.code == 0, result.err
    for target, row in report(tmp_path / "r.json").items():
        assert row["cached"] == row["steps"], target
    cache = registry_tags(f"{project.namespace}/fixture/app-ci-cache")
    assert {f"{t.split('-py')[0]}-py3.{t[-2:]}-feature-new" for t in TARGETS} <= cache


def test_unreachable_registry_is_retried_then_reported(project: Project, tmp_path: Path) -> None:
    env = {
        **project.env,
        "BAKE_CI_REGISTRY": "localhost:5999/nowhere",  # nothing listens there
        "BAKE_CI_RETRY_BUDGET": "3",  # each retried request gives up after 3 s, not a minute
    }
    args = ["build", "ci-py311", "--push", "--retries", "1", "--report", str(tmp_path / "r.json")]
    result = bake_ci(*args, cwd=project.path, env=env)
    assert result.code == 1
    row = report(tmp_path / "r.json")["ci-py311"]
    assert row["status"] == "failed"
    assert row["attempts"] == 2
    assert "localhost:5999" in result.err
    assert "registry or the network" in result.err


def test_cache_only_exports_cache_and_pushes_no_image(project: Project) -> None:
    result = bake_ci("build", "deps-py311", "--cache-only", cwd=project.path, env=project.env)
    assert result.code == 0, result.err
    assert "deps-py3.11-main" in registry_tags(f"{project.namespace}/fixture/app-ci-cache")
    assert registry_tags(f"{project.namespace}/fixture/app-ci") == set()
