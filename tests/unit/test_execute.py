"""The executor with a fake ``bake``: retries and backoff, keep-going and fail-fast
accounting, publishing, the jobs limit and interruption. No Docker."""

from __future__ import annotations

import _thread
import json
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from bake import config_load, display
from bake.engine import process
from bake.engine.buildx import BakeRun
from bake.engine.process import CommandFailed
from bake.execute import Executor, Options
from bake.plan import Plan, build_plan, matrix
from bake.registry import RegistryError
from bake.state import State

from .conftest import MakeProject

TOML = """\
[tool.bake-ci]
image = "acme/app-ci"
registry = "registry.example/acme"
python = ["3.11", "3.12"]
stages = ["ci"]
"""
DIGEST = "sha256:" + "d" * 64
UNAVAILABLE = "ERROR: failed to push registry.example/acme/app-ci:ci-py3.11-main: 503 Service Unavailable"
#: a manifest refused while another target pushed a layer it shares (bake/execute.py, PUSH_RACE_RE)
RACE = (
    "ERROR: failed to push registry.example/acme/app-ci:ci-py3.11-main: failed commit on ref "
    '"manifest-sha256:762a": unexpected status from PUT request to '
    "http://registry.example/v2/acme/app-ci/manifests/sha256:762a: 400 Bad Request"
)
RUN_FAILED = 'process "/bin/sh -c make" did not complete successfully: exit code: 2'

#: What a fake bake call does for one target: "ok", "cached" (ok, its step from cache),
#: "transient", "push-fails" (its step built, then the push refused), "race" (a manifest refused
#: as the shared-layer race refuses one), "run-fails", or "block"
Outcome = str


def _vertex(
    target: str, name: str, *, prefix: bool, error: str = "", done: bool = True, cached: bool = False
) -> dict[str, Any]:
    """A step as buildx names it: with the target in front when the call builds several."""
    v: dict[str, Any] = {
        "digest": f"sha256:{abs(hash((target, name))):x}",
        "name": f"[{target} {name}" if prefix else f"[{name}",
        "started": "2026-03-01T12:00:00.000000000Z",
    }
    if done:
        v["completed"] = "2026-03-01T12:00:01.000000000Z"
    if cached:
        v["cached"] = True
    if error:
        v["error"] = error
    return v


class FakeBake:
    """Plays buildx: per call, what happens to each target, decided by ``script``."""

    def __init__(self, script: Callable[[str, int], Outcome], stopping: Callable[[], threading.Event]) -> None:
        self.script = script
        self.stopping = stopping
        self.calls: list[list[str]] = []
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0

    def __call__(
        self,
        files: Sequence[Path],
        targets: Sequence[str],
        *,
        metadata_file: Path,
        on_status: Callable[[dict[str, Any]], None],
        on_text: Callable[[str], None],
        **_: Any,
    ) -> BakeRun:
        with self.lock:
            self.calls.append(list(targets))
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            return self._play(list(targets), metadata_file, on_status, on_text)
        finally:
            with self.lock:
                self.running -= 1

    def _play(self, targets, metadata_file, on_status, on_text) -> BakeRun:
        outcomes = {}
        for t in targets:
            self.attempts[t] = self.attempts.get(t, 0) + 1
            outcomes[t] = self.script(t, self.attempts[t])
        if "block" in outcomes.values():
            self.stopping().wait(timeout=30)
            return BakeRun(130, ["ERROR: context canceled"])
        vertexes = []
        for t, outcome in outcomes.items():
            if outcome == "run-fails":
                vertexes.append(_vertex(t, "ci 1/1] RUN make", prefix=len(targets) > 1, error=RUN_FAILED))
            elif outcome in ("ok", "cached", "push-fails", "race") or len(targets) == 1:
                done = outcome in ("ok", "cached", "push-fails", "race")
                vertexes.append(
                    _vertex(t, "ci 1/1] RUN make", prefix=len(targets) > 1, done=done, cached=outcome == "cached")
                )
        on_status({"vertexes": vertexes})
        if all(o in ("ok", "cached") for o in outcomes.values()):
            meta = {t: {"containerimage.digest": DIGEST} for t in targets}
            metadata_file.write_text(json.dumps(meta))
            return BakeRun(0, [])
        if {"transient", "push-fails"} & set(outcomes.values()):
            on_text(UNAVAILABLE)
            return BakeRun(1, [UNAVAILABLE])
        if "race" in outcomes.values():
            on_text(RACE)
            return BakeRun(1, [RACE])
        return BakeRun(1, [f"ERROR: target {targets[0]}: failed to solve"])


@pytest.fixture
def plan(project: MakeProject) -> Plan:
    root = project(TOML, dockerfile="ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS ci\nRUN make\n")
    proj = config_load.load(root / "pyproject.toml", {})
    return build_plan(proj, matrix(proj), branch="main", sha=None, output="push")


def execute(
    plan: Plan,
    tmp_path: Path,
    script: Callable[[str, int], Outcome],
    *,
    publish: Callable[[str, str], None] = lambda target, digest: None,
    **options: Any,
) -> tuple[list[Any], FakeBake, list[float], Executor]:
    sleeps: list[float] = []
    holder: list[Executor] = []
    fake = FakeBake(script, lambda: holder[0].stopping)
    executor = Executor(
        plan,
        root=tmp_path,
        files=[],
        run_folder=State(tmp_path / "state").new_run_folder(),
        options=Options(**options),
        display=display.Quiet(),
        runner=process.Runner({}),
        sleep=sleeps.append,
        jitter=lambda: 0.0,  # the schedule's nominal waits (tests/unit/test_retry.py covers the jitter)
        bake=fake,
        publish=publish,
    )
    holder.append(executor)
    return executor.run(), fake, sleeps, executor


def by_target(results: list[Any]) -> dict[str, Any]:
    return {r.target: r for r in results}


def test_a_registry_failure_is_retried_with_exponential_backoff(plan: Plan, tmp_path: Path) -> None:
    results, fake, sleeps, _ = execute(
        plan, tmp_path, lambda t, n: "transient" if n <= 2 else "ok", retries=2, backoff=1.5
    )
    assert [r.status for r in results] == ["built", "built"]
    assert [r.attempts for r in results] == [3, 3]
    assert sleeps == [1.5, 3.0]
    assert len(fake.calls) == 3


def test_a_step_built_before_a_retry_counts_as_built_not_cached(plan: Plan, tmp_path: Path) -> None:
    # the push failed after the step was built; the retry finds the step in the builder's cache
    results, _, _, _ = execute(plan, tmp_path, lambda t, n: "push-fails" if n == 1 else "cached", retries=1)
    assert [(r.status, r.attempts, r.steps, r.cached) for r in results] == [("built", 2, 1, 0)] * 2
    assert [r.seconds for r in results] == [2.0, 2.0]  # one second in each attempt

    results, _, _, _ = execute(plan, tmp_path / "again", lambda t, n: "cached", retries=1)
    assert [(r.attempts, r.steps, r.cached) for r in results] == [(1, 1, 1)] * 2


def test_retries_run_out_and_the_error_says_what_failed(plan: Plan, tmp_path: Path) -> None:
    results, _fake, sleeps, _ = execute(plan, tmp_path, lambda t, n: "transient", retries=1, keep_going=True)
    assert {r.status for r in results} == {"failed"}
    assert all(r.attempts == 2 for r in results)
    assert all("503" in (r.error or "") for r in results)
    assert sleeps == [1.0, 1.0]  # one retry per keep-going call


def test_a_manifest_refused_as_in_the_shared_layer_race_gets_one_more_attempt(plan: Plan, tmp_path: Path) -> None:
    results, fake, _, _ = execute(plan, tmp_path, lambda t, n: "race" if n == 1 else "ok")
    assert [(r.status, r.attempts) for r in results] == [("built", 2), ("built", 2)]
    assert len(fake.calls) == 2


def test_a_manifest_refused_twice_is_not_tried_a_third_time(plan: Plan, tmp_path: Path) -> None:
    results, fake, _, _ = execute(plan, tmp_path, lambda t, n: "race", retries=5, keep_going=True)
    assert len(fake.calls) == 4  # two targets, each in its own call, each tried twice
    assert [(r.status, r.attempts) for r in results] == [("failed", 2), ("failed", 2)]
    assert all("400 Bad Request" in (r.error or "") for r in results)


def test_a_failing_run_step_is_never_retried(plan: Plan, tmp_path: Path) -> None:
    results, _fake, sleeps, _ = execute(
        plan, tmp_path, lambda t, n: "run-fails" if t == "ci-py312" else "ok", keep_going=True, retries=3
    )
    rows = by_target(results)
    assert rows["ci-py311"].status == "built"
    assert rows["ci-py312"].status == "failed"
    assert rows["ci-py312"].attempts == 1
    assert rows["ci-py312"].failed_step == "[ci 1/1] RUN make"
    assert sleeps == []


def test_keep_going_builds_each_target_in_its_own_call(plan: Plan, tmp_path: Path) -> None:
    results, fake, _, _ = execute(
        plan, tmp_path, lambda t, n: "run-fails" if t == "ci-py311" else "ok", keep_going=True
    )
    assert sorted(fake.calls) == [["ci-py311"], ["ci-py312"]]
    assert [r.status for r in results] == ["failed", "built"]


def test_fail_fast_cancels_what_had_not_finished(plan: Plan, tmp_path: Path) -> None:
    results, fake, _, _ = execute(plan, tmp_path, lambda t, n: "run-fails" if t == "ci-py311" else "pending")
    assert fake.calls == [["ci-py311", "ci-py312"]]
    assert [r.status for r in results] == ["failed", "cancelled"]


def test_jobs_limits_concurrent_calls(plan: Plan, tmp_path: Path) -> None:
    _, fake, _, _ = execute(plan, tmp_path, lambda t, n: "ok", keep_going=True, jobs=1)
    assert fake.most_at_once == 1
    assert len(fake.calls) == 2


def test_built_images_are_published_with_their_digest(plan: Plan, tmp_path: Path) -> None:
    published: list[tuple[str, str]] = []
    results, _, _, _ = execute(plan, tmp_path, lambda t, n: "ok", publish=lambda t, d: published.append((t, d)))
    assert sorted(published) == [("ci-py311", DIGEST), ("ci-py312", DIGEST)]
    assert [r.digest for r in results] == [DIGEST, DIGEST]


def test_publishing_is_not_retried_again_by_the_executor(plan: Plan, tmp_path: Path) -> None:
    # publishing retries each registry request itself (tests/unit/test_transient.py and
    # test_retry.py): what reaches the executor has been retried already, and retries never nest
    tries: dict[str, int] = {}

    def publish(target: str, digest: str) -> None:
        tries[target] = tries.get(target, 0) + 1
        raise RegistryError("127.0.0.1:5000: PUT manifest answered 502 (9 attempts)", transient=True)

    results, _, sleeps, _ = execute(plan, tmp_path, lambda t, n: "ok", publish=publish, retries=2)
    assert [(r.status, r.failed_step) for r in results] == [("failed", "tagging")] * 2
    assert all("502" in (r.error or "") for r in results)
    assert tries == {"ci-py311": 1, "ci-py312": 1}
    assert sleeps == []


def test_an_image_whose_tags_cannot_be_added_is_a_failed_target(plan: Plan, tmp_path: Path) -> None:
    def publish(target: str, digest: str) -> None:
        raise CommandFailed(["tag"], 1, "PUT /v2/acme/app-ci/manifests/ci-py3.11: 401 Unauthorized")

    results, _, sleeps, _ = execute(plan, tmp_path, lambda t, n: "ok", publish=publish, retries=2)
    assert [r.status for r in results] == ["failed", "failed"]
    assert all(r.failed_step == "tagging" and "401" in (r.error or "") for r in results)
    assert sleeps == []


def test_an_interrupt_stops_running_calls_and_reports_what_finished(plan: Plan, tmp_path: Path) -> None:
    started = threading.Event()

    def script(target: str, attempt: int) -> Outcome:
        if target == "ci-py312":
            started.set()
            return "block"
        return "ok"

    # Ctrl-C as Python delivers it, whatever this process inherited: a job started in the
    # background of a script has SIGINT ignored, and interrupt_main() then does nothing.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=lambda: started.wait(10) and _thread.interrupt_main(), daemon=True).start()
        results, _fake, sleeps, executor = execute(plan, tmp_path, script, keep_going=True, retries=3)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert executor.interrupted
    assert by_target(results)["ci-py312"].status == "cancelled"
    assert by_target(results)["ci-py312"].attempts == 1  # no retry after an interrupt
    assert sleeps == []
