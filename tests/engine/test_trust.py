"""Trust on the real engine and registry: no branch name, CI event or stray tag puts
anything but the default branch's own build under the default branch's tags.

Each test lists the refs a run wrote (registry tags before and after) and checks what a
user would: which tags exist, and what ``docker run IMAGE:TAG cat /app/app.py`` prints.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from .conftest import REGISTRY, Project, Result, bake_ci, docker, make_project, registry_tags

TARGET = "ci-py311"
PREFIX = "ci-py3.11"
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json"
)


def commit(path: Path, message: str) -> str:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "add", "-A"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", message], cwd=path, check=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True
    ).stdout.strip()


def checkout(project: Project, tmp: Path, branch: str, who: str) -> tuple[Project, str]:
    """A clone of the project on ``branch`` whose app.py says ``who``: (its project, its commit)."""
    path = tmp / f"checkout-{who}"
    shutil.copytree(project.path, path, symlinks=True)
    subprocess.run(["git", "checkout", "-q", "-B", branch], cwd=path, check=True)
    app = path / "app.py"
    app.write_text(app.read_text() + f'\nWHO = "{who}"\n')
    return Project(path, project.namespace, project.env, ""), commit(path, who)


def github_push(project: Project, branch: str, sha: str) -> dict[str, str]:
    return {
        **project.env,
        "CI": "true",
        "GITHUB_REPOSITORY": "acme/app",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF": f"refs/heads/{branch}",
        "GITHUB_REF_NAME": branch,
        "GITHUB_SHA": sha,
    }


def refs(project: Project) -> dict[str, set[str]]:
    """Every tag of the project's image and cache repositories."""
    image = f"{project.namespace}/fixture/app-ci"
    return {"image": registry_tags(image), "cache": registry_tags(f"{image}-cache")}


def written(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, list[str]]:
    return {repo: sorted(after[repo] - before[repo]) for repo in after}


def build(project: Project, env: dict[str, str], report: Path, *args: str) -> Result:
    result = bake_ci("build", TARGET, "--progress", "plain", "--report", str(report), *args, cwd=project.path, env=env)
    assert result.code == 0, result.err
    return result


def status_of(report: Path) -> str:
    [row] = json.loads(report.read_text())["targets"]
    return str(row["status"])


def next_fingerprint(project: Project) -> str:
    result = bake_ci("status", TARGET, "--push", "--json", cwd=project.path, env=project.env)
    assert result.code == 0, result.err
    [row] = json.loads(result.out)
    return str(row["fingerprint"])


def digest(project: Project, tag: str) -> str:
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{project.namespace}/fixture/app-ci/manifests/{tag}",
        method="HEAD",
        headers={"Accept": MANIFEST_TYPES},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(resp.headers["Docker-Content-Digest"])


def app_in(project: Project, tag: str) -> str:
    """What ``docker run IMAGE:TAG cat /app/app.py`` prints (the image pulled from the registry)."""
    image = f"{project.registry}/fixture/app-ci:{tag}"
    docker("pull", "--quiet", image)
    return docker("run", "--rm", image, "cat", "/app/app.py").stdout


@pytest.fixture
def main_next(tmp_path: Path) -> tuple[Project, str]:
    """A project with main's next change committed (app.py says WHO = "main"), not pushed yet."""
    project = make_project(tmp_path)
    app = project.path / "app.py"
    app.write_text(app.read_text() + '\nWHO = "main"\n')
    return project, commit(project.path, "main's next change")


def test_a_branch_named_like_mains_next_fingerprint_cannot_poison_main(
    main_next: tuple[Project, str], tmp_path: Path
) -> None:
    project, main_sha = main_next
    fp = next_fingerprint(project)
    attacker, attacker_sha = checkout(project, tmp_path, f"fp-{fp}", "branch")
    before = refs(project)
    build(attacker, github_push(attacker, f"fp-{fp}", attacker_sha), tmp_path / "branch.json", "--push")
    after_branch = refs(project)
    by_branch = written(before, after_branch)
    print(f"the branch fp-{fp} wrote: {by_branch}")
    assert f"{PREFIX}-fp-{fp}" not in after_branch["image"] | after_branch["cache"]
    assert f"{PREFIX}-branch-fp-{fp}" in after_branch["image"]
    assert f"{PREFIX}-branch-fp-{fp}" in after_branch["cache"]
    assert PREFIX not in after_branch["image"]

    build(project, github_push(project, "main", main_sha), tmp_path / "main.json", "--push")
    print(f"main then wrote: {written(after_branch, refs(project))}")
    assert status_of(tmp_path / "main.json") == "built"
    assert 'WHO = "main"' in app_in(project, PREFIX)
    assert digest(project, PREFIX) == digest(project, f"{PREFIX}-fp-{fp}") == digest(project, f"{PREFIX}-main")
    assert 'WHO = "branch"' in app_in(project, f"{PREFIX}-branch-fp-{fp}")


def test_a_fingerprint_tag_holding_another_image_is_not_reused(main_next: tuple[Project, str], tmp_path: Path) -> None:
    """Whatever wrote it: an image under main's fingerprint tag whose label is another fingerprint."""
    project, main_sha = main_next
    fp = next_fingerprint(project)
    other, other_sha = checkout(project, tmp_path, "feature/other", "other")
    build(other, github_push(other, "feature/other", other_sha), tmp_path / "other.json", "--push")
    # put the other branch's image under main's next fingerprint tag, through the registry API
    repository = f"{project.namespace}/fixture/app-ci"
    get = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repository}/manifests/{PREFIX}-feature-other", headers={"Accept": MANIFEST_TYPES}
    )
    with urllib.request.urlopen(get, timeout=10) as resp:
        body, media_type = resp.read(), resp.headers["Content-Type"]
    put = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repository}/manifests/{PREFIX}-fp-{fp}",
        data=body,
        method="PUT",
        headers={"Content-Type": media_type},
    )
    urllib.request.urlopen(put, timeout=10).close()

    result = build(project, github_push(project, "main", main_sha), tmp_path / "main.json", "--push")
    assert status_of(tmp_path / "main.json") == "built"
    assert "another fingerprint label" in result.err
    assert 'WHO = "main"' in app_in(project, PREFIX)
    assert digest(project, f"{PREFIX}-fp-{fp}") == digest(project, PREFIX)  # the build's own image, now


def test_a_branch_named_like_a_commit_of_main_cannot_take_its_commit_tag(
    main_next: tuple[Project, str], tmp_path: Path
) -> None:
    project, main_sha = main_next
    before = refs(project)
    build(project, github_push(project, "main", main_sha), tmp_path / "main.json", "--push")
    after_main = refs(project)
    print(f"main wrote: {written(before, after_main)}")
    commit_tag = f"{PREFIX}-{main_sha[:7]}"
    mains = digest(project, commit_tag)

    branch = main_sha[:7].upper()  # any case: tags are lowercased
    attacker, attacker_sha = checkout(project, tmp_path, branch, "branch")
    build(attacker, github_push(attacker, branch, attacker_sha), tmp_path / "branch.json", "--push")
    after_branch = refs(project)
    print(f"the branch {branch} wrote: {written(after_main, after_branch)}")
    assert digest(project, commit_tag) == mains
    assert f"{PREFIX}-branch-{main_sha[:7]}" in after_branch["image"]
    assert commit_tag not in after_branch["cache"]
    assert 'WHO = "main"' in app_in(project, commit_tag)
    assert 'WHO = "main"' in app_in(project, PREFIX)


GITLAB_FORK_PIPELINE = {
    # a fork's merge request pipeline running in the fork (project 200) against project 100
    "CI": "true",
    "GITLAB_CI": "true",
    "CI_PIPELINE_SOURCE": "merge_request_event",
    "CI_PROJECT_ID": "200",
    "CI_MERGE_REQUEST_IID": "7",
    "CI_MERGE_REQUEST_PROJECT_ID": "100",
    "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "200",
    "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "main",
    "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
    "CI_COMMIT_REF_NAME": "main",
    "CI_DEFAULT_BRANCH": "main",
}


@pytest.mark.parametrize(
    "event",
    [
        {"CI": "true", "GITHUB_EVENT_NAME": "workflow_run", "GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main"},
        GITLAB_FORK_PIPELINE,
    ],
    ids=["github workflow_run", "gitlab fork pipeline"],
)
def test_warm_under_an_untrusted_event_is_refused_and_writes_nothing(project: Project, event: dict[str, str]) -> None:
    sha_var = "GITHUB_SHA" if "GITHUB_EVENT_NAME" in event else "CI_COMMIT_SHA"
    env = {**project.env, **event, sha_var: project.sha}
    before = refs(project)
    result = bake_ci("warm", TARGET, "--progress", "plain", cwd=project.path, env=env)
    print(f"warm wrote: {written(before, refs(project))}")
    assert result.code == 2, result.err
    assert "Nothing was written" in result.err
    assert "Traceback" not in result.err
    assert refs(project) == before == {"image": set(), "cache": set()}


def test_a_gitlab_fork_pipeline_builds_only_its_own_cache(project: Project, tmp_path: Path) -> None:
    env = {**project.env, **GITLAB_FORK_PIPELINE, "CI_COMMIT_SHA": project.sha}
    build(project, env, tmp_path / "fork.json", "--push")
    after = refs(project)
    print(f"the fork's build wrote: {after}")
    assert after == {"image": set(), "cache": {f"{PREFIX}-pr-7"}}


def plan_writes(project: Project, *args: str) -> tuple[set[str], str]:
    """The registry cache refs ``plan`` says the run exports (its JSON), and its 'this run writes' line."""
    result = bake_ci("plan", TARGET, *args, cwd=project.path, env=project.env)
    assert result.code == 0, result.err
    targets = json.loads(result.out)["target"].values()
    exported = {
        field.partition("ref=")[2].split(",")[0]
        for t in targets
        for field in t["cache-to"]
        if field.startswith("type=registry")
    }
    line = next(line for line in result.err.splitlines() if line.startswith("this run writes"))
    return exported, line


def test_no_reuse_pushes_are_reused_later_and_cache_only_writes_what_plan_says(
    project: Project, tmp_path: Path
) -> None:
    before = refs(project)
    build(project, project.env, tmp_path / "main.json", "--push", "--no-reuse", "--branch", "main")
    after_main = refs(project)
    print(f"build --push --no-reuse wrote: {written(before, after_main)}")
    assert any(tag.startswith(f"{PREFIX}-fp-") for tag in after_main["image"]), after_main

    build(project, project.env, tmp_path / "new.json", "--push", "--branch", "feature/new")
    after_new = refs(project)
    print(f"a new branch with no change wrote: {written(after_main, after_new)}")
    assert status_of(tmp_path / "new.json") == "reused"

    exported, line = plan_writes(project, "--cache-only", "--branch", "feature/co")
    cache_ref = f"{project.registry}/fixture/app-ci-cache:{PREFIX}-feature-co"
    assert exported == {cache_ref}
    assert f"cache {project.registry}/fixture/app-ci-cache:STAGE-pyX.Y-feature-co" in line
    result = build(project, project.env, tmp_path / "co.json", "--cache-only", "--branch", "feature/co")
    after_co = refs(project)
    print(f"build --cache-only wrote: {written(after_new, after_co)}")
    assert written(after_new, after_co) == {"image": [], "cache": [f"{PREFIX}-feature-co"]}, result.err
    cache = f"{project.namespace}/fixture/app-ci-cache"
    heads = {
        tag: urllib.request.urlopen(
            urllib.request.Request(
                f"http://{REGISTRY}/v2/{cache}/manifests/{tag}", method="HEAD", headers={"Accept": MANIFEST_TYPES}
            ),
            timeout=10,
        ).headers["Docker-Content-Digest"]
        for tag in (f"{PREFIX}-feature-co", f"{PREFIX}-main")
    }
    assert heads[f"{PREFIX}-feature-co"] == heads[f"{PREFIX}-main"]  # the cache that was there
