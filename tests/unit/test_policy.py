"""The one trust policy, for every CI event, provider and writing command (bake.policy).

Each row is one CI run as the provider's variables describe it; the columns say what
``build --push`` (and ``merge``, which follows the same rules), ``warm`` and ``gc`` may
write there. A cell is ``REFUSED`` (exit 2, nothing written) or what is written:
(identity, output, tags, cache ref written), where tags has ``B`` for the branch and
commit tags, ``D`` for the default branch's bare tags and ``F`` for fingerprint tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bake import ci, policy
from bake.errors import UsageError
from bake.naming import reserved, slug

SHA = "0123456789abcdef0123456789abcdef01234567"
REFUSED = "refused"

GH = {"CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/app", "GITHUB_SHA": SHA}
GL = {"CI": "true", "GITLAB_CI": "true", "CI_PROJECT_ID": "100", "CI_COMMIT_SHA": SHA, "CI_DEFAULT_BRANCH": "main"}
SAME = {"number": 12, "pull_request": {"number": 12, "head": {"repo": {"full_name": "acme/app"}}}}
FORK = {"number": 12, "pull_request": {"number": 12, "head": {"repo": {"full_name": "mallory/app"}}}}


def gh(event: str, ref: str = "main", **extra: str) -> dict[str, str]:
    return {**GH, "GITHUB_EVENT_NAME": event, "GITHUB_REF": f"refs/heads/{ref}", "GITHUB_REF_NAME": ref, **extra}


def gh_pr(event: str = "pull_request", head: str = "feature/login") -> dict[str, str]:
    return {
        **GH,
        "GITHUB_EVENT_NAME": event,
        "GITHUB_REF": "refs/pull/12/merge",
        "GITHUB_REF_NAME": "12/merge",
        "GITHUB_HEAD_REF": head,
        "GITHUB_BASE_REF": "main",
    }


def gl(source: str, ref: str = "main") -> dict[str, str]:
    return {**GL, "CI_PIPELINE_SOURCE": source, "CI_COMMIT_REF_NAME": ref, "CI_COMMIT_BRANCH": ref}


def gl_mr(
    *, source_project: str | None, mr_project: str | None = "100", pipeline_project: str = "100"
) -> dict[str, str]:
    environ = {
        **GL,
        "CI_PROJECT_ID": pipeline_project,
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_IID": "7",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "main",  # a fork's own main, as often as not
        "CI_COMMIT_REF_NAME": "main",
    }
    if source_project is not None:
        environ["CI_MERGE_REQUEST_SOURCE_PROJECT_ID"] = source_project
    if mr_project is not None:
        environ["CI_MERGE_REQUEST_PROJECT_ID"] = mr_project
    return environ


MAIN = ("main", "push", "BDF", "main")
FEATURE = ("feature/login", "push", "BF", "feature/login")
NOTHING = ("main", "cache-only", "", None)
PR12_IMAGES = ("pr-12", "push", "B", "pr-12")
PR12_CACHE = ("pr-12", "cache-only", "", "pr-12")
PR7_IMAGES = ("pr-7", "push", "B", "pr-7")
PR7_CACHE = ("pr-7", "cache-only", "", "pr-7")


@dataclass(frozen=True)
class Row:
    name: str
    environ: Mapping[str, str]
    build: Any  # and merge
    warm: Any
    gc: Any
    payload: Mapping[str, Any] | None = None
    git_branch: str = "main"  # what git says when the CI names no branch


ROWS = [
    # GitHub Actions
    Row("github push main", gh("push"), MAIN, MAIN, MAIN),
    Row("github push feature", gh("push", "feature/login"), FEATURE, FEATURE, REFUSED),
    Row("github schedule main", gh("schedule"), MAIN, MAIN, MAIN),
    Row("github workflow_dispatch main", gh("workflow_dispatch"), MAIN, MAIN, MAIN),
    Row("github workflow_dispatch feature", gh("workflow_dispatch", "feature/login"), FEATURE, FEATURE, REFUSED),
    Row("github repository_dispatch main", gh("repository_dispatch"), MAIN, MAIN, MAIN),
    Row("github workflow_run main", gh("workflow_run"), NOTHING, REFUSED, REFUSED),
    Row("github issue_comment main", gh("issue_comment"), NOTHING, REFUSED, REFUSED),
    Row(
        "github pull_request_review main",
        {**gh("pull_request_review"), "GITHUB_HEAD_REF": "main"},
        ("pr-unknown", "cache-only", "", None),
        REFUSED,
        REFUSED,
    ),
    Row(
        "github release feature",
        gh("release", "feature/login"),
        ("feature/login", "push", "B", "feature/login"),
        REFUSED,
        REFUSED,
    ),
    Row(
        "github tag named main",
        {**gh("push"), "GITHUB_REF": "refs/tags/main", "GITHUB_REF_TYPE": "tag"},
        NOTHING,
        REFUSED,
        REFUSED,
    ),
    Row("github push MAIN", gh("push", "MAIN"), ("MAIN", "cache-only", "", None), REFUSED, REFUSED),
    Row(
        "github push fp-branch",
        gh("push", "fp-0123456789ab"),
        ("branch-fp-0123456789ab", "push", "BF", "branch-fp-0123456789ab"),
        ("branch-fp-0123456789ab", "push", "BF", "branch-fp-0123456789ab"),
        REFUSED,
    ),
    Row(
        "github push commit-like branch",
        gh("push", "9E9AB8D"),
        ("branch-9E9AB8D", "push", "BF", "branch-9E9AB8D"),
        ("branch-9E9AB8D", "push", "BF", "branch-9E9AB8D"),
        REFUSED,
    ),
    Row("github pull_request same repository", gh_pr(), PR12_IMAGES, REFUSED, REFUSED, payload=SAME),
    Row("github pull_request fork", gh_pr(head="main"), PR12_CACHE, REFUSED, REFUSED, payload=FORK),
    Row("github pull_request unknown origin", gh_pr(), PR12_CACHE, REFUSED, REFUSED),
    Row("github pull_request_target", gh_pr("pull_request_target"), PR12_CACHE, REFUSED, REFUSED, payload=SAME),
    # GitLab CI
    Row("gitlab push main", gl("push"), MAIN, MAIN, MAIN),
    Row("gitlab push feature", gl("push", "feature/login"), FEATURE, FEATURE, REFUSED),
    Row("gitlab schedule main", gl("schedule"), MAIN, MAIN, MAIN),
    Row("gitlab web main", gl("web"), MAIN, MAIN, MAIN),
    Row("gitlab trigger main", gl("trigger"), MAIN, MAIN, MAIN),
    Row("gitlab external main", gl("external"), NOTHING, REFUSED, REFUSED),
    Row("gitlab ondemand_dast_scan main", gl("ondemand_dast_scan"), NOTHING, REFUSED, REFUSED),
    Row("gitlab merge request same project", gl_mr(source_project="100"), PR7_IMAGES, REFUSED, REFUSED),
    Row("gitlab merge request fork, run in the parent", gl_mr(source_project="200"), PR7_CACHE, REFUSED, REFUSED),
    Row(
        "gitlab merge request fork, run in the fork",
        gl_mr(source_project="200", pipeline_project="200"),
        PR7_CACHE,
        REFUSED,
        REFUSED,
    ),
    Row("gitlab merge request, no source project", gl_mr(source_project=None), PR7_CACHE, REFUSED, REFUSED),
    Row(
        "gitlab merge request, no request project",
        gl_mr(source_project="100", mr_project=None),
        PR7_CACHE,
        REFUSED,
        REFUSED,
    ),
    # Another CI (an event bake-ci cannot see: taken as a push) and a developer's own command
    Row("other CI on main", {"CI": "1"}, MAIN, MAIN, MAIN),
    Row("other CI on feature", {"CI": "1"}, FEATURE, FEATURE, REFUSED, git_branch="feature/login"),
    Row("local on main", {}, MAIN, MAIN, MAIN),
    Row("local on feature", {}, FEATURE, FEATURE, REFUSED, git_branch="feature/login"),
]


def decide(row: Row, command: policy.Command) -> Any:
    context = ci.detect(row.environ, row.payload)
    try:
        w = policy.policy(
            context,
            branch=context.branch or row.git_branch,
            default_branch="main",
            output="push",
            command=command,
            fallback_branches=["main"],
        )
    except UsageError as exc:
        refusal = exc
    else:
        flags = ("B" if w.branch_tags else "") + ("D" if w.default_tags else "") + ("F" if w.fingerprint_tags else "")
        return (w.identity, w.output, flags, w.cache_to)
    assert refusal.exit_code == 2
    assert "Nothing was written" in str(refusal)
    return REFUSED


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
@pytest.mark.parametrize("command", ["build", "merge", "warm", "gc"])
def test_every_event_provider_and_command(row: Row, command: policy.Command) -> None:
    expected = {"build": row.build, "merge": row.build, "warm": row.warm, "gc": row.gc}[command]
    assert decide(row, command) == expected


def test_the_table_covers_every_provider_and_event() -> None:
    seen = {(c.provider, c.event, c.fork) for c in (ci.detect(r.environ, r.payload) for r in ROWS)}
    for provider in ("github", "gitlab"):
        for event in ("push", "schedule", "manual", "other"):
            assert (provider, event, False) in seen, (provider, event)
    for provider, event in (("github", "pull_request"), ("gitlab", "merge_request")):
        assert {(provider, event, False), (provider, event, True)} <= seen
    assert {("other-ci", "push", False), ("local", "manual", False)} <= seen


@pytest.mark.parametrize(
    ("row", "said"),
    [
        (next(r for r in ROWS if r.name == "github workflow_run main"), "GitHub workflow_run on main"),
        (next(r for r in ROWS if r.name == "gitlab merge request fork, run in the fork"), "merge request !7"),
        (next(r for r in ROWS if r.name == "github tag named main"), "tag main would write the same tags"),
    ],
    ids=["workflow_run", "gitlab fork", "tag main"],
)
def test_a_refused_warm_says_why_and_what_to_run_instead(row: Row, said: str) -> None:
    context = ci.detect(row.environ, row.payload)
    with pytest.raises(UsageError) as caught:
        policy.policy(context, branch=context.branch or "main", default_branch="main", output="push", command="warm")
    message = str(caught.value)
    assert message.startswith("warm pushes the images and cache of every target it builds")
    assert said in message
    assert "bake-ci build --load" in message


@given(branch=st.text(), event=st.sampled_from(["push", "schedule", "workflow_dispatch", "workflow_run", "release"]))
def test_no_branch_ever_writes_refs_of_another_kind(branch: str, event: str) -> None:
    context = ci.detect(gh(event, branch or "x"))
    w = policy.policy(context, branch=branch, default_branch="main", output="push", fallback_branches=["main"])
    for name in (w.identity, *w.cache_from, *([w.cache_to] if w.cache_to else [])):
        assert not reserved(slug(name, 60)), name
