"""What the image and cache repositories hold, for ``bake-ci gc`` to judge.

:func:`survey` lists the tags of both repositories, reads each tag's manifest (index
children included, each distinct manifest once), each image's config (build time,
fingerprint label) and each cache manifest's layer dates, and notes every manifest's
blobs and children: what :mod:`bake.retention` judges and what kept refs reach.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime

from bake import registry
from bake.holdings import Survey
from bake.pool import parallel
from bake.prune import MANIFEST_TYPES, PLACEHOLDER, Registry
from bake.retention import Ref, Repo, split


def parse_time(text: object) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(_trim(text)).timestamp()
    except ValueError:
        return None


def _trim(text: str) -> str:
    """An RFC 3339 time Python 3.10 reads: ``Z`` as ``+00:00``, at most 6 digits of fraction."""
    text = text.strip().replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    return text


def survey(reg: Registry, repos: Mapping[Repo, registry.Reference], prefixes: Sequence[str]) -> Survey:
    """Everything :mod:`bake.retention` needs to know about the tags of ``repos``."""
    tagged: list[tuple[Repo, str]] = []
    for kind, tags in zip(repos, parallel(reg.tags, list(repos.values()), workers=2), strict=True):
        tagged += [(kind, t) for t in tags]
    manifests = parallel(lambda rt: reg.manifest(repos[rt[0]], rt[1]), tagged, workers=16)
    out = Survey(refs=[])
    lock = threading.Lock()
    facts: dict[str, tuple[float | None, str | None, bool]] = {}

    def walk(kind: Repo, manifest: registry.Manifest) -> tuple[float | None, str | None, bool]:
        """(written, fingerprint label, placeholder) of ``manifest``; blobs and children noted."""
        repo = repos[kind]
        data = json.loads(manifest.body)
        blobs: dict[str, int] = {}
        children: set[str] = set()
        written: float | None = None
        label: str | None = None
        placeholder = PLACEHOLDER in (data.get("annotations") or {})
        if manifest.is_index:
            stamps = []
            first_image = None
            for entry in data.get("manifests") or []:
                digest, size = str(entry.get("digest", "")), int(entry.get("size") or 0)
                blobs[digest] = size
                stamps.append(parse_time((entry.get("annotations") or {}).get("buildkit/createdat")))
                media = str(entry.get("mediaType", ""))
                if any(word in media for word in MANIFEST_TYPES):
                    children.add(digest)
                    reference = (entry.get("annotations") or {}).get("vnd.docker.reference.type")
                    if first_image is None and reference != "attestation-manifest":
                        first_image = digest
            for child in sorted(children):
                with lock:
                    known = facts.get(child)
                if known is None:
                    sub = reg.manifest(repo, child)
                    if sub is None:
                        continue
                    known = walk(kind, sub)
                    with lock:
                        facts[child] = known
                child_written, child_label, _ = known
                with lock:
                    blobs.update(out.blobs.get(child, {}))
                if child == first_image:
                    written, label = child_written, child_label
            dated = [s for s in stamps if s is not None]
            if dated and written is None:
                written = max(dated)  # a cache manifest: its newest layer's creation
        else:
            config = data.get("config") or {}
            blobs[str(config.get("digest", ""))] = int(config.get("size") or 0)
            for layer in data.get("layers") or []:
                blobs[str(layer.get("digest", ""))] = int(layer.get("size") or 0)
            if "image.config" in str(config.get("mediaType", "")) and not placeholder:
                raw = reg.blob(repo, str(config.get("digest", "")))
                try:
                    doc = json.loads(raw or b"{}")
                except ValueError:
                    doc = {}
                written = parse_time(doc.get("created"))
                label = ((doc.get("config") or {}).get("Labels") or {}).get("dev.bake-ci.fingerprint")
        with lock:
            out.blobs[manifest.digest] = blobs
            out.children[manifest.digest] = children
        return written, (str(label) if label else None), placeholder

    def one(item: tuple[tuple[Repo, str], registry.Manifest | None]) -> Ref | None:
        (kind, tag), manifest = item
        if manifest is None:  # deleted since the listing
            return None
        with lock:
            known = facts.get(manifest.digest)
        if known is None:
            known = walk(kind, manifest)
            with lock:
                facts[manifest.digest] = known
        written, label, placeholder = known
        return Ref(kind, tag, manifest.digest, written, label, placeholder)

    found = parallel(one, list(zip(tagged, manifests, strict=True)), workers=16)
    out.refs = sorted(
        (r for r in found if r is not None), key=lambda r: (r.repo, split(r.tag, prefixes) is None, r.tag)
    )
    return out
