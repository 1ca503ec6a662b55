"""The CI provider module: what each CI event is, and what it may write to the registry.

Driven by the environment variables GitHub Actions and GitLab CI set for each event. The
last tests carry the policy into the real plan and list every registry ref it would write.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from bake import ci, config_load, policy
from bake.args import Output
from bake.errors import UsageError
from bake.plan import build_plan, matrix

SHA = "0123456789abcdef0123456789abcdef01234567"
FORK_PAYLOAD = {"number": 12, "pull_request": {"number": 12, "head": {"repo": {"full_name": "mallory/app"}}}}
SAME_PAYLOAD = {"number": 12, "pull_request": {"number": 12, "head": {"repo": {"full_name": "acme/app"}}}}

GITHUB = {
    "CI": "true",
    "GITHUB_ACTIONS": "true",
    "GITHUB_REPOSITORY": "acme/app",
    "GITHUB_SHA": SHA,
    "GITHUB_STEP_SUMMARY": "/runner/summary.md",
}
GH_PUSH_MAIN = {**GITHUB, "GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main"}
GH_PUSH_FEATURE = {
    **GITHUB,
    "GITHUB_EVENT_NAME": "push",
    "GITHUB_REF": "refs/heads/feature/login",
    "GITHUB_REF_NAME": "feature/login",
}
GH_PR = {
    **GITHUB,
    "GITHUB_EVENT_NAME": "pull_request",
    "GITHUB_REF": "refs/pull/12/merge",
    "GITHUB_REF_NAME": "12/merge",
    "GITHUB_BASE_REF": "main",
}
GH_PR_SAME = {**GH_PR, "GITHUB_HEAD_REF": "feature/login"}
GH_PR_FORK_MAIN = {**GH_PR, "GITHUB_HEAD_REF": "main"}  # a fork's own main
GH_PR_TARGET = {
    **GITHUB,
    "GITHUB_EVENT_NAME": "pull_request_target",
    "GITHUB_REF": "refs/heads/main",  # pull_request_target runs on the base branch
    "GITHUB_REF_NAME": "main",
    "GITHUB_HEAD_REF": "main",
    "GITHUB_BASE_REF": "main",
}
GH_SCHEDULE = {**GITHUB, "GITHUB_EVENT_NAME": "schedule", "GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main"}

GITLAB = {
    "CI": "true",
    "GITLAB_CI": "true",
    "CI_PROJECT_ID": "100",
    "CI_COMMIT_SHA": SHA,
    "CI_DEFAULT_BRANCH": "main",
}
GL_PUSH_MAIN = {**GITLAB, "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_REF_NAME": "main", "CI_COMMIT_BRANCH": "main"}
GL_MR = {
    **GITLAB,
    "CI_PIPELINE_SOURCE": "merge_request_event",
    "CI_MERGE_REQUEST_IID": "7",
    "CI_MERGE_REQUEST_PROJECT_ID": "100",
    "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
}
GL_MR_SAME = {
    **GL_MR,
    "CI_COMMIT_REF_NAME": "feature/login",
    "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature/login",
    "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "100",
}
GL_MR_FORK_MAIN = {
    **GL_MR,
    "CI_COMMIT_REF_NAME": "main",
    "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "main",
    "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "200",
}


def writes(
    environ: Mapping[str, str],
    event: Mapping[str, Any] | None = None,
    *,
    output: Output = "push",
    git_branch: str = "main",
    **options: Any,
) -> policy.Writes:
    context = ci.detect(environ, event)
    branch = context.branch or git_branch
    return policy.policy(context, branch=branch, default_branch="main", output=output, **options)


def tags(w: policy.Writes) -> tuple[bool, bool, bool]:
    """May it write: branch and commit tags, the default branch's bare tags, fingerprint tags."""
    return (w.branch_tags, w.default_tags, w.fingerprint_tags)


# -- detection -------------------------------------------------------------------------------


def test_github_push_to_main() -> None:
    context = ci.detect(GH_PUSH_MAIN, {"repository": {"default_branch": "main"}})
    assert (context.provider, context.event, context.branch, context.sha) == ("github", "push", "main", SHA)
    assert (context.ci, context.github_actions, context.pull_request, context.fork) == (True, True, False, False)
    assert context.default_branch == "main"
    assert context.step_summary == Path("/runner/summary.md")


def test_github_pull_request_number_comes_from_the_ref() -> None:
    context = ci.detect(GH_PR_SAME, SAME_PAYLOAD)
    assert (context.event, context.pr_number, context.branch, context.base_branch) == (
        "pull_request",
        12,
        "feature/login",
        "main",
    )
    assert not context.fork


def test_github_pull_request_from_a_fork() -> None:
    context = ci.detect(GH_PR_FORK_MAIN, FORK_PAYLOAD)
    assert context.fork
    assert context.describe() == "GitHub pull_request #12 from a fork or an unknown repository"


@pytest.mark.parametrize(
    "payload",
    [None, {}, {"pull_request": {"head": {"repo": None}}}, {"pull_request": {"head": {"repo": {"full_name": 3}}}}],
    ids=["no payload", "empty", "deleted fork", "garbage"],
)
def test_github_pull_request_of_unknown_origin_counts_as_a_fork(payload: dict[str, Any] | None) -> None:
    assert ci.detect(GH_PR_SAME, payload).fork


def test_pull_request_target_is_always_untrusted_and_numbered_from_the_payload() -> None:
    context = ci.detect(GH_PR_TARGET, SAME_PAYLOAD)  # even from the same repository
    assert (context.event, context.pr_number, context.fork) == ("pull_request", 12, True)


def test_a_head_ref_alone_marks_a_pull_request() -> None:
    """``GITHUB_HEAD_REF=main`` without an event name: still a pull request, of unknown origin."""
    context = ci.detect({"GITHUB_HEAD_REF": "main"})
    assert (context.provider, context.event, context.fork, context.pr_number) == ("github", "pull_request", True, None)


def test_github_schedule_and_manual_runs() -> None:
    assert ci.detect(GH_SCHEDULE).event == "schedule"
    assert ci.detect({**GH_PUSH_MAIN, "GITHUB_EVENT_NAME": "workflow_dispatch"}).event == "manual"
    assert ci.detect({**GH_PUSH_MAIN, "GITHUB_EVENT_NAME": "workflow_run"}).event == "other"


def test_github_tag_push() -> None:
    context = ci.detect({**GH_PUSH_MAIN, "GITHUB_REF": "refs/tags/main", "GITHUB_REF_TYPE": "tag"})
    assert context.tag


def test_gitlab_push_and_merge_requests() -> None:
    push = ci.detect(GL_PUSH_MAIN)
    assert (push.provider, push.event, push.branch, push.sha, push.default_branch) == (
        "gitlab",
        "push",
        "main",
        SHA,
        "main",
    )
    assert (push.github_actions, push.step_summary) == (False, None)
    same = ci.detect(GL_MR_SAME)
    assert (same.event, same.pr_number, same.fork, same.branch, same.base_branch) == (
        "merge_request",
        7,
        False,
        "feature/login",
        "main",
    )
    assert ci.detect(GL_MR_FORK_MAIN).fork
    assert ci.detect({k: v for k, v in GL_MR_SAME.items() if k != "CI_MERGE_REQUEST_SOURCE_PROJECT_ID"}).fork
    assert ci.detect(GL_MR_FORK_MAIN).describe() == "GitLab merge request !7 from another or an unknown project"


def test_gitlab_child_pipeline_of_a_merge_request_is_a_merge_request() -> None:
    assert ci.detect({**GL_MR_FORK_MAIN, "CI_PIPELINE_SOURCE": "parent_pipeline"}).event == "merge_request"


def test_local_and_other_ci() -> None:
    local = ci.detect({"HOME": "/home/dev"})
    assert (local.provider, local.ci, local.event, local.branch, local.sha) == ("local", False, "manual", None, None)
    assert ci.detect({"CI": "false"}).provider == "local"
    other = ci.detect({"CI": "1", "JENKINS_URL": "http://jenkins"})
    assert (other.provider, other.ci, other.event) == ("other-ci", True, "push")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GITHUB_SHA", "ZZZZ"),
        ("GITHUB_SHA", "ZZZZ:latest"),
        ("GITHUB_SHA", "abc"),
        ("GITHUB_SHA", "a" * 65),
        ("CI_COMMIT_SHA", "not-a-sha"),
        ("CI_MERGE_REQUEST_IID", "7; rm -rf /"),
    ],
)
def test_bad_commit_or_request_number_is_a_usage_error(name: str, value: str) -> None:
    environ = {**(GITHUB if name.startswith("GITHUB") else GITLAB), name: value}
    with pytest.raises(UsageError) as caught:
        ci.detect(environ)
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert name in message
    assert repr(value[:77]).rstrip("'") in message
    assert f"Unset {name}" in message


def test_a_valid_commit_is_lowercased() -> None:
    assert ci.detect({**GITHUB, "GITHUB_SHA": "ABCDEF0"}).sha == "abcdef0"


def test_credentials_in_a_bad_variable_are_not_shown() -> None:
    with pytest.raises(UsageError) as caught:
        ci.detect({**GITHUB, "GITHUB_SHA": "https://user:s3cret@example.com/x"})
    assert "s3cret" not in str(caught.value)


def test_read_event(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(FORK_PAYLOAD), encoding="utf-8")
    assert ci.read_event({"GITHUB_EVENT_PATH": str(event)}) == FORK_PAYLOAD
    assert ci.from_environ({**GH_PR_SAME, "GITHUB_EVENT_PATH": str(event)}).fork
    event.write_text(json.dumps(SAME_PAYLOAD), encoding="utf-8")
    assert not ci.from_environ({**GH_PR_SAME, "GITHUB_EVENT_PATH": str(event)}).fork
    event.write_text("{not json", encoding="utf-8")
    assert ci.read_event({"GITHUB_EVENT_PATH": str(event)}) is None
    assert ci.read_event({"GITHUB_EVENT_PATH": str(tmp_path / "missing.json")}) is None
    assert ci.read_event({"GITHUB_EVENT_PATH": str(tmp_path)}) is None  # a directory
    assert ci.read_event({}) is None


# -- identity and policy -----------------------------------------------------------------------


def test_identity_of_a_pull_request_is_its_number_never_its_head_branch() -> None:
    assert policy.identity(ci.detect(GH_PR_FORK_MAIN, FORK_PAYLOAD), "main") == "pr-12"
    assert policy.identity(ci.detect(GL_MR_FORK_MAIN), "main") == "pr-7"
    assert policy.identity(ci.detect(GH_PUSH_FEATURE), "feature/login") == "feature/login"


def test_a_branch_cannot_take_a_pull_requests_identity() -> None:
    context = ci.detect(GH_PUSH_FEATURE)
    assert policy.identity(context, "pr-12") == "branch-pr-12"
    assert policy.identity(context, "PR/12") == "branch-PR/12"


def test_push_to_main_writes_everything_of_main() -> None:
    w = writes(GH_PUSH_MAIN)
    assert (w.identity, w.output, w.cache_to) == ("main", "push", "main")
    assert tags(w) == (True, True, True)
    assert not w.warnings
    assert str(w).startswith("this run writes: images IMAGE:STAGE-pyX.Y-main, ")


def test_push_to_a_feature_branch_writes_its_own_refs_and_fingerprints() -> None:
    w = writes(GH_PUSH_FEATURE, fallback_branches=["main"])
    assert (w.identity, w.output, w.cache_to) == ("feature/login", "push", "feature/login")
    assert tags(w) == (True, False, True)
    assert w.cache_from == ("feature/login", "main")


def test_same_repository_pull_request_writes_its_own_images_and_cache() -> None:
    w = writes(GH_PR_SAME, SAME_PAYLOAD)
    assert (w.identity, w.output, w.cache_to) == ("pr-12", "push", "pr-12")
    assert tags(w) == (True, False, False)
    assert w.cache_from == ("pr-12", "feature/login", "main")
    assert not w.warnings


def test_fork_pull_request_named_main_writes_only_its_own_cache() -> None:
    w = writes(GH_PR_FORK_MAIN, FORK_PAYLOAD)
    assert (w.identity, w.output, w.cache_to) == ("pr-12", "cache-only", "pr-12")
    assert tags(w) == (False, False, False)
    assert w.cache_from == ("pr-12", "main")
    (warning,) = w.warnings
    assert "building as with --cache-only" in warning
    assert str(w).startswith("this run writes: cache IMAGE-cache:STAGE-pyX.Y-pr-12 (no image is kept)")


@pytest.mark.parametrize("output", ["load", "cache-only"])
def test_fork_pull_request_keeps_other_outputs(output: Output) -> None:
    w = writes(GH_PR_FORK_MAIN, FORK_PAYLOAD, output=output, cache_to=True)
    assert (w.output, w.cache_to, w.warnings) == (output, "pr-12", ())
    assert not w.branch_tags


def test_pull_request_target_writes_only_its_own_cache() -> None:
    w = writes(GH_PR_TARGET, SAME_PAYLOAD)
    assert (w.identity, w.output, w.cache_to) == ("pr-12", "cache-only", "pr-12")
    assert not w.branch_tags


def test_pull_request_of_unknown_number_writes_nothing() -> None:
    w = writes({"GITHUB_HEAD_REF": "main"}, output="cache-only")
    assert not w.registry_writes
    assert w.cache_from == ("main",)
    assert "cannot tell this pull request's number" in w.warnings[0]


def test_branch_option_cannot_move_a_pull_request_onto_main() -> None:
    context = ci.detect(GH_PR_SAME, SAME_PAYLOAD)
    w = policy.policy(context, branch="main", default_branch="main", output="push")
    assert (w.identity, w.cache_to, w.default_tags) == ("pr-12", "pr-12", False)
    assert "--branch main is ignored" in w.warnings[0]


def test_schedule_on_main_writes_main() -> None:
    w = writes(GH_SCHEDULE)
    assert (tags(w), w.cache_to) == ((True, True, True), "main")


def test_other_events_on_the_default_branch_write_nothing() -> None:
    w = writes({**GH_PUSH_MAIN, "GITHUB_EVENT_NAME": "workflow_run"})
    assert not w.registry_writes
    assert w.output == "cache-only"
    assert "workflow_run" in w.warnings[0]
    assert str(w).startswith("this run writes nothing to the registry (the build is only checked)")


def test_other_events_elsewhere_write_own_refs_without_fingerprints() -> None:
    w = writes({**GH_PUSH_FEATURE, "GITHUB_EVENT_NAME": "release"})
    assert (w.cache_to, w.branch_tags, w.fingerprint_tags) == ("feature/login", True, False)


@pytest.mark.parametrize(
    "environ",
    [
        {**GH_PUSH_FEATURE, "GITHUB_REF_NAME": "MAIN"},  # a different git branch, the same tags
        {**GH_PUSH_MAIN, "GITHUB_REF": "refs/tags/main", "GITHUB_REF_TYPE": "tag"},
    ],
    ids=["branch MAIN", "tag main"],
)
def test_names_that_only_look_like_the_default_branch_write_nothing(environ: dict[str, str]) -> None:
    w = writes(environ)
    assert not w.registry_writes
    assert "Rename it" in w.warnings[0]


def test_warm_writes_main_from_main_its_own_refs_elsewhere_and_never_from_a_pull_request() -> None:
    w = writes(GH_PUSH_MAIN, command="warm")
    assert (w.identity, w.output, w.cache_to, w.default_tags) == ("main", "push", "main", True)
    w = writes(GH_PUSH_FEATURE, command="warm")
    assert (w.identity, w.output, w.cache_to, w.default_tags) == ("feature/login", "push", "feature/login", False)
    with pytest.raises(UsageError, match="a pull or merge request never writes them"):
        writes(GH_PR_SAME, SAME_PAYLOAD, command="warm")


def test_load_writes_nothing_unless_cache_to() -> None:
    assert not writes({}, output="load", git_branch="main").registry_writes
    w = writes({}, output="load", git_branch="topic", cache_to=True)
    assert (w.cache_to, w.branch_tags) == ("topic", False)


def test_gitlab_merge_requests() -> None:
    same = writes(GL_MR_SAME)
    assert (same.identity, same.output, same.cache_to, same.branch_tags, same.fingerprint_tags) == (
        "pr-7",
        "push",
        "pr-7",
        True,
        False,
    )
    fork = writes(GL_MR_FORK_MAIN)
    assert (fork.identity, fork.output, fork.cache_to, fork.branch_tags) == ("pr-7", "cache-only", "pr-7", False)
    push = writes(GL_PUSH_MAIN)
    assert (tags(push), push.cache_to) == ((True, True, True), "main")


def test_a_default_branch_the_ci_disagrees_with_is_pointed_out() -> None:
    w = writes({**GL_PUSH_MAIN, "CI_DEFAULT_BRANCH": "master"})
    assert 'default-branch = "master"' in w.warnings[0]


# -- the policy carried into the real plan ------------------------------------------------------

PROJECT = """\
[tool.bake-ci]
image = "app-ci"
registry = "ghcr.io/acme"
python = ["3.12"]
stages = ["deps", "ci"]
"""
DOCKERFILE = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS deps\nRUN true\nFROM deps AS ci\nRUN true\n"


def registry_writes(tmp_path: Path, environ: Mapping[str, str], event: Mapping[str, Any] | None = None) -> set[str]:
    """Every registry ref that the plan for this CI run pushes to, as ``bake-ci build`` would plan it."""
    (tmp_path / "pyproject.toml").write_text(PROJECT, encoding="utf-8")
    (tmp_path / "Dockerfile").write_text(DOCKERFILE, encoding="utf-8")
    project = config_load.load(tmp_path / "pyproject.toml", {})
    context = ci.detect(environ, event)
    w = policy.policy(
        context,
        branch=context.branch or "main",
        default_branch=project.config.default_branch,
        output="push",
        fallback_branches=project.config.fallback_branches,
    )
    targets = matrix(project)
    plan = build_plan(
        project,
        targets,
        branch=w.identity,
        sha=context.sha if w.branch_tags else None,
        output=w.output,
        fingerprints={t.id: "f" * 64 for t in targets},
        writes=w,
    )
    refs: set[str] = set()
    for target in plan.targets:
        if target.output == "push":
            refs.update(target.tags)
        for entry in target.cache_to:
            fields = dict(part.split("=", 1) for part in entry.split(","))
            if fields["type"] == "registry":
                refs.add(fields["ref"])
    return refs


def test_plan_of_a_fork_pull_request_named_main_writes_only_its_pr_cache(tmp_path: Path) -> None:
    assert registry_writes(tmp_path, GH_PR_FORK_MAIN, FORK_PAYLOAD) == {
        "ghcr.io/acme/app-ci-cache:deps-py3.12-pr-12",
        "ghcr.io/acme/app-ci-cache:ci-py3.12-pr-12",
    }
    assert registry_writes(tmp_path, GL_MR_FORK_MAIN) == {
        "ghcr.io/acme/app-ci-cache:deps-py3.12-pr-7",
        "ghcr.io/acme/app-ci-cache:ci-py3.12-pr-7",
    }


def test_plan_of_a_same_repository_pull_request_writes_pr_images_and_cache(tmp_path: Path) -> None:
    expected = {
        "ghcr.io/acme/app-ci:deps-py3.12-pr-12",
        "ghcr.io/acme/app-ci:deps-py3.12-0123456",
        "ghcr.io/acme/app-ci-cache:deps-py3.12-pr-12",
        "ghcr.io/acme/app-ci:ci-py3.12-pr-12",
        "ghcr.io/acme/app-ci:ci-py3.12-0123456",
        "ghcr.io/acme/app-ci-cache:ci-py3.12-pr-12",
    }
    assert registry_writes(tmp_path, GH_PR_SAME, SAME_PAYLOAD) == expected
    assert registry_writes(tmp_path, GL_MR_SAME) == {ref.replace("pr-12", "pr-7") for ref in expected}


@pytest.mark.parametrize("environ", [GH_PUSH_MAIN, GL_PUSH_MAIN], ids=["github", "gitlab"])
def test_plan_of_a_push_to_main_writes_mains_refs(tmp_path: Path, environ: dict[str, str]) -> None:
    expected = set()
    for stage in ("deps", "ci"):
        expected |= {
            f"ghcr.io/acme/app-ci:{stage}-py3.12-main",
            f"ghcr.io/acme/app-ci:{stage}-py3.12-0123456",
            f"ghcr.io/acme/app-ci:{stage}-py3.12",
            f"ghcr.io/acme/app-ci:{stage}-py3.12-fp-ffffffffffff",
            f"ghcr.io/acme/app-ci-cache:{stage}-py3.12-main",
        }
    assert registry_writes(tmp_path, environ) == expected
