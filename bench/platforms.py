"""Multi-platform images: what emulation costs, and what merge and reuse cost.

On the 2 stages x 2 Pythons fixture of the platform tests (tests/engine/fixture-platforms,
one small RUN step per target, no pip install), all in one run on the second engine
(ci/engine-up --second, builder pruned before each cold build):

- cold build of linux/amd64 (native) against linux/arm64 (QEMU emulation), each alone
  with ``build --platform``, in the same registry namespace;
- ``merge`` of the 4 targets (the first one writes the indexes, the next ones find them
  there), against ``bake-ci matrix`` (the CLI's start-up) as baseline;
- a no-change ``build --push`` on a new branch, reusing 2-platform indexes, against the
  same for the single-platform project (same fixture without ``platforms``);
- one CPU-bound Python step run natively and under emulation (``docker run``).

Usage: .venv/bin/python bench/platforms.py [--reps 5]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness import REGISTRY, SecondEngine, Settler, bake_ci_command, clean_env, ratio, say, seconds_cell, sh

LOOP = "sum(i * i for i in range(2_000_000))"
FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "engine" / "fixture-platforms"


def project(where: Path, platforms: bool) -> Path:
    path = where / ("multi" if platforms else "single")
    shutil.copytree(FIXTURE, path)
    if not platforms:
        config = path / "pyproject.toml"
        config.write_text(
            "\n".join(line for line in config.read_text().splitlines() if not line.startswith("platforms =")) + "\n"
        )
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "fixture"], cwd=path, check=True)
    return path


def timed(path: Path, env: dict[str, str], settle: Settler, *args: str) -> float:
    settle()
    started = time.perf_counter()
    sh(*bake_ci_command(), *args, cwd=path, env=env)
    return time.perf_counter() - started


def fmt(values: list[float]) -> str:
    return f"{seconds_cell(values, digits=3)}, n={len(values)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    reps = parser.parse_args().reps
    settle = Settler(timeout=10.0)
    with tempfile.TemporaryDirectory(prefix="bake-ci-bench-platforms-") as tmp, SecondEngine.start() as engine:
        where = Path(tmp)
        multi, single = project(where, True), project(where, False)
        namespace = f"bench-platforms-{uuid.uuid4().hex[:8]}"
        env = engine.env(clean_env(BAKE_CI_REGISTRY=f"{REGISTRY}/{namespace}", BAKE_CI_STATE_DIR=str(where / "state")))
        quiet = ("--progress", "quiet")

        cold = {}
        for platform in ("linux/amd64", "linux/arm64"):
            engine.forget()
            cold[platform] = timed(multi, env, settle, "build", "--push", "--platform", platform, *quiet)
            say(f"cold build --platform {platform}: {cold[platform]:.1f} s")

        merges = [timed(multi, env, settle, "merge") for _ in range(reps)]
        starts = [timed(multi, env, settle, "matrix") for _ in range(reps)]

        engine.forget()
        single_env = {**env, "BAKE_CI_REGISTRY": f"{REGISTRY}/{namespace}-single"}
        timed(single, single_env, settle, "build", "--push", *quiet)
        reuse_multi, reuse_single = [], []
        for i in range(reps):
            branch = ("--branch", f"reuse-{i}")
            reuse_multi.append(timed(multi, env, settle, "build", "--push", *branch, *quiet))
            reuse_single.append(timed(single, single_env, settle, "build", "--push", *branch, *quiet))

        # what emulation costs a RUN step that computes (the fixture's only starts Python)
        cpu = {}
        for platform in ("linux/amd64", "linux/arm64"):
            base = f"{REGISTRY}/library/python:3.11-slim"
            sh("docker", "pull", "-q", "--platform", platform, base, env=engine.env(clean_env()))
            settle()
            started = time.perf_counter()
            sh(
                "docker",
                "run",
                "--rm",
                "--platform",
                platform,
                base,
                "python3",
                "-c",
                LOOP,
                env=engine.env(clean_env()),
            )
            cpu[platform] = time.perf_counter() - started

    arm, amd = cold["linux/arm64"], cold["linux/amd64"]
    print("| what | time | ratio |")
    print("|---|---|---|")
    print(f"| cold build, 4 targets, linux/amd64 (native) | {amd:.1f} s | 1.00x |")
    print(f"| cold build, 4 targets, linux/arm64 (emulated) | {arm:.1f} s | {arm / amd:.2f}x |")
    print(f"| `bake-ci matrix` (start-up baseline) | {fmt(starts)} | 1.00x |")
    print(f"| `bake-ci merge`, 4 targets x 2 platforms | {fmt(merges)} | {ratio(merges, starts) or 0:.2f}x |")
    print(f"| reuse, single-platform, 4 targets | {fmt(reuse_single)} | 1.00x |")
    multi = ratio(reuse_multi, reuse_single) or 0
    print(f"| reuse, 2-platform indexes, 4 targets | {fmt(reuse_multi)} | {multi:.2f}x |")
    print(f"| one CPU-bound step (`python3 -c` loop), linux/amd64 | {cpu['linux/amd64']:.2f} s | 1.00x |")
    slower = cpu["linux/arm64"] / cpu["linux/amd64"]
    print(f"| the same step, linux/arm64 under emulation | {cpu['linux/arm64']:.2f} s | {slower:.2f}x |")
    if settle.gave_up:
        print(f"\n(the machine was busy before {settle.gave_up} of {len(settle.waits)} timed runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
