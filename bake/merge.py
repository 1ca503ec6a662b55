"""Multi-platform indexes from per-platform images, over the registry API: no pull, no build.

Each platform's image of a target was pushed by digest and tagged ``…__OS-ARCH``
(:func:`bake.naming.platform_suffix`). The index lists their manifests (each image with
its attestation manifest, when buildx wrote one) in the configured order of platforms,
and is written under the target's usual tags, the fingerprint tag last, exactly as a
build writes its image's tags. The index's bytes depend only on its children, so merging
the same children again gives the same digest, and rewrites nothing: a tag that already
names the index is not written again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bake import logs, registry
from bake.plan import TargetPlan, fingerprint_tag
from bake.pool import parallel
from bake.redact import redact
from bake.report import Result, Status

log = logs.get_logger("bake")

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


class MergeError(Exception):
    """A target's index cannot be assembled (a platform's image is missing or is another's)."""


def _platform(platform: str) -> dict[str, str]:
    os_name, _, rest = platform.partition("/")
    arch, _, variant = rest.partition("/")
    found = {"architecture": arch, "os": os_name}
    if variant:
        found["variant"] = variant
    return found


def _entries(platform: str, manifest: registry.Manifest) -> list[dict[str, Any]]:
    """The index entries of one platform's image: an index's own (the image and its
    attestation), or a single manifest's descriptor."""
    if not manifest.is_index:
        return [
            {
                "mediaType": manifest.media_type,
                "digest": manifest.digest,
                "size": len(manifest.body),
                "platform": _platform(platform),
            }
        ]
    entries = json.loads(manifest.body).get("manifests") or []
    want = _platform(platform)
    for entry in entries:
        found = entry.get("platform") or {}
        if found.get("os") in (None, "unknown"):
            continue  # an attestation manifest
        if {k: found.get(k) for k in want} != want:
            raise MergeError(f"the {platform} image {manifest.digest[:19]} holds an image for {found}")
    return [dict(e) for e in entries]


def assemble(children: Sequence[tuple[str, registry.Manifest]]) -> registry.Manifest:
    """The OCI index of ``children`` ((platform, manifest) in order): pure, and the same
    bytes for the same children."""
    entries = [e for platform, manifest in children for e in _entries(platform, manifest)]
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, indent=2).encode()
    return registry.Manifest(OCI_INDEX, "sha256:" + hashlib.sha256(body).hexdigest(), body)


@dataclass(frozen=True)
class Wanted:
    """One target's index: its plan (the tags to write) and where each platform's image is."""

    plan: TargetPlan
    #: (platform, reference of that platform's image), in the configured order
    children: tuple[tuple[str, str], ...]


def merge_one(client: registry.Client, wanted: Wanted) -> Result:
    """Write ``wanted``'s index under its tags; ``reused`` when its branch tag already named it."""
    t = wanted.plan
    started = time.monotonic()

    def failed(error: str) -> Result:
        return Result(target=t.id, status="failed", image=t.image, error=error, failed_step="merge")

    try:
        # the children and what every tag names now, in one round trip
        refs = [ref for _, ref in wanted.children]
        answers = parallel(client.manifest, [*refs, *t.tags])
        found, now = answers[: len(refs)], dict(zip(t.tags, answers[len(refs) :], strict=True))
        current = now[t.tags[0]]
        missing = [(p, ref) for (p, ref), m in zip(wanted.children, found, strict=True) if m is None]
        if missing:
            shown = ", ".join(f"{p} ({ref})" for p, ref in missing)
            return failed(
                f"no image in the registry for {shown}: build it first with "
                f"`bake-ci build {t.id} --platform {missing[0][0]}` on the same commit"
            )
        index = assemble([(p, m) for (p, _), m in zip(wanted.children, found, strict=True) if m is not None])
        fp_tags = [
            tag for tag in t.tags if t.fingerprint and tag.endswith(":" + fingerprint_tag(t.target, t.fingerprint))
        ]
        stale = [tag for tag in t.tags if (m := now[tag]) is None or m.digest != index.digest]  # the rest: unchanged
        for group in ([tag for tag in stale if tag not in fp_tags], [tag for tag in stale if tag in fp_tags]):
            parallel(lambda tag: client.tag(index, tag), group)
    except (registry.RegistryError, MergeError, ValueError) as exc:
        return failed(redact(str(exc)))
    status: Status = "reused" if current is not None and current.digest == index.digest else "merged"
    log.debug("merged", target=t.id, digest=index.digest, children=[ref for _, ref in wanted.children])
    return Result(target=t.id, status=status, image=t.image, digest=index.digest, seconds=time.monotonic() - started)


def merge(client: registry.Client, wanted: Sequence[Wanted]) -> dict[str, Result]:
    """Every target's index, in parallel."""
    return {r.target: r for r in parallel(lambda w: merge_one(client, w), list(wanted))}


def child_ref(p: TargetPlan) -> str:
    """Where a platform's image for this run is: its fingerprint tag when the run may
    write those (the very inputs), else its commit tag (this commit's job), else its
    branch tag."""
    assert p.platform is not None
    if p.fingerprint:
        return f"{p.repository}:{fingerprint_tag(p.target, p.fingerprint, p.platform)}"
    return p.tags[1] if len(p.tags) > 1 else p.tags[0]


def children(
    plans: Mapping[str, TargetPlan], per_platform: Sequence[TargetPlan], digests: Mapping[str, str | None]
) -> list[Wanted]:
    """What to merge: for each index plan (by target id), its platforms' images, each by
    the digest this run got for it (``digests``, by per-platform id), else by its tag
    (:func:`child_ref`)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for p in per_platform:
        assert p.platform is not None
        digest = digests.get(p.id)
        found.setdefault(p.target.id, []).append((p.platform, f"{p.repository}@{digest}" if digest else child_ref(p)))
    return [Wanted(plan, tuple(found.get(target, ()))) for target, plan in plans.items()]
