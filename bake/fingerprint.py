"""Input fingerprints: a target's identity before it is built.

A target's fingerprint hashes everything its image is made from, which is what BuildKit
keys its cache on: the Dockerfile text of its stage and of every stage it depends on,
the resolved build args, the digest of every image it reads (``FROM``, ``COPY --from``,
``RUN --mount=from``), what each ``ADD <url>`` stands for, the platforms, and for each
path of the build context that a stage reads: its type, its permission bits, a
symlink's target (never followed), a file's bytes, and directories (empty ones too);
FIFOs, sockets and devices by type only. Modification times do not count, as they do
not for BuildKit. Two machines with the same inputs compute the same fingerprint, with
or without git; a change to any part changes it. The parts are kept too, so that
``status`` can say which one changed.

Context paths: ``[tool.bake-ci.stages.NAME] inputs`` (globs relative to the context) for
each stage of the target's chain, else the paths that stage COPYs/ADDs/bind-mounts from
the context, else (when a source uses a variable, or goes through a symlink) the whole
context; always minus ``.dockerignore``.

For each target (:func:`hash_targets`): its chain of stages (``dockerfile``), the context
paths those stages read (configured ``inputs`` or the Dockerfile's sources), every image
they read by digest, every ``ADD <url>`` by its pinned checksum or by what its server
says about it, and the records of the context paths. A target whose inputs cannot all
be pinned down gets no fingerprint, with the reason, so that it is built.

Where each piece lives: this module reads what each target reads and hashes it
(:func:`of_targets`, :func:`hash_targets`, :func:`compute`) and keeps the local record;
the context's paths are found in :mod:`bake.context`, what its files hold is hashed in
:mod:`bake.content`, and images are resolved to digests in :mod:`bake.bases`.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from bake import bases, content, dockerfile, dockerfile_parser, logs, registry
from bake.config import TABLE, Project
from bake.config_errors import display_path
from bake.context import Entry, normalize, select, through_link
from bake.errors import ConfigError
from bake.files import write_atomic
from bake.naming import platform_suffix
from bake.plan import Target
from bake.pool import background, parallel
from bake.redact import redact
from bake.state import State

if TYPE_CHECKING:
    from bake.engine.process import Runner

SCHEMA = "bake-ci-fingerprint/2"
SHORT = 12


# -- the fingerprint itself -----------------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Fingerprint(NamedTuple):
    value: str
    parts: dict[str, str]
    #: Context files that only the target's own stage reads (none of the stages it is
    #: built on): what a checkout mounted over the image replaces (``bake-ci shell``).
    own: frozenset[str] = frozenset()

    @property
    def short(self) -> str:
        return self.value[:SHORT]

    @property
    def environment(self) -> str:
        """The fingerprint of everything but :attr:`own`: equal for two images whose
        difference a mounted checkout makes up for."""
        kept = {k: v for k, v in self.parts.items() if not (k.startswith("file:") and k[5:] in self.own)}
        return _sha(json.dumps(kept, sort_keys=True).encode())

    def changed_since(self, old: Mapping[str, str]) -> list[str]:
        """Names of the parts that differ from an earlier fingerprint's parts."""
        names = sorted(set(self.parts) | set(old))
        return [
            n.removeprefix("file:") if n.startswith("file:") else n for n in names if self.parts.get(n) != old.get(n)
        ]


def compute(
    *,
    stage_texts: Sequence[str],
    args: Mapping[str, str],
    base_digests: Mapping[str, str],
    files: Mapping[str, str],
    platforms: Sequence[str],
    external: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
    own: frozenset[str] = frozenset(),
) -> Fingerprint:
    """Hash the parts of a target (pure). ``files``: each context path's record;
    ``external``: what each reference outside the context resolved to."""
    parts = {
        "schema": SCHEMA,
        "dockerfile": _sha("\n\n".join(stage_texts).encode()),
        "build args": _sha(json.dumps(dict(sorted(args.items()))).encode()),
        "base image": _sha(json.dumps(dict(sorted(base_digests.items()))).encode()),
        "platforms": _sha(json.dumps(sorted(platforms)).encode()),
        "external sources": _sha(json.dumps(dict(sorted((external or {}).items()))).encode()),
        **{f"file:{path}": digest for path, digest in files.items()},
        **(extra or {}),
    }
    value = _sha(json.dumps(parts, sort_keys=True).encode())
    return Fingerprint(value, parts, own)


# -- what each target reads ---------------------------------------------------------------

URL_TIMEOUT = 5.0
log = logs.get_logger("bake")
#: An image reference's digest, or None and why not.
Resolver = Callable[[str], "tuple[str | None, str]"]
#: The digest of an image reference's image for one platform, or None and why not.
PlatformResolver = Callable[[str, str], "tuple[str | None, str]"]


def check_inputs(project: Project, entries: Mapping[str, Entry]) -> None:
    """Every configured ``inputs`` glob must match something in the context: one that
    matches nothing would leave a stage's real inputs out of its fingerprint."""
    for stage, globs in project.inputs.items():
        for i, glob in enumerate(globs):
            if select(entries, [glob]):
                continue
            close = difflib.get_close_matches(normalize(glob), list(entries), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{display_path(project.config_file)}: {TABLE}.stages.{stage}.inputs[{i}] = {glob!r} matches nothing "
                f"in the build context ({display_path(project.root / project.config.context)}, after .dockerignore), "
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
class _Reads:
    """What one target reads, before anything is resolved or hashed."""

    stage_texts: list[str]
    bases: list[str]
    images: list[str]
    urls: list[dockerfile.Url]
    unknown: list[str]
    patterns: list[str]
    #: the patterns of the stages the target's own stage is built on (not its own)
    below: list[str]


def _read(
    target: Target,
    stages: list[dockerfile.Stage],
    keys: set[str],
    meta: Mapping[str, str],
    configured: Mapping[str, Sequence[str]],
    preamble: str,
) -> _Reads:
    chain = dockerfile.chain(stages, target.stage, meta)
    base_refs: list[str] = []
    images: list[str] = []
    urls: list[dockerfile.Url] = []
    unknown: list[str] = []
    patterns: list[str] = []
    below: list[str] = []
    for stage in chain:
        sources = dockerfile.stage_sources(stage, keys, meta)
        base = dockerfile.substitute(stage.base, meta)
        base_refs += [i for i in sources.images if i == base]
        images += [i for i in sources.images if i != base]
        urls += sources.urls
        unknown += sources.unknown
        # declared inputs add to what the stage is seen to read, and stand in only for
        # sources with a variable in them, which cannot be read exactly
        declared = configured.get(stage.name) if stage.name else None
        read = sources.paths if declared is None else [*sources.exact, *declared]
        patterns += read
        if stage.key != target.stage.lower() or not _only_copied(stage):
            below += read
    return _Reads(
        [preamble] + [s.text for s in chain],
        list(dict.fromkeys(base_refs)),
        list(dict.fromkeys(images)),
        list(dict.fromkeys(urls)),
        unknown,
        list(dict.fromkeys(patterns)),
        list(dict.fromkeys(below)),
    )


def _only_copied(stage: dockerfile.Stage) -> bool:
    """Whether the stage does nothing with the context files it reads but copy them: no
    ``RUN`` after its first ``COPY`` or ``ADD``, none that bind-mounts the context. Only
    then does a checkout mounted over its image stand for a rebuild with new files."""
    copied = False
    for instruction in stage.body:
        if instruction.cmd in ("COPY", "ADD") and instruction.flag("from") is None:
            copied = True
        elif instruction.cmd == "RUN" and (copied or instruction.flag_values("mount")):
            return False
    return True


def hash_targets(
    project: Project,
    targets: Sequence[Target],
    args: Mapping[str, Mapping[str, str]],
    resolve: Resolver,
    memo_file: Path | None = None,
    platforms: Sequence[str] = (),
    resolve_platform: PlatformResolver | None = None,
    runner: Runner | None = None,
) -> tuple[dict[str, Fingerprint], dict[str, str]]:
    """Fingerprints of ``targets`` and, for those without one, why; ``args``: each
    target's resolved build args; ``resolve``: an image reference's digest, or None and
    the reason; ``memo_file``: where the blob hashes of earlier runs are kept
    (:class:`bake.content.Memo`). With ``platforms``, the fingerprints of each
    platform's image, keyed ``TARGET__OS-ARCH`` (:func:`bake.naming.platform_suffix`):
    that platform alone hashed, every image by its digest for that platform
    (``resolve_platform``); the context is read once for all of them. ``runner``: asks git's
    index (none: every file is read)."""
    config = project.config
    context = project.root / config.context
    dockerfile_path = project.root / config.dockerfile
    parsed = dockerfile_parser.parse(project.dockerfile_text)
    preamble, stages = dockerfile.split_stages(parsed)
    keys = {s.key for s in stages} | {str(s.index) for s in stages}
    preamble_text = dockerfile.preamble_text(parsed)
    reads = {
        t.id: _read(
            t, stages, keys, dockerfile.global_args(preamble, parsed.escape, args[t.id]), project.inputs, preamble_text
        )
        for t in targets
    }

    # images and ADD URLs are looked up while the context is read (a configuration error
    # found in the context does not wait for the network)
    refs = sorted({ref for r in reads.values() for ref in r.bases + r.images})
    urls = sorted({u.url for r in reads.values() for u in r.urls if not u.checksum})
    cells: list[str | None] = list(platforms) or [None]
    pairs = [(ref, p) for p in cells for ref in refs]

    def one(pair: tuple[str, str | None]) -> tuple[str | None, str]:
        ref, p = pair
        return resolve(ref) if p is None or resolve_platform is None else resolve_platform(ref, p)

    lookups = background(
        lambda: (
            dict(zip(pairs, parallel(one, pairs), strict=True)),
            dict(zip(urls, parallel(url_state, urls), strict=True)),
        ),
        name="lookups",
    )
    entries, memo = content.scan_context(context, dockerfile_path, memo_file)
    check_inputs(project, entries)
    resolved_pairs, states = lookups.result()

    def chosen(patterns: list[str]) -> list[str]:
        if "." in patterns or through_link(entries, patterns):
            patterns = ["."]
        return select(entries, patterns) if patterns else []

    paths: dict[str, list[str]] = {}
    own: dict[str, frozenset[str]] = {}
    for target in targets:
        paths[target.id] = chosen(reads[target.id].patterns)
        own[target.id] = frozenset(paths[target.id]) - frozenset(chosen(reads[target.id].below))
    records = content.content_records(
        context, entries, {p for ps in paths.values() for p in ps}, memo=memo, runner=runner
    )
    if memo is not None:
        unsaved = memo.save(entries)
        if unsaved is not None:  # it only saves time: the run goes on without it
            log.warning(
                "cannot save the hashes of the context's files in the state folder: the next run reads them again",
                file=str(memo.path), reason=unsaved,
                fix="point BAKE_CI_STATE_DIR or --state-dir at a folder you can write, with room",
            )  # fmt: skip

    extra: dict[str, str] = {}
    if project.inherits_base and project.bake_file is not None:
        extra["bake file"] = content.file_hashes(project.root, [project.bake_file.name])[project.bake_file.name]
    if config.labels:
        extra["labels"] = json.dumps(config.labels, sort_keys=True)

    values: dict[str, Fingerprint] = {}
    missing: dict[str, str] = {}
    for cell in cells:
        resolved = {ref: found for (ref, p), found in resolved_pairs.items() if p == cell}
        digests = {ref: digest for ref, (digest, _) in resolved.items()}
        for target in targets:
            key = target.id + (platform_suffix(cell) if cell else "")
            read = reads[target.id]
            unresolved = [ref for ref in read.bases + read.images if not digests[ref]]
            unknown_urls = [states[u.url][1] for u in read.urls if not u.checksum and states[u.url][0] is None]
            if unresolved:
                missing[key] = resolved[unresolved[0]][1]
                continue
            if read.unknown or unknown_urls:
                missing[key] = (read.unknown + unknown_urls)[0]
                continue
            external = {f"image {ref}": str(digests[ref]) for ref in read.images}
            for url in read.urls:
                state = f"checksum {url.checksum}" if url.checksum else str(states[url.url][0])
                external[f"ADD {redact(url.url)}"] = state
            values[key] = compute(
                stage_texts=read.stage_texts,
                args=args[target.id],
                base_digests={ref: str(digests[ref]) for ref in read.bases},
                files={p: records[p] for p in paths[target.id]},
                platforms=[cell] if cell else config.platforms,
                external=external,
                extra=extra,
                own=own[target.id],
            )
    return values, missing


# -- a project's targets ------------------------------------------------------------------


@dataclass(frozen=True)
class TargetFingerprints:
    """Fingerprints of some targets, and why the others have none."""

    values: dict[str, Fingerprint]
    missing: dict[str, str]
    #: every image reference that was resolved, and what was found
    resolutions: dict[str, registry.Resolution] = field(default_factory=dict)


def of_targets(
    project: Project,
    targets: Sequence[Target],
    args: Mapping[str, Mapping[str, str]],
    state: State | None = None,
    platforms: Sequence[str] = (),
    *,
    client: registry.Client,
    runner: Runner,
) -> TargetFingerprints:
    """Fingerprint ``targets``; ``args`` are each target's resolved build args (from the plan).
    Images are resolved with :func:`bake.bases.resolve_base`, asking ``client`` (and the engine
    through ``runner``); see
    :func:`hash_targets`. With ``state``, files whose lstat has not changed since an earlier
    run are not read again. With ``platforms``, the fingerprints of each platform's images
    (keyed ``TARGET__OS-ARCH``): every image resolved to its child for that platform, and
    that platform alone hashed."""

    resolutions: dict[str, registry.Resolution] = {}

    def resolve(ref: str) -> tuple[str | None, str]:
        found = resolutions[ref] = bases.resolve_base(client, runner, ref)
        return found.digest, found.reason() if found.digest is None else ""

    def resolve_for(ref: str, platform: str) -> tuple[str | None, str]:
        found = bases.resolve_platform(client, runner, ref, platform)
        resolutions.setdefault(ref, found)
        return found.digest, found.reason() if found.digest is None else ""

    memo = state.blob_memo() if state is not None else None
    values, missing = hash_targets(
        project,
        targets,
        args,
        resolve=resolve,
        memo_file=memo,
        platforms=platforms,
        resolve_platform=resolve_for,
        runner=runner,
    )
    return TargetFingerprints(values, missing, resolutions)


# -- the local record ---------------------------------------------------------------------
#
# What was built or fetched locally is recorded in bake-ci's state folder
# (``fingerprints/TARGET.json``: fingerprint, its parts, the local image ID), so
# ``status`` can tell which inputs changed since the local image.


def record_local_image(state: State, target: str, fp: Fingerprint, image: str, image_id: str | None) -> None:
    """Remember which fingerprint the local image of ``target`` was made from. Its parts
    (one per context file: megabytes for a large context) go to a file of their own,
    read only to say what changed (:func:`local_image_parts`). StateFolderError if they cannot
    be written (the record is then the old one or none: never half)."""
    parts = {"fingerprint": fp.value, "parts": fp.parts}
    data = {"fingerprint": fp.value, "image": image, "image_id": image_id}
    with state.writing(f"recording which inputs the local image of {target} was made from"):
        write_atomic(state.fingerprint_parts(target), json.dumps(parts, sort_keys=True) + "\n")
        write_atomic(state.fingerprint_record(target), json.dumps(data, indent=1, sort_keys=True) + "\n")


def local_image_record(state: State, target: str) -> dict[str, object] | None:
    """The record of ``target``'s local image: its fingerprint, image and image ID."""
    try:
        data = json.loads(state.fingerprint_record(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def local_image_parts(state: State, target: str, record: Mapping[str, object]) -> dict[str, str] | None:
    """The parts of the fingerprint ``record`` (:func:`local_image_record`) names, if they are still
    on record: in their own file, or inline in a record from before they had one."""
    try:
        data = json.loads(state.fingerprint_parts(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = record
    if not isinstance(data, dict) or data.get("fingerprint") != record.get("fingerprint"):
        return None
    parts = data.get("parts")
    return {str(k): str(v) for k, v in parts.items()} if isinstance(parts, dict) else None
