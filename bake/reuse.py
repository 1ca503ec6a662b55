"""Build avoidance: reusing the images whose fingerprint matches, and publishing by tag.

A target's fingerprint is made in :mod:`bake.fingerprint`. With a registry, every pushed
image also carries the tag ``STAGE-pyX.Y-fp-<12 hex>`` and the label
``dev.bake-ci.fingerprint``; a later build whose target has the same fingerprint adds
this branch's tags to that image with ``imagetools create`` instead of building it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence

from bake import auth, bases, logs, registry
from bake.engine import images
from bake.engine.process import CommandFailed, Runner
from bake.fingerprint import Fingerprint, TargetFingerprints
from bake.plan import FINGERPRINT_LABEL, Plan, TargetPlan, fingerprint_tag
from bake.pool import parallel
from bake.redact import redact
from bake.report import Result

log = logs.get_logger("bake")


def client(runner: Runner) -> registry.Client:
    """A run's registry client (it keeps tokens between requests: make one per run, and
    pass it down), with the logins docker keeps as ``runner``'s environment names them."""
    policy = registry.policy(runner.environ)
    return registry.Client(auth.logins(runner), policy=policy)


_ATTESTATION = "attestation-manifest"


def _config_labels(config: object) -> dict[str, object]:
    inner = config.get("config") if isinstance(config, dict) else None
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    return labels if isinstance(labels, dict) else {}


def fingerprint_labels(
    client: registry.Client, runner: Runner, repository: str, manifest: registry.Manifest
) -> set[str | None]:
    """The fingerprint label (``dev.bake-ci.fingerprint``) of every image ``manifest`` holds:
    itself, or each platform's image of an index (attestations left out). None for an image
    without one. Raises CommandFailed when they cannot be read."""
    try:
        return _labels_over_http(client, repository, manifest)
    except (registry.RegistryError, ValueError, KeyError, TypeError) as exc:
        log.debug("registry API unavailable, asking buildx", image=repository, reason=redact(str(exc)))
    configs = images.registry_image_configs(runner, f"{repository}@{manifest.digest}")
    if not configs:
        raise CommandFailed(["imagetools", "inspect", f"{repository}@{manifest.digest}"], 1, "no image config")
    return {_label(_config_labels(c)) for c in configs}


def _label(labels: Mapping[str, object]) -> str | None:
    value = labels.get(FINGERPRINT_LABEL)
    return value if isinstance(value, str) else None


def _labels_over_http(client: registry.Client, repository: str, manifest: registry.Manifest) -> set[str | None]:
    if not manifest.body:
        raise registry.RegistryError("no manifest body")
    document = json.loads(manifest.body)
    manifests = [document]
    if manifest.is_index:
        children = [
            m["digest"]
            for m in document["manifests"]
            if (m.get("annotations") or {}).get("vnd.docker.reference.type") != _ATTESTATION
            and (m.get("platform") or {}).get("os") != "unknown"
        ]
        found = parallel(lambda digest: client.manifest(f"{repository}@{digest}"), children)
        manifests = [json.loads(m.body) for m in found if m is not None]
    if not manifests:
        raise registry.RegistryError("no image in the index")
    configs = parallel(lambda m: client.blob(repository, m["config"]["digest"]), manifests)
    return {_label(_config_labels(json.loads(c))) for c in configs}


def find(
    client: registry.Client, runner: Runner, t: TargetPlan, fp: Fingerprint, *, loading: bool = False
) -> registry.Manifest | None:
    """The image in the registry for ``t``'s fingerprint ``fp``: under its fingerprint tag,
    and labelled with that very fingerprint. An image whose label says otherwise (the tag
    was written by something else than the build of these inputs) is not it: warned about,
    and None, so the target is built."""
    fp_tag = fingerprint_tag(t.target, fp.value, None if loading else t.platform)
    manifest = bases.lookup(client, runner, f"{t.repository}:{fp_tag}")
    if manifest is None:
        return None
    labels = fingerprint_labels(client, runner, t.repository, manifest)
    if labels != {fp.value}:
        shown = sorted((label or "none")[:12] for label in labels)
        log.warning(
            "not reused: the image under the fingerprint tag has another fingerprint label; building instead",
            target=t.id, tag=fp_tag, digest=manifest.digest, label=shown, expected=fp.short,
        )  # fmt: skip
        return None
    return manifest


def add_tags(
    client: registry.Client, runner: Runner, image: str, manifest: registry.Manifest, tags: Sequence[str]
) -> None:
    """Tag an existing manifest: its bytes over HTTP (same digest), else buildx imagetools."""
    if not tags:
        return
    if manifest.body:
        try:
            parallel(lambda tag: client.tag(manifest, tag), list(tags))
            return
        except registry.RegistryError as exc:
            bases.fall_back(exc, image)
    source = f"{image}@{manifest.digest}"
    bases.through_buildx(runner, lambda: images.retag(runner, source, tags, index=manifest.is_index), f"tag {source}")


def publish(client: registry.Client, runner: Runner, t: TargetPlan, digest: str) -> None:
    """Give a pushed image the rest of its tags, the fingerprint tag last: an image is
    found by its fingerprint only once every other tag of it is in the registry."""
    if not t.later_tags:
        return
    manifest = bases.lookup(client, runner, f"{t.repository}@{digest}")
    if manifest is None:
        raise CommandFailed(["tag", f"{t.repository}@{digest}"], 1, f"{t.repository}@{digest}: manifest unknown")
    fp_tags = [
        tag
        for tag in t.later_tags
        if t.fingerprint and tag.endswith(fingerprint_tag(t.target, t.fingerprint, t.platform))
    ]
    add_tags(client, runner, t.repository, manifest, [tag for tag in t.later_tags if tag not in fp_tags])
    add_tags(client, runner, t.repository, manifest, fp_tags)


def reuse(client: registry.Client, runner: Runner, plan: Plan, fps: TargetFingerprints) -> dict[str, Result]:
    """Targets whose fingerprint image is in the registry, with this run's tags added to it."""

    def one(t: TargetPlan) -> Result | None:
        fp = fps.values.get(t.id)
        if fp is None:
            return None
        started = time.monotonic()
        # a --load of the engine's own platform is found under the tag without a platform
        loading = t.output == "load"
        fp_tag = fingerprint_tag(t.target, fp.value, None if loading else t.platform)
        try:
            manifest = find(client, runner, t, fp, loading=loading)
        except (CommandFailed, registry.RegistryError) as exc:
            log.warning("cannot look up the fingerprint image", target=t.id, error=bases.in_one_line(exc)[-300:])
            return None
        if manifest is None:
            log.info("not reused: no image for this fingerprint", target=t.id, tag=fp_tag)
            return None
        tags = [tag for tag in t.tags if not tag.endswith(f":{fp_tag}")]
        try:
            add_tags(client, runner, t.repository, manifest, tags)
        except (CommandFailed, registry.RegistryError) as exc:
            log.warning("cannot tag the fingerprint image", target=t.id, error=bases.in_one_line(exc)[-300:])
            return None
        log.debug("reused", target=t.id, fingerprint=fp.short, digest=manifest.digest)
        return Result(
            target=t.id, status="reused", image=t.image, digest=manifest.digest, seconds=time.monotonic() - started
        )

    found = parallel(one, list(plan.targets))
    return {r.target: r for r in found if r is not None}
