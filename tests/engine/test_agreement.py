"""bake-ci's reuse verdict against BuildKit itself (the method: agreement.py).

For each case (agreement_cases.py): build and push a tiny project, apply one change, ask
``bake-ci status`` whether a build is needed, build again with ``--no-reuse`` and compare
BuildKit's image with the one reuse would ship (or, for a build verdict, the previous
one). A STALE verdict always fails; a WASTE fails unless the case says why it is
acceptable. Then a random walk of small changes over one project (agreement_walk.py).

The selected cases run a few at a time (``BAKE_CI_AGREEMENT_JOBS``, default 3): most of
each one is waiting on processes and the registry. ``BAKE_CI_AGREEMENT_SUMMARY=FILE``
writes the table of verdicts as Markdown; ``BAKE_CI_AGREEMENT_SEED`` and
``BAKE_CI_AGREEMENT_MUTATIONS`` steer the walk.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .agreement import AGREE, STALE, WASTE, FileServer, Project, Summary, Verdict, judge
from .agreement_cases import CASES, REBUILD, Case, CaseEnv
from .agreement_walk import Walk
from .conftest import REGISTRY

SUMMARY = Summary()
BY_NAME = {case.name: case for case in CASES}


@pytest.fixture(scope="module")
def namespace() -> str:
    """A registry namespace of this run: nothing from an earlier run can be reused."""
    return f"agreement-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[Summary]:
    yield SUMMARY
    target = os.environ.get("BAKE_CI_AGREEMENT_SUMMARY")
    if target and SUMMARY.rows:
        Path(target).write_text(SUMMARY.markdown("bake-ci reuse verdicts against BuildKit"))


def run_case(case: Case, registry: str, server: FileServer, tmp: Path) -> Verdict:
    """Build the case's project, apply its change, and judge bake-ci's verdict on it."""
    env = CaseEnv(tmp / "p" / "ctx", server, f"{registry}/agreement/src-{case.name}:1", tmp / "work")
    project = Project.create(tmp / "p", registry, f"agreement/{case.name}", case.render(env), case.stages, case.inputs)
    for path, text in case.files.items():
        (project.ctx / path).parent.mkdir(parents=True, exist_ok=True)
        (project.ctx / path).write_text(text)
    if case.setup:
        case.setup(env)
    before = project.build()
    return judge(project, before, case.name, case.change, lambda: case.mutate(env), case.waste_ok)


@pytest.fixture(scope="module")
def verdicts(
    request: pytest.FixtureRequest, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Verdict | BaseException]:
    """Every selected case, run a few at a time; each test then checks its own."""
    selected = [
        str(item.callspec.params["case"])
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname == "test_bake_ci_verdict_agrees_with_buildkit"
        and hasattr(item, "callspec")
    ]
    registry = f"{REGISTRY}/{namespace}"
    jobs = int(os.environ.get("BAKE_CI_AGREEMENT_JOBS") or 3)
    with FileServer() as server, ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {
            name: pool.submit(run_case, BY_NAME[name], registry, server, tmp_path_factory.mktemp(name))
            for name in selected
        }
        results: dict[str, Verdict | BaseException] = {}
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except Exception as exc:  # reported by the case's own test
                results[name] = exc
    SUMMARY.rows += [v for v in results.values() if isinstance(v, Verdict)]
    return results


@pytest.mark.parametrize("case", [c.name for c in CASES])
def test_bake_ci_verdict_agrees_with_buildkit(case: str, verdicts: dict[str, Verdict | BaseException]) -> None:
    verdict = verdicts[case]
    if isinstance(verdict, BaseException):
        raise verdict
    assert verdict.classification != STALE, verdict.explain()
    if verdict.classification == WASTE:
        assert verdict.waste_ok, verdict.explain() + " Only a variable in a source path may excuse that."
    expect = BY_NAME[case].expect
    assert verdict.buildkit_rebuilt == (expect == REBUILD), (
        f"{case}: after {verdict.change}, BuildKit built {verdict.buildkit}, but the case expects "
        f"{expect!r}: it does not exercise what it claims"
    )


def test_random_changes_to_a_copy_heavy_project_are_never_stale(namespace: str, tmp_path: Path) -> None:
    seed = int(os.environ.get("BAKE_CI_AGREEMENT_SEED") or random.SystemRandom().randrange(2**32))
    count = int(os.environ.get("BAKE_CI_AGREEMENT_MUTATIONS") or 30)
    walk = Walk.create(tmp_path / "walk", f"{REGISTRY}/{namespace}", random.Random(seed))
    for verdict in walk.steps(count, label=f"walk(seed {seed})"):
        SUMMARY.rows.append(verdict)
    stale = [v for v in walk.verdicts if v.classification == STALE]
    agree = sum(1 for v in walk.verdicts if v.classification == AGREE)
    waste = sum(1 for v in walk.verdicts if v.classification == WASTE)
    assert not stale, (
        f"{len(stale)} STALE verdicts in {count} random changes ({agree} agree, {waste} waste; seed {seed}, "
        f"rerun with BAKE_CI_AGREEMENT_SEED={seed}):\n" + "\n".join(v.explain() for v in stale)
    )
