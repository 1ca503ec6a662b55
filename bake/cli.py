"""The ``bake-ci`` command line: parse, load, plan, execute; errors are caught once here."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from bake import __version__, config, engine, logs, report
from bake.errors import BakeError, BuildFailed, UsageError
from bake.plan import STATE_DIR, Output, Plan, Selection, build_plan, matrix, select
from bake.progress import Tracker, describe

log = structlog.get_logger("bake")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bake-ci",
        description="Build Python CI images per Dockerfile stage and Python version with docker buildx bake.",
    )
    parser.add_argument("--version", action="version", version=f"bake-ci {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, metavar="FILE", help="pyproject.toml with [tool.bake-ci] (default: ./pyproject.toml)"
    )
    common.add_argument(
        "--log-format",
        choices=["auto", "console", "json"],
        default="auto",
        help="log format (default: json when CI is set)",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log every command run")
    select_ = argparse.ArgumentParser(add_help=False)
    select_.add_argument(
        "targets", nargs="*", metavar="TARGET", help="identifiers (ci-py312), patterns (ci-*), stage or pyXY groups"
    )
    select_.add_argument("--stage", action="append", default=[], help="only this stage (repeatable)")
    select_.add_argument("--python", action="append", default=[], help="only this Python version X.Y (repeatable)")
    ref = argparse.ArgumentParser(add_help=False)
    out = ref.add_mutually_exclusive_group()
    out.add_argument(
        "--push", dest="output", action="store_const", const="push", help="push images and export registry cache"
    )
    out.add_argument(
        "--load", dest="output", action="store_const", const="load", help="load images into the local engine"
    )
    ref.add_argument("--branch", help="branch to tag and cache for (default: from CI variables or git)")

    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("plan", parents=[common, select_, ref], help="print the bake definition JSON handed to buildx")
    build = sub.add_parser("build", parents=[common, select_, ref], help="build the selected targets in one bake call")
    build.add_argument("--no-cache", action="store_true", help="do not use any cache")
    build.add_argument("--pull", action="store_true", help="always pull newer base images")
    build.add_argument("--builder", help="buildx builder to use (default: the current one)")
    build.add_argument("--metadata-file", type=Path, metavar="PATH", help="also write buildx's metadata file here")
    build.add_argument(
        "--progress",
        choices=["auto", "plain", "tty", "quiet"],
        default="auto",
        help="progress output (default: tty on a terminal, plain otherwise)",
    )
    sub.add_parser("matrix", parents=[common, select_], help='print {"include": [...]} for a CI matrix')
    return parser


def _output(args: argparse.Namespace, project: config.Project, environ: Mapping[str, str]) -> Output:
    wanted: Output | None = getattr(args, "output", None)
    if wanted == "push" and not project.config.registry:
        raise UsageError(
            "--push needs a registry, and none is configured. Set registry in "
            f"[{config.TABLE}] or BAKE_CI_REGISTRY, or build locally with --load."
        )
    if wanted is not None:
        return wanted
    return "push" if project.config.registry and environ.get("CI") else "load"


def _plan(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[config.Project, Plan]:
    project = config.load(args.config, environ)
    targets = select(matrix(project), Selection(args.targets, args.stage, args.python))
    branch = args.branch or engine.detect_branch(project.root, environ)
    sha = engine.detect_sha(project.root, environ)
    return project, build_plan(project, targets, branch=branch, sha=sha, output=_output(args, project, environ))


def cmd_plan(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    _, plan = _plan(args, environ)
    sys.stdout.write(plan.to_json())
    return 0


def cmd_matrix(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    project = config.load(args.config, environ)
    targets = select(matrix(project), Selection(args.targets, args.stage, args.python))
    include = [{"target": t.id, "stage": t.stage, "python": str(t.python)} for t in targets]
    sys.stdout.write(json.dumps({"include": include}) + "\n")
    return 0


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see the old content or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", delete=False, encoding="utf-8"
    ) as tmp:
        tmp.write(text)
    Path(tmp.name).replace(path)


def cmd_build(args: argparse.Namespace, environ: Mapping[str, str], log_format: str) -> int:
    project, plan = _plan(args, environ)
    ids = [t.id for t in plan.targets]
    exports_cache = any(t.get("cache-to") for t in plan.definition["target"].values())
    info = engine.check(args.builder, cache_export=exports_cache, environ=environ)

    state = project.root / STATE_DIR
    plan_file = state / "bake.json"
    write_atomic(plan_file, plan.to_json())
    files = [p for p in (project.bake_file, plan_file) if p is not None]
    metadata = args.metadata_file.resolve() if args.metadata_file else state / "metadata.json"
    metadata.unlink(missing_ok=True)

    progress = args.progress
    if progress == "auto":
        progress = "tty" if sys.stderr.isatty() and not environ.get("CI") else "plain"
    tracker = Tracker(ids) if progress != "tty" else None

    def on_status(status: dict[str, Any]) -> None:
        assert tracker is not None
        for event in tracker.feed(status):
            if progress != "plain":
                continue
            if log_format == "json":
                log.info(event.kind, target=event.target, step=event.vertex.name, text=describe(event))
            else:
                print(describe(event), file=sys.stderr, flush=True)

    def on_text(line: str) -> None:
        if progress != "quiet":
            print(line, file=sys.stderr, flush=True)

    log.info(
        "build",
        targets=ids,
        builder=info.builder,
        driver=info.driver,
        output=plan.definition["target"][ids[0]]["output"][0],
    )
    started = time.monotonic()
    run = engine.bake(
        files,
        ids,
        cwd=project.root,
        metadata_file=metadata,
        builder=args.builder,
        no_cache=args.no_cache,
        pull=args.pull,
        progress="tty" if progress == "tty" else "rawjson",
        on_status=on_status,
        on_text=on_text,
    )
    elapsed = time.monotonic() - started
    meta = report.load_metadata(metadata.read_text()) if metadata.exists() else {}
    tags = {t: plan.definition["target"][t]["tags"][0] for t in ids}
    rows = report.results(ids, tags, meta, tracker.targets if tracker else None, run.returncode == 0, elapsed)
    sys.stdout.write(report.table(rows))
    if log_format == "json":
        for row in rows:
            log.info("result", **row.to_dict())
    summary = environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with Path(summary).open("a", encoding="utf-8") as fh:
            fh.write(report.markdown(rows))
    if run.returncode != 0:
        raise BuildFailed(_failure_text(rows, tracker, run.messages))
    return 0


def _failure_text(rows: Sequence[report.Result], tracker: Tracker | None, messages: Sequence[str]) -> str:
    parts = []
    for row in rows:
        if row.status != "failed" or tracker is None:
            continue
        vertex = tracker.targets[row.target].failure
        assert vertex is not None
        tail = "\n".join(f"    {line}" for line in vertex.logs[-15:])
        parts.append(f"{row.target} failed at {vertex.name}: {vertex.error}" + (f"\n{tail}" if tail else ""))
    if not parts:
        parts = (
            [m for m in messages if m.startswith("ERROR")][-3:] or list(messages[-5:]) or ["docker buildx bake failed"]
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
        return cmd_build(args, env, fmt)
    except BakeError as exc:
        print(f"bake-ci: {exc.kind}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bake-ci: interrupted", file=sys.stderr)
        return 130
