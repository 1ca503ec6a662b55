"""The CI provider: the only module that reads CI variables.

What a run may write to the registry follows from the CI *event*, never from a branch
name alone: a pull request from a fork can name its head branch ``main``, and must still
not touch ``main``'s cache. So:

- :func:`detect` turns the environment (and GitHub's event payload, read by
  :func:`read_event`) into a :class:`Context`: provider, event, branch, commit, pull
  request number, whether the code comes from a fork. Pure; bad values are
  :class:`UsageError`.
- The trust policy those values imply (what a run's refs are made of, what it may write)
  is :mod:`bake.policy`'s; GitHub's workflow commands (``::group::`` and friends) are
  written by :mod:`bake.workflow_commands`.

Nothing here runs a process: git fallbacks (branch and commit when the CI says nothing)
belong to the caller, which passes the resolved branch to :func:`bake.policy.policy`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bake.errors import UsageError
from bake.redact import redact

Provider = Literal["github", "gitlab", "other-ci", "local"]
Event = Literal["push", "pull_request", "merge_request", "schedule", "manual", "other"]

#: A commit as CIs give it: 7 (abbreviated) to 64 (SHA-256 repositories) hexadecimal characters.
SHA_RE = re.compile(r"[0-9a-fA-F]{7,64}")
_PR_REF_RE = re.compile(r"refs/pull/(\d+)/(?:merge|head)")
_NUMBER_RE = re.compile(r"[1-9][0-9]{0,9}")
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


def _redacted_repr(value: str) -> str:
    """A value for an error message: redacted, and short."""
    text = redact(value)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def check_sha(name: str, value: str) -> str:
    """``value`` as a lowercase commit hash, or a UsageError naming the variable and the fix."""
    if SHA_RE.fullmatch(value):
        return value.lower()
    raise UsageError(
        f"{name}={_redacted_repr(value)} is not a commit hash: bake-ci expects 7 to 64 hexadecimal characters "
        f"there, because the commit becomes part of image tags (STAGE-pyX.Y-SHA). Unset {name} to take "
        f'the commit from git, or set it to the commit being built, e.g. {name}="$(git rev-parse HEAD)".'
    )


def _number(name: str, value: str) -> int:
    if _NUMBER_RE.fullmatch(value):
        return int(value)
    raise UsageError(
        f"{name}={_redacted_repr(value)} is not a merge/pull request number: bake-ci names a request's tags and "
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
        # The request's source project against its target project (CI_PROJECT_ID is the project
        # the pipeline runs in: a fork's own, when the fork runs it). Either unknown: least trust.
        source_project = _get(environ, "CI_MERGE_REQUEST_SOURCE_PROJECT_ID")
        project = _get(environ, "CI_MERGE_REQUEST_PROJECT_ID")
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
