"""Reading an image's fingerprint label from the registry before reusing it (bake.reuse),
with a registry client that serves fixed documents."""

from __future__ import annotations

import hashlib
import json

import pytest

from bake import registry, reuse
from bake.engine import process
from bake.plan import FINGERPRINT_LABEL

INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE = "application/vnd.oci.image.manifest.v1+json"


def digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


class Registry:
    """Manifests and blobs by digest, as a registry client answers them."""

    def __init__(self) -> None:
        self.documents: dict[str, registry.Manifest] = {}
        self.blobs: dict[str, bytes] = {}

    def image(self, labels: dict[str, str]) -> registry.Manifest:
        config = json.dumps({"architecture": "amd64", "config": {"Labels": labels}}).encode()
        self.blobs[digest(config)] = config
        body = json.dumps({"mediaType": IMAGE, "config": {"digest": digest(config)}, "layers": []}).encode()
        manifest = registry.Manifest(IMAGE, digest(body), body)
        self.documents[manifest.digest] = manifest
        return manifest

    def index(self, *children: tuple[registry.Manifest, dict[str, object]]) -> registry.Manifest:
        entries = [{"mediaType": m.media_type, "digest": m.digest, **extra} for m, extra in children]
        body = json.dumps({"mediaType": INDEX, "manifests": entries}).encode()
        return registry.Manifest(INDEX, digest(body), body)

    def manifest(self, ref: str) -> registry.Manifest | None:
        return self.documents.get(ref.rpartition("@")[2])

    def blob(self, ref: str, wanted: str) -> bytes:
        return self.blobs[wanted]


def labels(served: Registry, repository: str, manifest: registry.Manifest) -> set[str | None]:
    """``reuse.fingerprint_labels`` asked of ``served`` (a runner that is not asked: all is over HTTP)."""
    return reuse.fingerprint_labels(served, process.Runner({}), repository, manifest)  # type: ignore[arg-type]


@pytest.fixture
def fake() -> Registry:
    return Registry()


def test_a_single_image_gives_its_label(fake: Registry) -> None:
    assert labels(fake, "r/app", fake.image({FINGERPRINT_LABEL: "f" * 64})) == {"f" * 64}
    assert labels(fake, "r/app", fake.image({"other": "x"})) == {None}


def test_an_index_gives_each_platforms_label_and_skips_attestations(fake: Registry) -> None:
    amd64 = fake.image({FINGERPRINT_LABEL: "a" * 64})
    arm64 = fake.image({FINGERPRINT_LABEL: "b" * 64})
    attestation = fake.image({})
    index = fake.index(
        (amd64, {"platform": {"os": "linux", "architecture": "amd64"}}),
        (arm64, {"platform": {"os": "linux", "architecture": "arm64"}}),
        (
            attestation,
            {
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
            },
        ),
    )
    assert labels(fake, "r/app", index) == {"a" * 64, "b" * 64}
