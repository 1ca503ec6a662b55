"""Measure the core claims of bake-ci on the provisioned engine (ci/engine-up).

- concurrency: one ``bake-ci build`` of every Python version vs the sum of building
  each version alone (all cold: builder cache pruned, empty registry namespace);
- failure isolation: ``--keep-going`` (one bake call per target) vs one call, cold;
- registry cache: a rebuild after pruning all build cache and removing local images,
  vs the cold build of the same targets;
- planning: ``bake-ci plan`` for 6 stages x 5 Python versions, whole process.

Repetitions alternate the order of the contenders; medians and ranges are reported,
and ratios are taken within the same run. Usage:

    .venv/bin/python bench/core.py [--reps 3] [--project .] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REGISTRY = "localhost:5000"
BASE_IMAGE = f"{REGISTRY}/library/python:{{python}}-slim"
ROOT = Path(__file__).resolve().parent.parent


def sh(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def bake_ci(project: Path, namespace: str, *args: str) -> float:
    env = {**os.environ, "BAKE_CI_REGISTRY": f"{REGISTRY}/{namespace}", "BAKE_CI_BASE_IMAGE": BASE_IMAGE}
    env.pop("CI", None)
    started = time.perf_counter()
    build = ["build", "--push", "--progress", "quiet", "--branch", "main", *args]
    sh(sys.executable, "-m", "bake", *build, cwd=project, env=env)
    return time.perf_counter() - started


def forget_local_state(namespace: str | None = None) -> None:
    """What another machine would not have: build cache, and the namespace's local images."""
    sh("docker", "buildx", "prune", "-af")
    if namespace:
        refs = sh("docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}").split()
        ours = [r for r in refs if r.startswith(f"{REGISTRY}/{namespace}/")]
        if ours:
            sh("docker", "image", "rm", *ours)


def cold(project: Path, *args: str) -> tuple[float, str]:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    forget_local_state()
    return bake_ci(project, namespace, *args), namespace


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def plan_project(directory: Path, stages: int, pythons: int) -> Path:
    lines = ["ARG BASE_IMAGE", "FROM ${BASE_IMAGE} AS s0"]
    lines += [f"FROM s{i - 1} AS s{i}\nRUN echo {i}" for i in range(1, stages)]
    (directory / "Dockerfile").write_text("\n".join(lines) + "\n")
    versions = ", ".join(f'"3.{9 + i}"' for i in range(pythons))
    names = ", ".join(f'"s{i}"' for i in range(stages))
    (directory / "pyproject.toml").write_text(
        f'[tool.bake-ci]\nimage = "acme/app-ci"\nregistry = "ghcr.io/acme"\npython = [{versions}]\nstages = [{names}]\n'
    )
    return directory


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--project", type=Path, default=ROOT, help="a project with [tool.bake-ci] and two Pythons")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args()
    project = args.project.resolve()
    cells = json.loads(sh(sys.executable, "-m", "bake", "matrix", cwd=project))["include"]
    pythons = list(dict.fromkeys(cell["python"] for cell in cells))

    alone: dict[str, list[float]] = {p: [] for p in pythons}
    together: list[float] = []
    keep_going: list[float] = []
    warm: list[float] = []
    for rep in range(args.reps):
        order = ["together", "keep-going", *pythons]
        if rep % 2:
            order.reverse()
        for item in order:
            if item == "together":
                seconds, namespace = cold(project)
                together.append(seconds)
                forget_local_state(namespace)
                warm.append(bake_ci(project, namespace))
            elif item == "keep-going":
                keep_going.append(cold(project, "--keep-going")[0])
            else:
                alone[item].append(cold(project, "--python", item)[0])
        print(
            f"rep {rep + 1}: together {together[-1]:.1f}s, keep-going {keep_going[-1]:.1f}s, "
            + ", ".join(f"{p} alone {alone[p][-1]:.1f}s" for p in pythons)
            + f", warm from registry {warm[-1]:.1f}s",
            file=sys.stderr,
        )

    with tempfile.TemporaryDirectory() as tmp:
        big = plan_project(Path(tmp), 6, 5)
        plan = [sys.executable, "-m", "bake", "plan", "--branch", "main"]
        plan_times = [timed(lambda: sh(*plan, cwd=big)) for _ in range(10)]

    sums = [sum(alone[p][i] for p in pythons) for i in range(args.reps)]
    ratio_conc = statistics.median(together) / statistics.median(sums)
    ratio_warm = statistics.median(warm) / statistics.median(together)
    ratio_keep = statistics.median(keep_going) / statistics.median(together)
    rows = [
        "| measurement | median (min-max) | ratio |",
        "|---|---|---|",
        *(f"| cold, Python {p} alone | {fmt(alone[p])} | |" for p in pythons),
        f"| cold, sum of the versions alone | {fmt(sums)} | 1.00 |",
        f"| cold, all versions in one bake-ci build | {fmt(together)} | {ratio_conc:.2f} of the sum |",
        f"| cold, all versions, --keep-going (one bake call per target) | {fmt(keep_going)} | "
        f"{ratio_keep:.2f} of one call |",
        f"| warm from registry (after prune, no local images) | {fmt(warm)} | {ratio_warm:.2f} of cold |",
        f"| bake-ci plan, 6 stages x 5 Pythons (process) | {fmt(plan_times)} | |",
    ]
    table = "\n".join(rows) + "\n"
    print(table)
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
