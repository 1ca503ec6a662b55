"""Multi-platform images on the real engine: linux/arm64 under emulation (ci/engine-up
registers qemu-aarch64), built on one runner or split across two engines and merged.

The fixture is tiny on purpose (one RUN step that only starts Python): under emulation
every RUN step is slow. The one-runner build is done once for the module.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from .conftest import REGISTRY, Project, Result, bake_ci, docker, make_project, on_engine, registry_tags
from .test_runners import get, git, no_bake, report, tags

FIXTURE = Path(__file__).parent / "fixture-platforms"
IMAGE = "platforms/app-ci"
TARGETS = ["deps-py311", "deps-py313", "ci-py311", "ci-py313"]
PLATFORMS = ["linux/amd64", "linux/arm64"]


def suffix(platform: str) -> str:
    return "__" + platform.replace("/", "-")


def tag_of(target: str, rest: str) -> str:
    stage, python = target.split("-py")
    return f"{stage}-py{python[0]}.{python[1:]}-{rest}"


def platforms_of(repository: str, reference: str) -> dict[str, str]:
    """An index's images by platform (attestations left out); fails for a single manifest."""
    _, manifest = get(repository, reference)
    assert manifest.get("mediaType") == "application/vnd.oci.image.index.v1+json", (reference, manifest)
    found = {}
    for entry in manifest["manifests"]:
        platform = entry.get("platform") or {}
        if platform.get("os") != "unknown":
            found[f"{platform['os']}/{platform['architecture']}"] = str(entry["digest"])
    return found


def run_on(platform: str, image: str, *, host: str | None = None) -> str:
    args = ["run", "--rm", "--platform", platform, image, "python3", "-c", "import platform; print(platform.machine())"]
    proc = on_engine(host, *args) if host else docker(*args)
    return proc.stdout.strip()


def built_on(platform: str, image: str) -> str:
    return docker("run", "--rm", "--platform", platform, image, "cat", "/app/built-on").stdout.strip()


def index_tags(repository: str, target: str) -> list[str]:
    """The multi-platform tags of ``target`` (no per-platform ``__`` tag)."""
    prefix = tag_of(target, "")[:-1]
    return [t for t in tags(repository) if (t == prefix or t.startswith(prefix + "-")) and "__" not in t]


def platforms_project(tmp: Path) -> Project:
    project = make_project(tmp, FIXTURE)
    assert f'image = "{IMAGE}"' in (project.path / "pyproject.toml").read_text()
    return project


def build(project: Project, name: str, *args: str, env: dict[str, str] | None = None) -> tuple[Result, dict[str, Any]]:
    out = project.path.parent / f"{name}.json"
    result = bake_ci(
        "build", "--push", "--log-format", "json", "--report", str(out), *args, cwd=project.path, env=env or project.env
    )
    assert result.code == 0, result.err[-4000:]
    return result, report(out)


@pytest.fixture(scope="module")
def emulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, dict[str, Any]]:
    """The 2 stages x 2 Pythons fixture built for both platforms on the first engine."""
    project = platforms_project(tmp_path_factory.mktemp("emulated"))
    _, rows = build(project, "first")
    return project, rows


# -- acceptance 1: one engine, both platforms ------------------------------------------------------


def test_one_runner_pushes_an_index_of_both_platforms_for_every_tag(emulated: tuple[Project, dict[str, Any]]) -> None:
    project, rows = emulated
    repository = f"{project.namespace}/{IMAGE}"
    for target in TARGETS:
        assert rows[target]["status"] == "merged", rows[target]
        for platform in PLATFORMS:
            assert rows[target + suffix(platform)]["status"] == "built"
        found = index_tags(repository, target)
        assert sorted(found) == sorted(
            [tag_of(target, "main"), tag_of(target, project.sha[:7]), tag_of(target, "")[:-1]]
            + [t for t in found if "-fp-" in t]
        )
        assert len([t for t in found if "-fp-" in t]) == 1
        digests = {get(repository, t)[0] for t in found}
        assert digests == {rows[target]["digest"]}  # one index under every tag
        children = platforms_of(repository, tag_of(target, "main"))
        assert sorted(children) == PLATFORMS
        for platform in PLATFORMS:  # the index's child is the platform's own pushed image
            own = platforms_of(repository, tag_of(target, "main") + suffix(platform))
            assert own == {platform: children[platform]}


def test_the_arm64_image_runs_as_aarch64(emulated: tuple[Project, dict[str, Any]]) -> None:
    project, _ = emulated
    image = f"{project.registry}/{IMAGE}:{tag_of('ci-py313', 'main')}"
    assert run_on("linux/arm64", image) == "aarch64"
    assert built_on("linux/arm64", image) == "aarch64"  # its RUN step ran as arm64 too
    assert run_on("linux/amd64", image) == "x86_64"


def test_a_second_build_with_nothing_changed_reuses_every_target(emulated: tuple[Project, dict[str, Any]]) -> None:
    project, first = emulated
    result, rows = build(project, "second", "-v")
    no_bake(result)
    for target in TARGETS:
        assert rows[target]["status"] == "reused", rows[target]
        assert rows[target]["digest"] == first[target]["digest"]
        for platform in PLATFORMS:
            assert rows[target + suffix(platform)]["status"] == "reused"


# -- acceptance 2: one engine per platform, then merge ----------------------------------------------


def cache_platforms(project: Project, tag: str, bases: dict[str, set[str]]) -> set[str]:
    """Which platforms' base layers a registry cache ref holds."""
    _, manifest = get(f"{project.namespace}/{IMAGE}-cache", tag)
    layers = {str(e["digest"]) for e in manifest.get("layers") or manifest.get("manifests") or []}
    return {platform for platform, base in bases.items() if base & layers}


def base_layers(python: str) -> dict[str, set[str]]:
    found = {}
    for platform, digest in platforms_of("library/python", f"{python}-slim").items():
        _, manifest = get("library/python", digest)
        found[platform] = {str(x["digest"]) for x in manifest["layers"]}
    return found


def test_two_engines_one_platform_each_then_merge(second_engine: str, tmp_path: Path) -> None:
    project = platforms_project(tmp_path)
    repository = f"{project.namespace}/{IMAGE}"
    env_b = {**project.env, "DOCKER_HOST": second_engine, "BAKE_CI_STATE_DIR": str(tmp_path / "state-b")}

    def both(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        with ThreadPoolExecutor(2) as pool:
            a = pool.submit(build, project, f"{name}-a", "--platform", "linux/amd64")
            b = pool.submit(build, project, f"{name}-b", "--platform", "linux/arm64", env=env_b)
            return a.result()[1], b.result()[1]

    a, b = both("first")
    assert {r["status"] for r in a.values()} == {"built"}
    assert set(a) == {t + "__linux-amd64" for t in TARGETS}
    assert {r["status"] for r in b.values()} == {"built"}
    assert set(b) == {t + "__linux-arm64" for t in TARGETS}
    merged = bake_ci("merge", "--report", str(tmp_path / "merge.json"), cwd=project.path, env=project.env)
    assert merged.code == 0, merged.err
    first = report(tmp_path / "merge.json")
    for target in TARGETS:
        assert first[target]["status"] == "merged"
        assert sorted(platforms_of(repository, tag_of(target, "main"))) == PLATFORMS
        # the same index as one runner makes: every tag, both platforms
        assert len(index_tags(repository, target)) == 4
    image = f"{project.registry}/{IMAGE}:{tag_of('ci-py311', 'main')}"
    assert run_on("linux/arm64", image) == "aarch64"
    assert built_on("linux/arm64", image) == "aarch64"
    assert run_on("linux/amd64", image) == "x86_64"
    assert built_on("linux/amd64", image) == "x86_64"

    # each platform's cache ref holds its own platform's layers only
    for target in TARGETS:
        bases = base_layers("3.11" if target.endswith("311") else "3.13")
        for platform in PLATFORMS:
            assert cache_platforms(project, tag_of(target, "main") + suffix(platform), bases) == {platform}

    # nothing changed: both engines reuse, merge keeps every digest
    a, b = both("again")
    assert {r["status"] for r in [*a.values(), *b.values()]} == {"reused"}
    again = bake_ci("merge", "--report", str(tmp_path / "merge2.json"), cwd=project.path, env=project.env)
    assert again.code == 0, again.err
    for target, row in report(tmp_path / "merge2.json").items():
        assert row["status"] == "reused"
        assert row["digest"] == first[target]["digest"], row

    # a source change: both platforms rebuild the ci stage, the dependency steps from cache
    (project.path / "app.py").write_text("import platform\n\nprint('changed', platform.machine())\n")
    git(project.path, "commit", "-q", "-am", "change the source")
    project.sha = git(project.path, "rev-parse", "HEAD").strip()
    a, b = both("changed")
    for rows in (a, b):
        for target, row in rows.items():
            if target.startswith("ci-"):
                assert row["status"] == "built", row
                assert row["cached"] >= row["steps"] - 2, row  # only COPY app.py (and its export) ran
            else:
                assert row["status"] == "reused", row
    changed = bake_ci("merge", "--report", str(tmp_path / "merge3.json"), cwd=project.path, env=project.env)
    assert changed.code == 0, changed.err
    rows = report(tmp_path / "merge3.json")
    assert rows["ci-py311"]["status"] == "merged"
    assert rows["ci-py311"]["digest"] != first["ci-py311"]["digest"]
    assert rows["deps-py311"]["digest"] == first["deps-py311"]["digest"]


# -- acceptance 3: per-platform fingerprints ------------------------------------------------------


def test_a_base_re_pushed_for_arm64_only_rebuilds_arm64_only(tmp_path: Path) -> None:
    project = platforms_project(tmp_path)
    base = f"{REGISTRY}/{project.namespace}/python"
    docker("buildx", "imagetools", "create", "-t", f"{base}:3.11-slim", f"{REGISTRY}/library/python:3.11-slim")
    config = project.path / "pyproject.toml"
    config.write_text(config.read_text() + f'base-image = "{base}:{{python}}-slim"\n')
    git(project.path, "commit", "-q", "-am", "own base image")
    _, first = build(project, "first", "ci-py311")
    assert first["ci-py311"]["status"] == "merged"

    # a new arm64 child (a label more), the amd64 child as it was
    children = platforms_of(f"{project.namespace}/python", "3.11-slim")
    (tmp_path / "arm").mkdir()
    (tmp_path / "arm" / "Dockerfile").write_text(f"FROM {base}@{children['linux/arm64']}\nLABEL re-pushed=1\n")
    docker(
        "buildx", "build", "--quiet", "--push", "--provenance=false", "--platform", "linux/arm64",
        "-t", f"{base}:3.11-slim-arm64-new", str(tmp_path / "arm"),
    )  # fmt: skip
    docker(
        "buildx", "imagetools", "create", "-t", f"{base}:3.11-slim",
        f"{base}@{children['linux/amd64']}", f"{base}:3.11-slim-arm64-new",
    )  # fmt: skip
    assert platforms_of(f"{project.namespace}/python", "3.11-slim")["linux/amd64"] == children["linux/amd64"]

    def status(platform: str) -> dict[str, Any]:
        result = bake_ci(
            "status", "ci-py311", "--push", "--json", "--platform", platform, cwd=project.path, env=project.env
        )
        assert result.code == 0, result.err
        [row] = json.loads(result.out)
        return row

    assert status("linux/arm64")["action"] == "build"
    assert status("linux/amd64")["action"] == "reuse"

    _, rows = build(project, "second", "ci-py311")
    assert rows["ci-py311__linux-amd64"]["status"] == "reused"
    assert rows["ci-py311__linux-arm64"]["status"] == "built"
    assert rows["ci-py311"]["status"] == "merged"
    repository = f"{project.namespace}/{IMAGE}"
    before = platforms_of(repository, f"{tag_of('ci-py311', 'main')}__linux-amd64")
    assert platforms_of(repository, tag_of("ci-py311", "main"))["linux/amd64"] == before["linux/amd64"]

    # pull on "an arm64 machine": the arm64 image of the current fingerprint
    pulled = bake_ci("pull", "ci-py311", "--platform", "linux/arm64", cwd=project.path, env=project.env)
    assert pulled.code == 0, pulled.err
    local = f"{project.registry}/{IMAGE}:{tag_of('ci-py311', 'main')}"
    inspect = json.loads(docker("image", "inspect", local).stdout)[0]
    assert inspect["Architecture"] == "arm64"
    assert "ci-py311__linux-arm64: pulled" in pulled.out


# -- acceptance 6: forks --------------------------------------------------------------------------


def test_a_fork_s_platform_jobs_and_merge_write_only_its_pr_cache(tmp_path: Path) -> None:
    project = platforms_project(tmp_path)
    fork = {
        **project.env, "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_REF": "refs/pull/7/merge", "GITHUB_HEAD_REF": "main", "GITHUB_BASE_REF": "main",
        "GITHUB_REPOSITORY": "acme/app", "GITHUB_SHA": project.sha,
    }  # fmt: skip
    for platform in PLATFORMS:
        result = bake_ci("build", "deps-py311", "--push", "--platform", platform, cwd=project.path, env=fork)
        assert result.code == 0, result.err[-3000:]
    merged = bake_ci("merge", "deps-py311", cwd=project.path, env=fork)
    assert merged.code == 0, merged.err
    assert "merge writes nothing to the registry" in merged.err
    assert registry_tags(f"{project.namespace}/{IMAGE}") == set()
    assert sorted(registry_tags(f"{project.namespace}/{IMAGE}-cache")) == [
        "deps-py3.11-pr-7__linux-amd64",
        "deps-py3.11-pr-7__linux-arm64",
    ]


def test_status_and_pull_default_to_the_engine_s_own_platform(emulated: tuple[Project, dict[str, Any]]) -> None:
    project, _ = emulated
    own = (
        "linux/"
        + {"x86_64": "amd64", "aarch64": "arm64"}[docker("info", "--format", "{{.Architecture}}").stdout.strip()]
    )
    status = bake_ci("status", "ci-py313", "--push", "--json", cwd=project.path, env=project.env)
    assert status.code == 0, status.err
    [row] = json.loads(status.out)
    assert row["target"] == "ci-py313" + suffix(own)
    assert row["action"] == "reuse"
    pulled = bake_ci("pull", "ci-py313", cwd=project.path, env=project.env)
    assert pulled.code == 0, pulled.err
    assert f"ci-py313{suffix(own)}: pulled" in pulled.out
    local = json.loads(docker("image", "inspect", f"{project.registry}/{IMAGE}:{tag_of('ci-py313', 'main')}").stdout)
    assert f"linux/{local[0]['Architecture']}" == own


def choice_line(err: str) -> str:
    """``run``'s line saying which image of ci-py311 it runs, and why."""
    lines = [line for line in err.splitlines() if line.startswith("bake-ci: ci-py311: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_run_and_shell_use_the_image_published_for_the_platform(
    emulated: tuple[Project, dict[str, Any]], tmp_path: Path
) -> None:
    """A laptop without the image: ``run`` pulls the engine's own platform's image that the
    one-runner build pushed (or ``--platform``'s), and builds nothing."""
    project, _ = emulated
    own = (
        "linux/"
        + {"x86_64": "amd64", "aarch64": "arm64"}[docker("info", "--format", "{{.Architecture}}").stdout.strip()]
    )
    image = f"{project.registry}/{IMAGE}:{tag_of('ci-py311', 'main')}"
    env = {**project.env, "BAKE_CI_STATE_DIR": str(tmp_path / "laptop-state")}
    for platform, machine in (
        (None, {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}[own]),
        ("linux/arm64", "aarch64"),
    ):
        docker("image", "rm", "-f", image, check=False)
        chosen = ["--platform", platform] if platform else []
        ran = bake_ci(
            "run", "ci-py311", *chosen, "--", "python3", "-c", "import platform; print(platform.machine())",
            cwd=project.path, env=env,
        )  # fmt: skip
        assert ran.code == 0, ran.err[-3000:]
        assert ran.out == f"{machine}\n"
        line = choice_line(ran.err)
        assert ": pulled " in line, ran.err[-3000:]
        assert suffix(platform or own) in line  # its platform's fingerprint tag
        assert "locally first" not in ran.err
    # the image is now the local engine's: found there, for the same platform
    again = bake_ci("run", "ci-py311", "--platform", "linux/arm64", "--", "true", cwd=project.path, env=env)
    assert again.code == 0, again.err[-3000:]
    assert ": local " in choice_line(again.err)
