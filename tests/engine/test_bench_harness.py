"""The benchmark harnesses on the real engine: the raw bake files match bake-ci's plans, the
smoke run works end to end and its bound holds, and the second engine is left empty.

Not timing tests: the smoke run is one repetition of the hot scenario (bake-ci and raw bake);
its bound (hot reuse at most 1.05x raw bake, measured at about 0.5x) is the bench's own check,
and the test fails when the bench says FAIL.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.helpers import BENCH, load_bench

ROOT = BENCH.parent

harness = load_bench("harness", "harness.py")
bench_run = load_bench("bench_run", "run.py")
definitions = load_bench("bench_definitions", "definitions.py")


def test_raw_bake_file_matches_what_bake_ci_plans(tmp_path: Path) -> None:
    """The contenders are equivalent: same targets, args, cache-from/to, outputs, branch tag."""
    project = bench_run.Project.create(tmp_path / "p", "bench-test")
    for branch in ("main", "feature-1"):
        if branch != "main":
            project.new_branch()
        cmds, env = bench_run.commands("raw-bake", project, tmp_path / "r.json")
        raw = subprocess.run([*cmds[0], "--print"], cwd=project.path, env=env, capture_output=True, text=True)
        assert raw.returncode == 0, raw.stderr
        raw_targets = json.loads(raw.stdout)["target"]
        env = harness.clean_env(BAKE_CI_REGISTRY=project.registry, BAKE_CI_BASE_IMAGE=harness.BASE_IMAGE)
        plan = subprocess.run(
            [*harness.bake_ci_command(), "plan", "--push", "--no-reuse"],
            cwd=project.path, env=env, capture_output=True, text=True,
        )  # fmt: skip
        assert plan.returncode == 0, plan.stderr
        planned = json.loads(plan.stdout)["target"]
        assert sorted(raw_targets) == sorted(planned)
        for name, target in planned.items():
            mine = raw_targets[name]
            for key in ("target", "args", "cache-from", "cache-to"):
                assert mine[key] == target[key], (branch, name, key)
            # buildx pushes the branch tag; bake-ci adds the others through the registry API
            assert target["tags"] == mine["tags"][:1], (branch, name)
            assert mine["output"] == ["type=registry"] == target["output"]


def test_smoke_run_writes_the_results_table(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("no git")
    out = tmp_path / "results.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--smoke", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    assert text.startswith("Measured ")
    assert "; bake-ci at commit " in text.splitlines()[0]
    assert "| scenario | n | bake-ci | bake-ci ÷ raw bake | raw bake | bake-ci did |" in text
    hot = next(line for line in text.splitlines() if line.startswith("| 3. hot"))
    cells = [c.strip() for c in hot.strip("|").split("|")]
    assert cells[1] == "1"
    assert cells[2].endswith(" s")
    assert cells[4].endswith(" s")
    assert cells[3].endswith("×")
    assert "- PASS: hot: bake-ci" in text, text  # the bench's own bound, not only its format


def test_large_raw_bake_file_builds_the_plans_targets_with_one_tag_and_one_cache_ref(tmp_path: Path) -> None:
    if (
        shutil.which("docker") is None
        or subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode
    ):
        pytest.skip("no docker buildx")
    project = definitions.Project.create(BENCH / "fixture-large", tmp_path / "p")
    env = {**os.environ, "REGISTRY": "localhost:5000/ns", "BRANCH": "feature"}
    raw = subprocess.run(
        ["docker", "buildx", "bake", "-f", str(BENCH / "raw" / "docker-bake-large.hcl"), "--print"],
        cwd=project.path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert raw.returncode == 0, raw.stderr
    targets = json.loads(raw.stdout)["target"]
    planned = definitions.variant(json.loads(subprocess.run(
        [*harness.bake_ci_command(), "plan", "--push", "--no-reuse", "--branch", "feature"],
        cwd=project.path, capture_output=True, text=True, check=True,
        env=harness.clean_env(BAKE_CI_REGISTRY="localhost:5000/ns", BAKE_CI_BASE_IMAGE=harness.BASE_IMAGE),
    ).stdout), project.sha, "raw")["target"]  # fmt: skip
    assert len(targets) == 16
    assert sorted(targets) == sorted(planned)
    for name, target in planned.items():
        assert targets[name]["tags"] == target["tags"]
        assert targets[name]["cache-from"] == target["cache-from"]
        assert targets[name]["cache-to"] == target["cache-to"]
        assert targets[name]["args"] == target["args"]


def test_the_benchs_second_engine_is_left_empty_and_running_when_it_was_up(second_engine: str) -> None:
    """The bench prunes only the second engine (ci/engine-up --second), and leaves it empty."""
    engine = harness.SecondEngine.start()
    assert engine.host == second_engine
    assert not engine.started, "the second engine was up: the bench must not stop it"
    env = engine.env()
    built = subprocess.run(
        ["docker", "buildx", "build", "--load", "-t", "bench-test/empty:1", "-"],
        input="FROM scratch\nLABEL bench=test\n", env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert "bench-test/empty:1" in engine.images()
    with engine:
        info = subprocess.run(["docker", "info", "--format", "{{.Name}}"], env=env, capture_output=True, text=True)
        assert info.returncode == 0, info.stderr
    assert not [ref for ref in engine.images() if not ref.startswith(harness.KEEP_PREFIXES)]
    cache = subprocess.run(["docker", "buildx", "du"], env=env, capture_output=True, text=True, check=True).stdout
    assert cache.split()[-2:] == ["Total:", "0B"], cache  # its build cache is pruned
    assert harness.SecondEngine.answers(), "a second engine the bench did not start was stopped"
