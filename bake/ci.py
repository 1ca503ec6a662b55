"""The CI provider: the only module that reads CI variables, and the trust policy they imply.

What a run may write to the registry follows from the CI *event*, never from a branch
name alone: a pull request from a fork can name its head branch ``main``, and must still
not touch ``main``'s cache. So:

- :func:`detect` turns the environment (and GitHub's event payload, read by
  :func:`read_event`) into a :class:`Context`: provider, event, branch, commit, pull
  request number, whether the code comes from a fork. Pure; bad values are
  :class:`UsageError`.
- :func:`identity` names what a run's tags and cache ref are made of: the branch, or
  ``pr-N`` for a pull/merge request.
- :func:`policy` says what the run may write (:class:`Writes`): image tags, the default
  branch's bare tags, fingerprint tags, which cache ref it writes and which it reads.
- GitHub's workflow commands (``::group::`` and friends) are written here and nowhere else.

Nothing here runs a process: git fallbacks (branch and commit when the CI says nothing)
belong to the caller, which passes the resolved branch to :func:`identity` and :func:`policy`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bake.args import Output
from bake.errors import UsageError
from bake.naming import slug
from bake.redact import redact

Provider = Literal["github", "gitlab", "other-ci", "local"]
Event = Literal["push", "pull_request", "merge_request", "schedule", "manual", "other"]

#: A commit as CIs give it: 7 (abbreviated) to 64 (SHA-256 repositories) hexadecimal characters.
SHA_RE = re.compile(r"[0-9a-fA-F]{7,64}")
_PR_REF_RE = re.compile(r"refs/pull/(\d+)/(?:merge|head)")
_NUMBER_RE = re.compile(r"[1-9][0-9]{0,9}")
#: Identities only pull requests may have: a branch that would map to one is renamed.
_RESERVED_RE = re.compile(r"pr-(?:[0-9]+|unknown)")
#: The largest event payload read (GitHub's are a few kB; a pull request with a huge body stays far below).
_MAX_EVENT_BYTES = 25 * 1024 * 1024

_GITHUB_PULL_EVENTS = {"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"}
_GITHUB_EVENTS: dict[str, Event] = {
    "push": "push",
    "schedule": "schedule",
    "workflow_dispatch": "manual",
    "repository_dispatch": "manual",
}
_GITLAB_EVENTS: dict[str, Event] = {
    "push": "push",
    # A child pipeline of a merge request pipeline carries the CI_MERGE_REQUEST_* variables
    # (checked first), so a child pipeline without them belongs to a branch pipeline.
    "parent_pipeline": "push",
    "schedule": "schedule",
    "web": "manual",
    "api": "manual",
    "trigger": "manual",
    "pipeline": "manual",
    "chat": "manual",
    "webide": "manual",
}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class Context:
    """What the CI says about this run. ``local`` when no CI is detected."""

    provider: Provider
    #: A CI is running this (``CI`` set, or GitHub Actions / GitLab CI detected): JSON logs, no live board.
    ci: bool
    event: Event
    #: The CI's name for the event (``pull_request_target``, ``merge_request_event``), for messages.
    event_name: str | None = None
    #: The branch the CI names (a pull request's head branch), or None: let git decide.
    branch: str | None = None
    #: The ref is a tag, not a branch (a tag is never the default branch, whatever its name).
    tag: bool = False
    #: The branch a pull/merge request targets.
    base_branch: str | None = None
    #: The commit being built, validated (lowercase hex), or None: let git decide.
    sha: str | None = None
    pr_number: int | None = None
    #: The code comes from outside the repository, or from an unknown place: least trust.
    #: Always true for ``pull_request_target``, which runs with the base repository's token.
    fork: bool = False
    #: The repository's default branch when the CI tells (GitLab always, GitHub from the event payload).
    default_branch: str | None = None
    #: GitHub Actions reads workflow commands (``::group::``) from the output.
    github_actions: bool = False
    #: ``GITHUB_STEP_SUMMARY``: the Markdown file shown on the run's summary page.
    step_summary: Path | None = None

    @property
    def pull_request(self) -> bool:
        """A pull request (GitHub) or merge request (GitLab)."""
        return self.event in ("pull_request", "merge_request")

    def describe(self, branch: str | None = None) -> str:
        """One phrase for messages: ``GitHub pull_request #12 from a fork``; ``branch`` if git found it."""
        branch = self.branch or branch
        on = f" on {'tag ' if self.tag else ''}{branch}" if branch else ""
        if self.provider == "local":
            return f"a local run{on}"
        if self.provider == "other-ci":
            return f"a CI run{on} (not GitHub or GitLab: taken as a push)"
        name = "GitHub" if self.provider == "github" else "GitLab"
        if self.event == "merge_request":
            number = "" if self.pr_number is None else f" !{self.pr_number}"
            origin = "another or an unknown project" if self.fork else "this project"
            return f"{name} merge request{number} from {origin}"
        if self.pull_request:
            number = "" if self.pr_number is None else f" #{self.pr_number}"
            if self.event_name == "pull_request_target":
                return f"{name} pull_request_target{number} (its code is treated as a fork's)"
            origin = "a fork or an unknown repository" if self.fork else "this repository"
            return f"{name} {self.event_name or 'pull request'}{number} from {origin}"
        return f"{name} {self.event_name or self.event}{on}"


# -- detection ------------------------------------------------------------------------------


def _get(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    return value if value else None


def _truthy(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() not in _FALSE


def _shown(value: str) -> str:
    """A value for an error message: redacted, and short."""
    text = redact(value)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def check_sha(name: str, value: str) -> str:
    """``value`` as a lowercase commit hash, or a UsageError naming the variable and the fix."""
    if SHA_RE.fullmatch(value):
        return value.lower()
    raise UsageError(
        f"{name}={_shown(value)} is not a commit hash: bake-ci expects 7 to 64 hexadecimal characters "
        f"there, because the commit becomes part of image tags (STAGE-pyX.Y-SHA). Unset {name} to take "
        f'the commit from git, or set it to the commit being built, e.g. {name}="$(git rev-parse HEAD)".'
    )


def _number(name: str, value: str) -> int:
    if _NUMBER_RE.fullmatch(value):
        return int(value)
    raise UsageError(
        f"{name}={_shown(value)} is not a merge/pull request number: bake-ci names a request's tags and "
        f"cache pr-N after it. Unset {name} outside merge request pipelines, or set it to the request's "
        "number (GitLab sets it itself)."
    )


def _payload_number(event: Mapping[str, Any] | None) -> int | None:
    if not event:
        return None
    pull = event.get("pull_request")
    for value in (event.get("number"), pull.get("number") if isinstance(pull, dict) else None):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _head_repository(event: Mapping[str, Any] | None) -> str | None:
    """``pull_request.head.repo.full_name`` of a payload, or None (unknown, or a deleted fork)."""
    node: Any = event
    for key in ("pull_request", "head", "repo", "full_name"):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node if isinstance(node, str) and node else None


def _payload_default_branch(event: Mapping[str, Any] | None) -> str | None:
    repository = event.get("repository") if event else None
    value = repository.get("default_branch") if isinstance(repository, dict) else None
    return value if isinstance(value, str) and value else None


def _provider(environ: Mapping[str, str]) -> Provider:
    if environ.get("GITHUB_ACTIONS") == "true":
        return "github"
    if environ.get("GITLAB_CI") == "true":
        return "gitlab"
    # Without the markers, the CI's own variables still count (a job that sets them, a test).
    if any(
        _get(environ, v)
        for v in ("GITHUB_EVENT_NAME", "GITHUB_SHA", "GITHUB_REF", "GITHUB_REF_NAME", "GITHUB_HEAD_REF")
    ):
        return "github"
    if any(
        _get(environ, v) for v in ("CI_PIPELINE_SOURCE", "CI_COMMIT_SHA", "CI_COMMIT_REF_NAME", "CI_MERGE_REQUEST_IID")
    ):
        return "gitlab"
    return "other-ci" if _truthy(environ, "CI") else "local"


def _github(environ: Mapping[str, str], event: Mapping[str, Any] | None, ci: bool) -> Context:
    name = _get(environ, "GITHUB_EVENT_NAME")
    ref = environ.get("GITHUB_REF", "")
    pr_ref = _PR_REF_RE.fullmatch(ref)
    head = _get(environ, "GITHUB_HEAD_REF")
    sha = _get(environ, "GITHUB_SHA")
    summary = _get(environ, "GITHUB_STEP_SUMMARY")
    common: dict[str, Any] = {
        "provider": "github",
        "ci": ci,
        "event_name": name,
        "sha": check_sha("GITHUB_SHA", sha) if sha else None,
        "default_branch": _payload_default_branch(event),
        "github_actions": environ.get("GITHUB_ACTIONS") == "true",
        "step_summary": Path(summary) if summary else None,
    }
    # GITHUB_HEAD_REF and refs/pull/N/... exist only for pull request events: they mark one
    # even when the event name is missing or unexpected.
    if name in _GITHUB_PULL_EVENTS or head or pr_ref:
        number = int(pr_ref[1]) if pr_ref else _payload_number(event)
        if name == "pull_request_target":
            fork = True  # runs the base's workflow with its token: whatever it builds is untrusted
        else:
            head_repo, repository = _head_repository(event), _get(environ, "GITHUB_REPOSITORY")
            fork = not (head_repo and repository and head_repo.casefold() == repository.casefold())
        return Context(
            event="pull_request",
            branch=head,
            base_branch=_get(environ, "GITHUB_BASE_REF"),
            pr_number=number,
            fork=fork,
            **common,
        )
    kind: Event = "push" if name is None else _GITHUB_EVENTS.get(name, "other")
    return Context(
        event=kind,
        branch=_get(environ, "GITHUB_REF_NAME"),
        tag=environ.get("GITHUB_REF_TYPE") == "tag" or ref.startswith("refs/tags/"),
        **common,
    )


def _gitlab(environ: Mapping[str, str], ci: bool) -> Context:
    source = _get(environ, "CI_PIPELINE_SOURCE")
    sha = _get(environ, "CI_COMMIT_SHA")
    common: dict[str, Any] = {
        "provider": "gitlab",
        "ci": ci,
        "event_name": source,
        "sha": check_sha("CI_COMMIT_SHA", sha) if sha else None,
        "default_branch": _get(environ, "CI_DEFAULT_BRANCH"),
    }
    iid = _get(environ, "CI_MERGE_REQUEST_IID")
    if iid or source == "merge_request_event":
        source_project, project = _get(environ, "CI_MERGE_REQUEST_SOURCE_PROJECT_ID"), _get(environ, "CI_PROJECT_ID")
        return Context(
            event="merge_request",
            branch=_get(environ, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or _get(environ, "CI_COMMIT_REF_NAME"),
            base_branch=_get(environ, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME"),
            pr_number=_number("CI_MERGE_REQUEST_IID", iid) if iid else None,
            fork=not (source_project and project and source_project == project),
            **common,
        )
    if source == "external_pull_request_event":  # a GitHub pull request run by GitLab CI
        iid = _get(environ, "CI_EXTERNAL_PULL_REQUEST_IID")
        source_repo = _get(environ, "CI_EXTERNAL_PULL_REQUEST_SOURCE_REPOSITORY")
        target_repo = _get(environ, "CI_EXTERNAL_PULL_REQUEST_TARGET_REPOSITORY")
        return Context(
            event="pull_request",
            branch=_get(environ, "CI_EXTERNAL_PULL_REQUEST_SOURCE_BRANCH_NAME"),
            base_branch=_get(environ, "CI_EXTERNAL_PULL_REQUEST_TARGET_BRANCH_NAME"),
            pr_number=_number("CI_EXTERNAL_PULL_REQUEST_IID", iid) if iid else None,
            fork=not (source_repo and target_repo and source_repo == target_repo),
            **common,
        )
    kind: Event = "push" if source is None else _GITLAB_EVENTS.get(source, "other")
    return Context(
        event=kind,
        branch=_get(environ, "CI_COMMIT_REF_NAME"),
        tag=bool(_get(environ, "CI_COMMIT_TAG")),
        **common,
    )


def running_in_ci(environ: Mapping[str, str]) -> bool:
    """Whether this is a CI job (which makes JSON logs and pushing the defaults)."""
    return _truthy(environ, "CI") or environ.get("GITHUB_ACTIONS") == "true" or environ.get("GITLAB_CI") == "true"


def detect(environ: Mapping[str, str], event: Mapping[str, Any] | None = None) -> Context:
    """The CI context of this run, from the environment alone (no I/O).

    ``event`` is GitHub's event payload (:func:`read_event`); without it a ``pull_request``
    counts as coming from a fork (least trust) and GitHub gives no default branch.
    A non-hex ``GITHUB_SHA`` / ``CI_COMMIT_SHA`` or a non-numeric ``CI_MERGE_REQUEST_IID``
    is a UsageError (exit 2).
    """
    provider = _provider(environ)
    ci = running_in_ci(environ)
    if provider == "github":
        return _github(environ, event, ci)
    if provider == "gitlab":
        return _gitlab(environ, ci)
    # Another CI or a developer: bake-ci cannot see an event, so the run is taken as a push
    # (a person's command for a local run) of the branch git reports.
    return Context(provider=provider, ci=ci, event="push" if provider == "other-ci" else "manual")


def read_event(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """GitHub's event payload (``GITHUB_EVENT_PATH``), or None when absent or unreadable.

    The one file this module reads. Unreadable means unknown, which :func:`detect` turns
    into least trust; it is never an error.
    """
    path = _get(environ, "GITHUB_EVENT_PATH")
    if path is None:
        return None
    try:
        with Path(path).open("rb") as fh:
            data = fh.read(_MAX_EVENT_BYTES + 1)
        if len(data) > _MAX_EVENT_BYTES:
            return None
        payload = json.loads(data)
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def from_environ(environ: Mapping[str, str]) -> Context:
    """:func:`detect` with GitHub's event payload read from ``GITHUB_EVENT_PATH``."""
    return detect(environ, read_event(environ))


# -- trust ----------------------------------------------------------------------------------


def _same_ref(a: str, b: str) -> bool:
    """Two names that give the same tags and cache refs (tags are lowercased and reduced)."""
    return slug(a, 128) == slug(b, 128)


def identity(context: Context, branch: str) -> str:
    """What this run's tags and cache ref are named after.

    A pull/merge request is ``pr-N`` whatever its head branch is called (``pr-unknown``
    when the number cannot be told; such a run writes nothing). A branch is itself, except
    one that would be taken for a pull request's identity (``pr-12``), which becomes
    ``branch-pr-12``.
    """
    if context.pull_request:
        return "pr-unknown" if context.pr_number is None else f"pr-{context.pr_number}"
    if _RESERVED_RE.fullmatch(slug(branch, 128)):
        return f"branch-{branch}"
    return branch


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


def _refused_warm(context: Context, default_branch: str) -> UsageError:
    return UsageError(
        f"warm publishes the default branch's ({default_branch}) images and cache, and this run is "
        f"{context.describe()}: a pull request never writes them. Run warm from a push to "
        f"{default_branch}, a schedule or by hand on {default_branch} (see ci/templates/github-nightly.yml "
        "and gitlab-ci.yml)."
    )


def policy(
    context: Context,
    *,
    branch: str,
    default_branch: str,
    output: Output,
    warm: bool = False,
    cache_to: bool = False,
    fallback_branches: Sequence[str] = (),
) -> Writes:
    """What this run may write, for the requested ``output`` (pure).

    ``branch`` is the resolved branch (``--branch``, else ``context.branch``, else git);
    ``default_branch`` the configured one; ``cache_to`` is ``--cache-to`` (with ``--load``).

    - A push, schedule or manual run writes its own branch's refs and the fingerprint tags;
      on the default branch its refs are the default branch's, with the bare tags.
    - ``warm`` writes the default branch's refs, whatever the branch; refused in a pull request.
    - A pull/merge request from this repository writes ``pr-N`` images and cache, never the
      default branch's refs, the bare tags or fingerprint tags; it reads the default branch's cache.
    - A fork's pull request, ``pull_request_target``, or one whose origin is unknown, writes
      only its own ``pr-N`` cache: ``--push`` runs as ``--cache-only`` (the build is still
      checked, and the warning says so), ``--load`` keeps the images local.
    - Any other event (``workflow_run``, ``issue_comment``, ...) never writes the default
      branch's refs nor fingerprint tags: those events run on the default branch while often
      building code from elsewhere.
    """
    warnings: list[str] = []
    fallbacks = [b for b in fallback_branches if b]
    if context.default_branch and context.default_branch != default_branch:
        warnings.append(
            f"the CI says the default branch is {context.default_branch}, and bake-ci's default-branch is "
            f"{default_branch}: only {default_branch} writes the bare STAGE-pyX.Y tags and the shared cache. Set "
            f'default-branch = "{context.default_branch}" in [tool.bake-ci] if that is the default branch.'
        )

    if warm:
        if context.pull_request:
            raise _refused_warm(context, default_branch)
        return Writes(
            identity=default_branch,
            output="push",
            branch_tags=True,
            default_tags=True,
            fingerprint_tags=True,
            cache_to=default_branch,
            cache_from=tuple(dict.fromkeys([default_branch, *fallbacks])),
            reason=f"warm builds every target as the default branch {default_branch}",
            warnings=tuple(warnings),
        )

    own = identity(context, branch)
    who = context.describe(branch)
    reads = [own] if own != "pr-unknown" else []
    if context.pull_request:
        if context.branch and not context.fork:
            reads.append(context.branch)  # the head branch's own builds: same repository, same trust
        if context.base_branch:
            reads.append(context.base_branch)
    reads += [*fallbacks, default_branch]
    cache_from = tuple(dict.fromkeys(reads))

    if context.pull_request and branch and context.branch and branch != context.branch:
        warnings.append(f"--branch {branch} is ignored in a pull request: its tags and cache are named {own}.")

    # The rules: may this run write its own refs, images under them, fingerprint tags?
    trusted_event = context.event in ("push", "schedule", "manual")
    on_default = not context.tag and branch == default_branch
    own_is_default = _same_ref(own, default_branch)
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
    else:
        reason = (
            f"{who}: an event other than push, schedule or manual writes its own branch's refs, "
            "never the default branch's or fingerprint tags"
        )

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


# -- GitHub workflow commands ---------------------------------------------------------------


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def group(title: str) -> str:
    """Start a collapsible group in the GitHub Actions log."""
    return f"::group::{_escape_data(title)}"


def endgroup() -> str:
    return "::endgroup::"


def error(message: str, title: str | None = None) -> str:
    """An error annotation (shown on the run's summary page)."""
    props = f" title={_escape_property(title)}" if title else ""
    return f"::error{props}::{_escape_data(message)}"


def warning(message: str, title: str | None = None) -> str:
    props = f" title={_escape_property(title)}" if title else ""
    return f"::warning{props}::{_escape_data(message)}"


def stop_commands(token: str) -> str:
    """Stop GitHub from acting on workflow commands until :func:`resume_commands` with the same token.

    Print it before a build log (a Dockerfile's ``RUN echo ::add-mask::...`` is otherwise
    obeyed); make the token unguessable, e.g. ``secrets.token_hex(16)``.
    """
    return f"::stop-commands::{token}"


def resume_commands(token: str) -> str:
    return f"::{token}::"
