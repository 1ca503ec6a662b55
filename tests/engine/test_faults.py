"""Registry and network faults, injected by a proxy in front of a registry of the tests' own.

Every test pushes a tiny project through ``bake-ci build --push`` to ``127.0.0.1:PORT`` of a
:class:`~tests.engine.faultproxy.FaultProxy`, in front of a ``docker-registry`` these tests
start themselves; the shared registry is only read (the base image) and never written.

A transient fault stays armed until bake-ci says it retries (its ``retry`` log event), so a
passing test proves bake-ci's own retry, not BuildKit's internal one; then the fault is
cleared and the run must succeed. A fault that is not transient (401) must fail the run at
once with a hint. Whatever fails, a target never has its fingerprint tag without its other
tags, and a rerun completes what was missing.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import REGISTRY
from .faultproxy import FaultProxy, Registry, catalog

#: every repository these tests create starts with this (in their own registry only)
PREFIX = f"faults-{uuid.uuid4().hex[:8]}"
IMAGE = "tiny/app"
TARGET = "ci-py311"
RUN_TIMEOUT = 600.0

DOCKERFILE = """\
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS base
COPY base.txt /base.txt

FROM base AS ci
COPY nonce.txt /nonce.txt
"""

PYPROJECT = f"""\
[tool.bake-ci]
image = "{IMAGE}"
python = ["3.11"]
stages = ["ci"]

[tool.bake-ci.cache]
ignore-error = false  # a failed cache export fails the push: its faults are visible
"""


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    """The tests' own registry; the shared one must hold none of their repositories after them."""
    before = catalog(REGISTRY)
    reg = Registry()
    try:
        yield reg
    finally:
        reg.close()
    after = catalog(REGISTRY)
    ours = {r for r in after if r.startswith(PREFIX)}
    assert not ours, f"these tests wrote to the shared registry: {sorted(ours)}"
    assert before <= after, f"repositories vanished from the shared registry: {sorted(before - after)}"


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    with FaultProxy(registry.address) as p:
        yield p


@dataclass
class Run:
    code: int
    err: str
    events: list[dict[str, object]]
    report: dict[str, object] | None

    def named(self, name: str) -> list[dict[str, object]]:
        return [e for e in self.events if e.get("event") == name]

    @property
    def targets(self) -> dict[str, dict[str, object]]:
        assert self.report is not None, self.err
        return {str(t["target"]): t for t in self.report["targets"]}  # type: ignore[index,union-attr]


@dataclass
class Tiny:
    """A one-target project (``ci-py311``) whose registry is the proxy, with content of its own."""

    path: Path
    namespace: str
    proxy: FaultProxy
    registry: Registry
    sha: str
    runs: int = field(default=0)

    @property
    def repository(self) -> str:
        return f"{self.namespace}/{IMAGE}"

    @property
    def cache_repository(self) -> str:
        return f"{self.repository}-cache"

    def tags(self) -> set[str]:
        return self.registry.tags(self.repository)

    def expected_tags(self) -> set[str]:
        """Every tag a push of ``main`` gives the target, but the fingerprint tag."""
        return {"ci-py3.11-main", f"ci-py3.11-{self.sha[:7]}", "ci-py3.11"}

    def bake_ci(
        self,
        *args: str,
        on_event: Callable[[dict[str, object]], None] = lambda e: None,
        retries: int | None = 3,
        branch: str = "main",
        budget: float | None = None,
    ) -> Run:
        """``bake-ci build --push`` in its own process; ``on_event`` sees each JSON log event as it comes.
        ``budget``: seconds of retries of one operation (BAKE_CI_RETRY_BUDGET), for a run meant to
        fail: its retries give up then instead of after the default minute."""
        self.runs += 1
        report = self.path.parent / f"report-{self.runs}.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BAKE_CI_", "GITHUB_", "CI"))}
        env |= {"BAKE_CI_REGISTRY": f"{self.proxy.address}/{self.namespace}"}
        env |= {"BAKE_CI_RETRY_BUDGET": f"{budget:g}"} if budget is not None else {}
        cmd = [sys.executable, "-m", "bake", "build", "--push", "--progress", "quiet", "--log-format", "json"]
        cmd += ["--branch", branch, "--report", str(report), *args]
        cmd += ["--retries", str(retries)] if retries is not None else []  # None: the default schedule
        proc = subprocess.Popen(
            cmd, cwd=self.path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        lines: queue.Queue[bytes | None] = queue.Queue()

        def read() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + RUN_TIMEOUT
        err: list[str] = []
        events: list[dict[str, object]] = []
        try:
            while True:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
                if line is None:
                    break
                text = line.decode(errors="replace")
                err.append(text)
                if text.startswith("{"):
                    event = json.loads(text)
                    events.append(event)
                    on_event(event)
            code = proc.wait(timeout=60)
        except queue.Empty:
            proc.kill()
            proc.wait()
            pytest.fail(f"bake-ci did not finish within {RUN_TIMEOUT:.0f} s:\n{''.join(err)[-4000:]}")
        data = json.loads(report.read_text()) if report.exists() else None
        return Run(code, "".join(err), events, data)


@pytest.fixture
def tiny(tmp_path: Path, proxy: FaultProxy, registry: Registry) -> Tiny:
    path = tmp_path / "tiny"
    path.mkdir()
    (path / "Dockerfile").write_text(DOCKERFILE)
    (path / "pyproject.toml").write_text(PYPROJECT)
    (path / "base.txt").write_text("the base stage\n")
    (path / "nonce.txt").write_text(f"{uuid.uuid4()}\n")  # new layers: a push uploads blobs
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "tiny"], cwd=path, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True).stdout
    return Tiny(path, f"{PREFIX}-{uuid.uuid4().hex[:6]}", proxy, registry, sha.strip())


def clear_on_retry(proxy: FaultProxy) -> Callable[[dict[str, object]], None]:
    """Disarm the proxy's faults when bake-ci announces its first retry."""

    def on_event(event: dict[str, object]) -> None:
        if event.get("event") == "retry":
            proxy.clear()

    return on_event


def assert_not_half_published(tiny: Tiny) -> None:
    tags = tiny.tags()
    fingerprint = {t for t in tags if re.fullmatch(r"ci-py3\.11-fp-[0-9a-f]{12}", t)}
    missing = tiny.expected_tags() - tags
    assert not (fingerprint and missing), f"fingerprint tag {fingerprint} without {sorted(missing)} (tags: {tags})"


def assert_complete(tiny: Tiny) -> None:
    tags = tiny.tags()
    assert tiny.expected_tags() <= tags, tags
    assert any(re.fullmatch(r"ci-py3\.11-fp-[0-9a-f]{12}", t) for t in tags), tags
    assert "ci-py3.11-main" in tiny.registry.tags(tiny.cache_repository)


# -- transient faults are retried ----------------------------------------------------------------

TRANSIENT = {
    # the image's blob uploads answer 503
    "503 on blob uploads": lambda p: p.fail(503, None, methods="POST,PATCH,PUT", path=r"/tiny/app/blobs/uploads/"),
    # every manifest PUT of the image answers 429
    "429 on manifest PUT": lambda p: p.fail(429, None, methods="PUT", path=r"/tiny/app/manifests/"),
    # blob existence checks answer 502
    "502 on HEAD": lambda p: p.fail(502, None, methods="HEAD", path=r"/blobs/"),
    # blob uploads: the connection is reset
    "reset on blob uploads": lambda p: p.reset(None, methods="PATCH,PUT", path=r"/blobs/uploads/"),
    # a HEAD's connection closes without an answer: `Head "…": EOF`
    "EOF on HEAD": lambda p: p.eof(None, methods="HEAD"),
    # blob uploads stop after 1 KiB
    "upload cut mid-stream": lambda p: p.cut(1024, None),
    # the cache export's manifest PUT answers 503
    "503 on cache export": lambda p: p.fail(503, None, methods="PUT", path=r"/tiny/app-cache/manifests/"),
    # one manifest PUT by digest answers 400, as in the shared-layer race (bake/execute.py): one more attempt
    "400 on a manifest PUT": lambda p: p.fail(400, 1, methods="PUT", path=r"/tiny/app/manifests/sha256:"),
}


@pytest.mark.parametrize("fault", list(TRANSIENT))
def test_a_transient_fault_is_retried_and_the_run_succeeds_once_it_stops(tiny: Tiny, fault: str) -> None:
    TRANSIENT[fault](tiny.proxy)
    run = tiny.bake_ci(on_event=clear_on_retry(tiny.proxy))
    assert tiny.proxy.injected() > 0, f"the fault never fired: {tiny.proxy.summary()}"
    assert run.named("retry"), f"bake-ci did not retry:\n{run.err[-3000:]}"
    assert run.code == 0, run.err[-3000:]
    assert run.targets[TARGET]["status"] == "built"
    assert run.targets[TARGET]["attempts"] == 2
    assert_complete(tiny)


def test_unauthorized_is_not_retried_and_says_to_log_in(tiny: Tiny) -> None:
    tiny.proxy.fail(401, None)
    run = tiny.bake_ci()
    assert run.code == 1, run.err[-3000:]
    assert not run.named("retry"), run.err[-3000:]
    assert "Traceback" not in run.err
    assert re.search(r"docker login|log in|login", run.err, re.IGNORECASE), run.err[-3000:]
    assert_not_half_published(tiny)


# -- the registry goes away --------------------------------------------------------------------


def test_registry_cut_during_a_push_is_retried_and_succeeds_once_it_is_back(tiny: Tiny) -> None:
    proxy = tiny.proxy
    # the registry dies as the first blob upload of the image starts (open connections are
    # closed, new ones refused), and is back when bake-ci retries
    proxy.down_on(methods="POST", path=r"/tiny/app/blobs/uploads/")

    def on_event(event: dict[str, object]) -> None:
        if event.get("event") == "retry" and proxy.went_down.is_set():
            proxy.up()

    run = tiny.bake_ci(on_event=on_event)
    assert proxy.went_down.is_set(), f"no upload reached the registry:\n{proxy.summary()}\n{run.err[-3000:]}"
    assert run.code == 0, run.err[-3000:]
    assert run.named("retry"), run.err[-3000:]
    assert run.targets[TARGET]["attempts"] == 2
    assert_complete(tiny)


#: the retry budget of a run meant to fail (seconds): a few retries, not the default minute
FAIL_FAST = 3.0

#: how long the registry stays away in the outage test (a registry restart, a hosted registry's hiccup)
OUTAGE = 20.0


def test_a_20_s_registry_outage_during_a_push_is_waited_out_with_the_default_retries(tiny: Tiny) -> None:
    proxy = tiny.proxy
    # the registry dies as the first blob upload of the image starts, and comes back 20 s later
    proxy.down_on(methods="POST", path=r"/tiny/app/blobs/uploads/")
    outage: dict[str, float] = {}

    def restart() -> None:
        if not proxy.went_down.wait(RUN_TIMEOUT):
            return
        outage["down"] = time.monotonic()
        threading.Event().wait(OUTAGE)  # the fault's own length, not a wait for bake-ci
        proxy.up()
        outage["up"] = time.monotonic()

    restarter = threading.Thread(target=restart, daemon=True)
    restarter.start()
    started = time.monotonic()
    run = tiny.bake_ci(retries=None)
    took = time.monotonic() - started
    restarter.join(timeout=OUTAGE + 5)
    assert proxy.went_down.is_set(), f"no upload reached the registry:\n{proxy.summary()}\n{run.err[-3000:]}"
    assert "up" in outage, "the registry never came back"
    retries = run.named("retry")
    print(
        f"\noutage {outage['up'] - outage['down']:.1f} s; run {took:.1f} s, exit {run.code}; "
        f"{len(retries)} retries, waits {[e.get('delay') for e in retries]} s"
    )
    assert run.code == 0, run.err[-3000:]
    assert retries, run.err[-3000:]
    assert run.targets[TARGET]["status"] == "built"
    assert run.targets[TARGET]["attempts"] == len(retries) + 1
    assert_complete(tiny)


def test_a_registry_that_stays_down_fails_the_run_naming_the_registry(tiny: Tiny) -> None:
    tiny.proxy.down_on(methods="POST", path=r"/tiny/app/blobs/uploads/")
    run = tiny.bake_ci(retries=1)
    assert tiny.proxy.went_down.is_set(), f"no upload reached the registry:\n{tiny.proxy.summary()}\n{run.err[-3000:]}"
    assert run.code == 1, run.err[-3000:]
    assert "Traceback" not in run.err
    assert len(run.named("retry")) == 1, run.err[-3000:]
    message = run.err[run.err.index("bake-ci: ") :]
    assert re.search(r"registry|network", message, re.IGNORECASE), message
    assert_not_half_published(tiny)


# -- nothing half-published ------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["branch", "sha", "bare"])
def test_a_failed_tag_leaves_no_fingerprint_tag_and_a_rerun_completes(tiny: Tiny, tag: str) -> None:
    pattern = {"branch": r"ci-py3\.11-main", "sha": rf"ci-py3\.11-{tiny.sha[:7]}", "bare": r"ci-py3\.11"}[tag]
    tiny.proxy.fail(503, None, methods="PUT", path=rf"/tiny/app/manifests/{pattern}$")
    failed = tiny.bake_ci(retries=1, budget=FAIL_FAST)
    assert failed.code == 1, failed.err[-3000:]
    assert "Traceback" not in failed.err
    assert tiny.expected_tags() - tiny.tags(), "the fault kept no tag out of the registry"
    assert_not_half_published(tiny)

    tiny.proxy.clear()
    rerun = tiny.bake_ci()
    assert rerun.code == 0, rerun.err[-3000:]
    assert_complete(tiny)


# -- reading the registry: reuse ------------------------------------------------------------------


def test_reuse_retries_the_registry_lookups_and_tags_through_faults(tiny: Tiny) -> None:
    first = tiny.bake_ci()
    assert first.code == 0, first.err[-3000:]
    proxy = tiny.proxy
    # bake-ci's own registry client (not buildx) meets a 503, a reset, then a 429 on each kind of request
    python = r"^Python-urllib/"
    proxy.fail(503, 1, methods="GET", path=r"/tiny/app/manifests/ci-py3\.11-fp-", agent=python)
    proxy.reset(1, methods="GET", path=r"/tiny/app/manifests/ci-py3\.11-fp-", agent=python)
    proxy.fail(429, 1, methods="PUT", path=r"/tiny/app/manifests/ci-py3\.11-feature", agent=python)
    proxy.eof(1, methods="PUT", path=r"/tiny/app/manifests/ci-py3\.11-feature", agent=python)
    run = tiny.bake_ci(branch="feature")
    assert run.code == 0, run.err[-3000:]
    assert proxy.injected() == 4, proxy.summary()
    assert run.targets[TARGET]["status"] == "reused", run.err[-3000:]
    assert not [e for e in run.named("run") if "buildx" in str(e.get("cmd"))], "bake-ci fell back to buildx"
    assert {"ci-py3.11-feature", f"ci-py3.11-{tiny.sha[:7]}"} <= tiny.tags()
