"""Many runners, one registry: two engines on this machine stand for two CI runners.

Runner A is the first engine, runner B the second (``ci/engine-up --second``), whose
builder starts empty. Everything they share goes through the registry. The projects
use the defaults a user would: no ``BAKE_CI_BASE_IMAGE``, so the Dockerfile's base is
``python:3.X-slim``, pulled (and resolved for fingerprints) through the engines' mirror.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .conftest import REGISTRY, Project, Result, bake_ci, clear_builder, make_project, on_engine

TARGETS = ["deps-py311", "deps-py313", "ci-py311", "ci-py313"]
IMAGE = "runners/app-ci"
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def runners_project(tmp: Path, source: Path | None = None) -> Project:
    """The 2-stage x 2-Python fixture under its own image name, with the default base image."""
    project = make_project(tmp, source) if source else make_project(tmp)
    config = project.path / "pyproject.toml"
    text = config.read_text().replace('image = "fixture/app-ci"', f'image = "{IMAGE}"')
    assert "base-image" not in text
    config.write_text(text)
    git(project.path, "commit", "-q", "-am", "image name of these tests")
    project.sha = git(project.path, "rev-parse", "HEAD").strip()
    assert "BAKE_CI_BASE_IMAGE" not in project.env  # the default base image
    return project


def git(cwd: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True).stdout


def on(host: str | None, project: Project) -> dict[str, str]:
    """The project's environment for a runner: the first engine (None) or the one at ``host``,
    each with a state folder of its own, as on two machines."""
    env = {**project.env, "BAKE_CI_STATE_DIR": str(project.path.parent / f"state-{'b' if host else 'a'}")}
    return {**env, "DOCKER_HOST": host} if host else env


def report(path: Path) -> dict[str, dict[str, Any]]:
    return {t["target"]: t for t in json.loads(path.read_text())["targets"]}


def no_bake(result: Result) -> None:
    assert not [e for e in result.events("run") if "buildx bake" in str(e.get("cmd"))], "a BuildKit build ran"


def build_cache_size(host: str) -> str:
    """``Total:`` of ``docker buildx du`` on the engine at ``host``."""
    out = on_engine(host, "buildx", "du").stdout
    return next((line.split()[-1] for line in out.splitlines() if line.startswith("Total:")), "0B")


# -- the registry, as a user would inspect it ------------------------------------------------


def get(repository: str, reference: str) -> tuple[str, dict[str, Any]]:
    """The manifest ``repository:reference`` in the local registry: (digest, manifest)."""
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repository}/manifests/{reference}", headers={"Accept": ACCEPT}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(resp.headers["Docker-Content-Digest"]), json.load(resp)


def tags(repository: str) -> list[str]:
    with urllib.request.urlopen(f"http://{REGISTRY}/v2/{repository}/tags/list", timeout=10) as resp:
        return sorted(json.load(resp).get("tags") or [])


def image_manifest(repository: str, reference: str) -> dict[str, Any]:
    """The image's own manifest (the index's entry for this platform, not an attestation)."""
    _, manifest = get(repository, reference)
    if "manifests" in manifest:
        entries = [m for m in manifest["manifests"] if m.get("platform", {}).get("os") != "unknown"]
        assert len(entries) == 1, manifest
        _, manifest = get(repository, entries[0]["digest"])
    return manifest


INLINE_CACHE = "moby.buildkit.cache.v0"


def contents(repository: str) -> dict[str, dict[str, Any]]:
    """Every tag of ``repository`` and its image: layers, and config without inline-cache metadata.

    The config's inline-cache entry lists which layers BuildKit had as cache results when it
    exported, so it differs between a build from scratch and one from cache; nothing
    that a container gets from the image does.
    """
    found = {}
    for tag in tags(repository):
        manifest = image_manifest(repository, tag)
        url = f"http://{REGISTRY}/v2/{repository}/blobs/{manifest['config']['digest']}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            config = json.load(resp)
        config.pop(INLINE_CACHE, None)
        found[tag] = {"layers": [x["digest"] for x in manifest["layers"]], "config": config}
    return found


def config_digests(repository: str) -> dict[str, str]:
    """Every tag of ``repository`` and its image's config digest."""
    return {tag: str(image_manifest(repository, tag)["config"]["digest"]) for tag in tags(repository)}


def cache_layers(repository: str, tag: str) -> set[str]:
    """The layer blobs a registry cache ref holds (an index of blobs, or an image manifest)."""
    _, manifest = get(repository, tag)
    entries = manifest.get("layers") or manifest.get("manifests") or []
    return {str(e["digest"]) for e in entries if "cacheconfig" not in str(e.get("mediaType"))}


def tag_of(target: str, suffix: str = "main") -> str:
    stage, python = target.split("-py")
    return f"{stage}-py{python[0]}.{python[1:]}-{suffix}"


def fingerprints(project_path: Path, env: Mapping[str, str]) -> dict[str, str | None]:
    result = bake_ci("status", "--json", cwd=project_path, env=env)
    assert result.code == 0, result.err
    return {row["target"]: row["fingerprint"] for row in json.loads(result.out)}


# -- part 1: the defaults -----------------------------------------------------------------------


def plain_project(tmp: Path, dockerfile: str, extra: str = "") -> Project:
    source = tmp / "source"
    source.mkdir()
    (source / "Dockerfile").write_text(dockerfile)
    (source / "app.py").write_text("print('hello')\n")
    (source / "pyproject.toml").write_text(
        f'[tool.bake-ci]\nimage = "runners/plain"\npython = ["3.13"]\nstages = ["ci"]\n{extra}'
    )
    return make_project(tmp, source)


def test_from_python_slim_without_a_base_image_key_is_fingerprinted_built_pushed_and_reused(tmp_path: Path) -> None:
    project = plain_project(tmp_path, "FROM python:3.13-slim AS ci\nCOPY app.py /app/\n")
    assert fingerprints(project.path, project.env)["ci-py313"] is not None

    built = bake_ci("build", "--push", "--report", str(tmp_path / "a.json"), cwd=project.path, env=project.env)
    assert built.code == 0, built.err
    assert report(tmp_path / "a.json")["ci-py313"]["status"] == "built"

    args = ["build", "--push", "--branch", "next", "--log-format", "json", "--report", str(tmp_path / "b.json")]
    again = bake_ci(*args, cwd=project.path, env=project.env)
    assert again.code == 0, again.err
    assert report(tmp_path / "b.json")["ci-py313"]["status"] == "reused"
    no_bake(again)


def test_a_base_no_one_has_is_reported_by_status_and_doctor_with_every_answer(tmp_path: Path) -> None:
    project = plain_project(
        tmp_path, "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS ci\n", 'base-image = "python:{python}-nosuchtag"\n'
    )
    mirror_answer = "localhost:5000/library/python:3.13-nosuchtag (mirror): not found"

    status = bake_ci("status", "--json", cwd=project.path, env=project.env)
    assert status.code == 0, status.err
    [row] = json.loads(status.out)
    assert row["fingerprint"] is None
    assert row["action"] == "build"
    assert "python:3.13-nosuchtag cannot be resolved" in row["why"]
    assert mirror_answer in row["why"]
    assert "registry-1.docker.io/library/python:3.13-nosuchtag:" in row["why"]
    assert "the local engine: no such image" in row["why"]

    doctor = bake_ci("doctor", cwd=project.path, env=project.env)
    assert doctor.code == 3, doctor.out
    assert "FAIL  base image python:3.13-nosuchtag" in doctor.out
    assert mirror_answer in doctor.out


# -- part 3: runners A and B ----------------------------------------------------------------------


def test_runner_b_on_an_empty_engine_reuses_then_builds_from_the_registry_cache(
    second_engine: str, tmp_path: Path
) -> None:
    project = runners_project(tmp_path)
    runner_a = bake_ci("build", "--push", "--progress", "quiet", cwd=project.path, env=on(None, project))
    assert runner_a.code == 0, runner_a.err
    clear_builder(second_engine)
    runner_b = on(second_engine, project)

    # a new branch, no change: every image is the one runner A pushed, and nothing is built
    args = ["build", "--push", "--branch", "feature/b", "--log-format", "json", "--report", str(tmp_path / "1.json")]
    reused = bake_ci(*args, cwd=project.path, env=runner_b)
    assert reused.code == 0, reused.err
    assert {t: r["status"] for t, r in report(tmp_path / "1.json").items()} == dict.fromkeys(TARGETS, "reused")
    no_bake(reused)
    assert build_cache_size(second_engine) == "0B"
    for target in TARGETS:
        assert (
            get(f"{project.namespace}/{IMAGE}", tag_of(target, "feature-b"))[0]
            == (get(f"{project.namespace}/{IMAGE}", tag_of(target))[0])
        )

    # --no-reuse: everything is built, every step from the registry cache runner A wrote
    args = ["build", "--push", "--no-reuse", "--branch", "feature/b", "--report", str(tmp_path / "2.json")]
    rebuilt = bake_ci(*args, cwd=project.path, env=runner_b)
    assert rebuilt.code == 0, rebuilt.err
    for row in report(tmp_path / "2.json").values():
        assert row["status"] == "built", row
        assert row["steps"], row
        assert row["cached"] == row["steps"], row

    # a source-only change, on an empty builder again: only ci builds, its deps steps cached
    clear_builder(second_engine)
    (project.path / "app.py").write_text((project.path / "app.py").read_text() + "\n# a source change\n")
    git(project.path, "checkout", "-q", "-b", "feature/source")
    git(project.path, "commit", "-q", "-am", "a source change")
    args = ["build", "--push", "--report", str(tmp_path / "3.json")]
    changed = bake_ci(*args, cwd=project.path, env=runner_b)
    assert changed.code == 0, changed.err
    rows = report(tmp_path / "3.json")
    assert {t: r["status"] for t, r in rows.items()} == {
        "deps-py311": "reused",
        "deps-py313": "reused",
        "ci-py311": "built",
        "ci-py313": "built",
    }
    for target in ("ci-py311", "ci-py313"):
        # every step but the one that reads the sources (`COPY . .`) came from the cache
        assert rows[target]["steps"] - rows[target]["cached"] == 1, rows[target]


# -- part 3: a CI matrix over two engines ---------------------------------------------------------


def test_a_matrix_of_concurrent_jobs_on_two_engines_gives_what_one_job_gives(
    second_engine: str, tmp_path: Path
) -> None:
    project = runners_project(tmp_path)
    images = f"{project.namespace}/{IMAGE}"
    caches = f"{project.namespace}/{IMAGE}-cache"

    single = bake_ci("build", "--push", "--report", str(tmp_path / "single.json"), cwd=project.path, env=project.env)
    assert single.code == 0, single.err
    assert {r["status"] for r in report(tmp_path / "single.json").values()} == {"built"}
    one_job = contents(images)
    one_job_fingerprints = fingerprints(project.path, project.env)
    layers = {t: one_job[tag_of(t)]["layers"] for t in TARGETS}
    assert len({tuple(x) for x in layers.values()}) == len(TARGETS)

    # The images go (as after a registry clean-up), the cache stays: each job has to build,
    # and what it pushes can be compared with what the one job pushed.
    for digest in {get(images, tag)[0] for tag in tags(images)}:
        request = urllib.request.Request(f"http://{REGISTRY}/v2/{images}/manifests/{digest}", method="DELETE")
        urllib.request.urlopen(request, timeout=10).close()
    assert tags(images) == []
    clear_builder(second_engine)

    # one job per target, each in its own checkout, two on each engine, all at once
    engine_of = {"deps-py311": None, "ci-py313": None, "deps-py313": second_engine, "ci-py311": second_engine}
    checkouts = {t: tmp_path / f"runner-{t}" for t in TARGETS}
    for checkout in checkouts.values():
        subprocess.run(["git", "clone", "-q", str(project.path), str(checkout)], check=True)

    def job(target: str) -> Result:
        out = str(tmp_path / f"job-{target}.json")
        args = ["build", target, "--push", "--branch", "main", "--progress", "plain", "--report", out]
        return bake_ci(*args, cwd=checkouts[target], env=on(engine_of[target], project))

    with ThreadPoolExecutor(max_workers=len(TARGETS)) as pool:
        jobs = dict(zip(TARGETS, pool.map(job, TARGETS), strict=True))
    for target, result in jobs.items():
        assert result.code == 0, result.err
        rows = report(tmp_path / f"job-{target}.json")
        assert list(rows) == [target]
        assert rows[target]["status"] == "built", rows

    # the same tags, each naming an image with the same layers and config as the one job's
    # (but for the inline-cache metadata, see contents()), for the same fingerprints
    assert contents(images) == one_job
    assert fingerprints(project.path, project.env) == one_job_fingerprints
    assert fingerprints(checkouts["ci-py311"], on(second_engine, project)) == one_job_fingerprints
    # four different cache refs, each holding its own image's layers (mode=max: every stage of
    # its chain), so each was written by a build of its own target. It may hold more: a
    # builder with history exports every result it has for a step, and targets share steps.
    cache_refs = {t: get(caches, tag_of(t))[0] for t in TARGETS}
    assert len(set(cache_refs.values())) == len(TARGETS), cache_refs
    for target in TARGETS:
        assert set(layers[target]) <= cache_layers(caches, tag_of(target)), target

    # a following run on either engine reuses all four
    for host, branch in ((None, "next-a"), (second_engine, "next-b")):
        out = str(tmp_path / f"{branch}.json")
        args = ["build", "--push", "--branch", branch, "--log-format", "json", "--report", out]
        again = bake_ci(*args, cwd=project.path, env=on(host, project))
        assert again.code == 0, again.err
        assert {t: r["status"] for t, r in report(Path(out)).items()} == dict.fromkeys(TARGETS, "reused")
        no_bake(again)


# -- part 3: the same fingerprints everywhere ------------------------------------------------------


def test_both_engines_compute_the_same_fingerprints_for_a_checkout_and_its_clone(
    second_engine: str, tmp_path: Path
) -> None:
    project = runners_project(tmp_path)
    clone = tmp_path / "elsewhere" / "checkout"
    clone.parent.mkdir()
    subprocess.run(["git", "clone", "-q", str(project.path), str(clone)], check=True)
    assert not (clone / ".bake-ci").exists()
    seen = {
        (engine, where.name): fingerprints(where, on(host, project))
        for engine, host in (("A", None), ("B", second_engine))
        for where in (project.path, clone)
    }
    first = seen[("A", project.path.name)]
    assert sorted(first) == sorted(TARGETS)
    assert all(first.values()), first
    assert len(set(first.values())) == len(TARGETS)
    assert all(found == first for found in seen.values()), seen
    shutil.rmtree(clone)
