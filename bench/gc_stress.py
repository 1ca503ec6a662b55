"""``bake-ci gc`` under load, on a registry of the bench's own: speed, races, ``kill -9``.

- ``speed``: a repository holding N tags (the 2x2 fixture pushed once, then N tags of gone
  branches, commits and fingerprints, four tags per distinct manifest), and the wall time
  of a dry run, for each N given (``--tags 1000,5000``), in the same run;
- ``races``: ``gc --apply`` while two CI builds push new commits on other branches and a
  third reuses on a new branch; then ``gc --apply`` killed with ``kill -9`` at random
  points (``--kills``). After each: every kept ref still names its manifest, with every
  manifest it reaches, and a rerun removes what is left.

    .venv/bin/python bench/gc_stress.py speed --tags 1000,5000
    .venv/bin/python bench/gc_stress.py races --kills 6
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from retention import ACCEPT, ROOT, OwnRegistry, registries  # bench/ is not a package: python puts it on sys.path

GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
IMAGE = "bench/app-ci"
#: commits unknown to git are aged by their build time (a few minutes make them old here); the copies
#: share one build time, so no "newest K" fingerprints: only those a kept tag uses stay
GC = ("gc", "--apply", "--grace", "0", "--commit-days", "0.0005", "--keep-fingerprints", "0")


class Project:
    def __init__(self, work: Path, reg: OwnRegistry, namespace: str) -> None:
        self.path = work / "project"
        shutil.copytree(ROOT / "bench" / "fixture", self.path)
        self.reg, self.namespace = reg, namespace
        self.state = work / "state"
        self.git("init", "-q", "-b", "main")
        self.git("add", "-A")
        self.git("commit", "-qm", "fixture")

    def git(self, *args: str, cwd: Path | None = None) -> str:
        return subprocess.run([*GIT, *args], cwd=cwd or self.path, capture_output=True, text=True, check=True).stdout

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CI", "GITHUB_", "BAKE_CI_"))}
        env.update(
            BAKE_CI_REGISTRY=f"{self.reg.address}/{self.namespace}",
            BAKE_CI_STATE_DIR=str(self.state),
            BAKE_CI_BASE_IMAGE="localhost:5000/library/python:{python}-slim",
        )
        return env

    def bake(self, *args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "bake", *args],
            cwd=cwd or self.path,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str, cwd: Path | None = None) -> tuple[int, str, str]:
        proc = self.bake(*args, cwd=cwd)
        out, err = proc.communicate()
        return proc.returncode, out, err

    def url(self, what: str) -> str:
        return f"http://{self.reg.address}/v2/{self.namespace}/{IMAGE}/{what}"

    def index(self, tag: str) -> tuple[str, bytes]:
        request = urllib.request.Request(self.url(f"manifests/{tag}"), headers={"Accept": ACCEPT})
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.headers["Content-Type"], resp.read()

    def put(self, tag: str, media: str, body: bytes) -> None:
        request = urllib.request.Request(self.url(f"manifests/{tag}"), data=body, method="PUT")
        request.add_header("Content-Type", media)
        urllib.request.urlopen(request, timeout=30).close()

    def gone_refs(self, count: int, per_manifest: int = 4) -> list[str]:
        """``count`` tags of gone branches, commits and fingerprints, ``per_manifest`` per copy of main's index
        (or main's index itself, for a third of them)."""
        media, body = self.index("ci-py3.11-main")
        tags: list[str] = []
        while len(tags) < count:
            data = json.loads(body)
            data.setdefault("annotations", {})["bench.copy"] = uuid.uuid4().hex
            # one group in three names main's own manifest: those tags are untagged, not deleted
            shared = len(tags) % 3 == 0
            copy = body if shared else json.dumps(data).encode()
            # a fingerprint tag of a kept image is kept by design: none on main's own manifest
            for kind in ("branch", "commit", "branch2", "branch3" if shared else "fp")[:per_manifest]:
                hexa = uuid.uuid4().hex
                tag = {
                    "branch": f"ci-py3.11-gone-{hexa[:10]}",
                    "branch2": f"deps-py3.11-old-{hexa[:10]}",
                    "branch3": f"ci-py3.13-stale-{hexa[:10]}",
                    "commit": f"ci-py3.11-{hexa[:7]}",
                    "fp": f"ci-py3.11-fp-{hexa[:12]}",
                }[kind]
                self.put(tag, media, copy)
                tags.append(tag)
        return tags[:count]

    def digests(self, tags: list[str]) -> dict[str, str]:
        out = {}
        for tag in tags:
            request = urllib.request.Request(self.url(f"manifests/{tag}"), method="HEAD", headers={"Accept": ACCEPT})
            with urllib.request.urlopen(request, timeout=30) as resp:
                out[tag] = resp.headers["Docker-Content-Digest"]
        return out

    def intact(self, kept: dict[str, str]) -> None:
        """Every kept tag names the same manifest, and every manifest it reaches is there."""
        now = self.digests(list(kept))
        moved = {t for t in kept if now[t] != kept[t]}
        assert not moved, f"kept tags moved: {sorted(moved)}"
        for tag in kept:
            _, body = self.index(tag)
            for child in json.loads(body).get("manifests") or []:
                self.digests([child["digest"]])

    def tags(self) -> set[str]:
        return set(self.reg.tags(f"{self.namespace}/{IMAGE}")) | set(self.reg.tags(f"{self.namespace}/{IMAGE}-cache"))


def kept_tags(project: Project) -> dict[str, str]:
    tags = [t for t in project.reg.tags(f"{project.namespace}/{IMAGE}") if t.endswith(("-main", "py3.11", "py3.13"))]
    return project.digests(tags)


def speed(sizes: list[int]) -> None:
    print("| tags in the repository | dry run, wall time | refs judged |\n|---|---|---|")
    for size in sizes:
        with registries("gc-stress") as (reg,), tempfile.TemporaryDirectory() as work:
            project = Project(Path(work), reg, "speed")
            code, _, err = project.run("build", "--push", "--progress", "quiet")
            assert code == 0, err
            project.gone_refs(size - len(project.tags()))
            started = time.perf_counter()
            code, out, err = project.run("gc", "--grace", "0", "--json")
            took = time.perf_counter() - started
            assert code == 0, err
            print(f"| {len(project.tags()):,} | {took:.1f} s | {len(json.loads(out)['refs']):,} |", flush=True)


def races(kills: int) -> None:
    with registries("gc-stress") as (reg,), tempfile.TemporaryDirectory() as work:
        project = Project(Path(work), reg, "races")
        assert project.run("build", "--push", "--progress", "quiet")[0] == 0
        kept = kept_tags(project)
        # 1. gc --apply while two builds push new commits on other branches and a third reuses
        trees = []
        for name in ("ci-a", "ci-b", "ci-c"):
            tree = Path(work) / name
            project.git("worktree", "add", "-q", "-b", name, str(tree))
            if name != "ci-c":
                (tree / "stats.py").write_text((tree / "stats.py").read_text() + f"\n# {name}\n")
                project.git("commit", "-qam", name, cwd=tree)
            trees.append(tree)
        gone = project.gone_refs(120)
        builds = [project.bake("build", "--push", "--progress", "quiet", cwd=t) for t in trees]
        time.sleep(random.uniform(0.5, 2.0))
        code, out, err = project.run(*GC)
        results = [b.communicate() and b.returncode for b in builds]
        print(f"gc --apply during 3 builds: gc exit {code}, builds exit {results}; {out.strip().splitlines()[-1]}")
        assert code == 0, err
        assert results == [0, 0, 0], results
        project.intact(kept)
        live = {t for t in project.reg.tags(f"{project.namespace}/{IMAGE}") if t.endswith(("-ci-a", "-ci-b", "-ci-c"))}
        assert len(live) == 12, f"the builds' branch tags: {sorted(live)}"
        code, out, err = project.run(*GC)
        left = set(gone) & project.tags()
        print(f"  rerun: exit {code}; gone refs left: {len(left)}; {out.strip().splitlines()[-1]}")
        assert code == 0, err
        assert not left
        # 2. kill -9 at random points
        for n in range(1, kills + 1):
            gone = project.gone_refs(80)
            proc = project.bake(*GC)
            delay = random.uniform(0.3, 3.0)
            time.sleep(delay)
            alive = proc.poll() is None
            if alive:
                os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            left_after_kill = len(set(gone) & project.tags())
            project.intact(kept)
            code, out, err = project.run(*GC)
            left = set(gone) & project.tags()
            placeholders = "placeholder" in out
            print(
                f"kill -9 #{n} after {delay:.1f} s ({'killed' if alive else 'had finished'}): "
                f"{80 - left_after_kill}/80 gone refs removed before the kill; kept refs intact; "
                f"rerun exit {code}, {len(left)} left{', cleared a placeholder' if placeholders else ''}"
            )
            assert code == 0, err
            assert not left
            project.intact(kept)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["speed", "races"])
    parser.add_argument("--tags", default="1000,5000")
    parser.add_argument("--kills", type=int, default=6)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the registries on the way out
    if args.mode == "speed":
        speed([int(n) for n in args.tags.split(",")])
    else:
        races(args.kills)
    return 0


if __name__ == "__main__":
    sys.exit(main())
