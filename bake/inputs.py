"""A project's fingerprints: what each target reads, resolved and hashed.

For each target: its chain of stages (``dockerfile``), the context paths those stages
read (configured ``inputs`` or the Dockerfile's sources), every image they read by
digest, every ``ADD <url>`` by its pinned checksum or by what its server says about
it, and the records of the context paths (``fingerprint``). A target whose inputs
cannot all be pinned down gets no fingerprint, with the reason, so that it is built.
"""

from __future__ import annotations

import base64
import difflib
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bake import dockerfile, fingerprint
from bake.config import TABLE, Project
from bake.errors import ConfigError
from bake.fingerprint import Entry, Fingerprint
from bake.plan import Target
from bake.pool import background, parallel
from bake.redact import redact

URL_TIMEOUT = 5.0
#: An image reference's digest, or None and why not.
Resolver = Callable[[str], "tuple[str | None, str]"]


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def check_inputs(project: Project, entries: Mapping[str, Entry]) -> None:
    """Every configured ``inputs`` glob must match something in the context: one that
    matches nothing would leave a stage's real inputs out of its fingerprint."""
    for stage, globs in project.inputs.items():
        for i, glob in enumerate(globs):
            if fingerprint.select(entries, [glob]):
                continue
            close = difflib.get_close_matches(fingerprint._normalize(glob), list(entries), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{_shown(project.config_file)}: {TABLE}.stages.{stage}.inputs[{i}] = {glob!r} matches nothing "
                f"in the build context ({_shown(project.root / project.config.context)}, after .dockerignore), "
                f"so changes to this stage's real inputs would go unseen and a stale image could be reused."
                f"{hint} Fix the glob (relative to the context) or remove it."
            )


def url_state(url: str, timeout: float = URL_TIMEOUT) -> tuple[str | None, str]:
    """What the server says about ``url`` to a HEAD request (ETag, Last-Modified, length),
    or None and why it cannot stand for the file's content."""
    shown = redact(url)
    parts = urllib.parse.urlsplit(url)
    authorization = None
    if parts.username is not None:  # credentials go in a header, never into what is logged
        pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "bake-ci"})
    if authorization:
        request.add_unredirected_header("Authorization", authorization)  # not sent on to a redirect's host
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            found = {k: response.headers.get(k) for k in ("ETag", "Last-Modified", "Content-Length")}
    except urllib.error.HTTPError as exc:
        return None, f"ADD {shown}: the server answered HEAD with HTTP {exc.code}, so a change cannot be seen"
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"ADD {shown}: no answer to a HEAD request ({redact(str(reason))}), so a change cannot be seen"
    if not found["ETag"] and not found["Last-Modified"]:
        return None, f"ADD {shown}: the server sends neither ETag nor Last-Modified, so a change cannot be seen"
    return json.dumps({k: v for k, v in found.items() if v}, sort_keys=True), ""


@dataclass(frozen=True)
class _Target:
    """What one target reads, before anything is resolved or hashed."""

    stage_texts: list[str]
    bases: list[str]
    images: list[str]
    urls: list[dockerfile.Url]
    unknown: list[str]
    patterns: list[str]


def _read(
    target: Target,
    stages: list[dockerfile.Stage],
    keys: set[str],
    meta: Mapping[str, str],
    configured: Mapping[str, Sequence[str]],
    preamble: str,
) -> _Target:
    chain = dockerfile.chain(stages, target.stage, meta)
    bases: list[str] = []
    images: list[str] = []
    urls: list[dockerfile.Url] = []
    unknown: list[str] = []
    patterns: list[str] = []
    for stage in chain:
        sources = dockerfile.stage_sources(stage, keys, meta)
        base = dockerfile.substitute(stage.base, meta)
        bases += [i for i in sources.images if i == base]
        images += [i for i in sources.images if i != base]
        urls += sources.urls
        unknown += sources.unknown
        if stage.name and stage.name in configured:
            patterns += configured[stage.name]
        else:
            patterns += sources.paths
    return _Target(
        [preamble] + [s.text for s in chain],
        list(dict.fromkeys(bases)),
        list(dict.fromkeys(images)),
        list(dict.fromkeys(urls)),
        unknown,
        list(dict.fromkeys(patterns)),
    )


def fingerprints(
    project: Project,
    targets: Sequence[Target],
    args: Mapping[str, Mapping[str, str]],
    resolve: Resolver,
    memo_file: Path | None = None,
) -> tuple[dict[str, Fingerprint], dict[str, str]]:
    """Fingerprints of ``targets`` and, for those without one, why; ``args``: each
    target's resolved build args; ``resolve``: an image reference's digest, or None and
    the reason; ``memo_file``: where the blob hashes of earlier runs are kept
    (:class:`bake.fingerprint.Memo`)."""
    config = project.config
    context = project.root / config.context
    dockerfile_path = project.root / config.dockerfile
    parsed = dockerfile.parse(project.dockerfile_text)
    preamble, stages = dockerfile.split_stages(parsed)
    keys = {s.key for s in stages} | {str(s.index) for s in stages}
    defaults = dockerfile.arg_defaults(preamble, parsed.escape)
    preamble_text = dockerfile.preamble_text(parsed)
    reads = {t.id: _read(t, stages, keys, {**defaults, **args[t.id]}, project.inputs, preamble_text) for t in targets}

    # images and ADD URLs are looked up while the context is read (a configuration error
    # found in the context does not wait for the network)
    refs = sorted({ref for r in reads.values() for ref in r.bases + r.images})
    urls = sorted({u.url for r in reads.values() for u in r.urls if not u.checksum})
    lookups = background(
        lambda: (
            dict(zip(refs, parallel(resolve, refs), strict=True)),
            dict(zip(urls, parallel(url_state, urls), strict=True)),
        ),
        name="lookups",
    )
    entries, memo = fingerprint.survey(context, dockerfile_path, memo_file)
    check_inputs(project, entries)
    resolved, states = lookups.result()
    digests = {ref: digest for ref, (digest, _) in resolved.items()}

    paths: dict[str, list[str]] = {}
    for target in targets:
        patterns = reads[target.id].patterns
        if "." in patterns or fingerprint.through_link(entries, patterns):
            patterns = ["."]
        paths[target.id] = fingerprint.select(entries, patterns)
    records = fingerprint.content_records(context, entries, {p for ps in paths.values() for p in ps}, memo=memo)
    if memo is not None:
        memo.save(entries)

    extra: dict[str, str] = {}
    if project.inherits_base and project.bake_file is not None:
        extra["bake file"] = fingerprint.file_hashes(project.root, [project.bake_file.name])[project.bake_file.name]
    if config.labels:
        extra["labels"] = json.dumps(config.labels, sort_keys=True)

    values: dict[str, Fingerprint] = {}
    missing: dict[str, str] = {}
    for target in targets:
        read = reads[target.id]
        unresolved = [ref for ref in read.bases + read.images if not digests[ref]]
        unknown_urls = [states[u.url][1] for u in read.urls if not u.checksum and states[u.url][0] is None]
        if unresolved:
            missing[target.id] = resolved[unresolved[0]][1]
            continue
        if read.unknown or unknown_urls:
            missing[target.id] = (read.unknown + unknown_urls)[0]
            continue
        external = {f"image {ref}": str(digests[ref]) for ref in read.images}
        for url in read.urls:
            state = f"checksum {url.checksum}" if url.checksum else str(states[url.url][0])
            external[f"ADD {redact(url.url)}"] = state
        values[target.id] = fingerprint.compute(
            stage_texts=read.stage_texts,
            args=args[target.id],
            base_digests={ref: str(digests[ref]) for ref in read.bases},
            files={p: records[p] for p in paths[target.id]},
            platforms=config.platforms,
            external=external,
            extra=extra,
        )
    return values, missing
