"""Multi-platform projects without an engine: names, the choice of platforms, per-platform
base digests, and how an index is assembled from its platforms' images."""

from __future__ import annotations

import hashlib
import json

import pytest

from bake import merge, platforms, registry
from bake.naming import PLATFORM_SUFFIX_RE, PythonVersion, branch_tag, platform_suffix, slug

TWO = """\
[tool.bake-ci]
image = "acme/app-ci"
registry = "localhost:5000/acme"
python = ["3.12", "3.13"]
stages = ["deps", "ci"]
platforms = ["linux/amd64", "linux/arm64"]
"""
INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE = "application/vnd.oci.image.manifest.v1+json"


def manifest(body: dict[str, object]) -> registry.Manifest:
    raw = json.dumps(body).encode()
    return registry.Manifest(str(body["mediaType"]), "sha256:" + hashlib.sha256(raw).hexdigest(), raw)


def pushed(platform: str, n: int) -> registry.Manifest:
    """What buildx pushes for one platform: an index of the image and its attestation."""
    os_name, arch = platform.split("/")
    image = f"sha256:{n:064x}"
    return manifest(
        {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [
                {"mediaType": IMAGE, "digest": image, "size": 100, "platform": {"architecture": arch, "os": os_name}},
                {
                    "mediaType": IMAGE,
                    "digest": f"sha256:{n + 1:064x}",
                    "size": 50,
                    "annotations": {"vnd.docker.reference.digest": image},
                    "platform": {"architecture": "unknown", "os": "unknown"},
                },
            ],
        }
    )


# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "suffix"),
    [("linux/amd64", "__linux-amd64"), ("linux/arm64", "__linux-arm64"), ("linux/arm/v7", "__linux-arm-v7")],
)
def test_platform_suffix(platform: str, suffix: str) -> None:
    assert platform_suffix(platform) == suffix
    assert PLATFORM_SUFFIX_RE.search("ci-py3.12-main" + suffix)


def test_no_usual_branch_slug_looks_like_a_platform_ref() -> None:
    for branch in ["x-linux-arm64", "linux-arm64", "feature/linux_arm64", "fix-arm64", "main", "pr-12"]:
        assert not PLATFORM_SUFFIX_RE.search(slug(branch, 100)), branch


def test_a_long_branch_keeps_the_platform_suffix_within_128_characters() -> None:
    tag = branch_tag("ci", PythonVersion(3, 12), "feature/" + "x" * 300, "linux/arm/v7")
    assert len(tag) <= 128
    assert tag.endswith("__linux-arm-v7")
    assert branch_tag("ci", PythonVersion(3, 12), "main", "linux/arm64") == "ci-py3.12-main__linux-arm64"


# -- per-platform base digests ---------------------------------------------------------------------


def test_platform_child_picks_the_platform_s_entry_of_an_index() -> None:
    index = manifest(
        {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [
                {"digest": "sha256:" + "a" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
                {"digest": "sha256:" + "b" * 64, "platform": {"os": "linux", "architecture": "arm64"}},
                {"digest": "sha256:" + "c" * 64, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
            ],
        }
    )
    assert registry.platform_child(index, "linux/arm64") == ("sha256:" + "b" * 64, "")
    assert registry.platform_child(index, "linux/arm/v7") == ("sha256:" + "c" * 64, "")
    digest, why = registry.platform_child(index, "linux/s390x")
    assert digest is None
    assert why == "no linux/s390x image in its index (it has linux/amd64, linux/arm, linux/arm64)"


def test_a_single_manifest_is_its_own_child() -> None:
    single = manifest({"schemaVersion": 2, "mediaType": IMAGE, "layers": []})
    assert registry.platform_child(single, "linux/arm64") == (single.digest, "")


# -- the index -----------------------------------------------------------------------------------


def test_assemble_lists_each_platform_s_image_and_attestation_in_order() -> None:
    amd, arm = pushed("linux/amd64", 2), pushed("linux/arm64", 10)
    index = merge.assemble([("linux/amd64", amd), ("linux/arm64", arm)])
    body = json.loads(index.body)
    assert index.media_type == INDEX
    assert index.digest == "sha256:" + hashlib.sha256(index.body).hexdigest()
    assert [e["digest"] for e in body["manifests"]] == [f"sha256:{n:064x}" for n in (2, 3, 10, 11)]
    assert [e["platform"]["architecture"] for e in body["manifests"]] == ["amd64", "unknown", "arm64", "unknown"]


def test_assemble_is_the_same_bytes_for_the_same_children() -> None:
    children = [("linux/amd64", pushed("linux/amd64", 2)), ("linux/arm64", pushed("linux/arm64", 10))]
    assert merge.assemble(children) == merge.assemble(list(children))
    other = [("linux/amd64", pushed("linux/amd64", 2)), ("linux/arm64", pushed("linux/arm64", 20))]
    assert merge.assemble(other).digest != merge.assemble(children).digest


def test_a_single_manifest_child_gets_its_platform_in_the_index() -> None:
    single = manifest({"schemaVersion": 2, "mediaType": IMAGE, "layers": []})
    [entry] = json.loads(merge.assemble([("linux/arm/v7", single)]).body)["manifests"]
    assert entry == {
        "mediaType": IMAGE,
        "digest": single.digest,
        "size": len(single.body),
        "platform": {"architecture": "arm", "os": "linux", "variant": "v7"},
    }


def test_an_image_of_another_platform_is_refused() -> None:
    with pytest.raises(merge.MergeError, match=r"the linux/arm64 image .* holds an image for"):
        merge.assemble([("linux/arm64", pushed("linux/amd64", 2))])


def test_index_fingerprint_depends_on_every_platform() -> None:
    one = platforms.index_fingerprint({"linux/amd64": "a" * 64, "linux/arm64": "b" * 64})
    assert one == platforms.index_fingerprint({"linux/arm64": "b" * 64, "linux/amd64": "a" * 64})
    assert one != platforms.index_fingerprint({"linux/amd64": "a" * 64, "linux/arm64": "c" * 64})


# -- the command line ------------------------------------------------------------------------------


def test_matrix_per_platform_and_per_target_platform(project, cli) -> None:
    project(TWO)
    per_platform = json.loads(cli("matrix", "--per", "platform").out)
    assert per_platform == {
        "include": [
            {"platform": "linux/amd64", "suffix": "linux-amd64"},
            {"platform": "linux/arm64", "suffix": "linux-arm64"},
        ]
    }
    both = json.loads(cli("matrix", "--per", "target-platform", "--stage", "ci").out)["include"]
    assert [(e["target"], e["platform"]) for e in both] == [
        ("ci-py312", "linux/amd64"),
        ("ci-py312", "linux/arm64"),
        ("ci-py313", "linux/amd64"),
        ("ci-py313", "linux/arm64"),
    ]
    assert json.loads(cli("matrix").out)["include"][0] == {"target": "deps-py312", "stage": "deps", "python": "3.12"}


def test_plan_for_one_platform_has_only_its_targets(project, cli) -> None:
    project(TWO)
    run = cli("plan", "--push", "--no-reuse", "--branch", "main", "--platform", "linux/arm64")
    assert run.rc == 0, run.err
    targets = json.loads(run.out)["target"]
    assert sorted(targets) == [
        "ci-py312__linux-arm64",
        "ci-py313__linux-arm64",
        "deps-py312__linux-arm64",
        "deps-py313__linux-arm64",
    ]
    assert all("__linux-arm64," in t["cache-to"][0] for t in targets.values())


def test_an_unknown_platform_is_exit_2_naming_the_configured_ones(project, cli) -> None:
    project(TWO)
    run = cli("plan", "--push", "--no-reuse", "--branch", "main", "--platform", "linux/s390x")
    assert run.rc == 2
    assert "--platform linux/s390x: not one of the configured platforms" in run.err
    assert '["linux/amd64", "linux/arm64"]' in run.err


def test_platform_on_a_single_platform_project_is_exit_2(project, cli) -> None:
    project(TWO.replace('platforms = ["linux/amd64", "linux/arm64"]\n', ""))
    run = cli("plan", "--push", "--no-reuse", "--branch", "main", "--platform", "linux/arm64")
    assert run.rc == 2
    assert "List every platform there" in run.err


def test_a_single_platform_project_plans_as_before(project, cli) -> None:
    project(TWO.replace('platforms = ["linux/amd64", "linux/arm64"]', 'platforms = ["linux/arm64"]'))
    run = cli("plan", "--push", "--no-reuse", "--branch", "main")
    assert run.rc == 0, run.err
    target = json.loads(run.out)["target"]["ci-py312"]
    assert target["platforms"] == ["linux/arm64"]
    assert target["tags"] == ["localhost:5000/acme/acme/app-ci:ci-py3.12-main"]
