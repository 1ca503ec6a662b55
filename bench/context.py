"""The reuse path on a large build context: ``bake-ci plan --push`` and ``bake-ci status``
against ``sha256sum`` over the same files, in the same run.

A project of ``--files`` files of 4 KiB (default 20,000: 80 MB) under one ``COPY . /app``
stage (``.git`` in its ``.dockerignore``), in a git checkout, is built and pushed once to the provisioned engine and
registry; then, with nothing modified, every contender runs ``--reps`` times in a
shuffled order, each run once the machine is idle (``run.Settler``). Reported: the
median and quartiles of each, and its ratio to sha256sum's median in the same run.

- ``sha256sum``: every file of the context (``.git`` aside), warm page cache;
- ``plan --push`` and ``status``: nothing changed since the last run;
- the same on one CPU (``taskset -c 0``);
- ``plan --push``, first run: no memo of earlier runs, git's index stands in;
- ``plan --push`` in a fresh ``git clone`` of the checkout, with a state folder of its own:
  what every CI job sees (the clone is made before the clock starts);
- without git (``.git`` moved out of the checkout): ``plan --push``, ``status``, and a
  first run, which reads every file.

``--baseline BAKE_CI`` adds the same contenders run by another bake-ci (a console script,
e.g. ``.venv/bin/bake-ci`` of another checkout, installed there by ``ci/venv``),
marked ``(baseline)``: before and after a change, in the same run.

Usage:

    .venv/bin/python bench/context.py [--files 20000] [--reps 15] [--baseline BAKE_CI]
                                      [--settle-timeout 30] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import (  # bench/ is not a package: python bench/context.py puts it on sys.path
    BASE_IMAGE,
    REGISTRY,
    BenchError,
    Settler,
    bake_ci_command,
    clean_env,
    median,
    ratio,
    ratio_cell,
    say,
    sh,
)

FILE_SIZE = 4096
PER_DIRECTORY = 200


def make_project(root: Path, files: int, namespace: str) -> None:
    """``files`` files of random bytes under src/, one stage that copies everything, committed."""
    generator = random.Random(1)
    for i in range(files):
        directory = root / "src" / f"d{i // PER_DIRECTORY:03d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{i:05d}.py").write_bytes(generator.randbytes(FILE_SIZE))
    (root / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS ci\nCOPY . /app\n")
    (root / ".dockerignore").write_text(".git\n")  # as most projects: git's own files are not the image's
    (root / "pyproject.toml").write_text(
        f'[tool.bake-ci]\nimage = "bench/context"\npython = ["3.11"]\nstages = ["ci"]\n'
        f'registry = "{REGISTRY}/{namespace}"\n'
    )
    sh("git", "init", "-q", "-b", "main", cwd=root)
    sh("git", "add", "-A", cwd=root)
    # packed now, as in a clone: an automatic gc would pack them in the background while runs are timed
    sh("git", "config", "gc.auto", "0", cwd=root)
    sh("git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "fixture", cwd=root)
    sh("git", "gc", "--quiet", cwd=root)


def median_row(name: str, values: Sequence[float], base: Sequence[float]) -> str:
    """One row of the table: the median, the quartiles and the ratio to ``base``'s median."""
    ordered = sorted(values)
    quartiles = f"{ordered[len(ordered) // 4]:.3f}–{ordered[(3 * len(ordered)) // 4]:.3f}"
    return f"| {name} | {median(values) or 0:.3f} s | {quartiles} s | {ratio_cell(ratio(values, base))} |"


def table(groups: Sequence[tuple[str, dict[str, list[float]]]]) -> str:
    """A Markdown table, each group's rows against its own ``sha256sum``."""
    lines = ["| contender | median | quartiles | × sha256sum (same group) |", "|---|---|---|---|"]
    for title, times in groups:
        lines.append(f"| **{title}** | | | |")
        lines += [median_row(name, values, times["sha256sum"]) for name, values in times.items()]
    return "\n".join(lines) + "\n"


#: What is timed, or (what is done first, untimed; what is timed).
Contender = Callable[[], None] | tuple[Callable[[], None], Callable[[], None]]


def measure(contenders: dict[str, Contender], reps: int, settle: Settler) -> dict[str, list[float]]:
    """Each contender ``reps`` times, in a shuffled order each round, after the machine settles."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    shuffle = random.Random(2)
    for _ in range(reps):
        order = list(contenders)
        shuffle.shuffle(order)
        for name in order:
            contender = contenders[name]
            prepare, timed = contender if isinstance(contender, tuple) else (None, contender)
            if prepare is not None:
                prepare()
            settle()
            started = time.perf_counter()
            timed()
            times[name].append(time.perf_counter() - started)
    return times


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--baseline", help="another bake-ci console script to run the same contenders with")
    parser.add_argument("--settle-timeout", type=float, default=30.0, help="give up waiting for an idle machine (s)")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)

    namespace = f"bench-context-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="bake-ci-bench-context-") as tmp:
        root, state = Path(tmp) / "project", Path(tmp) / "state"
        root.mkdir()
        say(f"{args.files} files of {FILE_SIZE} bytes in {root}")
        make_project(root, args.files, namespace)
        env = clean_env(BAKE_CI_BASE_IMAGE=BASE_IMAGE, BAKE_CI_STATE_DIR=str(state))
        bake_ci = bake_ci_command()
        sh(*bake_ci, "build", "--push", "--progress", "quiet", cwd=root, env=env)
        files = [str(p.relative_to(root)) for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.parts]
        # the same files as the context BuildKit gets (.dockerignore: .git)

        def quiet(command: Sequence[str]) -> None:
            """Run ``command`` with its output thrown away (sha256sum's would cost its reader)."""
            done = subprocess.run(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if done.returncode != 0:
                raise BenchError(f"{command} failed ({done.returncode}):\n{done.stderr[-3000:]!r}")

        def run(*command: str) -> Callable[[], None]:
            return lambda: quiet(command)

        def first(*command: str) -> Callable[[], None]:
            def go() -> None:
                (state / "blobs").unlink(missing_ok=True)  # timed too: it is part of a first run
                quiet(command)

            return go

        clone = Path(tmp) / "clone"

        def fresh_clone(*command: str) -> Contender:
            """``command`` in a new clone with an empty state folder; the clone is not timed."""
            clone_env = {**env, "BAKE_CI_STATE_DIR": str(Path(tmp) / "clone-state")}

            def prepare() -> None:
                shutil.rmtree(clone, ignore_errors=True)
                shutil.rmtree(clone_env["BAKE_CI_STATE_DIR"], ignore_errors=True)
                sh("git", "clone", "-q", str(root), str(clone))

            def go() -> None:
                done = subprocess.run(command, cwd=clone, env=clone_env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)  # fmt: skip
                if done.returncode != 0:
                    raise BenchError(f"{command} failed ({done.returncode}):\n{done.stderr[-3000:]!r}")

            return prepare, go

        sha256sum = run("sha256sum", *files)
        one_cpu = ["taskset", "-c", "0"] if shutil.which("taskset") else []
        runners = [("", bake_ci)] + ([(" (baseline)", [args.baseline])] if args.baseline else [])
        with_git: dict[str, Contender] = {"sha256sum": sha256sum}
        for mark, command in runners:
            with_git[f"plan --push{mark}"] = run(*command, "plan", "--push")
            with_git[f"status{mark}"] = run(*command, "status")
            with_git[f"plan --push, first run (git's index){mark}"] = first(*command, "plan", "--push")
            with_git[f"plan --push, fresh git clone{mark}"] = fresh_clone(*command, "plan", "--push")
            if one_cpu:
                with_git[f"plan --push, one CPU{mark}"] = run(*one_cpu, *command, "plan", "--push")
                with_git[f"status, one CPU{mark}"] = run(*one_cpu, *command, "status")
        sha256sum()  # the page cache holds every file
        settle = Settler(timeout=args.settle_timeout)
        say(f"with git: {len(with_git)} contenders × {args.reps}")
        groups = [("in a git checkout, nothing modified", measure(with_git, args.reps, settle))]

        aside = Path(tmp) / "git-aside"
        (root / ".git").rename(aside)
        try:
            without_git: dict[str, Contender] = {"sha256sum": sha256sum}
            for mark, command in runners:
                without_git[f"plan --push{mark}"] = run(*command, "plan", "--push")
                without_git[f"status{mark}"] = run(*command, "status")
                without_git[f"plan --push, first run (every file read){mark}"] = first(*command, "plan", "--push")
            say(f"without git: {len(without_git)} contenders × {args.reps}")
            groups.append(("without git", measure(without_git, args.reps, settle)))
        finally:
            aside.rename(root / ".git")

    text = (
        f"{args.files} files of {FILE_SIZE} bytes, {os.cpu_count()} CPUs, {args.reps} runs each "
        f"(`python bench/context.py {' '.join(sys.argv[1:] if argv is None else argv)}`):\n\n" + table(groups)
    )
    sys.stdout.write(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
