"""Registry cache cut to what helps (bake/cache.py), on the real engine and registry.

A rebuild of unchanged inputs on a new branch reads only cache refs that exist, exports
no registry cache (the cache for these inputs is there), and still leaves the branch's
cache ref in the registry, pointing at the same cache.
"""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Project, bake_ci, registry_tags

TARGETS = ["deps-py311", "deps-py313", "ci-py311", "ci-py313"]


def build(project: Project, tmp_path: Path, branch: str) -> tuple[dict[str, dict[str, object]], dict[str, object]]:
    """``build --push --no-reuse`` on ``branch``: (the report's targets, the bake file it ran)."""
    report = tmp_path / f"{branch}.json"
    args = ["build", "--push", "--no-reuse", "--branch", branch, "--log-format", "json", "--report", str(report)]
    result = bake_ci(*args, cwd=project.path, env=project.env)
    assert result.code == 0, result.err
    run = Path(str(result.events("build")[0]["run"]))
    targets = {t["target"]: t for t in json.loads(report.read_text())["targets"]}
    return targets, json.loads((run / "bake.json").read_text())


def manifest_digest(ref: str) -> str:
    import urllib.request

    repository, _, tag = ref.partition("/")[2].rpartition(":")
    request = urllib.request.Request(
        f"http://{ref.partition('/')[0]}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(resp.headers["Docker-Content-Digest"])


def test_a_rebuild_of_the_same_inputs_reads_existing_cache_and_writes_none(project: Project, tmp_path: Path) -> None:
    first, definition = build(project, tmp_path, "main")
    assert {t: r["status"] for t, r in first.items()} == dict.fromkeys(TARGETS, "built")
    cache_repo = f"{project.namespace}/fixture/app-ci-cache"
    image_repo = f"{project.registry}/fixture/app-ci"
    # the default branch's image does not exist yet, nor any cache: nothing to read
    assert all(t["cache-from"] == [] for t in definition["target"].values())
    tags = registry_tags(cache_repo)
    for target in TARGETS:
        stage, python = target.split("-py")
        prefix = f"{stage}-py{python[0]}.{python[1:]}"
        assert f"{prefix}-main" in tags
        assert any(tag.startswith(f"{prefix}-fp-") for tag in tags), tags  # the cache, recorded by fingerprint

    second, definition = build(project, tmp_path, "feature-x")
    for target, row in second.items():
        assert row["status"] == "built"
        assert row["cached"] == row["steps"], row  # every step from cache
        planned = definition["target"][target]
        stage, python = target.split("-py")
        prefix = f"{stage}-py{python[0]}.{python[1:]}"
        # the branch's ref did not exist; the default branch's image is no more than its cache ref
        assert planned["cache-from"] == [f"type=registry,ref={project.registry}/fixture/app-ci-cache:{prefix}-main"]
        assert planned["cache-to"] == ["type=inline"]  # the cache for these inputs is there already
        cache_ref = f"{project.registry}/fixture/app-ci-cache"
        assert manifest_digest(f"{cache_ref}:{prefix}-feature-x") == manifest_digest(f"{cache_ref}:{prefix}-main")
        assert manifest_digest(f"{image_repo}:{prefix}-feature-x")
