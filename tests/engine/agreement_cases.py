"""The cases of the BuildKit-agreement suite: a tiny Dockerfile, its context, and one change.

``expect`` is what BuildKit does with the change (checked on the engine): ``rebuild`` or
``same`` (every step from cache, the same image). It keeps each case honest: a case whose
change BuildKit ignores cannot catch a stale verdict. ``waste_ok`` says why bake-ci may
rebuild where BuildKit would not; empty means it may not.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .agreement import _ACCEPT as ACCEPT
from .agreement import FileServer, push_scratch_image
from .conftest import REGISTRY

APP = "FROM ${BASE_IMAGE} AS app\nWORKDIR /app\n"
REBUILD, SAME = "rebuild", "same"
VARIABLE_SOURCES = "variables in sources: bake-ci cannot tell which files COPY reads"


@dataclass
class CaseEnv:
    """What a case's set-up and change act on."""

    ctx: Path
    server: FileServer
    src_image: str  # an image reference this case may push and re-push (COPY --from=IMAGE)
    workdir: Path  # scratch space outside the context


@dataclass(frozen=True)
class Case:
    name: str
    dockerfile: str  # after the preamble; @URL@ is the file server, @SRC@ the case's own image
    files: dict[str, str]
    change: str
    mutate: Callable[[CaseEnv], None]
    expect: str
    setup: Callable[[CaseEnv], None] | None = None
    stages: tuple[str, ...] = ("app",)
    waste_ok: str = ""
    #: declared ``inputs`` per stage (``[tool.bake-ci.stages.NAME]``)
    inputs: dict[str, tuple[str, ...]] | None = None

    def render(self, env: CaseEnv) -> str:
        return self.dockerfile.replace("@URL@", env.server.base).replace("@SRC@", env.src_image)


# -- changes ------------------------------------------------------------------------------------


def edit(path: str, text: str = "changed\n") -> Callable[[CaseEnv], None]:
    def apply(env: CaseEnv) -> None:
        target = env.ctx / path
        target.write_text(target.read_text() + text if target.exists() else text)

    return apply


def replace(path: str, old: str, new: str) -> Callable[[CaseEnv], None]:
    def apply(env: CaseEnv) -> None:
        target = env.ctx / path
        text = target.read_text()
        assert old in text, (path, old)
        target.write_text(text.replace(old, new))

    return apply


def touch(path: str) -> Callable[[CaseEnv], None]:
    def apply(env: CaseEnv) -> None:
        later = time.time() + 3600
        os.utime(env.ctx / path, (later, later))

    return apply


def chmod(path: str, mode: int) -> Callable[[CaseEnv], None]:
    def apply(env: CaseEnv) -> None:
        (env.ctx / path).chmod(mode)

    return apply


def link(path: str, target: str) -> Callable[[CaseEnv], None]:
    def apply(env: CaseEnv) -> None:
        where = env.ctx / path
        if where.is_symlink():
            where.unlink()
        where.symlink_to(target)

    return apply


def mkdir(path: str) -> Callable[[CaseEnv], None]:
    def apply(env: CaseEnv) -> None:
        (env.ctx / path).mkdir(parents=True)

    return apply


def write_tar(path: str, members: dict[str, str]) -> Callable[[CaseEnv], None]:
    def apply(env: CaseEnv) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, text in members.items():
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = 1_700_000_000
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
        (env.ctx / path).write_bytes(buf.getvalue())

    return apply


SERVED_AT = 1_700_000_000.0


def serve(name: str, body: str, validators: str, mtime: float = SERVED_AT) -> Callable[[CaseEnv], None]:
    def apply(env: CaseEnv) -> None:
        env.server.put(name, body.encode(), validators, mtime)

    return apply


def src_image(text: str) -> Callable[[CaseEnv], None]:
    def apply(env: CaseEnv) -> None:
        push_scratch_image(env.src_image, {"data.txt": text.encode()}, env.workdir / f"src-{len(text)}-{text[:8]}")

    return apply


def nothing(env: CaseEnv) -> None:
    pass


def _digest(ref: str) -> str:
    """The digest the registry gives ``ref`` (``localhost:5000/NAME:TAG``)."""
    name, _, tag = ref.removeprefix(f"{REGISTRY}/").rpartition(":")
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{name}/manifests/{tag}", method="HEAD", headers={"Accept": ACCEPT}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return str(resp.headers["Docker-Content-Digest"])


def _set_base(env: CaseEnv, pinned: str) -> None:
    config = env.ctx.parent / "pyproject.toml"
    lines = [line for line in config.read_text().splitlines() if not line.startswith("base-image =")]
    config.write_text("\n".join([*lines, f'base-image = "{pinned}"']) + "\n")


def pin_base(text: str) -> Callable[[CaseEnv], None]:
    """Push an image with ``text`` as the case's own image, and pin base-image to its digest
    (as Renovate writes it: the tag and the digest)."""

    def apply(env: CaseEnv) -> None:
        src_image(text)(env)
        _set_base(env, f"{env.src_image}@{_digest(env.src_image)}")

    return apply


def base_tag(text: str) -> Callable[[CaseEnv], None]:
    """Push an image with ``text`` as the case's own image, and make base-image its tag."""

    def apply(env: CaseEnv) -> None:
        src_image(text)(env)
        _set_base(env, env.src_image)

    return apply


def pin_in_dockerfile(text: str) -> Callable[[CaseEnv], None]:
    """Push an image with ``text`` as the case's own image, and write its tag@digest where
    the Dockerfile says @PIN@ (or where the previous pin was)."""

    def apply(env: CaseEnv) -> None:
        src_image(text)(env)
        dockerfile = env.ctx / "Dockerfile"
        pinned = f"{env.src_image}@{_digest(env.src_image)}"
        dockerfile.write_text(
            re.sub(r"@PIN@|" + re.escape(env.src_image) + r"@sha256:[0-9a-f]{64}", pinned, dockerfile.read_text())
        )

    return apply


def repush_base(text: str) -> Callable[[CaseEnv], None]:
    """Push other content under the pinned base's tag; the pin stays."""
    return src_image(text)


# -- the cases ----------------------------------------------------------------------------------

RUN_SH = "#!/bin/sh\necho run\n"


def _url_cases() -> list[Case]:
    out = []
    for validators in ("last-modified", "etag", "length", "none"):
        for changed in (True, False):
            name = f"add-url-{validators}-{'changed' if changed else 'unchanged'}"
            served = f"{name}.txt"  # one file per case: cases run concurrently
            out.append(
                Case(
                    name,
                    APP + f"ADD @URL@/{served} /app/fetched.txt\n",
                    {},
                    f"the served file changed, same length (server sends: {validators})"
                    if changed
                    else f"nothing changed on the server (server sends: {validators})",
                    serve(served, "version 2\n", validators, SERVED_AT + 60) if changed else nothing,
                    REBUILD if changed else SAME,
                    setup=serve(served, "version 1\n", validators),
                    waste_ok=""
                    if changed or validators in ("last-modified", "etag")
                    else "the server gives no validator that tells an unchanged file: never reusing is the safe choice",
                )
            )
    return out


CASES: list[Case] = [
    # COPY and ADD forms
    Case("copy-file-edit", APP + "COPY a.txt .\n", {"a.txt": "a\n"}, "a.txt edited", edit("a.txt"), REBUILD),
    Case("copy-file-touch", APP + "COPY a.txt .\n", {"a.txt": "a\n"}, "a.txt's mtime changed", touch("a.txt"), SAME),
    Case(
        "copy-dir-new-file",
        APP + "COPY src/ ./src/\n",
        {"src/a.py": "a = 1\n", "src/pkg/b.py": "b = 2\n"},
        "src/pkg/c.py added",
        edit("src/pkg/c.py"),
        REBUILD,
    ),
    Case(
        "copy-dir-outside-edit",
        APP + "COPY src/ ./src/\n",
        {"src/a.py": "a = 1\n", "docs/readme.md": "docs\n"},
        "docs/readme.md (not copied) edited",
        edit("docs/readme.md"),
        SAME,
    ),
    Case(
        "copy-glob-new-match",
        APP + "COPY conf/*.cfg ./conf/\n",
        {"conf/a.cfg": "a\n", "conf/notes.md": "n\n"},
        "conf/b.cfg added (matches the glob)",
        edit("conf/b.cfg"),
        REBUILD,
    ),
    Case(
        "copy-glob-non-match-edit",
        APP + "COPY conf/*.cfg ./conf/\n",
        {"conf/a.cfg": "a\n", "conf/notes.md": "n\n"},
        "conf/notes.md (outside the glob) edited",
        edit("conf/notes.md"),
        SAME,
    ),
    Case(
        "copy-multiple-sources",
        APP + "COPY a.txt b.txt ./\n",
        {"a.txt": "a\n", "b.txt": "b\n"},
        "b.txt (the second source) edited",
        edit("b.txt"),
        REBUILD,
    ),
    Case(
        "copy-json-form",
        APP + 'COPY ["with space.txt", "./"]\n',
        {"with space.txt": "s\n"},
        "'with space.txt' edited",
        edit("with space.txt"),
        REBUILD,
    ),
    Case(
        "copy-chown-chmod",
        APP + "COPY --chown=1000:1000 --chmod=755 run.sh .\n",
        {"run.sh": RUN_SH},
        "run.sh edited",
        edit("run.sh", "echo more\n"),
        REBUILD,
    ),
    Case(
        "copy-chmod-source-mode",
        APP + "COPY --chmod=644 run.sh .\n",
        {"run.sh": RUN_SH},
        "chmod +x run.sh (COPY --chmod sets the mode in the image)",
        chmod("run.sh", 0o755),
        REBUILD,
    ),
    Case("add-local-file", APP + "ADD a.txt .\n", {"a.txt": "a\n"}, "a.txt edited", edit("a.txt"), REBUILD),
    Case(
        "add-local-tar",
        APP + "ADD bundle.tar ./bundle/\n",
        {},
        "a member of bundle.tar (auto-extracted) changed",
        write_tar("bundle.tar", {"m.txt": "two\n"}),
        REBUILD,
        setup=write_tar("bundle.tar", {"m.txt": "one\n"}),
    ),
    # what BuildKit sees of a file besides its bytes
    Case(
        "mode-exec-bit",
        APP + "COPY run.sh .\n",
        {"run.sh": RUN_SH},
        "chmod +x run.sh (same bytes)",
        chmod("run.sh", 0o755),
        REBUILD,
        setup=chmod("run.sh", 0o644),
    ),
    Case(
        "symlink-retarget",
        APP + "COPY d/ ./d/\n",
        {"a.txt": "same\n", "b.txt": "same\n", "d/x.txt": "x\n"},
        "d/l retargeted from ../a.txt to ../b.txt (same bytes)",
        link("d/l", "../b.txt"),
        REBUILD,
        setup=link("d/l", "../a.txt"),
    ),
    Case(
        "empty-dir-added",
        APP + "COPY src/ ./src/\n",
        {"src/a.py": "a = 1\n"},
        "empty directory src/empty/ added",
        mkdir("src/empty"),
        REBUILD,
    ),
    # .dockerignore
    Case(
        "dockerignore-ignored-edit",
        APP + "COPY . .\n",
        {".dockerignore": "*.log\n!keep.log\n", "a.txt": "a\n", "debug.log": "d\n", "keep.log": "k\n"},
        "debug.log (ignored by *.log) edited",
        edit("debug.log"),
        SAME,
    ),
    Case(
        "dockerignore-exception-edit",
        APP + "COPY . .\n",
        {".dockerignore": "*.log\n!keep.log\n", "a.txt": "a\n", "debug.log": "d\n", "keep.log": "k\n"},
        "keep.log (re-included by !keep.log) edited",
        edit("keep.log"),
        REBUILD,
    ),
    Case(
        "dockerignore-itself-edited",
        APP + "COPY . .\n",
        {".dockerignore": "*.log\n", "a.txt": "a\n", "debug.log": "d\n"},
        "a comment added to .dockerignore (COPY . . copies it)",
        edit(".dockerignore", "# a comment\n"),
        REBUILD,
    ),
    Case(
        "dockerfile-dockerignore-ignores",
        APP + "COPY . .\n",
        {".dockerignore": "notes.txt\n", "Dockerfile.dockerignore": "secret.txt\n", "secret.txt": "s\n"},
        "secret.txt edited (only Dockerfile.dockerignore ignores it, and it wins)",
        edit("secret.txt"),
        SAME,
    ),
    Case(
        "dockerfile-dockerignore-replaces",
        APP + "COPY . .\n",
        {".dockerignore": "notes.txt\n", "Dockerfile.dockerignore": "secret.txt\n", "notes.txt": "n\n"},
        "notes.txt edited (.dockerignore ignores it, but Dockerfile.dockerignore replaces .dockerignore)",
        edit("notes.txt"),
        REBUILD,
    ),
    # bind mounts
    Case(
        "bind-mount-source",
        APP + "RUN --mount=type=bind,source=data.txt,target=/mnt/data.txt cp /mnt/data.txt /app/data.txt\n",
        {"data.txt": "d\n", "other.txt": "o\n"},
        "data.txt (the mount's source) edited",
        edit("data.txt"),
        REBUILD,
    ),
    Case(
        "bind-mount-source-other-edit",
        APP + "RUN --mount=type=bind,source=data.txt,target=/mnt/data.txt cp /mnt/data.txt /app/data.txt\n",
        {"data.txt": "d\n", "other.txt": "o\n"},
        "other.txt (not mounted) edited",
        edit("other.txt"),
        SAME,
    ),
    Case(
        "bind-mount-whole-context",
        APP + "RUN --mount=type=bind,target=/mnt/ctx ls -lR /mnt/ctx > /app/listing\n",
        {"a.txt": "a\n"},
        "b.txt added (the mount has no source: the whole context)",
        edit("b.txt"),
        REBUILD,
    ),
    # stages
    Case(
        "from-stage-chain",
        "FROM ${BASE_IMAGE} AS lib\nCOPY lib.txt /lib/\n"
        "FROM lib AS mid\nRUN cp /lib/lib.txt /lib/copy.txt\n"
        "FROM ${BASE_IMAGE} AS app\nWORKDIR /app\nCOPY --from=mid /lib/copy.txt .\nCOPY --from=0 /lib/lib.txt .\n",
        {"lib.txt": "l\n", "app.txt": "a\n"},
        "lib.txt (read by stage lib, reached through --from=mid and --from=0) edited",
        edit("lib.txt"),
        REBUILD,
    ),
    Case(
        "unrelated-stage-edit",
        "FROM ${BASE_IMAGE} AS other\nCOPY other.txt /\n" + APP + "COPY a.txt .\n",
        {"other.txt": "o\n", "a.txt": "a\n"},
        "other.txt (read only by a stage app does not use) edited",
        edit("other.txt"),
        SAME,
    ),
    Case(
        "unrelated-stage-dockerfile-edit",
        "FROM ${BASE_IMAGE} AS other\nRUN echo one > /x\n" + APP + "COPY a.txt .\n",
        {"a.txt": "a\n"},
        "the RUN line of a stage app does not use changed (the Dockerfile text)",
        replace("Dockerfile", "echo one", "echo two"),
        SAME,
    ),
    # heredocs
    Case(
        "heredoc-copy",
        APP + "COPY <<EOF /app/conf.txt\nCOPY notes.txt /nowhere\nhello\nEOF\nCOPY a.txt .\n",
        {"a.txt": "a\n", "notes.txt": "n\n"},
        "notes.txt (named only inside a COPY heredoc's body) edited",
        edit("notes.txt"),
        SAME,
    ),
    Case(
        "heredoc-run",
        APP + "RUN <<EOF\ncat > /app/out <<INNER\nADD notes.txt /nowhere\nINNER\nEOF\nCOPY a.txt .\n",
        {"a.txt": "a\n", "notes.txt": "n\n"},
        "notes.txt (named only inside a RUN heredoc's body) edited",
        edit("notes.txt"),
        SAME,
    ),
    Case(
        "heredoc-copy-body-edit",
        APP + "COPY <<EOF /app/conf.txt\nhello\nEOF\n",
        {"a.txt": "a\n"},
        "the heredoc's body changed",
        replace("Dockerfile", "hello", "bye"),
        REBUILD,
    ),
    # variables in sources
    Case(
        "args-in-sources-other-edit",
        APP + "ARG SRC=a.txt\nCOPY ${SRC} .\n",
        {"a.txt": "a\n", "b.txt": "b\n"},
        "b.txt (not what ${SRC} names) edited",
        edit("b.txt"),
        SAME,
        waste_ok=VARIABLE_SOURCES,
    ),
    Case(
        "args-in-sources-edit",
        APP + "ARG SRC=a.txt\nCOPY ${SRC} .\n",
        {"a.txt": "a\n", "b.txt": "b\n"},
        "a.txt (what ${SRC} names) edited",
        edit("a.txt"),
        REBUILD,
    ),
    # external references
    Case(
        "copy-from-image-repushed",
        APP + "COPY --from=@SRC@ /data.txt .\n",
        {},
        "the image named in COPY --from re-pushed with other content under the same tag",
        src_image("version 2\n"),
        REBUILD,
        setup=src_image("version 1\n"),
    ),
    Case(
        "mount-from-image-repushed",
        APP + "RUN --mount=type=bind,from=@SRC@,source=/data.txt,target=/mnt/d cp /mnt/d /app/data.txt\n",
        {},
        "the image named in RUN --mount=from re-pushed with other content under the same tag",
        src_image("version 2\n"),
        REBUILD,
        setup=src_image("version 1\n"),
    ),
    *_url_cases(),
    # declared inputs add to what a stage copies
    Case(
        "declared-inputs-copied-file-edit",
        APP + "COPY requirements.txt constraints.txt /app/\n",
        {"requirements.txt": "idna\n", "constraints.txt": "idna<4\n"},
        "constraints.txt (copied, left out of inputs = [requirements.txt]) edited",
        edit("constraints.txt"),
        REBUILD,
        inputs={"app": ("requirements.txt",)},
    ),
    Case(
        "declared-inputs-other-edit",
        APP + "COPY requirements.txt constraints.txt /app/\n",
        {"requirements.txt": "idna\n", "constraints.txt": "idna<4\n", "notes.md": "n\n"},
        "notes.md (neither copied nor declared) edited",
        edit("notes.md"),
        SAME,
        inputs={"app": ("requirements.txt",)},
    ),
    Case(
        "declared-inputs-declared-only-edit",
        APP + "COPY requirements.txt /app/\n",
        {"requirements.txt": "idna\n", "setup.cfg": "[x]\n"},
        "setup.cfg (declared in inputs, never copied) edited",
        edit("setup.cfg"),
        SAME,
        inputs={"app": ("requirements.txt", "setup.cfg")},
        waste_ok="the project declared setup.cfg an input: bake-ci takes its word",
    ),
    Case(
        "declared-inputs-variable-source-edit",
        APP + "ARG REQS=requirements.txt\nCOPY ${REQS} /app/\n",
        {"requirements.txt": "idna\n", "notes.md": "n\n"},
        "requirements.txt (what ${REQS} names, declared in inputs) edited",
        edit("requirements.txt"),
        REBUILD,
        inputs={"app": ("requirements.txt",)},
    ),
    Case(
        "declared-inputs-variable-source-other-edit",
        APP + "ARG REQS=requirements.txt\nCOPY ${REQS} /app/\n",
        {"requirements.txt": "idna\n", "notes.md": "n\n"},
        "notes.md (neither what ${REQS} names nor declared) edited",
        edit("notes.md"),
        SAME,
        inputs={"app": ("requirements.txt",)},
    ),
    Case(
        "declared-inputs-from-stage-edit",
        "FROM ${BASE_IMAGE} AS lib\nCOPY lib.txt /lib/\n" + APP + "COPY --from=lib /lib/lib.txt .\nCOPY a.txt .\n",
        {"lib.txt": "l\n", "a.txt": "a\n"},
        "lib.txt (copied by stage lib, which app copies from; app declares inputs = [a.txt]) edited",
        edit("lib.txt"),
        REBUILD,
        stages=("lib", "app"),
        inputs={"app": ("a.txt",)},
    ),
    # base images pinned by digest
    Case(
        "base-pinned-by-digest-bumped",
        APP + "COPY a.txt .\n",
        {"a.txt": "a\n"},
        "base-image's digest pin moved to another image (tag@digest, as Renovate writes it)",
        pin_base("base version 2\n"),
        REBUILD,
        setup=pin_base("base version 1\n"),
    ),
    Case(
        "base-tag-re-pushed-while-pinned-by-digest",
        APP + "COPY a.txt .\n",
        {"a.txt": "a\n"},
        "the pinned base's tag re-pushed with other content (the pin names the old digest)",
        repush_base("base version 2\n"),
        SAME,
        setup=pin_base("base version 1\n"),
    ),
    Case(
        "base-pinned-by-digest-file-edit",
        APP + "COPY a.txt .\n",
        {"a.txt": "a\n"},
        "a.txt edited (base pinned by digest)",
        edit("a.txt"),
        REBUILD,
        setup=pin_base("base version 1\n"),
    ),
    Case(
        "copy-from-image-pinned-tag-re-pushed",
        APP + "COPY --from=@PIN@ /data.txt .\n",
        {},
        "the image COPY --from pins by tag@digest re-pushed under its tag (the pin stays)",
        src_image("version 2\n"),
        SAME,
        setup=pin_in_dockerfile("version 1\n"),
    ),
    Case(
        "copy-from-image-pinned-bumped",
        APP + "COPY --from=@PIN@ /data.txt .\n",
        {},
        "the digest COPY --from pins moved to other content",
        pin_in_dockerfile("version 2\n"),
        REBUILD,
        setup=pin_in_dockerfile("version 1\n"),
    ),
    # a FROM reached through a global ARG whose default uses BASE_IMAGE
    Case(
        "from-arg-default-of-base-image-edit",
        "ARG IMG=${BASE_IMAGE}\nFROM ${IMG} AS app\nWORKDIR /app\nCOPY a.txt .\n",
        {"a.txt": "a\n"},
        "a.txt edited (FROM ${IMG}, ARG IMG=${BASE_IMAGE})",
        edit("a.txt"),
        REBUILD,
    ),
    Case(
        "from-arg-default-of-base-image-repushed",
        "ARG IMG=${BASE_IMAGE}\nFROM ${IMG} AS app\nWORKDIR /app\nCOPY a.txt .\n",
        {"a.txt": "a\n"},
        "the base's tag re-pushed (FROM ${IMG}, ARG IMG=${BASE_IMAGE}, base-image a tag)",
        src_image("base version 2\n"),
        REBUILD,
        setup=base_tag("base version 1\n"),
    ),
]

assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"
