"""``bake-ci gc`` against a registry of the tests' own (behind the fault proxy), never the shared one.

The 2x2 fixture is pushed once per module from ``main``, then from a branch that is deleted
afterwards; each test gets a registry of its own on a copy of that storage, and works on refs
of its own (copies of main's index under tags of gone branches), so the tests do not depend
on each other's order.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import bake_ci, clear_builder, docker, make_project
from .faultproxy import FaultProxy, Registry

IMAGE = "fixture/app-ci"
ACCEPT = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]


@dataclass
class Pushed:
    path: Path
    env: dict[str, str]
    proxy: FaultProxy
    registry: Registry
    namespace: str

    def url(self, what: str) -> str:
        return f"http://127.0.0.1:{self.registry.port}/v2/{self.namespace}/{what}"

    def tags(self, repo: str = IMAGE) -> set[str]:
        return self.registry.tags(f"{self.namespace}/{repo}")

    def manifest(self, tag: str, repo: str = IMAGE) -> tuple[str, bytes]:
        request = urllib.request.Request(self.url(f"{repo}/manifests/{tag}"), headers={"Accept": ACCEPT})
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.headers["Content-Type"], resp.read()

    def gone_copies(self, count: int) -> list[str]:
        """``count`` tags of gone branches, each naming a copy of main's index (its own digest)."""
        media, body = self.manifest("ci-py3.11-main")
        tags = []
        for _ in range(count):
            data = json.loads(body)
            data.setdefault("annotations", {})["test.copy"] = uuid.uuid4().hex
            tag = f"ci-py3.11-gone-{uuid.uuid4().hex[:8]}"
            request = urllib.request.Request(
                self.url(f"{IMAGE}/manifests/{tag}"), data=json.dumps(data).encode(), method="PUT"
            )
            request.add_header("Content-Type", media)
            urllib.request.urlopen(request, timeout=10).close()
            tags.append(tag)
        return tags

    def gc(self, *args: str) -> tuple[int, str, str]:
        result = bake_ci("gc", "--grace", "0", *args, cwd=self.path, env=self.env)
        return result.code, result.out, result.err

    def kept_intact(self, before: dict[str, str]) -> None:
        """Every tag of ``before`` still names its manifest, and every child of it is there."""
        for tag, digest in before.items():
            _, body = self.manifest(tag)
            assert "sha256:" in digest
            for child in json.loads(body).get("manifests") or []:
                request = urllib.request.Request(
                    self.url(f"{IMAGE}/manifests/{child['digest']}"), method="HEAD", headers={"Accept": ACCEPT}
                )
                urllib.request.urlopen(request, timeout=10).close()

    def digests(self, tags: set[str]) -> dict[str, str]:
        out = {}
        for tag in tags:
            request = urllib.request.Request(
                self.url(f"{IMAGE}/manifests/{tag}"), method="HEAD", headers={"Accept": ACCEPT}
            )
            with urllib.request.urlopen(request, timeout=10) as resp:
                out[tag] = resp.headers["Docker-Content-Digest"]
        return out


@dataclass
class Seed:
    """What the module pushed once: the checkout, its state folder and the registry's storage."""

    path: Path
    state: Path
    namespace: str
    data: Path


@pytest.fixture(scope="module")
def gc_seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seed]:
    """main and a deleted branch feature, pushed once for the module to a registry of its
    own, which is then stopped: each test starts a registry on a copy of its storage."""
    registry = Registry()
    try:
        project = make_project(tmp_path_factory.mktemp("gc"))
        namespace = f"gc-{uuid.uuid4().hex[:8]}"
        env = {**project.env, "BAKE_CI_REGISTRY": f"127.0.0.1:{registry.port}/{namespace}"}
        assert bake_ci("build", "--push", "--progress", "plain", cwd=project.path, env=env).code == 0
        subprocess.run([*GIT, "checkout", "-q", "-b", "feature"], cwd=project.path, check=True)
        (project.path / "app.py").write_text((project.path / "app.py").read_text() + "\n# feature\n")
        subprocess.run([*GIT, "commit", "-qam", "feature"], cwd=project.path, check=True)
        assert bake_ci("build", "--push", "--progress", "plain", cwd=project.path, env=env).code == 0
        subprocess.run([*GIT, "checkout", "-q", "main"], cwd=project.path, check=True)
        subprocess.run(["git", "branch", "-q", "-D", "feature"], cwd=project.path, check=True)
        registry.stop()
        yield Seed(project.path, Path(project.env["BAKE_CI_STATE_DIR"]), namespace, registry.data)
    finally:
        registry.close()


@pytest.fixture
def gc_project(gc_seed: Seed, tmp_path: Path) -> Iterator[Pushed]:
    """The seed's checkout, state folder and registry storage, copied for this test, behind a
    fault proxy: each test's own, since every test but the dry run deletes, and tests run in
    any order."""
    path, state = tmp_path / "project", tmp_path / "state"
    shutil.copytree(gc_seed.path, path, symlinks=True)
    shutil.copytree(gc_seed.state, state, symlinks=True)
    registry = Registry(seed=gc_seed.data)
    proxy = FaultProxy(registry.address)
    try:
        env = {"BAKE_CI_STATE_DIR": str(state), "BAKE_CI_REGISTRY": f"{proxy.address}/{gc_seed.namespace}"}
        yield Pushed(path, env, proxy, registry, gc_seed.namespace)
    finally:
        proxy.close()
        registry.close()


def test_a_deleted_branch_is_listed_by_the_dry_run_then_removed(gc_project: Pushed) -> None:
    image, cache = gc_project.tags(), gc_project.tags(f"{IMAGE}-cache")
    code, out, err = gc_project.gc("--json")
    assert code == 0, err
    going = {(r["repository"].rsplit("/", 1)[1], r["tag"]) for r in json.loads(out)["refs"] if r["verdict"] == "delete"}
    feature = {t for t in image | cache if t.endswith("-feature")}
    assert feature, "the fixture gc_project no branch tags"
    branch_refs = {(repo, t) for repo, t in going if t.endswith("-feature")}
    assert branch_refs == {("app-ci", t) for t in image if t.endswith("-feature")} | {
        ("app-ci-cache", t) for t in cache if t.endswith("-feature")
    }
    reasons = {r["reason"] for r in json.loads(out)["refs"] if r["tag"].endswith("-feature")}
    assert reasons == {"no live branch is named feature (per the checkout's local branches)"}
    assert (gc_project.tags(), gc_project.tags(f"{IMAGE}-cache")) == (image, cache), "the dry run deleted something"

    kept = gc_project.digests({t for t in image if not t.endswith("-feature") and (("app-ci", t) not in going)})
    code, out, err = gc_project.gc("--apply")
    assert code == 0, err + out
    assert not {t for t in gc_project.tags() | gc_project.tags(f"{IMAGE}-cache") if t.endswith("-feature")}
    assert gc_project.digests(set(kept)) == kept
    gc_project.kept_intact(kept)
    pulled = docker("pull", "-q", f"{gc_project.proxy.address}/{gc_project.namespace}/{IMAGE}:ci-py3.11", check=False)
    assert pulled.returncode == 0, pulled.stderr


def test_the_cache_refs_gc_keeps_still_import_as_cache(gc_project: Pushed, second_engine: str, tmp_path: Path) -> None:
    """After gc, a fresh runner's --no-reuse build of main takes every step from the kept cache."""
    assert gc_project.gc("--apply")[0] == 0
    assert not {t for t in gc_project.tags(f"{IMAGE}-cache") if t.endswith("-feature")}, "gc removed nothing"
    clear_builder(second_engine)
    args = ["build", "--push", "--no-reuse", "--progress", "plain", "--report", str(tmp_path / "r.json")]
    result = bake_ci(*args, cwd=gc_project.path, env={**gc_project.env, "DOCKER_HOST": second_engine})
    assert result.code == 0, result.err[-3000:]
    rows = json.loads((tmp_path / "r.json").read_text())["targets"]
    assert len(rows) == 4
    for row in rows:
        assert row["status"] == "built", row
        assert row["cached"] == row["steps"], f"{row['target']}: {row['cached']}/{row['steps']} steps cached"


PLATFORMS = ["linux/amd64", "linux/arm64"]


def index_platforms(ref: str) -> set[str]:
    """The platforms ``imagetools inspect`` lists for ``ref`` (attestations left out)."""
    out = docker("buildx", "imagetools", "inspect", ref, "--format", "{{json .Manifest}}").stdout
    listed = json.loads(out).get("manifests") or []
    return {
        f"{m['platform']['os']}/{m['platform']['architecture']}"
        for m in listed
        if (m.get("platform") or {}).get("os") not in (None, "unknown")
    }


def test_a_multi_platform_projects_gone_branch_goes_and_kept_images_keep_every_platform(tmp_path: Path) -> None:
    """Per-platform refs (``…__linux-arm64``) are judged as the ref they are made from."""
    registry = Registry()
    try:
        project = make_project(tmp_path, Path(__file__).parent / "fixture-platforms")
        namespace = f"gc-{uuid.uuid4().hex[:8]}"
        env = {**project.env, "BAKE_CI_REGISTRY": f"127.0.0.1:{registry.port}/{namespace}"}
        image, cache = f"{namespace}/platforms/app-ci", f"{namespace}/platforms/app-ci-cache"
        assert bake_ci("build", "--push", "--progress", "quiet", cwd=project.path, env=env).code == 0
        subprocess.run([*GIT, "checkout", "-q", "-b", "gone"], cwd=project.path, check=True)
        (project.path / "app.py").write_text((project.path / "app.py").read_text() + "\n# gone\n")
        subprocess.run([*GIT, "commit", "-qam", "gone"], cwd=project.path, check=True)
        assert bake_ci("build", "--push", "--progress", "quiet", cwd=project.path, env=env).code == 0
        subprocess.run([*GIT, "checkout", "-q", "main"], cwd=project.path, check=True)
        subprocess.run(["git", "branch", "-q", "-D", "gone"], cwd=project.path, check=True)
        per_platform = {
            (repo, t)
            for repo in (image, cache)
            for t in registry.tags(repo)
            if t.endswith(("__linux-amd64", "__linux-arm64"))
        }
        gone = {(repo, t) for repo, t in per_platform if "-gone__" in t}
        assert {t for _, t in gone} >= {"ci-py3.11-gone__linux-arm64", "ci-py3.13-gone__linux-amd64"}

        dry = bake_ci("gc", "--grace", "0", "--json", cwd=project.path, env=env)
        assert dry.code == 0, dry.err
        rows = {(r["repository"].split("/", 1)[1], r["tag"]): r for r in json.loads(dry.out)["refs"]}
        for key in gone:
            assert rows[key]["verdict"] == "delete", rows[key]
            assert "no live branch is named gone" in rows[key]["reason"], rows[key]
        for key in per_platform - gone:
            if "-main__" in key[1] or ("-fp-" in key[1] and key[0] == image):
                assert rows[key]["verdict"] == "keep", rows[key]

        code = bake_ci("gc", "--grace", "0", "--apply", cwd=project.path, env=env)
        assert code.code == 0, code.err + code.out
        left = {(repo, t) for repo in (image, cache) for t in registry.tags(repo)}
        assert not {t for _, t in left if "-gone" in t}
        assert {(image, "ci-py3.11-main__linux-arm64"), (cache, "ci-py3.13-main__linux-amd64")} <= left
        for target in ("deps-py3.11", "deps-py3.13", "ci-py3.11", "ci-py3.13"):
            for platform in PLATFORMS:  # each platform of main's images is still found by its fingerprint
                assert any(t.startswith(f"{target}-fp-") and t.endswith(platform.replace("/", "-")) for _, t in left)
        kept_indexes = sorted(t for repo, t in left if repo == image and "__" not in t)
        assert kept_indexes
        for tag in kept_indexes:
            found = index_platforms(f"localhost:{registry.port}/{image}:{tag}")
            assert found == set(PLATFORMS), (tag, found)
    finally:
        registry.close()


def test_a_429_storm_is_waited_out(gc_project: Pushed) -> None:
    tags = gc_project.gone_copies(2)
    kept = gc_project.digests({"ci-py3.11", "ci-py3.11-main"})
    gc_project.proxy.fail(429, times=4, methods="DELETE,HEAD")
    code, out, err = gc_project.gc("--apply")
    gc_project.proxy.clear()
    assert code == 0, err + out
    assert gc_project.proxy.injected() >= 4
    assert not set(tags) & gc_project.tags()
    assert gc_project.digests(set(kept)) == kept


def test_a_registry_refusing_deletes_stops_gc_with_the_hosted_ways(gc_project: Pushed) -> None:
    tags = gc_project.gone_copies(2)
    kept = gc_project.digests({"ci-py3.11", "ci-py3.11-main"})
    gc_project.proxy.fail(405, times=None, methods="DELETE")
    try:
        code, out, err = gc_project.gc("--apply")
    finally:
        gc_project.proxy.clear()
    assert code == 1, err
    assert "Traceback" not in err + out
    for word in ("refused to delete", "GHCR", "Docker Hub", "GitLab", "ECR"):
        assert word in err
    assert "not attempted" in out or "HTTP 405" in out
    assert set(tags) <= gc_project.tags()
    assert gc_project.digests(set(kept)) == kept
    assert gc_project.gc("--apply")[0] == 0  # the registry lets it now: the rerun finishes
    assert not set(tags) & gc_project.tags()


def test_the_registry_going_down_mid_gc(gc_project: Pushed) -> None:
    tags = gc_project.gone_copies(3)
    kept = gc_project.digests({"ci-py3.11", "ci-py3.11-main", "deps-py3.11"})
    gc_project.proxy.down_on(methods="DELETE")
    try:  # each request gives up after 5 s of retries (BAKE_CI_RETRY_BUDGET), not a minute
        result = bake_ci(
            "gc", "--grace", "0", "--apply", cwd=gc_project.path, env={**gc_project.env, "BAKE_CI_RETRY_BUDGET": "5"}
        )
        code, out, err = result.code, result.out, result.err
    finally:
        gc_project.proxy.clear()
        gc_project.proxy.up()
    assert code == 3, err
    assert "went away during gc" in err
    assert "Traceback" not in err + out
    assert gc_project.digests(set(kept)) == kept
    code, out, err = gc_project.gc("--apply")
    assert code == 0, err
    assert not set(tags) & gc_project.tags()
    gc_project.kept_intact(kept)
