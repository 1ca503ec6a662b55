"""The trust policy: what a run may write to the registry, from its CI event (pure).

One function, :func:`policy`, decides it for every command that writes (``build``,
``warm``, and ``merge`` and ``gc`` as they come): which tags and cache ref a run writes,
whether it writes the default branch's bare tags and fingerprint tags (which every branch
reuses without building), and which cache it reads. :func:`identity` names what a run's
refs are made of. The event comes from :func:`bake.ci.detect`; nothing here reads the
environment or runs a process.

The rules, and why, are in README.md (Security) and docs/tags.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from bake.args import Output
from bake.ci import Context
from bake.errors import UsageError
from bake.naming import branch_name, slug

#: The commands that write to the registry. ``build`` and ``merge`` write what the event
#: allows (and degrade where it allows less); ``warm`` and ``gc`` need a trusted event and
#: are refused (exit 2) elsewhere.
Command = Literal["build", "warm", "merge", "gc"]

#: Events whose code landed on a branch of the repository: only they write fingerprint
#: tags, and only they write the default branch's refs.
TRUSTED_EVENTS = ("push", "schedule", "manual")


def _same_ref(a: str, b: str) -> bool:
    """Two names that give the same tags and cache refs (tags are lowercased and reduced)."""
    return slug(a, 128) == slug(b, 128)


def identity(context: Context, branch: str) -> str:
    """What this run's tags and cache ref are named after.

    A pull/merge request is ``pr-N`` whatever its head branch is called (``pr-unknown``
    when the number cannot be told; such a run writes nothing). A branch is itself, except
    one whose tags would take a form reserved for another kind of ref (``pr-12``,
    ``fp-0123abcd4567``, a commit such as ``9e9ab8d``), which becomes
    ``branch-NAME`` (:func:`bake.naming.branch_name`).
    """
    if context.pull_request:
        return "pr-unknown" if context.pr_number is None else f"pr-{context.pr_number}"
    return branch_name(branch)


@dataclass(frozen=True)
class Writes:
    """What a run may write to the registry, and which cache it reads.

    ``output`` is the output to build with; it differs from the requested one when the
    request was not allowed (a fork's ``--push`` runs as ``--cache-only``): log
    ``warnings``. Reusing an image for the current fingerprint adds this run's tags to it:
    allowed only when ``branch_tags`` is.
    """

    #: Names the branch tag and cache ref: ``STAGE-pyX.Y-IDENTITY``.
    identity: str
    output: Output
    #: ``IMAGE:STAGE-pyX.Y-IDENTITY`` and ``IMAGE:STAGE-pyX.Y-SHA7``.
    branch_tags: bool
    #: The default branch's bare ``IMAGE:STAGE-pyX.Y`` (also read by others as inline cache).
    default_tags: bool
    #: ``IMAGE:STAGE-pyX.Y-fp-HASH``, which every branch may reuse.
    fingerprint_tags: bool
    #: The identity whose cache ref ``IMAGE-cache:STAGE-pyX.Y-IDENTITY`` is written, or None.
    cache_to: str | None
    #: Identities whose cache refs are read, in order (then the default branch's image, inline).
    cache_from: tuple[str, ...]
    #: Why: the event and the rule that applied.
    reason: str
    warnings: tuple[str, ...] = field(default=())

    @property
    def registry_writes(self) -> bool:
        return self.branch_tags or self.default_tags or self.fingerprint_tags or self.cache_to is not None

    def lines(self, image: str = "IMAGE", sha: str | None = None) -> list[str]:
        """``this run writes: ...``, why, what it reads, and the warnings; ``image`` is ``REGISTRY/IMAGE``."""
        written: list[str] = []
        if self.branch_tags:
            tags = [f"{image}:STAGE-pyX.Y-{slug(self.identity, 100)}", f"{image}:STAGE-pyX.Y-{(sha or 'SHA')[:7]}"]
            if self.default_tags:
                tags.append(f"{image}:STAGE-pyX.Y")
            if self.fingerprint_tags:
                tags.append(f"{image}:STAGE-pyX.Y-fp-HASH")
            written.append("images " + ", ".join(tags))
        if self.cache_to is not None:
            written.append(f"cache {image}-cache:STAGE-pyX.Y-{slug(self.cache_to, 100)}")
        where = {"push": "", "load": " (images go to the local engine)", "cache-only": " (no image is kept)"}[
            self.output
        ]
        if self.output == "cache-only" and self.cache_to is None:
            where = " (the build is only checked)"
        head = "this run writes: " + "; ".join(written) if written else "this run writes nothing to the registry"
        reads = ", ".join(f"{image}-cache:STAGE-pyX.Y-{slug(b, 100)}" for b in self.cache_from)
        return [
            head + where,
            f"  because: {self.reason}",
            f"  it reads cache from: {reads}, then {image}:STAGE-pyX.Y (inline)",
            *(f"  warning: {w}" for w in self.warnings),
        ]

    def __str__(self) -> str:
        return "\n".join(self.lines())


_WHAT = {
    "warm": "warm pushes the images and cache of every target it builds",
    "gc": "gc deletes refs from the registry",
}


def _refused(command: Command, context: Context, branch: str, default_branch: str, why: str) -> UsageError:
    where = (
        f"from a push to {default_branch}, a schedule or by hand on {default_branch}"
        if command == "gc" or branch == default_branch
        else f"from a push, a schedule or by hand on {default_branch} (or on {branch} for its own refs)"
    )
    return UsageError(
        f"{_WHAT.get(command, command)}, and this run is {context.describe(branch)}: {why}. Nothing was written. "
        f"Run {command} {where} (see ci/templates/github-nightly.yml and gitlab-ci.yml); to check that the "
        "images build, use bake-ci build --load."
    )


def policy(
    context: Context,
    *,
    branch: str,
    default_branch: str,
    output: Output,
    command: Command = "build",
    cache_to: bool = False,
    fallback_branches: Sequence[str] = (),
) -> Writes:
    """What a run of ``command`` may write, for the requested ``output`` (pure).

    ``branch`` is the resolved branch (``--branch``, else ``context.branch``, else git);
    ``default_branch`` the configured one; ``cache_to`` is ``--cache-to`` (with ``--load``).

    - A push, schedule or manual run writes its own branch's refs and the fingerprint tags;
      on the default branch its refs are the default branch's, with the bare tags.
    - A pull/merge request from this repository writes ``pr-N`` images and cache, never the
      default branch's refs, the bare tags or fingerprint tags; it reads the default branch's cache.
    - A fork's pull request, ``pull_request_target``, or one whose origin is unknown, writes
      only its own ``pr-N`` cache: ``--push`` runs as ``--cache-only`` (the build is still
      checked, and the warning says so), ``--load`` keeps the images local.
    - Any other event (``workflow_run``, ``issue_comment``, ...) never writes the default
      branch's refs nor fingerprint tags: those events run on the default branch while often
      building code from elsewhere.
    - ``warm`` pushes what a push of the same branch would write (on the default branch:
      the default branch's refs), and only under a push, schedule or manual event: anything
      else is refused (:class:`UsageError`, exit 2), never quietly degraded.
    - ``gc`` is allowed only where ``warm`` of the default branch is.
    - ``merge`` (and any writing command to come) writes what ``build`` would.
    """
    warnings: list[str] = []
    fallbacks = [branch_name(b) for b in fallback_branches if b]
    default = branch_name(default_branch)
    if context.default_branch and context.default_branch != default_branch:
        warnings.append(
            f"the CI says the default branch is {context.default_branch}, and bake-ci's default-branch is "
            f"{default_branch}: only {default_branch} writes the bare STAGE-pyX.Y tags and the shared cache. Set "
            f'default-branch = "{context.default_branch}" in [tool.bake-ci] if that is the default branch.'
        )

    own = identity(context, branch)
    who = context.describe(branch)
    trusted_event = context.event in TRUSTED_EVENTS and not context.pull_request
    on_default = not context.tag and branch == default_branch
    own_is_default = _same_ref(own, default)

    if command in ("warm", "gc"):
        if context.pull_request:
            raise _refused(command, context, branch, default_branch, "a pull or merge request never writes them")
        if not trusted_event:
            raise _refused(
                command, context, branch, default_branch,
                "only a push, a schedule or a manual run may, because other events can build code from "
                "elsewhere under the branch's name",
            )  # fmt: skip
        if own_is_default and not on_default:
            kind = "tag" if context.tag else "branch"
            raise _refused(
                command, context, branch, default_branch,
                f"{kind} {branch} would write the same tags and cache as {default_branch}; rename it",
            )  # fmt: skip
        if command == "gc" and not on_default:
            raise _refused(command, context, branch, default_branch, "only the default branch collects garbage")
        output = "push"

    reads = [own] if own != "pr-unknown" else []
    if context.pull_request:
        if context.branch and not context.fork:
            reads.append(branch_name(context.branch))  # the head branch's own builds: same repository, same trust
        if context.base_branch:
            reads.append(branch_name(context.base_branch))
    reads += [*fallbacks, default]
    cache_from = tuple(dict.fromkeys(reads))

    if context.pull_request and branch and context.branch and branch != context.branch:
        warnings.append(f"--branch {branch} is ignored in a pull request: its tags and cache are named {own}.")

    # The rules: may this run write its own refs, images under them, fingerprint tags?
    own_images = True
    fingerprints = False
    own_cache = True
    if context.pull_request:
        if own_is_default:  # a default-branch setting such as "pr-12": never let a request write it
            own_cache = own_images = False
            reason = f"{who}: its refs ({own}) would be the default branch's"
            warnings.append(f"pull request refs {own} are the default branch's: writing nothing to the registry.")
        elif context.pr_number is None:
            own_cache = own_images = False
            reason = f"{who}: its number is unknown, so it has no refs of its own to write"
            warnings.append(
                "cannot tell this pull request's number (GitHub: refs/pull/N/merge in GITHUB_REF, or the event "
                "payload in GITHUB_EVENT_PATH; GitLab: CI_MERGE_REQUEST_IID): writing nothing to the registry."
            )
        elif context.fork:
            own_images = False
            reason = (
                f"{who}: code from outside this repository writes only its own cache ({own}), "
                "never images, the default branch's refs or fingerprint tags"
            )
        else:
            reason = (
                f"{who}: a pull request writes only its own {own} images and cache, never the "
                "default branch's refs, the bare tags or fingerprint tags"
            )
    elif own_is_default and not (trusted_event and on_default):
        own_cache = own_images = False
        if context.tag or branch != default_branch:
            why = (
                f"{'tag' if context.tag else 'branch'} {branch} would write the same tags and cache as {default_branch}"
            )
            warnings.append(f"{why}: writing nothing to the registry. Rename it.")
        else:
            why = "only a push, a schedule or a manual run writes the default branch's refs"
            warnings.append(
                f"{who} runs on the default branch {default_branch}, and {why}: writing nothing to the registry."
            )
        reason = f"{who}: {why}"
    elif trusted_event:
        fingerprints = True
        if own_is_default:
            reason = f"{who}: the default branch writes its refs, the bare tags and fingerprint tags"
        else:
            reason = f"{who}: a branch writes its own refs and fingerprint tags, never {default_branch}'s"
        if own != branch:
            reason += f" (named {own}: {branch} has the form of another kind of ref)"
    else:
        reason = (
            f"{who}: an event other than push, schedule or manual writes its own branch's refs, "
            "never the default branch's or fingerprint tags"
        )
    if command == "warm":
        reason = f"warm: {reason}"

    effective: Output = output
    if output == "push" and not own_images:
        effective = "cache-only"
        if own_cache:
            warnings.append(
                f"pushing images is not allowed for {who}: building as with --cache-only, which writes "
                f"only the {own} cache and keeps no image. Use --load to get the images in the local engine."
            )
    writes_cache = own_cache and (effective != "load" or cache_to)
    pushes = effective == "push"
    return Writes(
        identity=own,
        output=effective,
        branch_tags=pushes,
        default_tags=pushes and own_is_default and not context.pull_request,
        fingerprint_tags=pushes and fingerprints,
        cache_to=own if writes_cache else None,
        cache_from=cache_from,
        reason=reason,
        warnings=tuple(warnings),
    )
