"""bake-ci against itself: the claims of its own design, on the provisioned engine.

- concurrency: one ``bake-ci build`` of every Python version vs the sum of building each
  version alone (all cold: builder cache pruned, empty registry namespace);
- failure isolation: ``--keep-going`` (one bake call per target) vs one call, cold;
- registry cache: ``--no-reuse`` rebuild after pruning all build cache and removing the
  local images, vs the cold build of the same targets;
- build avoidance: a no-change build on a new branch (reuse path) vs a fully cached
  ``--no-reuse`` build of the same targets.

Repetitions alternate the order; every timed run starts once the machine is idle (see
``harness.Settler``); medians, ranges and within-run ratios are reported. Usage:

    .venv/bin/python bench/core.py [--reps 3] [--project bench/fixture] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness import (  # bench/ is not a package: python bench/core.py puts it on sys.path
    BASE_IMAGE,
    REGISTRY,
    ROOT,
    SecondEngine,
    Settler,
    bake_ci_command,
    clean_env,
    ratio,
    ratio_cell,
    seconds_cell,
    sh,
)


class Bench:
    def __init__(self, project: Path, engine: SecondEngine) -> None:
        self.project = project
        self.engine = engine
        self.settle = Settler()

    def bake_ci(self, namespace: str, *args: str) -> float:
        env = self.engine.env(clean_env(BAKE_CI_REGISTRY=f"{REGISTRY}/{namespace}", BAKE_CI_BASE_IMAGE=BASE_IMAGE))
        command = [*bake_ci_command(), "build", "--push", "--progress", "quiet", *args]
        self.settle()
        started = time.perf_counter()
        sh(*command, cwd=self.project, env=env)
        return time.perf_counter() - started

    def forget(self, namespace: str | None = None) -> None:
        """What another machine would not have: build cache and local images, on the second engine
        (ci/engine-up --second; the shared engine's builder is never pruned). Base images stay."""
        self.engine.forget()

    def cold(self, *args: str) -> tuple[float, str]:
        namespace = f"core-{uuid.uuid4().hex[:8]}"
        self.forget()
        return self.bake_ci(namespace, "--branch", "main", *args), namespace


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--project", type=Path, default=ROOT / "bench" / "fixture")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        project = Path(tmp) / "project"
        shutil.copytree(args.project, project, ignore=shutil.ignore_patterns(".bake-ci", ".git"))
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
        for step in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
            subprocess.run([*git, *step], cwd=project, check=True)
        cells = json.loads(sh(*bake_ci_command(), "matrix", cwd=project))["include"]
        pythons = list(dict.fromkeys(cell["python"] for cell in cells))
        engine = SecondEngine.start()
        stack.callback(engine.stop)
        bench = Bench(project, engine)

        alone: dict[str, list[float]] = {p: [] for p in pythons}
        together, keep_going, warm, cached, reused = [], [], [], [], []
        for rep in range(args.reps):
            order = ["together", "keep-going", *pythons]
            if rep % 2:
                order.reverse()
            for item in order:
                if item == "together":
                    seconds, namespace = bench.cold()
                    together.append(seconds)
                    bench.forget(namespace)
                    warm.append(bench.bake_ci(namespace, "--branch", "main", "--no-reuse"))
                    branch = f"feature/{uuid.uuid4().hex[:6]}"
                    runs = {
                        "cached": [namespace, "--branch", branch + "-c", "--no-reuse"],
                        "reused": [namespace, "--branch", branch + "-r"],
                    }
                    for name in ("cached", "reused") if rep % 2 == 0 else ("reused", "cached"):
                        (cached if name == "cached" else reused).append(bench.bake_ci(*runs[name]))
                elif item == "keep-going":
                    keep_going.append(bench.cold("--keep-going")[0])
                else:
                    alone[item].append(bench.cold("--python", item)[0])
            print(
                f"rep {rep + 1}: together {together[-1]:.1f}s, keep-going {keep_going[-1]:.1f}s, "
                + ", ".join(f"{p} alone {alone[p][-1]:.1f}s" for p in pythons)
                + f", warm {warm[-1]:.1f}s, cached {cached[-1]:.2f}s, reused {reused[-1]:.2f}s",
                file=sys.stderr,
            )

    sums = [sum(alone[p][i] for p in pythons) for i in range(args.reps)]
    rows = [
        "| measurement | median (min-max) | ratio | bound |",
        "|---|---|---|---|",
        *(f"| cold, Python {p} alone | {seconds_cell(alone[p])} | | |" for p in pythons),
        f"| cold, sum of the versions alone | {seconds_cell(sums)} | 1.00 | |",
        f"| cold, all versions in one bake-ci build | {seconds_cell(together)} | "
        f"{ratio_cell(ratio(together, sums))} of the sum | <= 0.75 |",
        f"| cold, --keep-going (one bake call per target) | {seconds_cell(keep_going)} | "
        f"{ratio_cell(ratio(keep_going, together))} of one call | <= 1.15 |",
        f"| warm from registry, --no-reuse (pruned, no local images) | {seconds_cell(warm)} | "
        f"{ratio_cell(ratio(warm, together))} of cold | <= 0.25 |",
        f"| no change, new branch, --no-reuse (fully cached build) | {seconds_cell(cached)} | 1.00 | |",
        f"| no change, new branch, reuse path | {seconds_cell(reused)} | "
        f"{ratio_cell(ratio(reused, cached))} of the cached build | <= 0.20 |",
    ]
    table = f"Project: {args.project.name}; {args.reps} repetitions.\n\n" + "\n".join(rows) + "\n"
    print(table)
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
