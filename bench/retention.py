"""Registry retention over simulated days of CI: bytes on disk and refs, with gc and without.

Two registries of the bench's own (loopback ports, storage in a temp folder) receive the
same pushes of the 2x2 fixture (bench/fixture). Each simulated day:

- two feature branches push two commits each (a change of stats.py: the ci stage builds,
  deps is reused);
- one of them merges into main (main builds) and is deleted;
- a pull request from a fork builds (cache only, ``pr-N``);
- the nightly ``bake-ci warm`` runs; then, on the first registry only, ``bake-ci gc --apply``
  (7-day retention, no grace: nothing runs concurrently here) and the registry's garbage
  collector (``ci/engine-up --gc`` on that registry).

Commits are dated on the simulated clock and gc judges at the simulated time. After each
gc the bench checks (``--verify``): every kept tag and the manifests it reaches are in the
registry; a ``--no-reuse --load`` build of main on the second engine, its builder pruned,
takes every step from cache; a new branch with no change reuses every target. At the end,
day N's kept refs are copied alone into an empty registry: the live set.

    .venv/bin/python bench/retention.py [--days 30] [--fast] [--verify] [--minutes M] [--out FILE]

``--fast``: one commit per feature branch and warm every 7th day (a cheaper day).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

# bench/ is not a package: python bench/retention.py puts it on sys.path
from harness import ROOT, SecondEngine, remove_engine_images

from bake import ci, config_load
from bake import gc as bake_gc
from bake.args import Args
from bake.engine import process

DAY = 86400
SECOND_ENGINE = SecondEngine.host
#: what a build says when the shared engine was restarted under it (the run waits, then tries again)
ENGINE_GONE = ("Cannot connect to the Docker daemon", "does not answer at the default socket")
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def wait_for_engine(timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
            return
        time.sleep(10)


def free_port() -> int:
    """A free loopback port in 5001-5099, the range kept for registries of one's own."""
    import random
    import socket

    for port in random.sample(range(5001, 5100), 99):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port in 5001-5099 for the bench's registries")


class OwnRegistry:
    """``docker-registry serve`` on a loopback port, with a pid file ``ci/engine-up --gc`` can use."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.dir = root / name
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.conf = self.dir / "config.yml"
        self.pid = self.dir / "registry.pid"
        self.data = self.dir / "data"
        self.data.mkdir()
        self.conf.write_text(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.data}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n",
            encoding="utf-8",
        )
        log = (self.dir / "serve.log").open("ab")
        proc = subprocess.Popen(
            ["docker-registry", "serve", str(self.conf)], stdout=log, stderr=log, start_new_session=True
        )
        self.pid.write_text(str(proc.pid))
        for _ in range(100):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://{self.address}/v2/", timeout=2).close()
                return
            time.sleep(0.1)
        raise RuntimeError(f"registry {name} did not start")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.data.rglob("*") if p.is_file())

    def get(self, path: str, accept: str = ACCEPT) -> tuple[dict[str, str], bytes]:
        request = urllib.request.Request(f"http://{self.address}/v2/{path}", headers={"Accept": accept})
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            exc.msg = f"{exc.msg}: GET {path}: {exc.read()[:300]!r}"
            raise

    def repositories(self) -> list[str]:
        return json.loads(self.get("_catalog?n=1000")[1]).get("repositories") or []

    def tags(self, repo: str) -> list[str]:
        try:
            return json.loads(self.get(f"{repo}/tags/list")[1]).get("tags") or []
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise

    def refs(self) -> int:
        return sum(len(self.tags(r)) for r in self.repositories())

    def gc(self) -> str:
        env = {
            **os.environ,
            "ENGINE_UP_GC_CONF": str(self.conf),
            "ENGINE_UP_GC_ADDR": self.address,
            "ENGINE_UP_GC_PID": str(self.pid),
        }
        out = subprocess.run(
            [str(ROOT / "ci" / "engine-up"), "--gc"], env=env, capture_output=True, text=True, check=True
        )
        return out.stdout

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(self.pid.read_text()), 15)


def copy_tag(source: OwnRegistry, target: OwnRegistry, repo: str, tag: str) -> None:
    """Copy one tag with everything it reaches (manifests and blobs) over the registry API."""

    def put_blob(digest: str) -> None:
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(
                urllib.request.Request(f"http://{target.address}/v2/{repo}/blobs/{digest}", method="HEAD"), timeout=30
            ).close()
            return
        _, body = source.get(f"{repo}/blobs/{digest}", accept="*/*")
        with urllib.request.urlopen(
            urllib.request.Request(f"http://{target.address}/v2/{repo}/blobs/uploads/", data=b"", method="POST"),
            timeout=30,
        ) as resp:
            location = resp.headers["Location"]
        glue = "&" if "?" in location else "?"
        url = location if location.startswith("http") else f"http://{target.address}{location}"
        request = urllib.request.Request(f"{url}{glue}digest={digest}", data=body, method="PUT")
        request.add_header("Content-Type", "application/octet-stream")
        try:
            urllib.request.urlopen(request, timeout=60).close()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"PUT blob {digest} to {url}: {exc.code} {exc.read()[:300]!r}") from None

    def put_manifest(reference: str) -> None:
        headers, body = source.get(f"{repo}/manifests/{reference}")
        data = json.loads(body)
        for entry in data.get("manifests") or []:
            if any(w in entry.get("mediaType", "") for w in ("manifest", "index", "list")):
                put_manifest(entry["digest"])
            else:
                put_blob(entry["digest"])
        if data.get("config"):
            put_blob(data["config"]["digest"])
        for layer in data.get("layers") or []:
            put_blob(layer["digest"])
        request = urllib.request.Request(
            f"http://{target.address}/v2/{repo}/manifests/{reference}", data=body, method="PUT"
        )
        request.add_header("Content-Type", headers["Content-Type"])
        urllib.request.urlopen(request, timeout=30).close()

    put_manifest(tag)


def reachable_ok(reg: OwnRegistry) -> int:
    """Every manifest and blob each tag reaches is there; how many tags were checked."""
    checked = 0
    for repo in reg.repositories():
        for tag in reg.tags(repo):
            todo = [tag]
            while todo:
                _, body = reg.get(f"{repo}/manifests/{todo.pop()}")
                data = json.loads(body)
                for entry in data.get("manifests") or []:
                    if any(w in entry.get("mediaType", "") for w in ("manifest", "index", "list")):
                        todo.append(entry["digest"])
                    else:
                        reg.get(f"{repo}/blobs/{entry['digest']}", accept="*/*")
                for layer in [data.get("config"), *(data.get("layers") or [])]:
                    if layer:
                        request = urllib.request.Request(
                            f"http://{reg.address}/v2/{repo}/blobs/{layer['digest']}", method="HEAD"
                        )
                        urllib.request.urlopen(request, timeout=30).close()
            checked += 1
    return checked


class Sim:
    def __init__(self, work: Path, registries: list[OwnRegistry], verify: bool) -> None:
        self.repo = work / "project"
        shutil.copytree(ROOT / "bench" / "fixture", self.repo)
        self.registries = registries
        self.verify = verify
        self.state = work / "state"
        self.clock = float(int(time.time()))
        self.pr = 0
        self.git("init", "-q", "-b", "main")
        self.git("add", "-A")
        self.git("commit", "-qm", "fixture")

    def git(self, *args: str) -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_DATE": f"@{int(self.clock)} +0000",
            "GIT_COMMITTER_DATE": f"@{int(self.clock)} +0000",
        }
        return subprocess.run(
            ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", *args],
            cwd=self.repo,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def commit(self, message: str) -> None:
        stats = self.repo / "stats.py"
        stats.write_text(stats.read_text() + f"\n# {message}\n")
        self.git("commit", "-qam", message)

    def bake(self, reg: OwnRegistry, *args: str, env: dict[str, str] | None = None, docker: str | None = None) -> str:
        full = {k: v for k, v in os.environ.items() if not k.startswith(("CI", "GITHUB_", "BAKE_CI_"))}
        full.update(
            BAKE_CI_REGISTRY=f"{reg.address}/sim",
            BAKE_CI_STATE_DIR=str(self.state),
            BAKE_CI_BASE_IMAGE="localhost:5000/library/python:{python}-slim",
        )
        full.update(env or {})
        if docker:
            full["DOCKER_HOST"] = docker
        command = [sys.executable, "-m", "bake", *args]
        if args[0] in ("build", "warm"):
            command += ["--progress", "plain"]
        for _ in range(3):  # the shared engine may be restarted under us: wait for it, then again
            out = subprocess.run(command, cwd=self.repo, env=full, capture_output=True, text=True)
            if out.returncode == 0 or not any(w in out.stderr + out.stdout for w in ENGINE_GONE):
                break
            wait_for_engine()
        if out.returncode != 0:
            raise RuntimeError(f"bake-ci {' '.join(args)} failed against registry {reg.name}: {out.stderr[-3000:]}")
        return out.stdout

    def push_all(self, *args: str, env: dict[str, str] | None = None) -> None:
        for reg in self.registries:
            self.bake(reg, "build", *args, env=env)

    def day(self, n: int, fast: bool) -> None:
        self.clock += DAY
        for letter in "ab":
            branch = f"f{n}{letter}"
            self.git("checkout", "-q", "-b", branch, "main")
            for c in range(1 if fast else 2):
                self.clock += 60
                self.commit(f"{branch} commit {c}")
                self.push_all("--push")
        self.git("checkout", "-q", "main")
        self.clock += 60
        self.git("merge", "-q", "--no-ff", "-m", f"merge f{n}a", f"f{n}a")
        self.git("branch", "-q", "-D", f"f{n}a")
        self.push_all("--push")
        self.pr += 1
        sha = self.git("rev-parse", "HEAD").strip()
        fork = {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": f"refs/pull/{self.pr}/merge", "GITHUB_SHA": sha}
        self.push_all("--push", env=fork)  # a fork: runs as --cache-only, writes pr-N cache only
        if not fast or n % 7 == 0:
            for reg in self.registries:
                self.bake(reg, "warm")

    def gc(self, reg: OwnRegistry) -> str:
        """``bake-ci gc --apply`` at the simulated time, 7-day retention, this day's request open."""
        branches = self.git("for-each-ref", "--format=%(refname:short) %(committerdate:unix)", "refs/heads")
        listing = self.state.parent / "branches.txt"
        listing.write_text(branches + f"pr-{self.pr}\n", encoding="utf-8")
        os.environ["BAKE_CI_REGISTRY"] = f"{reg.address}/sim"
        project = config_load.load(self.repo / "pyproject.toml", os.environ)
        args = Args("gc", apply=True, grace="0", branch_days=7, pr_days=7, commit_days=7, branches_file=listing)
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            bake_gc.run_gc(
                process.Runner(os.environ),
                project,
                args,
                ci.Context(provider="local", ci=False, event="manual"),
                now=self.clock,
            )
        return buffer.getvalue().strip().splitlines()[-1]

    def check(self, reg: OwnRegistry, n: int, rebuild: bool) -> str:
        tags = reachable_ok(reg)
        branch = f"verify-{n}"
        reused = self.bake(reg, "build", "--push", "--branch", branch)
        count = sum(" reused " in line for line in reused.splitlines())
        if not rebuild:
            return f"{tags} tags whole; new branch {count}/4 reused"
        cached, baseline = self.rebuild(reg), self.rebuild(self.registries[1])
        live = self.rebuild(reg, f"f{n}b")  # a kept branch's own cache ref (main's does not hold its steps)
        return (
            f"{tags} tags whole; rebuild cached {cached} (without gc: {baseline}); branch f{n}b's cache {live}; "
            f"new branch {count}/4 reused"
        )

    def rebuild(self, reg: OwnRegistry, branch: str = "main") -> str:
        """``--no-reuse --load`` of ``branch`` on the second engine, its builder pruned: cached/total steps."""
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(
                ["docker", "buildx", "prune", "-af"], env={**os.environ, "DOCKER_HOST": SECOND_ENGINE},
                capture_output=True, check=True,
            )  # fmt: skip
        self.git("checkout", "-q", branch)
        try:
            rebuilt = self.bake(reg, "build", "--load", "--no-reuse", "--branch", branch, docker=SECOND_ENGINE)
        finally:
            self.git("checkout", "-q", "main")
        rows = [line.split() for line in rebuilt.splitlines() if line.startswith(("deps-py", "ci-py"))]
        return " ".join(r[3] for r in rows)


@contextlib.contextmanager
def registries(*names: str) -> Iterator[list[OwnRegistry]]:
    root = Path(tempfile.mkdtemp(prefix="bench-retention-"))
    made: list[OwnRegistry] = []
    failed = False
    try:
        for name in names:
            made.append(OwnRegistry(root, name))
        yield made
    except BaseException:
        failed = True
        raise
    finally:
        for reg in made:
            reg.close()
        remove_engine_images([f"{reg.address}/" for reg in made])  # what the builds left in the engine's store
        if failed:  # the storage and the registries' logs are the evidence: keep them
            print(f"kept the registries' storage and logs for a look: {root}", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--fast", action="store_true", help="one commit per branch, warm weekly")
    parser.add_argument("--verify", action="store_true", help="after every gc: pullable, cached rebuild, reuse")
    parser.add_argument("--rebuild-every", type=int, default=1, help="with --verify: the pruned rebuild every N days")
    parser.add_argument("--out", type=Path, help="write the table here (Markdown)")
    parser.add_argument(
        "--minutes", type=float, help="start no new day after this many minutes; the live set is then of the last day"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the registries on the way out
    started = time.monotonic()
    rows = [
        "| day | with gc: bytes | refs | without gc: bytes | refs | gc | after gc |",
        "|---|---|---|---|---|---|---|",
    ]
    second = contextlib.nullcontext() if not args.verify else SecondEngine.start()  # the pruned rebuilds' engine
    names = ("with-gc", "without-gc", "live")
    with second, registries(*names) as (with_gc, without_gc, live), tempfile.TemporaryDirectory() as work:
        sim = Sim(Path(work), [with_gc, without_gc], args.verify)
        sim.push_all("--push")
        days = 0
        for n in range(1, args.days + 1):
            if args.minutes is not None and n > 1 and time.monotonic() - started > args.minutes * 60:
                print(f"stopped after day {n - 1} of {args.days}: --minutes {args.minutes:g} passed", flush=True)
                break
            days = n
            sim.day(n, args.fast)
            summary = sim.gc(with_gc)
            with_gc.gc()
            rebuild = n % args.rebuild_every == 0 or n == args.days or n == 1
            checked = sim.check(with_gc, n, rebuild) if args.verify else ""
            row = (
                f"| {n} | {with_gc.bytes() / 1e6:.1f} MB | {with_gc.refs()} | {without_gc.bytes() / 1e6:.1f} MB "
                f"| {without_gc.refs()} | {summary.split(';')[0]} | {checked} |"
            )
            rows.append(row)
            print(row, flush=True)
        for repo in with_gc.repositories():
            for tag in with_gc.tags(repo):
                copy_tag(with_gc, live, repo, tag)
        live_bytes, ratio = live.bytes(), with_gc.bytes() / max(live.bytes(), 1)
        summary = (
            f"\nDay {days}: with gc {with_gc.bytes() / 1e6:.1f} MB, {with_gc.refs()} refs; without gc "
            f"{without_gc.bytes() / 1e6:.1f} MB, {without_gc.refs()} refs; the live set (day {days}'s kept refs "
            f"pushed alone to an empty registry) {live_bytes / 1e6:.1f} MB, {live.refs()} refs: with gc = "
            f"{ratio:.2f}x the live set. Whole run {(time.monotonic() - started) / 60:.1f} min "
            f"(`bench/retention.py {' '.join(argv or sys.argv[1:])}`).\n"
        )
        print(summary)
        if args.out:
            args.out.write_text("\n".join(rows) + "\n" + summary, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
