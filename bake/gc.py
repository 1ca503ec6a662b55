"""``bake-ci gc``: keep the registry bounded without ever breaking a live image or cache.

A dry run by default: every tag of the image and cache repositories gets a row (verdict
and reason, from :mod:`bake.retention`) and the bytes deleting would free are added up.
``--apply`` removes what goes (:class:`bake.prune.Remover`). gc deletes, so it follows
the trust policy: only a push, schedule or manual run (a developer's own command
included) of the default branch may run it (:func:`check_trust`). See docs/retention.md.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bake import auth, ci, config, holdings, inventory, logs, policy, prune, registry, retention, retry
from bake.args import Args
from bake.cache import fingerprint_ref
from bake.engine import git
from bake.engine.process import CommandFailed, Runner
from bake.errors import BakeError, EnvironmentProblem, UsageError
from bake.naming import platform_suffix, tag_prefix
from bake.plan import build_plan, matrix
from bake.redact import redact
from bake.report import align

log = logs.get_logger("bake.gc")

HOSTED = (
    "Registries that do not delete through the distribution API have their own mechanism: GHCR deletes "
    "package versions through its REST API (DELETE /user/packages/container/NAME/versions/ID, or "
    "actions/delete-package-versions), Docker Hub deletes tags through its Hub API "
    "(DELETE /v2/repositories/NAMESPACE/REPO/tags/TAG), GitLab runs cleanup policies per project "
    "(Settings > Packages and registries), and ECR applies lifecycle rules per repository. A "
    "distribution registry needs storage.delete.enabled: true, and the login needs delete permission."
)


class GcStopped(BakeError):
    """gc could not finish: the registry refused deletes, or stayed busy (exit 1)."""

    exit_code = 1
    kind = "gc stopped"


class RegistryUnreachable(EnvironmentProblem):
    """The registry could not be reached (exit 3)."""


def settings(cfg: config.RetentionConfig, args: Args) -> retention.Settings:
    """The configured retention, with the command line's overrides."""
    grace = args.grace if args.grace is not None else cfg.grace
    try:
        grace_seconds = config.seconds(grace)
    except ValueError as exc:
        raise UsageError(f"--grace {grace}: {exc}.") from None
    for option, value in (("--branch-days", args.branch_days), ("--pr-days", args.pr_days),
                          ("--commit-days", args.commit_days)):  # fmt: skip
        if value is not None and not value > 0:
            raise UsageError(f"{option} {value:g}: give a number of days above 0, e.g. {option} 14.")
    if args.keep_fingerprints is not None and args.keep_fingerprints < 0:
        raise UsageError(f"--keep-fingerprints {args.keep_fingerprints}: give 0 or more, e.g. --keep-fingerprints 5.")
    return retention.Settings(
        branch_days=args.branch_days if args.branch_days is not None else cfg.branch_days,
        pr_days=args.pr_days if args.pr_days is not None else cfg.pr_days,
        commit_days=args.commit_days if args.commit_days is not None else cfg.commit_days,
        keep_fingerprints=args.keep_fingerprints if args.keep_fingerprints is not None else cfg.keep_fingerprints,
        grace=grace_seconds,
    )


def check_trust(context: ci.Context, branch: str, default_branch: str) -> None:
    """gc deletes other branches' refs: only where ``warm`` of the default branch may run
    (:func:`bake.policy.policy`, command ``gc``); elsewhere a UsageError (exit 2)."""
    policy.policy(context, branch=branch, default_branch=default_branch, output="push", command="gc")


@dataclass(frozen=True)
class Live:
    """The live branches (by the identity their refs are named after) and open requests."""

    branches: dict[str, float | None]
    source: str
    open_prs: frozenset[int] | None
    heads: frozenset[str]
    #: full hashes of the live branches' heads, where known
    head_commits: tuple[str, ...] = ()


def read_branches(path: Path) -> Live:
    """``--branches FILE``: one branch a line, optionally followed by its last commit's time
    (unix seconds or ISO 8601); ``pr-N`` lines list the open pull requests; ``#`` comments."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"--branches {path}: cannot be read ({exc.strerror}). Name a file listing the live branches."
        ) from None
    branches: dict[str, float | None] = {}
    prs: set[int] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, when = line.partition(" ")
        if retention.kind_of("image", name)[0] == "pr" and not when:
            prs.add(int(name[3:]))
            continue
        branches[name] = _when(when.strip(), path, number) if when.strip() else None
    return Live(branches, str(path), frozenset(prs) if prs else None, frozenset())


def _when(text: str, path: Path, line: int) -> float:
    when = float(text) if text.replace(".", "", 1).isdigit() else inventory.parse_time(text)
    if when is None:
        raise UsageError(
            f"--branches {path}, line {line}: {text!r} is not a time; write unix seconds or an ISO 8601 time "
            "(2026-01-31T12:00:00Z) after the branch name, or nothing."
        )
    return when


def live_branches(runner: Runner, root: Path, args: Args) -> Live:
    """Per ``--branches FILE``, else ``git ls-remote --heads REMOTE``, else the local branches."""
    if args.branches_file is not None:
        return read_branches(args.branches_file)
    remote = args.remote or "origin"
    remotes = git.remotes(runner, root)
    if remote in remotes:
        try:
            heads = git.remote_heads(runner, remote, root)
        except CommandFailed as exc:
            said = redact(exc.output.strip().splitlines()[-1] if exc.output.strip() else str(exc))
            raise EnvironmentProblem(
                f"git ls-remote --heads {remote} failed ({said[:200]}): gc cannot tell which branches are live, "
                "so it deletes nothing. Check the remote and its credentials, or pass --branches FILE."
            ) from None
        times = git.commit_times(runner, sorted(set(heads.values())), root)
        live = {name: times.get(sha) for name, sha in heads.items()}
        shas = tuple(heads.values())
        return Live(live, f"git ls-remote --heads {remote}", None, frozenset(s[:7] for s in shas), shas)
    if args.remote:
        raise UsageError(f"--remote {args.remote}: the checkout has no such remote (it has: {remotes or 'none'}).")
    local = git.local_heads(runner, root)
    if not local:
        raise UsageError(
            "gc cannot tell which branches are live: the project is not in a git checkout with a remote or "
            "branches. Pass --branches FILE (one live branch a line)."
        )
    shas = tuple(sha for sha, _ in local.values())
    live = {n: t for n, (_, t) in local.items()}
    return Live(live, "the checkout's local branches", None, frozenset(s[:7] for s in shas), shas)


def facts(runner: Runner, project: config.Project, live: Live, found: holdings.Survey, now: float) -> retention.Facts:
    cfg = project.config
    pushed = ci.Context(provider="local", ci=False, event="push")
    branches: dict[str, float | None] = {}
    for name, when in live.branches.items():
        branches[policy.identity(pushed, name)] = when
    plan = build_plan(project, matrix(project), branch=cfg.default_branch, sha=None, output="push")
    by_prefix = {tag_prefix(t.target.stage, t.target.python): t for t in plan.targets}
    platform_named = {platform_suffix(p)[2:]: p for p in cfg.platforms}
    cache_of: dict[str, str] = {}
    for ref in found.refs:
        base, suffix = retention.platform_of(ref.tag)
        parts = retention.split(base, by_prefix)
        if ref.repo != "image" or not ref.fingerprint or parts is None or parts[1] != f"fp-{ref.fingerprint[:12]}":
            continue
        if suffix and suffix not in platform_named:
            continue  # a platform no longer configured: its cache ref cannot be named
        target = dataclasses.replace(by_prefix[parts[0]], platform=platform_named[suffix] if suffix else None)
        cache_ref = fingerprint_ref(target, ref.fingerprint)
        if cache_ref:
            cache_of[cache_ref.rpartition(":")[2]] = ref.tag
    shas = sorted(
        {
            parts[1]
            for r in found.refs
            if r.repo == "image"
            for parts in [retention.split(retention.platform_of(r.tag)[0], by_prefix)]
            if parts and retention.kind_of("image", parts[1])[0] == "commit"
        }
    )
    reachable = git.reachable(runner, live.head_commits, project.root) if live.head_commits else None
    return retention.Facts(
        now=now,
        prefixes=list(by_prefix),
        default_branch=cfg.default_branch,
        fallback_branches=cfg.fallback_branches,
        branches=branches,
        branches_from=live.source,
        open_prs=live.open_prs,
        commits=git.commit_times(runner, shas, project.root) if shas else {},
        heads=live.heads,
        reachable=frozenset(c[:7] for c in reachable) if reachable is not None else None,
        cache_of=cache_of,
        children={digest: frozenset(kids) for digest, kids in found.children.items()},
    )


def _size(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 1e5 else f"{n:,} B"


def render(
    verdicts: Sequence[retention.Verdict],
    names: Mapping[retention.Repo, str],
    outcomes: Mapping[tuple[str, str], prune.Outcome],
    freed: int,
    *,
    apply: bool,
) -> str:
    rows = [["REPOSITORY", "TAG", "DIGEST", "VERDICT", "HOW", "REASON"]]
    how = {"keep": "-", "delete": "manifest", "untag": "tag only"}
    for v in verdicts:
        done = outcomes.get((v.ref.repo, v.ref.tag))
        reason = v.reason + (f" [{done.done}]" if done else "")
        verdict = "keep" if v.keep else "delete"
        rows.append([names[v.ref.repo], v.ref.tag, v.ref.digest[7:19], verdict, how[v.action], reason])
    going = [v for v in verdicts if not v.keep]
    manifests = len({(v.ref.repo, v.ref.digest) for v in going if v.action == "delete"})
    untags = sum(v.action == "untag" for v in going)
    summary = (
        f"{len(verdicts)} refs: {len(verdicts) - len(going)} kept, {len(going)} to go "
        f"({manifests} manifests deleted, {untags} tags untagged); frees up to {_size(freed)} of blobs "
        "once the registry's garbage collector runs"
    )
    if apply:
        removed = sum(o.ok and o.done in ("deleted", "untagged", "gone already") for o in outcomes.values())
        summary += f". Applied: {removed} of {len(going)} removed"
    else:
        summary += ". Dry run: nothing was deleted (--apply deletes)"
    return align(rows, last_free=True) + summary + ".\n"


def run_gc(runner: Runner, project: config.Project, args: Args, context: ci.Context, now: float | None = None) -> None:
    cfg = project.config
    if not cfg.registry:
        raise UsageError(f"gc cleans a registry, and none is configured. Set registry in [{config.TABLE}].")
    branch = args.branch or context.branch or git.head(runner, project.root)[0]
    check_trust(context, branch, cfg.default_branch)
    chosen = settings(cfg.retention, args)
    live = live_branches(runner, project.root, args)
    names: dict[retention.Repo, str] = {
        "image": f"{cfg.registry}/{cfg.image}",
        "cache": f"{cfg.registry}/{cfg.image}{config.CACHE_SUFFIX}",
    }
    repos = {kind: registry.Reference.parse(f"{name}:x") for kind, name in names.items()}
    # gc retries each request itself (prune.Registry, on the client's schedule): the client does not as well
    schedule = registry.policy(runner.environ)
    reg = prune.Registry(registry.Client(auth.logins(runner), policy=retry.Policy(retries=0)), policy=schedule)
    prefixes = [tag_prefix(s, p) for s in project.stages for p in cfg.pythons]
    try:
        found = inventory.survey(reg, repos, prefixes)
    except (prune.Again, registry.RegistryError) as exc:
        raise RegistryUnreachable(
            f"the registry {cfg.registry} could not be read ({redact(str(exc))}); nothing was deleted. Check that "
            "it is up and reachable, then run gc again."
        ) from None
    now = time.time() if now is None else now
    verdicts = retention.classify(found.refs, facts(runner, project, live, found, now), chosen)
    verdicts = retention.actions(verdicts, found.reached(verdicts))
    freed = retention.freed(verdicts, found.blobs)
    outcomes: dict[tuple[str, str], prune.Outcome] = {}
    stopped: prune.Stopped | None = None
    if args.apply:
        try:
            done = prune.Remover(reg, repos, prefixes, found, verdicts).run()
        except prune.Stopped as exc:
            stopped, done = exc, exc.outcomes
        outcomes = {(o.verdict.ref.repo, o.verdict.ref.tag): o for o in done}
    if args.json:
        document = {
            "apply": args.apply,
            "repositories": names,
            "bytes_freed": freed,
            "refs": [
                {**v.to_dict(), "repository": names[v.ref.repo], **_done(outcomes.get((v.ref.repo, v.ref.tag)))}
                for v in verdicts
            ],
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write(render(verdicts, names, outcomes, freed, apply=args.apply))
    sys.stdout.flush()
    failed = [o for o in outcomes.values() if not o.ok]
    if stopped is not None:
        left = len(failed)
        if stopped.refused:
            raise GcStopped(
                f"the registry {cfg.registry} refused to delete ({stopped}). {left} refs were not removed "
                f"(listed above). {HOSTED}"
            )
        if stopped.unreachable:
            raise RegistryUnreachable(
                f"the registry {cfg.registry} went away during gc ({stopped}); {left} refs were not removed "
                "(listed above), every ref kept is untouched. Run gc again once the registry is back."
            )
        raise GcStopped(
            f"the registry {cfg.registry} kept answering 'later' ({stopped}) after retries with backoff; {left} "
            "refs were not removed (listed above). Run gc again later: it picks up where this run stopped."
        )
    if failed:
        raise GcStopped(f"{len(failed)} refs could not be removed (listed above, with the registry's answer).")


def _done(outcome: prune.Outcome | None) -> dict[str, object]:
    return {} if outcome is None else {"done": outcome.done, "ok": outcome.ok}
