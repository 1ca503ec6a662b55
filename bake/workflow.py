"""Each command as a short sequence of named steps over one :class:`Run`.

select -> fingerprint -> plan -> reuse -> execute -> report: every step reads what the
steps before it left on the run and adds its own part, so a command's table entry in
:data:`COMMANDS` reads as what it does.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bake import config, config_load, logs, naming, platforms, policy, registry
from bake.args import Args, Output, uses_fingerprints
from bake.bases import engine_mirrors, resolve_base
from bake.build_steps import build, finish_cache, merge_images, record, reuse_images, trim_cache
from bake.engine import git, process
from bake.errors import ConfigError, UsageError
from bake.local_steps import (
    ask_engine,
    ask_local_images,
    collect,
    doctor,
    local_plan,
    need_engine,
    need_local_images,
    need_state,
    one_target,
    print_status,
    pull,
)
from bake.plan import Selection, build_args, build_plan, matrix, select
from bake.pool import parallel
from bake.redact import redact
from bake.run import Run, Step, execute
from bake.state import State
from bake.summary import summarise

if TYPE_CHECKING:
    pass

log = logs.get_logger("bake")


# -- the steps ----------------------------------------------------------------------------


def load(run: Run) -> None:
    """Read and validate the configuration; locate bake-ci's state folder."""
    run.project = config_load.load(run.args.config, run.environ)
    run.state = State.locate(run.project.root, run.environ, run.args.state_dir)


def select_targets(run: Run) -> None:
    """The targets the user asked for (STAGE-pyXY identifiers, patterns, stages, Pythons)."""
    args = run.args
    run.targets = select(matrix(run.project), Selection(args.targets, args.stages, args.pythons))


def destination(run: Run) -> None:
    """The branch, commit and output of this run, and what the CI event lets it write."""
    args, project = run.args, run.project
    cfg = project.config
    if args.warm and not cfg.registry:
        raise UsageError(
            f"warm fills the registry cache, and no registry is configured. Set registry in [{config.TABLE}] "
            "or BAKE_CI_REGISTRY."
        )
    if args.output in ("push", "cache-only") and not cfg.registry:
        raise UsageError(
            f"--{args.output} needs a registry, and none is configured. Set registry in "
            f"[{config.TABLE}] or BAKE_CI_REGISTRY, or build locally with --load."
        )
    branch, run.sha = args.branch or run.context.branch, run.context.sha
    if not branch or not run.sha:
        checked_out, commit = git.head(run.runner, project.root)
        branch, run.sha = branch or checked_out, run.sha or commit
    default: Output = "push" if cfg.registry and run.context.ci else "load"
    output: Output = "push" if args.warm or args.command == "merge" else args.output or default
    if not cfg.registry:
        run.branch, run.output, run.writes = branch, output, None
        return
    writes = policy.policy(
        run.context,
        branch=branch,
        default_branch=cfg.default_branch,
        output=output,
        command="warm" if args.warm else "build",
        cache_to=args.cache_to,
        fallback_branches=cfg.fallback_branches,
    )
    for warning in writes.warnings:
        log.warning(warning)
    run.writes, run.branch, run.output = writes, writes.identity, writes.output


def choose_platforms(run: Run) -> None:
    """A multi-platform project's platforms this run handles, each as its own image."""
    run.platforms = platforms.chosen(run.runner, run.project, run.args.command, run.args.platform, run.output)


def need_registry(run: Run) -> None:
    if not run.project.config.registry:
        raise UsageError(
            f"{run.args.command} needs a registry, and none is configured. Set registry in [{config.TABLE}] "
            "or BAKE_CI_REGISTRY."
        )


def check_outputs(run: Run) -> None:
    """Every file the run will write can be written: checked before anything is built."""
    for option, path in (("--report", run.args.report), ("--metadata-file", run.args.metadata_file)):
        if path is None:
            continue
        parent = path.absolute().parent
        problem = None
        if path.is_dir():
            problem = "is a directory"
        elif path.exists() and not os.access(path, os.W_OK):
            problem = "is not writable"
        else:
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                problem = f"cannot have its folder created ({exc.strerror})"
            else:
                if not os.access(parent, os.W_OK):
                    problem = f"is in {parent}, which is not writable"
        if problem:
            raise UsageError(f"{option} {path} {problem}. Name a file in a folder you can write.")
    run.state.check_writable()
    context = run.project.root / run.project.config.context
    if run.state.inside(context):
        log.warning(
            "bake-ci's state folder is inside the build context: every build sees it change",
            state=str(run.state.root),
            fix="point BAKE_CI_STATE_DIR or --state-dir outside the context",
        )


def fingerprint(run: Run) -> None:
    """Fingerprint the targets' inputs, where this command uses them."""
    args = run.args
    run.target_fingerprints = None
    if not uses_fingerprints(args.command, run.output, args.no_reuse):
        return
    quiet = args.command in ("build", "warm") and run.output == "load"  # recorded for status, not used by this build
    # the engine's mirrors (for docker.io base images) are asked while the context is read
    bases = [registry.Reference.parse(build_args(run.project, t)["BASE_IMAGE"]) for t in run.targets]
    if any(b.host == registry.DOCKER_HUB and not b.digest for b in bases):
        threading.Thread(target=engine_mirrors, args=(run.runner,), name="mirrors", daemon=True).start()
    fps = platforms.fingerprint_targets(
        run.registry_client, run.runner, run.project, run.targets, run.state, run.platforms
    )
    for target, why in fps.missing.items():
        (log.debug if quiet else log.warning)("no fingerprint", target=target, reason=why)
    run.target_fingerprints = fps


def check_images(run: Run) -> None:
    """An image the Dockerfile names that surely does not exist is exit 2 naming its line,
    before anything is built: BuildKit would fail on it, and no retry could help. (plan
    and status report such an image as the reason a target has no fingerprint.)"""
    from bake import dockerfile_check

    project = run.project
    resolutions = dict(run.target_fingerprints.resolutions) if run.target_fingerprints else {}
    metas = [build_args(project, t) for t in run.targets]
    stages = sorted({t.stage for t in run.targets})
    if not resolutions:  # a push without reuse, or cache only: resolved for nothing else
        refs = sorted(dockerfile_check.image_lines(project.dockerfile_text, metas, stages))
        resolve = functools.partial(resolve_base, run.registry_client, run.runner)
        resolutions = dict(zip(refs, parallel(resolve, refs), strict=True))
    missing = {ref: r for ref, r in resolutions.items() if r.missing}
    problem = dockerfile_check.missing_image(project.dockerfile_text, metas, stages, missing) if missing else None
    if problem is not None:
        shown = os.path.relpath(project.root / project.config.dockerfile)
        raise ConfigError(redact(f"{shown}:{problem.line}: {problem.message}."))


def plan(run: Run) -> None:
    """The typed plan of this run (pushed images carry their fingerprint tag and label)."""
    fps = run.target_fingerprints if run.output == "push" else None  # --no-reuse too: a later run reuses it
    run.plan = build_plan(
        run.project,
        run.targets,
        branch=run.branch,
        sha=run.sha,
        output=run.output,
        fingerprints={t: fp.value for t, fp in fps.values.items()} if fps else None,
        export_cache=True if run.args.cache_to else None,
        cache_dir=run.state.root / "cache",
        writes=run.writes,
        environments={t: fp.environment for t, fp in fps.values.items()} if fps else None,
        platforms=run.platforms,
    )


def print_plan(run: Run) -> None:
    """The bake JSON on stdout; what the run writes, and why, on stderr."""
    sys.stdout.write(run.plan.to_json(redacted=True))
    if run.writes is not None:
        cfg = run.project.config
        for line in run.writes.lines(image=f"{cfg.registry}/{cfg.image}", sha=run.sha):
            print(line, file=sys.stderr)


def print_matrix(run: Run) -> None:
    """``{"include": [...]}``: one entry per target, per platform, or per (target, platform)
    (``--per``; a project without platforms has the engine's, named ``""``)."""
    per = run.args.per
    configured = run.project.config.platforms if platforms.multi(run.project) else []
    rows = [{"platform": p, "suffix": naming.platform_suffix(p)[2:]} for p in configured] or [
        {"platform": "", "suffix": ""}
    ]
    targets = [{"target": t.id, "stage": t.stage, "python": str(t.python)} for t in run.targets]
    if per == "platform":
        include = rows
    elif per == "target-platform":
        include = [{**t, **r} for t in targets for r in rows]
    else:
        include = targets
    sys.stdout.write(json.dumps({"include": include}) + "\n")


def enter_environment(run: Run) -> None:
    """shell, run: the target's image (found, pulled or built) with the checkout mounted."""
    from bake import shell

    args = run.args
    target = run.plan.targets[0]

    def build_locally() -> None:
        print(f"bake-ci: building {target.id} locally first (--load, with the registry cache)", file=sys.stderr)
        build_args_ = Args(
            command="build", config=args.config, log_format=args.log_format, verbose=args.verbose,
            targets=(target.id,), branch=args.branch, output="load", state_dir=args.state_dir,
            platform=args.platform,  # the platform it runs as (else the engine's)
        )  # fmt: skip
        with contextlib.redirect_stdout(sys.stderr):  # stdout is the command's
            execute(BUILD, Run(build_args_, run.environ, run.runner, run.registry_client))

    run.exit_code = shell.enter(
        run.project, target, run.state, command=args.run_command, mount=args.mount, env=args.env,
        platform=args.platform, commit=args.commit, pr=args.pr, environ=run.environ, build=build_locally,
        client=run.registry_client, runner=run.runner,
    )  # fmt: skip


BUILD: tuple[Step, ...] = (
    load,
    select_targets,
    destination,
    choose_platforms,
    check_outputs,
    fingerprint,
    check_images,
    plan,
    reuse_images,
    trim_cache,
    build,
    finish_cache,
    merge_images,
    record,
    summarise,
)

#: Every command, as the steps it runs.
COMMANDS: dict[str, tuple[Step, ...]] = {
    "plan": (load, select_targets, destination, choose_platforms, fingerprint, plan, print_plan),
    "build": BUILD,
    "warm": BUILD,
    "matrix": (load, select_targets, print_matrix),
    "status": (
        load,
        select_targets,
        destination,
        choose_platforms,
        local_plan,
        ask_local_images,
        fingerprint,
        need_local_images,
        print_status,
    ),
    "pull": (
        load,
        select_targets,
        need_registry,
        need_state,
        ask_engine,
        destination,
        choose_platforms,
        fingerprint,
        need_engine,
        local_plan,
        pull,
    ),
    "merge": (
        load,
        ask_engine,  # docker info (the base images' mirrors) answers while the rest starts
        select_targets,
        need_registry,
        destination,
        choose_platforms,
        fingerprint,
        plan,
        merge_images,
        summarise,
    ),
    "doctor": (doctor,),
    "shell": (load, select_targets, one_target, destination, local_plan, enter_environment),
    "run": (load, select_targets, one_target, destination, local_plan, enter_environment),
    "gc": (load, collect),
}


def run_command(args: Args, environ: Mapping[str, str]) -> int:
    """Run a command; its exit code (a container's, for shell and run)."""
    run = Run.start(args, environ)
    with process.sigterm_as_interrupt():
        execute(COMMANDS[args.command], run)
    return run.exit_code
