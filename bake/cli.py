"""The ``bake-ci`` command line: arguments in, a command's steps run, errors caught once here."""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NoReturn

from bake import __version__

if TYPE_CHECKING:
    from bake.args import Args

#: bake.retry.RETRIES (not imported here: --version and usage errors import nothing else)
RETRIES = 8

# Everything else is imported once the arguments are parsed (--version and usage errors
# need none of it), and command-specific modules (execute, local, the engine checks)
# where they are used: the reuse path is measured in tenths of a second.


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
    add(
        "--state-dir", type=Path, metavar="DIR",
        help="bake-ci's own files (logs, records, local cache); default: under the user's cache folder",
    )  # fmt: skip

    select_ = argparse.ArgumentParser(add_help=False)
    add = select_.add_argument
    add("targets", nargs="*", metavar="TARGET", help="identifiers (ci-py312), patterns ('ci-*'), stage or pyXY groups")
    add("--stage", action="append", default=[], help="only this stage (repeatable)")
    add("--python", action="append", default=[], help="only this Python version X.Y (repeatable)")

    branch = argparse.ArgumentParser(add_help=False)
    branch.add_argument("--branch", help="branch to tag and cache for (default: from CI variables or git)")
    platform = argparse.ArgumentParser(add_help=False)
    platform.add_argument(
        "--platform", metavar="OS/ARCH",
        help="one platform of a multi-platform project (default: every platform; status, pull, --load: the engine's)",
    )  # fmt: skip

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

    ref = [outputs(cache_only=True), branch, platform]

    run = argparse.ArgumentParser(add_help=False)
    add = run.add_argument
    add("--jobs", type=_positive, metavar="N", help="with --keep-going: at most N bake calls at once (default: all)")
    add(
        "--retries", type=_count, default=RETRIES, metavar="N",
        help=f"retries after a registry or network failure ({RETRIES}; none starts a minute after the first failure)",
    )  # fmt: skip
    add("--builder", help="buildx builder to use (default: the current one)")
    add("--metadata-file", type=Path, metavar="PATH", help="write buildx's metadata of every target here")
    add("--report", type=Path, metavar="FILE", help="write per-target results here as JSON")
    add(
        "--progress", choices=["auto", "plain", "tty", "quiet"], default="auto",
        help="auto: a live board on a terminal, plain lines elsewhere (grouped in GitHub Actions)",
    )  # fmt: skip
    add(
        "--test-command", metavar="CMD",
        help="the CI job's command, for the line that reproduces it locally (default: $BAKE_CI_TEST_COMMAND)",
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
        help="nightly: build every target with fresh bases, push images and cache, keep going (push, schedule or "
        "manual runs only)",
    )  # fmt: skip
    matrix = sub.add_parser("matrix", parents=[common, select_], help='print {"include": [...]} for a CI matrix')
    matrix.add_argument(
        "--per", choices=["target", "platform", "target-platform"], default="target",
        help="one entry per target (default), per platform, or per (target, platform)",
    )  # fmt: skip
    merge = sub.add_parser(
        "merge", parents=[common, select_, branch],
        help="write each target's multi-platform index from its platforms' pushed images (no pull)",
    )  # fmt: skip
    merge.add_argument("--report", type=Path, metavar="FILE", help="write per-target results here as JSON")
    status = sub.add_parser(
        "status",
        parents=[common, select_, outputs(cache_only=False), branch, platform],
        help="is each image up to date? what would build do?",
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub.add_parser(
        "pull",
        parents=[common, select_, branch, platform],
        help="fetch the images for the current inputs from the registry",
    )
    environment = argparse.ArgumentParser(add_help=False)
    add = environment.add_argument
    add("target", metavar="TARGET", help="the target whose image to run, e.g. ci-py312")
    add("--no-mount", dest="mount", action="store_false", help="do not mount the checkout at the image's WORKDIR")
    add("-e", "--env", action="append", default=[], metavar="VAR[=VALUE]", help="pass VAR through, or set it")
    add("--platform", help="run the image of this platform, e.g. linux/arm64")
    exact = environment.add_mutually_exclusive_group()
    exact.add_argument("--commit", metavar="SHA", help="the image CI pushed for this commit (no build)")
    exact.add_argument("--pr", type=_positive, metavar="N", help="the image CI pushed for pull request N (no build)")
    sub.add_parser(
        "shell", parents=[common, environment, branch],
        help="a shell in a target's CI image, the checkout mounted (the image found, pulled or built)",
    )  # fmt: skip
    run_ = sub.add_parser(
        "run", parents=[common, environment, branch],
        help="run a command in a target's CI image: bake-ci run ci-py312 -- pytest",
    )  # fmt: skip
    run_.add_argument("run_command", nargs="*", metavar="-- COMMAND", help="the command and its arguments")
    gc_ = sub.add_parser(
        "gc", parents=[common], help="delete the registry refs no live branch, request or reuse needs (dry run)"
    )
    add = gc_.add_argument
    add("--apply", action="store_true", help="delete (without it: only say what would be deleted, and why)")
    add("--json", action="store_true", help="print JSON instead of a table")
    add("--grace", metavar="DURATION", help="nothing written this recently is deleted (1h, 30m, 0)")
    add("--branches", dest="branches_file", type=Path, metavar="FILE", help="live branches, one a line")
    add("--remote", metavar="NAME", help="the remote whose branches are live (default: origin)")
    add("--branch", help="the branch this run is on (default: from CI variables or git)")
    for key, kind in (("branch-days", float), ("pr-days", float), ("commit-days", float), ("keep-fingerprints", int)):
        add(f"--{key}", type=kind, metavar="N", help=f"override retention.{key}")
    doctor = sub.add_parser(
        "doctor", parents=[common], help="check docker, buildx, the engine, builder, registry, Dockerfile"
    )
    doctor.add_argument("--builder", help="buildx builder to check (default: the current one)")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, parsed. Everything after the first ``--`` is ``run``'s command
    (argparse alone would take it for the command's own options)."""
    args = list(sys.argv[1:] if argv is None else argv)
    command: list[str] | None = None
    if "--" in args:
        at = args.index("--")
        args, command = args[:at], args[at + 1 :]
    parser = _parser()
    ns = parser.parse_args(args)
    if command is not None:
        if ns.command != "run":
            parser.error(f"only run takes a command after --, not {ns.command}")
        ns.run_command = [*ns.run_command, *command]
    if ns.command == "run" and not ns.run_command:
        parser.error("run needs a command: bake-ci run TARGET -- COMMAND [ARGS...] (or bake-ci shell TARGET)")
    return ns


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


def _args(ns: argparse.Namespace, log_format: Literal["console", "json"]) -> Args:
    """The parsed command line as typed arguments (options a command lacks keep their defaults)."""
    from dataclasses import fields

    from bake.args import Args

    given = vars(ns)
    renamed = {"stage": "stages", "python": "pythons"}
    values = {renamed.get(k, k): v for k, v in given.items() if k != "log_format"}
    if "target" in values:  # shell, run: one target
        values["targets"] = [values.pop("target")]
    for key in ("targets", "stages", "pythons", "run_command", "env"):
        values[key] = tuple(values.get(key) or ())
    known = {f.name for f in fields(Args)}
    return Args(**{k: v for k, v in values.items() if k in known}, log_format=log_format)


def _crash_report(exc: BaseException) -> str:
    """Write the full traceback of an unexpected error to a file of its own; its path."""
    import tempfile
    import traceback

    from bake.redact import redact

    fd, path = tempfile.mkstemp(prefix="bake-ci-crash-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"bake-ci {__version__}, Python {sys.version.split()[0]}\n")
        fh.write(redact("".join(traceback.format_exception(exc))))
    return path


def run() -> NoReturn:
    """The console script: :func:`main`, then out at once. The interpreter's own
    clean-up would free every object of a large context one by one (about 20 ms on
    20,000 files) and has nothing else to do: bake-ci's files are written and closed,
    and its children stopped, before main returns."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that went away, as at a normal exit
            stream.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    # A run on the reuse path allocates hundreds of thousands of small objects for a
    # large context (paths, lstat entries, records) and frees them at the end; none of
    # them form cycles, and the cyclic collector would only walk them over and over
    # (about 25 ms on a 20,000-file context). It is off until a build starts
    # (workflow.build turns it on), and as it was when main returns.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _main(argv, environ)
    finally:
        if collecting:
            gc.enable()


def _main(argv: Sequence[str] | None, environ: Mapping[str, str] | None) -> int:
    env = os.environ if environ is None else environ
    ns = parse_args(argv)
    from bake import ci, logs

    fmt = logs.resolve(ns.log_format, in_ci=ci.running_in_ci(env))
    logs.configure(fmt, ns.verbose)
    from bake.engine.process import CommandFailed
    from bake.errors import BakeError
    from bake.redact import redact
    from bake.registry import RegistryError

    try:
        from bake.workflow import run_command

        return run_command(_args(ns, fmt), env)
    except BakeError as exc:
        print(f"bake-ci: {exc.kind}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bake-ci: interrupted", file=sys.stderr)
        return 130
    except CommandFailed as exc:  # docker, buildx or git said no, outside a build
        said = exc.output.strip().splitlines()[-1] if exc.output.strip() else "no output"
        print(f"bake-ci: error: {exc}: {redact(said)[:500]}", file=sys.stderr)
        return 1
    except RegistryError as exc:  # the registry stayed unreachable while it was asked again and again
        print(f"bake-ci: error: the registry did not answer: {redact(str(exc))[:500]}", file=sys.stderr)
        return 1
    except Exception as exc:  # the last resort: one line and a file to attach to a bug report
        path = _crash_report(exc)
        print(
            f"bake-ci: internal error: {type(exc).__name__}: {redact(str(exc))[:300]} "
            f"(this is a bug in bake-ci; the full traceback is in {path}, please attach it to a bug report)",
            file=sys.stderr,
        )
        return 1
