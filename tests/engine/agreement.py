"""Harness of the BuildKit-agreement suite: does bake-ci's reuse verdict match BuildKit?

Each check builds a tiny project with ``bake-ci build --push``, changes one input, asks
``bake-ci status --push --json`` whether a build is needed, then builds again with
``--no-reuse`` and looks at what BuildKit produced: the image's layers and runtime
config (from the registry) and how many steps ran uncached (from ``--report``).

- AGREE: bake-ci says build and BuildKit's image differs from the previous one, or
  bake-ci says reuse and BuildKit's image is the one that reuse would ship.
- WASTE: bake-ci says build, BuildKit built the same image again. Harmless but slow;
  only acceptable where the Dockerfile leaves bake-ci no other choice (a variable in a
  source path) or a case documents why.
- STALE: bake-ci says reuse, but BuildKit's image differs from the one reuse would ship
  (its layers or runtime config). Reuse would ship an image built from other inputs:
  always a failure.

The image decides, not the count of steps that ran uncached (shown alongside): BuildKit's
cache is keyed by content, so a changed step can still come from the cache of an earlier
build with the same inputs, and ``ADD <url>`` fetches its URL on every build even when
the file has not changed.

Everything goes through the CLI, as a user runs it; the project's build context is a
subdirectory so that bake-ci's own files stay out of it.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from hashlib import sha256
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .conftest import REGISTRY, bake_ci, docker

PYTHON = "3.11"
STAGE = "app"
TARGET = f"{STAGE}-py311"
TAG_PREFIX = f"{STAGE}-py{PYTHON}"
BRANCH = "main"
PREAMBLE = f"ARG BASE_IMAGE=python:{PYTHON}-slim\n"
OWN_LABELS = "dev.bake-ci."  # bake-ci's own labels: present or not depending on --no-reuse

AGREE, WASTE, STALE = "AGREE", "WASTE", "STALE"
REUSE_ACTIONS = {"reuse", "none", "pull"}  # an image for these inputs exists: no build
_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


# -- the registry's view of an image --------------------------------------------------------


def _registry_json(path: str) -> dict[str, object]:
    request = urllib.request.Request(f"http://{REGISTRY}/v2/{path}", headers={"Accept": _ACCEPT})
    with urllib.request.urlopen(request, timeout=30) as resp:
        data = json.load(resp)
    assert isinstance(data, dict), path
    return data


@dataclass(frozen=True)
class Content:
    """What a user of the image gets: its layers (with the step that made each) and runtime config."""

    layers: tuple[tuple[str, str], ...]  # (diff id, created_by)
    config: str  # runtime config as canonical JSON, without bake-ci's own labels

    def differences(self, other: Content) -> list[str]:
        out = []
        if len(self.layers) != len(other.layers):
            out.append(f"{len(other.layers)} layers instead of {len(self.layers)}")
        for i, ((old, step), (new, _)) in enumerate(zip(self.layers, other.layers, strict=False)):
            if old != new:
                later = sum(1 for a, b in zip(self.layers[i + 1 :], other.layers[i + 1 :], strict=False) if a != b)
                out.append(f"the layer of `{step}` differs" + (f" (and {later} after it)" if later else ""))
                break
        if self.config != other.config:
            out.append("the runtime config differs")
        return out


def content(repository: str, reference: str) -> Content:
    """The linux image of ``repository`` (no host) at a tag or digest, as the registry holds it."""
    manifest = _registry_json(f"{repository}/manifests/{reference}")
    if "manifests" in manifest:  # an index: the image plus BuildKit's attestation manifest
        entries = manifest["manifests"]
        assert isinstance(entries, list)
        image = [m for m in entries if m.get("platform", {}).get("os") == "linux"]
        assert len(image) == 1, f"{repository}@{reference}: {entries}"
        manifest = _registry_json(f"{repository}/manifests/{image[0]['digest']}")
    config_ref = manifest["config"]
    assert isinstance(config_ref, dict)
    config = _registry_json(f"{repository}/blobs/{config_ref['digest']}")
    history = [h for h in config.get("history", []) if not h.get("empty_layer")]  # type: ignore[attr-defined]
    diff_ids = config["rootfs"]["diff_ids"]  # type: ignore[index]
    steps = [str(h.get("created_by", "")).removesuffix(" # buildkit") for h in history]
    steps = ([""] * len(diff_ids) + steps)[-len(diff_ids) :] if diff_ids else []
    runtime = dict(config.get("config") or {})  # type: ignore[call-overload]
    labels = {k: v for k, v in (runtime.get("Labels") or {}).items() if not k.startswith(OWN_LABELS)}
    runtime["Labels"] = labels
    runtime["platform"] = [config.get("os"), config.get("architecture")]
    return Content(tuple(zip(diff_ids, steps, strict=True)), json.dumps(runtime, sort_keys=True))


# -- a project ------------------------------------------------------------------------------


@dataclass
class Built:
    """One build of the project, from its ``--report``."""

    digest: str
    steps: int
    cached: int
    content: Content

    @property
    def uncached(self) -> int:
        return self.steps - self.cached


@dataclass
class Project:
    """A tiny bake-ci project: ``pyproject.toml`` at the root, the build context in ``ctx/``."""

    root: Path
    registry: str  # localhost:5000/NAMESPACE
    image: str  # e.g. agreement/copy-file-edit
    reports: int = 0

    @property
    def ctx(self) -> Path:
        return self.root / "ctx"

    @property
    def repository(self) -> str:
        """The image's repository in the registry, without the host."""
        return f"{self.registry.removeprefix(REGISTRY + '/')}/{self.image}"

    @property
    def env(self) -> dict[str, str]:
        return {}  # the default base image, python:{python}-slim, as a user has it

    @classmethod
    def create(
        cls,
        root: Path,
        registry: str,
        image: str,
        dockerfile: str,
        stages: tuple[str, ...],
        inputs: Mapping[str, tuple[str, ...]] | None = None,
    ) -> Project:
        """``inputs``: declared inputs per stage (the stages then become tables); the
        ``[tool.bake-ci]`` table comes last, so that a case can append keys to it."""
        (root / "ctx").mkdir(parents=True)
        stage_list = ", ".join(json.dumps(s) for s in stages)
        tables = ""
        if inputs is not None:
            for stage in stages:
                globs = ", ".join(json.dumps(g) for g in inputs.get(stage, ()))
                tables += f"[tool.bake-ci.stages.{stage}]\n" + (f"inputs = [{globs}]\n" if stage in inputs else "")
        (root / "pyproject.toml").write_text(
            tables + "[tool.bake-ci]\n"
            f'image = "{image}"\n'
            f'registry = "{registry}"\n'
            f'python = ["{PYTHON}"]\n'
            + ("" if inputs is not None else f"stages = [{stage_list}]\n")
            + 'context = "ctx"\n'
            'dockerfile = "ctx/Dockerfile"\n'
        )
        (root / "ctx" / "Dockerfile").write_text(PREAMBLE + dockerfile)
        return cls(root, registry, image)

    def build(self, *flags: str) -> Built:
        self.reports += 1
        report = self.root / f"report-{self.reports}.json"
        args = ["build", TARGET, "--push", "--branch", BRANCH, "--progress", "plain", "--report", str(report), *flags]
        result = bake_ci(*args, cwd=self.root, env=self.env)
        assert result.code == 0, f"bake-ci {' '.join(args)} failed ({result.code}):\n{result.out}\n{result.err}"
        rows = json.loads(report.read_text())["targets"]
        assert len(rows) == 1, rows
        row = rows[0]
        digest = row.get("digest")
        if row["status"] == "reused":  # no solve ran: the reused image is the fingerprint tag's
            digest = digest or self.fingerprint_digest()
        assert digest, f"no digest in the report: {row}"
        return Built(str(digest), int(row.get("steps") or 0), int(row.get("cached") or 0), self.content(str(digest)))

    def status(self) -> dict[str, object]:
        result = bake_ci("status", TARGET, "--push", "--branch", BRANCH, "--json", cwd=self.root, env=self.env)
        assert result.code == 0, f"bake-ci status failed ({result.code}):\n{result.out}\n{result.err}"
        rows = json.loads(result.out)
        assert len(rows) == 1, rows
        row = rows[0]
        assert isinstance(row, dict)
        return row

    def content(self, reference: str) -> Content:
        return content(self.repository, reference)

    def fingerprint_tag(self, short: str) -> str:
        return f"{TAG_PREFIX}-fp-{short}"

    def fingerprint_digest(self) -> str:
        row = self.status()
        manifest = urllib.request.Request(
            f"http://{REGISTRY}/v2/{self.repository}/manifests/{self.fingerprint_tag(str(row['fingerprint']))}",
            headers={"Accept": _ACCEPT},
            method="HEAD",
        )
        with urllib.request.urlopen(manifest, timeout=30) as resp:
            return str(resp.headers["Docker-Content-Digest"])


# -- a verdict --------------------------------------------------------------------------------


@dataclass
class Verdict:
    """bake-ci's verdict on one change against what BuildKit did with it."""

    name: str
    change: str
    action: str  # bake-ci status: reuse | none | pull | build
    why: str
    uncached: int
    steps: int
    differences: list[str]
    waste_ok: str = ""  # why a WASTE is acceptable here; empty: it is not

    @property
    def says_build(self) -> bool:
        return self.action not in REUSE_ACTIONS

    @property
    def buildkit_rebuilt(self) -> bool:
        """Whether BuildKit's image differs from the one compared with. Steps that ran
        uncached do not decide it: BuildKit's cache is keyed by content, so a step can come
        from the cache of an earlier build with the same inputs, and ``ADD <url>`` fetches
        the URL on every build even when the file is unchanged."""
        return bool(self.differences)

    @property
    def classification(self) -> str:
        if self.says_build:
            return AGREE if self.buildkit_rebuilt else WASTE
        return STALE if self.buildkit_rebuilt else AGREE

    @property
    def buildkit(self) -> str:
        ran = f"{self.uncached}/{self.steps} steps ran"
        if self.differences:
            return f"rebuilt ({ran}): " + "; ".join(self.differences)
        if self.uncached:
            return f"same image ({ran})"
        return f"same image (all {self.steps} steps cached)"

    @property
    def bake_ci(self) -> str:
        return f"{self.action} ({self.why})"

    def explain(self) -> str:
        if self.classification == STALE:
            return (
                f"STALE: {self.name}: after {self.change}, `bake-ci status` says {self.action!r} "
                f"({self.why}), but BuildKit's --no-reuse build differs from the image reuse would ship: "
                f"{self.buildkit}. Reuse would ship a stale image: the fingerprint misses what this change touched."
            )
        if self.classification == WASTE:
            return (
                f"WASTE: {self.name}: after {self.change}, `bake-ci status` says build ({self.why}), "
                f"but BuildKit built the same image ({self.buildkit}): the fingerprint counts something "
                "BuildKit never reads."
            )
        return f"AGREE: {self.name}: bake-ci {self.action}, BuildKit {self.buildkit}"


def judge(
    project: Project, before: Built, name: str, change: str, mutate: Callable[[], None], waste_ok: str = ""
) -> Verdict:
    """Apply one change after ``before`` was built and pushed, and judge bake-ci's verdict on it.

    For a reuse verdict the new build is compared with the image that reuse would ship
    (the fingerprint tag's); for a build verdict, with the previous build.
    """
    mutate()
    row = project.status()
    after = project.build("--no-reuse")
    action = str(row["action"])
    reference = before.content
    if action in REUSE_ACTIONS:
        tag = project.fingerprint_tag(str(row["fingerprint"]))
        reference = project.content(tag)
    return Verdict(
        name=name,
        change=change,
        action=action,
        why=str(row.get("why", "")),
        uncached=after.uncached,
        steps=after.steps,
        differences=reference.differences(after.content),
        waste_ok=waste_ok,
    )


# -- summary for whoever fixes the fingerprint ------------------------------------------------


@dataclass
class Summary:
    rows: list[Verdict] = field(default_factory=list)

    def markdown(self, title: str) -> str:
        lines = [
            f"# {title}",
            "",
            "| case | change | bake-ci verdict | BuildKit outcome | classification |",
            "|---|---|---|---|---|",
        ]
        for v in self.rows:
            cls = v.classification
            if cls == WASTE and v.waste_ok:
                cls += f" (allowed: {v.waste_ok})"
            cells = [v.name, v.change, v.bake_ci, v.buildkit, f"**{cls}**" if v.classification == STALE else cls]
            lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
        counts = {c: sum(1 for v in self.rows if v.classification == c) for c in (AGREE, WASTE, STALE)}
        lines += ["", ", ".join(f"{n} {c}" for c, n in counts.items()), ""]
        stale = [v for v in self.rows if v.classification == STALE]
        if stale:
            lines += ["## STALE details", ""] + [f"- {v.explain()}" for v in stale] + [""]
        return "\n".join(lines)


# -- a server for ADD <url> ------------------------------------------------------------------


@dataclass
class Served:
    body: bytes
    mtime: float
    validators: str  # "last-modified" | "etag" | "length" | "none"


class FileServer:
    """Serves in-memory files on 127.0.0.1 (BuildKit in dockerd fetches ADD URLs from the host).

    Each file says which validators its responses carry: ``last-modified`` (plus length,
    as http.server does), ``etag`` (plus length), ``length`` only, or ``none`` (the body
    is delimited by closing the connection). Conditional requests are answered honestly.
    """

    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.lock = threading.Lock()
        files = self.files
        lock = self.lock

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                with lock:
                    served = files.get(self.path.lstrip("/"))
                if served is None:
                    self.send_error(404)
                    return
                etag = '"' + sha256(served.body).hexdigest()[:16] + '"'
                modified = formatdate(served.mtime, usegmt=True)
                if served.validators == "etag" and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                since = self.headers.get("If-Modified-Since")
                if served.validators == "last-modified" and since == modified:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if served.validators == "etag":
                    self.send_header("ETag", etag)
                if served.validators == "last-modified":
                    self.send_header("Last-Modified", modified)
                if served.validators != "none":
                    self.send_header("Content-Length", str(len(served.body)))
                self.end_headers()
                if body:
                    self.wfile.write(served.body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def put(self, name: str, body: bytes, validators: str, mtime: float) -> None:
        with self.lock:
            self.files[name] = Served(body, mtime, validators)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- small images pushed by the test itself (COPY --from=IMAGE) -----------------------------------


def push_scratch_image(ref: str, files: Mapping[str, bytes], workdir: Path) -> None:
    """Push ``FROM scratch`` + ``files`` as ``ref`` and drop the engine's local tag, so that a
    later build resolves ``ref`` in the registry as a fresh machine would."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (workdir / name).write_bytes(data)
    lines = ["FROM scratch", *(f"COPY {name} /{name}" for name in files)]
    (workdir / "Dockerfile").write_text("\n".join(lines) + "\n")
    docker("buildx", "build", "--quiet", "--push", "--provenance=false", "-t", ref, str(workdir))
    docker("image", "rm", ref, check=False)
