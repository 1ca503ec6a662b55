"""Each command as a short sequence of named steps over one :class:`Run`.

select -> fingerprint -> plan -> reuse -> execute -> report: every step reads what the
steps before it left on the run and adds its own part, so a command's table entry in
:data:`COMMANDS` reads as what it does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import re
import secrets
import shutil
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bake import cache, ci, config, display, logs, naming, platforms, registry, report, reuse
from bake.args import Args, Output, fingerprints
from bake.engine import git, images, process
from bake.errors import BuildFailed, ConfigError, EnvironmentProblem, Interrupted, StateFolderError, UsageError
from bake.files import write_atomic
from bake.plan import Plan, Selection, Target, build_args, build_plan, matrix, select
from bake.pool import parallel
from bake.redact import redact
from bake.state import State

if TYPE_CHECKING:
    from bake.execute import Executor

log = logs.get_logger("bake")


@dataclass
class Run:
    """One command's run: its inputs, and what each step has found so far."""

    args: Args
    environ: Mapping[str, str]
    context: ci.Context = field(init=False)
    project: config.Project = field(init=False)
    state: State = field(init=False)
    targets: list[Target] = field(default_factory=list)
    branch: str = ""
    sha: str | None = None
    output: Output = "load"
    writes: ci.Writes | None = None
    fingerprints: reuse.Fingerprints | None = None
    plan: Plan = field(init=False)
    results: dict[str, report.Result] = field(default_factory=dict)
    executor: Executor | None = None
    shown: display.Display | None = None
    cache_after: cache.After = field(default_factory=lambda: cache.After({}))
    #: Targets whose image was published (their cache tags were written then).
    published: set[str] = field(default_factory=set)
    local_images: Callable[[str], images.LocalImage | None] | None = None
    exit_code: int = 0
    #: the state folder could not be written after targets had been built or reused:
    #: the run ends with it once the summary is out
    state_error: StateFolderError | None = None
    #: a multi-platform project's platforms this run handles one by one (() for one image)
    platforms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.context = ci.from_environ(self.environ)


Step = Callable[[Run], None]


def execute(steps: Sequence[Step], run: Run) -> None:
    for step in steps:
        log.debug("step", step=step.__name__)
        step(run)


# -- the steps ----------------------------------------------------------------------------


def load(run: Run) -> None:
    """Read and validate the configuration; locate bake-ci's state folder."""
    run.project = config.load(run.args.config, run.environ)
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
        checked_out, commit = git.head(project.root)
        branch, run.sha = branch or checked_out, run.sha or commit
    default: Output = "push" if cfg.registry and run.context.ci else "load"
    output: Output = "push" if args.warm or args.command == "merge" else args.output or default
    if not cfg.registry:
        run.branch, run.output = branch, output
        return
    writes = ci.policy(
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
    run.platforms = platforms.chosen(run.project, run.args.command, run.args.platform, run.output)


def ask_engine(run: Run) -> None:
    """pull looks at the local engine's images: the engine is asked now, and answers
    while the context is read (:func:`need_engine` then waits for it)."""
    from bake.engine import checks

    threading.Thread(target=checks.engine_info, name="engine", daemon=True).start()


def need_engine(run: Run) -> None:
    """pull looks at the local engine's images: no engine is exit 3, before anything is
    shown."""
    from bake.engine import checks

    checks.check_engine(checks.engine_info())


def need_state(run: Run) -> None:
    """pull records what it fetched: a state folder that cannot be written is exit 3 before."""
    run.state.check_writable()


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
    if not fingerprints(args.command, run.output, args.no_reuse):
        return
    quiet = args.command in ("build", "warm") and run.output == "load"  # recorded for status, not used by this build
    # the engine's mirrors (for docker.io base images) are asked while the context is read
    bases = [registry.Reference.parse(build_args(run.project, t)["BASE_IMAGE"]) for t in run.targets]
    if any(b.host == registry.DOCKER_HUB and not b.digest for b in bases):
        threading.Thread(target=reuse.engine_mirrors, name="mirrors", daemon=True).start()
    fps = platforms.fingerprints(run.project, run.targets, run.state, run.platforms)
    for target, why in fps.missing.items():
        (log.debug if quiet else log.warning)("no fingerprint", target=target, reason=why)
    run.fingerprints = fps


def check_images(run: Run) -> None:
    """An image the Dockerfile names that surely does not exist is exit 2 naming its line,
    before anything is built: BuildKit would fail on it, and no retry could help. (plan
    and status report such an image as the reason a target has no fingerprint.)"""
    from bake import dockerfile_check

    project = run.project
    resolutions = dict(run.fingerprints.resolutions) if run.fingerprints else {}
    metas = [build_args(project, t) for t in run.targets]
    stages = sorted({t.stage for t in run.targets})
    if not resolutions:  # a push without reuse, or cache only: resolved for nothing else
        refs = sorted(dockerfile_check.image_lines(project.dockerfile_text, metas, stages))
        resolutions = dict(zip(refs, parallel(reuse.resolve_base, refs), strict=True))
    missing = {ref: r for ref, r in resolutions.items() if r.missing}
    problem = dockerfile_check.missing_image(project.dockerfile_text, metas, stages, missing) if missing else None
    if problem is not None:
        shown = os.path.relpath(project.root / project.config.dockerfile)
        raise ConfigError(redact(f"{shown}:{problem.line}: {problem.message}."))


def plan(run: Run) -> None:
    """The typed plan of this run (pushed images carry their fingerprint tag and label)."""
    fps = run.fingerprints if run.output == "push" else None  # --no-reuse too: a later run reuses it
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


def local_plan(run: Run) -> None:
    """The plan of a local build of the targets: what status and pull compare against."""
    run.plan = build_plan(
        run.project, run.targets, branch=run.branch, sha=run.sha, output="load", platforms=run.platforms
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


def reuse_images(run: Run) -> None:
    """Targets whose inputs the registry already has an image for get this run's tags."""
    allowed = run.writes is not None and run.writes.branch_tags  # reusing adds this run's tags
    if (
        run.fingerprints is not None
        and run.output == "push"
        and allowed
        and not run.args.warm
        and not run.args.no_reuse
    ):
        run.results.update(reuse.reuse(run.plan, run.fingerprints))


def trim_cache(run: Run) -> None:
    """Only the registry cache that helps: sources that exist and differ, no export that would
    write what is there already (one parallel look-up per ref; see bake/cache.py)."""
    todo = [t for t in run.plan.targets if t.id not in run.results]
    if not run.project.config.registry or not todo:
        return
    fps = run.fingerprints  # computed by the fingerprint step (args.fingerprints says when)
    fingerprints = {t: fp.value for t, fp in fps.values.items()} if fps else {}
    wanted = {t.id: fingerprints[t.id] for t in todo if t.id in fingerprints}
    found = cache.look_up(reuse.client(), cache.refs_to_ask(dataclasses.replace(run.plan, targets=tuple(todo)), wanted))
    trusted = run.writes is not None and run.writes.fingerprint_tags
    run.plan, run.cache_after = cache.trim(run.plan, fingerprints, found, record_fingerprints=trusted)


def build(run: Run) -> None:
    """Build what reuse left, showing progress; the results of every target."""
    gc.enable()  # a long run from here on (the CLI turned it off for the short part)
    shown = display.choose(run.args.progress, run.plan.ids, run.context, json_logs=run.args.log_format == "json")
    run.shown = shown
    try:
        for row in run.results.values():
            shown.finished(row, None)
        todo = [t for t in run.plan.ids if t not in run.results]
        if todo:
            try:
                run.executor = _executor(run, shown)
            except StateFolderError as exc:
                if not run.results:
                    raise  # nothing done: no summary to show
                run.state_error = exc  # reused targets have their tags: show them, then the error
                for t in todo:
                    row = report.Result(target=t, status="cancelled", image=run.plan[t].image)
                    run.results[t] = row
                    shown.finished(row, None)
                return
            for row in run.executor.run(todo):
                run.results[row.target] = row
            run.state_error = run.executor.state_error
    finally:
        shown.close()
    if run.executor is not None and run.args.progress != "quiet":
        for note in run.executor.folded.notes():
            if run.args.log_format == "json":
                log.info("note", text=note)
            else:
                print(note, file=sys.stderr)


def _executor(run: Run, shown: display.Display) -> Executor:
    """Check the engine can do the build, write this run's bake file, set up its execution."""
    from bake.engine import checks
    from bake.execute import Executor, Options

    args, project, plan_ = run.args, run.project, run.plan
    info = checks.check(args.builder, cache_export=plan_.exports_cache)
    files = run.state.new_run()
    with run.state.writing("writing the bake file for buildx"):
        write_atomic(files.bake_file, plan_.to_json())
    options = Options(
        keep_going=args.warm or args.keep_going,
        jobs=args.jobs,
        retries=args.retries,
        builder=args.builder,
        no_cache=args.no_cache,
        pull=args.warm or args.pull,
    )

    def publish(target: str, digest: str) -> None:
        reuse.publish(plan_[target], digest)
        cache.finish(reuse.client(), run.cache_after, target)
        run.published.add(target)

    log.info(
        "build", targets=plan_.ids, branch=run.branch, output=run.output, keep_going=options.keep_going,
        builder=info.builder.name, driver=info.builder.driver, run=str(files.root),
    )  # fmt: skip
    return Executor(
        plan_,
        root=project.root,
        files=[p for p in (project.bake_file, files.bake_file) if p is not None],
        run=files,
        options=options,
        display=shown,
        publish=publish,
    )


def finish_cache(run: Run) -> None:
    """Built targets that published no image (``--cache-only``, ``--load --cache-to``) get
    their cache tags now: a skipped export's branch ref is pointed at the cache that is
    there, so the run writes the cache ref its plan says it writes."""
    done = [t for t, r in run.results.items() if r.status == "built" and t not in run.published]
    if run.cache_after.tags and done:
        parallel(lambda t: cache.finish(reuse.client(), run.cache_after, t), done)


def merge_images(run: Run) -> None:
    """A multi-platform project's indexes, once every platform's image is in the registry:
    at the end of a build of every platform, or as ``bake-ci merge`` after one job each."""
    from bake import merge

    merge.step(run)


def record(run: Run) -> None:
    """Remember the fingerprint of each image now in the local engine (built; reused ones are not)."""
    fps = run.fingerprints
    if fps is None or run.output == "cache-only":
        return
    built = [t for t in run.plan.targets if t.id in fps.values and run.results[t.id].status == "built"]
    ids = parallel(images.local_image_id, [t.image for t in built])
    for t, image_id in zip(built, ids, strict=True):
        try:
            reuse.record(run.state, t.id, fps.values[t.id], t.image, image_id)
        except StateFolderError as exc:  # the images are built: the summary comes first
            run.state_error = run.state_error or exc
            break


def summarise(run: Run) -> None:
    """The summary table, JSON results, step summary, report and metadata files; the exit."""
    args = run.args
    rows = [run.results[t] for t in run.plan.ids if t in run.results]
    rows += [r for t, r in run.results.items() if t not in run.plan.ids]  # merged indexes
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    sys.stdout.write(report.table(rows, width))
    if args.log_format == "json":
        for row in rows:
            log.info("result", **row.to_dict())
    again = _reproductions(run, rows) if run.context.ci else {}
    for target, line in again.items():
        print(f"reproduce {target} locally: {line}", file=sys.stderr)
    if run.context.step_summary is not None:
        try:
            with run.context.step_summary.open("a", encoding="utf-8") as fh:
                fh.write(report.markdown(rows, title=f"bake-ci {args.command}"))
                if again:
                    fh.write("**Reproduce locally**\n\n```sh\n" + "\n".join(again.values()) + "\n```\n\n")
        except OSError as exc:
            log.warning("cannot write the GitHub step summary", path=str(run.context.step_summary), error=exc.strerror)
    if args.report:
        document = {
            "command": args.command, "branch": run.branch, "output": run.output,
            "targets": [r.to_dict() for r in rows],
        }  # fmt: skip
        write_atomic(args.report, json.dumps(document, indent=2) + "\n")
    if args.metadata_file:
        metadata = run.executor.metadata if run.executor is not None else {}
        write_atomic(args.metadata_file, json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    if run.executor is not None and run.executor.interrupted:
        done = sum(r.ok for r in rows)
        raise Interrupted(f"stopped: {done} of {len(rows)} targets had finished; the others were cancelled.")
    failed = [r for r in rows if not r.ok]
    if run.state_error is not None:
        if args.progress != "quiet" and not isinstance(run.shown, display.Board):
            _print_logs([r for r in failed if r.status == "failed"], github=run.context.github_actions)
        done = sum(r.ok for r in rows)
        raise StateFolderError(f"{run.state_error} {done} of {len(rows)} targets were built or reused (above).")
    if failed:
        if args.progress != "quiet" and not isinstance(run.shown, display.Board):  # the board printed the tails
            _print_logs([r for r in failed if r.status == "failed"], github=run.context.github_actions)
        one_call = not (args.keep_going or args.warm) and len(rows) > 1
        raise BuildFailed(_failure_text(failed, run.project.config.registry, fail_fast=one_call, again=again))


def _reproductions(run: Run, rows: Sequence[report.Result]) -> dict[str, str]:
    """For each target, the command that gives a developer this job's environment: the
    image pushed for this commit with the job's command, or for a failed build the build."""
    from bake import shell

    command = shell.test_command(run.args.test_command, run.environ)
    pushed = run.output == "push" and run.writes is not None and run.writes.branch_tags and run.sha
    checkout = f"git checkout {run.sha[:7]} && " if run.sha else ""
    found = {}
    for row in rows:
        if row.ok:
            found[row.target] = shell.reproduction(row.target, run.sha if pushed else None, command)
        elif row.status == "failed":
            found[row.target] = f"{checkout}bake-ci build {row.target} --load"
    return found


def _print_logs(rows: Sequence[report.Result], github: bool) -> None:
    for row in rows:
        if not row.log_file or not Path(row.log_file).is_file():
            continue
        text = Path(row.log_file).read_text(encoding="utf-8", errors="replace")
        print(
            ci.group(f"log of {row.target}") if github else f"----- log of {row.target} ({row.log_file}) -----",
            file=sys.stderr,
        )
        # a build log can print workflow commands (RUN echo ::add-mask::...): GitHub must not obey them
        token = secrets.token_hex(16)
        if github:
            print(ci.stop_commands(token), file=sys.stderr)
        sys.stderr.write(text)
        if github:
            print(ci.resume_commands(token), file=sys.stderr)
        print(ci.endgroup() if github else "-----", file=sys.stderr, flush=True)


_UNAUTHORIZED_RE = re.compile(
    r"\b401\b|\b403\b|unauthorized|authentication required|no basic auth credentials|denied", re.IGNORECASE
)


def _failure_text(
    rows: Sequence[report.Result], registry: str | None, *, fail_fast: bool, again: Mapping[str, str] | None = None
) -> str:
    from bake.execute import is_transient

    parts = []
    for row in rows:
        if row.status == "cancelled":
            continue
        where = f" at {row.failed_step}" if row.failed_step else ""
        tries = f" after {row.attempts} attempts" if row.attempts > 1 else ""
        parts.append(f"{row.target} failed{where}{tries}: {row.error or 'see its log'}")
        parts += [f"    {line}" for line in row.log_tail[-10:]]
        if registry and row.error and is_transient(None, [row.error]):
            parts.append(
                f"    this is the registry or the network, not the build: check that {registry} is up and "
                "reachable from the builder (the failed request is above)."
            )
        elif registry and row.error and _UNAUTHORIZED_RE.search(row.error):
            host = registry.split("/", 1)[0]
            parts.append(
                f"    the registry refused the login: log in with `docker login {host}` (in GitHub Actions: "
                "docker/login-action) with an account that may push there, then run again."
            )
        if row.log_file:
            parts.append(f"    full log: {row.log_file}")
        if again and row.target in again:
            parts.append(f"    reproduce locally: {again[row.target]}")
    cancelled = [r.target for r in rows if r.status == "cancelled"]
    if cancelled:
        parts.append(
            f"Cancelled because another target of the same bake call failed: {', '.join(cancelled)}. "
            "Use --keep-going to build every target on its own."
        )
    elif fail_fast:
        parts.append(
            "The targets were built in one bake call, which stops at the first failure; "
            "use --keep-going to build every target on its own."
        )
    return "\n".join(parts)


def ask_local_images(run: Run) -> None:
    """status looks at the local images of its plan: they are asked for now, and the
    engine answers while the context is read."""
    from bake import local

    run.local_images = local.ask_local_images(run.plan, run.state)


def need_local_images(run: Run) -> None:
    """No engine is exit 3, before anything is shown: the answers to
    :func:`ask_local_images` say so (status asks nothing else of the engine)."""
    assert run.local_images is not None
    for t in run.plan.targets:
        run.local_images(t.image)


def print_status(run: Run) -> None:
    from bake import local

    assert run.fingerprints is not None
    rows = local.status(
        run.plan, run.state, run.output, run.fingerprints, run.project.config.registry, run.local_images
    )
    if run.args.json:
        sys.stdout.write(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
    else:
        sys.stdout.write(local.status_table(rows))


def pull(run: Run) -> None:
    from bake import local

    assert run.fingerprints is not None
    missing = local.pull(run.plan, run.state, run.fingerprints)
    if missing:
        raise BuildFailed(
            "the registry has no image for the current inputs of: "
            + ", ".join(missing)
            + f". Build them: bake-ci build {' '.join(missing)} --load"
        )


def doctor(run: Run) -> None:
    from bake import local

    found = local.doctor(run.args.config, run.environ, run.args.builder, run.args.state_dir)
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
            execute(BUILD, Run(build_args_, run.environ))

    run.exit_code = shell.enter(
        run.project, target, run.state, command=args.run_command, mount=args.mount, env=args.env,
        platform=args.platform, commit=args.commit, pr=args.pr, environ=run.environ, build=build_locally,
    )  # fmt: skip


def collect(run: Run) -> None:
    """Judge every ref of the image and cache repositories; delete what goes with --apply."""
    from bake.gc import run_gc

    run_gc(run.project, run.args, run.context)


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
    process.use_environment(environ)
    run = Run(args, environ)
    with process.sigterm_as_interrupt():
        execute(COMMANDS[args.command], run)
    return run.exit_code
