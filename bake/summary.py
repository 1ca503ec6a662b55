"""The end of a run, for people: the summary table, the JSON results, GitHub's step
summary, the report and metadata files; for failed targets their logs, the failure text
with its likely cause, and the command that reproduces each target locally."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bake import display, logs, report, workflow_commands
from bake.errors import BuildFailed, Interrupted, StateFolderError
from bake.files import write_atomic

if TYPE_CHECKING:
    from bake.run import Run

log = logs.get_logger("bake")


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
            workflow_commands.group(f"log of {row.target}")
            if github
            else f"----- log of {row.target} ({row.log_file}) -----",
            file=sys.stderr,
        )
        # a build log can print workflow commands (RUN echo ::add-mask::...): GitHub must not obey them
        token = secrets.token_hex(16)
        if github:
            print(workflow_commands.stop_commands(token), file=sys.stderr)
        sys.stderr.write(text)
        if github:
            print(workflow_commands.resume_commands(token), file=sys.stderr)
        print(workflow_commands.endgroup() if github else "-----", file=sys.stderr, flush=True)


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
