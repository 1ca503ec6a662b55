"""The ``bake-ci`` command line: parse, load, plan, execute; errors are caught once here."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from bake import __version__, config, display, engine, logs, report, reuse
from bake.errors import BakeError, BuildFailed, EnvironmentProblem, Interrupted, UsageError
from bake.files import write_atomic
from bake.plan import STATE_DIR, Output, Plan, Selection, Target, build_plan, matrix, select

if TYPE_CHECKING:
    from bake.execute import Executor

# Command-specific modules (execute, local) are imported where they are used: every
# command pays for the imports at the top, and the reuse path is measured in tenths.

log = structlog.get_logger("bake")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bake-ci",
        description="Build Python CI images per Dockerfile stage and Python version with docker buildx bake.",
    )
    parser.add_argument("--version", action="version", version=f"bake-ci {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    add = common.add_argument
    add("--config", type=Path, metavar="FILE", help="pyproject.toml with [tool.bake-ci] (default: ./pyproject.toml)")
    add("--log-format", choices=["auto", "console", "json"], default="auto", help="default: json when CI is set")
    add("-v", "--verbose", action="store_true", help="log every command run")

    select_ = argparse.ArgumentParser(add_help=False)
    add = select_.add_argument
    add("targets", nargs="*", metavar="TARGET", help="identifiers (ci-py312), patterns ('ci-*'), stage or pyXY groups")
    add("--stage", action="append", default=[], help="only this stage (repeatable)")
    add("--python", action="append", default=[], help="only this Python version X.Y (repeatable)")

    branch = argparse.ArgumentParser(add_help=False)
    branch.add_argument("--branch", help="branch to tag and cache for (default: from CI variables or git)")

    def outputs(cache_only: bool) -> argparse.ArgumentParser:
        parent = argparse.ArgumentParser(add_help=False)
        out = parent.add_mutually_exclusive_group()
        out.add_argument("--push", dest="output", action="store_const", const="push", help="push images and cache")
        out.add_argument(
            "--load", dest="output", action="store_const", const="load", help="load images into the engine"
        )
        if cache_only:
            out.add_argument(
                "--cache-only", dest="output", action="store_const", const="cache-only",
                help="export registry cache and push no image",
            )  # fmt: skip
            add = parent.add_argument
            add("--no-reuse", action="store_true", help="build even when the registry has an image for the inputs")
            add("--cache-to", action="store_true", help="with --load: also export registry cache (off by default)")
        return parent

    ref = [outputs(cache_only=True), branch]

    run = argparse.ArgumentParser(add_help=False)
    add = run.add_argument
    add("--jobs", type=_positive, metavar="N", help="with --keep-going: at most N bake calls at once (default: all)")
    add("--retries", type=_count, default=2, metavar="N", help="retries after a registry or network failure (2)")
    add("--builder", help="buildx builder to use (default: the current one)")
    add("--metadata-file", type=Path, metavar="PATH", help="write buildx's metadata of every target here")
    add("--report", type=Path, metavar="FILE", help="write per-target results here as JSON")
    add(
        "--progress", choices=["auto", "plain", "tty", "quiet"], default="auto",
        help="auto: a live board on a terminal, plain lines elsewhere (grouped in GitHub Actions)",
    )  # fmt: skip

    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("plan", parents=[common, select_, *ref], help="print the bake definition JSON handed to buildx")
    build = sub.add_parser("build", parents=[common, select_, *ref, run], help="build the selected targets")
    add = build.add_argument
    add("--keep-going", action="store_true", help="one bake call per target, so a failure cancels nothing else")
    add("--no-cache", action="store_true", help="do not use any cache")
    add("--pull", action="store_true", help="always pull newer base images")
    sub.add_parser(
        "warm", parents=[common, select_, run],
        help="nightly: build every target as the default branch with fresh bases; push images and cache; keep going",
    )  # fmt: skip
    sub.add_parser("matrix", parents=[common, select_], help='print {"include": [...]} for a CI matrix')
    status = sub.add_parser(
        "status",
        parents=[common, select_, outputs(cache_only=False), branch],
        help="is each image up to date? what would build do?",
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub.add_parser(
        "pull", parents=[common, select_, branch], help="fetch the images for the current inputs from the registry"
    )
    doctor = sub.add_parser(
        "doctor", parents=[common], help="check docker, buildx, the engine, builder, registry, Dockerfile"
    )
    doctor.add_argument("--builder", help="buildx builder to check (default: the current one)")
    return parser


def _positive(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


@dataclass(frozen=True)
class Request:
    """What a command works on: the project, its selected targets, the branch and commit."""

    project: config.Project
    targets: list[Target]
    branch: str
    sha: str | None
    output: Output


def _output(args: argparse.Namespace, project: config.Project, environ: Mapping[str, str]) -> Output:
    wanted: Output | None = getattr(args, "output", None)
    if wanted in ("push", "cache-only") and not project.config.registry:
        raise UsageError(
            f"--{wanted} needs a registry, and none is configured. Set registry in "
            f"[{config.TABLE}] or BAKE_CI_REGISTRY, or build locally with --load."
        )
    if wanted is not None:
        return wanted
    return "push" if project.config.registry and environ.get("CI") else "load"


def _request(args: argparse.Namespace, environ: Mapping[str, str]) -> Request:
    project = config.load(args.config, environ)
    targets = select(matrix(project), Selection(args.targets, args.stage, args.python))
    output: Output
    if args.command == "warm":
        if not project.config.registry:
            raise UsageError(
                f"warm fills the registry cache, and no registry is configured. Set registry in [{config.TABLE}] "
                "or BAKE_CI_REGISTRY."
            )
        branch, output = project.config.default_branch, "push"
    else:
        branch = getattr(args, "branch", None) or engine.detect_branch(project.root, environ)
        output = _output(args, project, environ)
    return Request(project, targets, branch, engine.detect_sha(project.root, environ), output)


def _fingerprints(request: Request, quiet: bool = False) -> reuse.Fingerprints:
    """Fingerprints of the request's targets (their build args come from a plain plan)."""
    plain = build_plan(request.project, request.targets, branch=request.branch, sha=None, output="load")
    args = {t.id: plain.definition["target"][t.id]["args"] for t in request.targets}
    fps = reuse.compute(request.project, request.targets, args)
    for target, why in fps.missing.items():
        (log.debug if quiet else log.warning)("no fingerprint", target=target, reason=why)
    return fps


def _plan(request: Request, args: argparse.Namespace) -> tuple[Plan, reuse.Fingerprints | None]:
    """The plan as build runs it: pushed images carry their fingerprint tag and label."""
    fps = None
    if request.output == "push" and not getattr(args, "no_reuse", False):
        fps = _fingerprints(request)
    plan = build_plan(
        request.project,
        request.targets,
        branch=request.branch,
        sha=request.sha,
        output=request.output,
        fingerprints={t: fp.value for t, fp in fps.values.items()} if fps else None,
        export_cache=True if getattr(args, "cache_to", False) else None,
    )
    return plan, fps


def cmd_plan(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    plan, _ = _plan(_request(args, environ), args)
    sys.stdout.write(plan.to_json())
    return 0


def cmd_matrix(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    project = config.load(args.config, environ)
    targets = select(matrix(project), Selection(args.targets, args.stage, args.python))
    include = [{"target": t.id, "stage": t.stage, "python": str(t.python)} for t in targets]
    sys.stdout.write(json.dumps({"include": include}) + "\n")
    return 0


def cmd_build(args: argparse.Namespace, environ: Mapping[str, str], log_format: str) -> int:
    warm = args.command == "warm"
    request = _request(args, environ)
    project = request.project
    plan, fps = _plan(request, args)
    ids = [t.id for t in plan.targets]
    shown = display.choose(args.progress, ids, dict(environ), json_logs=log_format == "json")
    reused: dict[str, report.Result] = {}
    built: list[report.Result] = []
    executor: Executor | None = None
    with engine.sigterm_as_interrupt():
        try:
            if fps is not None and request.output == "push" and not warm:
                reused = reuse.reuse(plan, fps)  # needs only the registry: no engine check yet
                for row in reused.values():
                    shown.finished(row, None)
            if len(reused) < len(ids):
                executor = _executor(args, request, plan, shown, warm)
                if fps is None and request.output == "load":
                    fps = _fingerprints(request, quiet=True)  # not in the plan; recorded for status
                built = executor.run([t for t in ids if t not in reused])
        finally:
            shown.close()
    by_target = {**reused, **{r.target: r for r in built}}
    rows = [by_target[t] for t in ids]
    if fps is not None:
        _record(project, plan, fps, rows, request.output)

    sys.stdout.write(report.table(rows))
    if log_format == "json":
        for row in rows:
            log.info("result", **row.to_dict())
    summary = environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with Path(summary).open("a", encoding="utf-8") as fh:
            fh.write(report.markdown(rows, title=f"bake-ci {args.command}"))
    if args.report:
        document = {
            "command": args.command, "branch": request.branch, "output": request.output,
            "targets": [r.to_dict() for r in rows],
        }  # fmt: skip
        write_atomic(args.report, json.dumps(document, indent=2) + "\n")
    if args.metadata_file:
        metadata = executor.metadata if executor is not None else {}
        write_atomic(args.metadata_file, json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    if executor is not None and executor.interrupted:
        done = sum(r.status in ("built", "reused") for r in rows)
        raise Interrupted(f"stopped: {done} of {len(rows)} targets had finished; the others were cancelled.")
    failed = [r for r in rows if r.status in ("failed", "cancelled")]
    if failed:
        if args.progress != "quiet":
            _print_logs([r for r in failed if r.status == "failed"], github=environ.get("GITHUB_ACTIONS") == "true")
        raise BuildFailed(_failure_text(failed, project.config.registry))
    return 0


def _executor(args: argparse.Namespace, request: Request, plan: Plan, shown: display.Display, warm: bool) -> Executor:
    """Check the engine can do the build, write the plan, and set up its execution."""
    from bake.execute import Executor, Options

    exports_cache = any(t.get("cache-to") for t in plan.definition["target"].values())
    info = engine.check(args.builder, cache_export=exports_cache)
    state = request.project.root / STATE_DIR
    plan_file = state / "bake.json"
    write_atomic(plan_file, plan.to_json())
    options = Options(
        keep_going=warm or args.keep_going,
        jobs=args.jobs,
        retries=args.retries,
        builder=args.builder,
        no_cache=getattr(args, "no_cache", False),
        pull=warm or args.pull,
    )
    log.info(
        "build", targets=[t.id for t in plan.targets], branch=request.branch, output=request.output,
        keep_going=options.keep_going, builder=info.builder, driver=info.driver,
    )  # fmt: skip
    return Executor(
        plan,
        root=request.project.root,
        files=[p for p in (request.project.bake_file, plan_file) if p is not None],
        state=state,
        options=options,
        display=shown,
    )


def _record(
    project: config.Project, plan: Plan, fps: reuse.Fingerprints, rows: Sequence[report.Result], output: Output
) -> None:
    """Remember the fingerprint of each image now in the local engine (built; reused ones are not)."""
    if output == "cache-only":
        return
    built = [r.target for r in rows if r.status == "built" and r.target in fps.values]
    tags = [plan.definition["target"][t]["tags"][0] for t in built]
    for target, tag, image_id in zip(built, tags, reuse.parallel(engine.local_image_id, tags), strict=True):
        reuse.record(project, target, fps.values[target], tag, image_id)


def cmd_status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    request = _request(args, environ)
    from bake import local

    rows = local.status(request.project, request.targets, request.branch, request.output, _fingerprints(request))
    if args.json:
        sys.stdout.write(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
    else:
        sys.stdout.write(local.status_table(rows))
    return 0


def cmd_pull(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    request = _request(args, environ)
    if not request.project.config.registry:
        raise UsageError(
            f"pull needs a registry, and none is configured. Set registry in [{config.TABLE}] or BAKE_CI_REGISTRY."
        )
    plan = build_plan(request.project, request.targets, branch=request.branch, sha=request.sha, output="load")
    from bake import local

    missing = local.pull(request.project, plan, _fingerprints(request))
    if missing:
        raise BuildFailed(
            "the registry has no image for the current inputs of: "
            + ", ".join(missing)
            + f". Build them: bake-ci build {' '.join(missing)} --load"
        )
    return 0


def cmd_doctor(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from bake import local

    checks = local.doctor(args.config, environ, args.builder)
    width = max(len(c.name) for c in checks)
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        print(f"{mark}  {check.name.ljust(width)}  {check.detail}")
        if not check.ok and check.fix:
            print(f"      {' ' * width}  fix: {check.fix}")
    failed = [c for c in checks if not c.ok]
    if failed:
        print(f"\n{len(failed)} of {len(checks)} checks failed.", file=sys.stderr)
        return EnvironmentProblem.exit_code
    return 0


def _print_logs(rows: Sequence[report.Result], github: bool) -> None:
    for row in rows:
        if not row.log_file or not Path(row.log_file).is_file():
            continue
        text = Path(row.log_file).read_text(encoding="utf-8", errors="replace")
        print(
            f"::group::log of {row.target}" if github else f"----- log of {row.target} ({row.log_file}) -----",
            file=sys.stderr,
        )
        sys.stderr.write(text)
        print("::endgroup::" if github else "-----", file=sys.stderr, flush=True)


def _failure_text(rows: Sequence[report.Result], registry: str | None) -> str:
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
        if row.log_file:
            parts.append(f"    full log: {row.log_file}")
    cancelled = [r.target for r in rows if r.status == "cancelled"]
    if cancelled:
        parts.append(
            f"Cancelled because another target of the same bake call failed: {', '.join(cancelled)}. "
            "Use --keep-going to build every target on its own."
        )
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    args = _parser().parse_args(argv)
    fmt = logs.resolve(args.log_format, env)
    logs.configure(fmt, args.verbose)
    try:
        if args.command == "plan":
            return cmd_plan(args, env)
        if args.command == "matrix":
            return cmd_matrix(args, env)
        if args.command == "status":
            return cmd_status(args, env)
        if args.command == "pull":
            return cmd_pull(args, env)
        if args.command == "doctor":
            return cmd_doctor(args, env)
        return cmd_build(args, env, fmt)
    except BakeError as exc:
        print(f"bake-ci: {exc.kind}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bake-ci: interrupted", file=sys.stderr)
        return 130
