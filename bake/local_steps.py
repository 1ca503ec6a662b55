"""The steps of the commands that look rather than build: status, pull, doctor, the
checks before shell and run, and gc (see :data:`bake.workflow.COMMANDS`)."""

from __future__ import annotations

import json
import sys
import threading
from typing import TYPE_CHECKING

from bake import report
from bake.errors import BuildFailed, ConfigError, EnvironmentProblem, UsageError
from bake.plan import build_plan

if TYPE_CHECKING:
    from bake.run import Run


def ask_engine(run: Run) -> None:
    """pull looks at the local engine's images: the engine is asked now, and answers
    while the context is read (:func:`need_engine` then waits for it)."""
    from bake.engine import checks

    threading.Thread(target=checks.engine_info, args=(run.runner,), name="engine", daemon=True).start()


def need_engine(run: Run) -> None:
    """pull looks at the local engine's images: no engine is exit 3, before anything is
    shown."""
    from bake.engine import checks

    checks.check_engine(run.runner, checks.engine_info(run.runner))


def need_state(run: Run) -> None:
    """pull records what it fetched: a state folder that cannot be written is exit 3 before."""
    run.state.check_writable()


def local_plan(run: Run) -> None:
    """The plan of a local build of the targets: what status and pull compare against."""
    run.plan = build_plan(
        run.project, run.targets, branch=run.branch, sha=run.sha, output="load", platforms=run.platforms
    )


def ask_local_images(run: Run) -> None:
    """status looks at the local images of its plan: they are asked for now, and the
    engine answers while the context is read."""
    from bake import local

    run.local_images = local.ask_local_images(run.runner, run.plan, run.state)


def need_local_images(run: Run) -> None:
    """No engine is exit 3, before anything is shown: the answers to
    :func:`ask_local_images` say so (status asks nothing else of the engine)."""
    for t in run.plan.targets:
        run.local_images(t.image)


def print_status(run: Run) -> None:
    from bake import local

    assert run.target_fingerprints is not None
    rows = local.status(
        run.registry_client,
        run.runner,
        run.plan,
        run.state,
        run.output,
        run.target_fingerprints,
        run.project.config.registry,
        run.local_images,
    )
    if run.args.json:
        sys.stdout.write(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
    else:
        sys.stdout.write(local.status_table(rows))


def pull(run: Run) -> None:
    from bake import local

    assert run.target_fingerprints is not None
    missing = local.pull(run.registry_client, run.runner, run.plan, run.state, run.target_fingerprints)
    if missing:
        raise BuildFailed(
            "the registry has no image for the current inputs of: "
            + ", ".join(missing)
            + f". Build them: bake-ci build {' '.join(missing)} --load"
        )


def doctor(run: Run) -> None:
    from bake import local

    found = local.doctor(run.registry_client, run.runner, run.args.config, run.args.builder, run.args.state_dir)
    rows = []
    for check in found:
        rows.append(["ok  " if check.ok else "FAIL", check.name, check.detail])
        if not check.ok and check.fix:
            rows.append(["", "", f"fix: {check.fix}"])
    sys.stdout.write(report.align(rows, last_free=True))
    failed = [c for c in found if not c.ok]
    if any(c.name == "config" for c in failed):  # bad input is exit 2, as from every other command
        raise ConfigError(f"{len(failed)} of {len(found)} checks failed, the configuration among them.")
    if failed:
        raise EnvironmentProblem(f"{len(failed)} of {len(found)} checks failed.")


def one_target(run: Run) -> None:
    """shell and run work on one target."""
    if len(run.targets) != 1:
        names = ", ".join(t.id for t in run.targets)
        raise UsageError(f"{run.args.command} runs one target, and {run.args.targets[0]!r} is {names}: name one.")


def collect(run: Run) -> None:
    """Judge every ref of the image and cache repositories; delete what goes with --apply."""
    from bake.gc import run_gc

    run_gc(run.runner, run.project, run.args, run.context)
