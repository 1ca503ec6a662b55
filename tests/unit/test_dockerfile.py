"""``bake.dockerfile``: which stages a Dockerfile has, what each depends on, what it reads from the context."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bake import dockerfile
from bake.dockerfile import Sources, Stage

MULTI = """\
# syntax=docker/dockerfile:1
ARG PY=3.12
ARG BASE_IMAGE=python:${PY}-slim

FROM --platform=$BUILDPLATFORM ${BASE_IMAGE} AS Build
# a comment between instructions
RUN pip install \\
    --no-cache-dir \\
    # a comment inside a continuation
    build
COPY pyproject.toml src/ ./

FROM python:3.12-slim
COPY --from=BUILD /dist /dist

from build as Final
  RUN   echo indented
"""


def keys(stages: list[Stage]) -> list[str]:
    return [s.key for s in stages]


# -- stages() and preamble() ----------------------------------------------------------------


def test_stages_names_bases_and_indexes() -> None:
    found = dockerfile.stages(MULTI)
    assert [(s.index, s.name, s.base) for s in found] == [
        (0, "build", "${BASE_IMAGE}"),  # the name is lowercased, the --platform flag is not the image
        (1, None, "python:3.12-slim"),
        (2, "final", "build"),  # lowercase `from ... as ...` is a FROM too
    ]
    assert keys(found) == ["build", "1", "final"]


def test_stage_bodies_join_continuations_and_drop_comments() -> None:
    build, unnamed, final = dockerfile.stages(MULTI)
    assert [line.split() for line in build.body] == [
        ["RUN", "pip", "install", "--no-cache-dir", "build"],
        ["COPY", "pyproject.toml", "src/", "./"],
    ]
    assert unnamed.body == ("COPY --from=BUILD /dist /dist",)
    assert final.body == ("RUN   echo indented",)
    assert unnamed.text == "FROM python:3.12-slim\nCOPY --from=BUILD /dist /dist"
    assert final.text.startswith("FROM build AS final\n")


def test_stage_text_ignores_comments_and_blank_lines() -> None:
    plain = "FROM python AS ci\nCOPY . .\nRUN make\n"
    commented = "# header\nFROM python AS ci\n\n# copy everything\nCOPY . .\n   # indented comment\nRUN make\n\n"
    assert dockerfile.stages(plain)[0].text == dockerfile.stages(commented)[0].text
    assert dockerfile.stages(plain)[0].text != dockerfile.stages(plain.replace("make", "make test"))[0].text


def test_stages_of_text_without_from_is_empty() -> None:
    assert dockerfile.stages("# nothing\nARG X=1\n") == []
    assert dockerfile.stages("") == []


def test_empty_continuation_line_is_skipped_as_buildkit_does() -> None:
    # BuildKit skips empty lines inside a continuation (with a warning): this is one COPY.
    (stage,) = dockerfile.stages("FROM python AS ci\nCOPY \\\n\n    requirements.txt /app/\n")
    assert [line.split() for line in stage.body] == [["COPY", "requirements.txt", "/app/"]]


def test_preamble_is_everything_before_the_first_from() -> None:
    assert dockerfile.preamble(MULTI) == ["ARG PY=3.12", "ARG BASE_IMAGE=python:${PY}-slim"]
    assert dockerfile.preamble("FROM python AS ci\nARG INSIDE=1\n") == []


@settings(max_examples=50)
@given(st.lists(st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,10}", fullmatch=True), min_size=1, max_size=6))
def test_stage_names_are_lowercased(names: list[str]) -> None:
    text = "".join(f"FROM python:3.12 AS {n}\nRUN echo {n}\n" for n in names)
    found = dockerfile.stages(text)
    assert [s.name for s in found] == [n.lower() for n in names]
    assert [s.index for s in found] == list(range(len(names)))
    assert all(s.body == (f"RUN echo {n}",) for s, n in zip(found, names, strict=True))


# -- analyse() and chain() ------------------------------------------------------------------

GRAPH = """\
FROM python:3.12-slim AS base
FROM base AS deps
RUN pip install x
FROM python:3.12-slim AS tools
FROM python:3.12-slim AS assets
FROM python:3.12-slim AS unrelated
COPY --from=tools /t /t
FROM python:3.12-slim
FROM deps AS ci
COPY --from=TOOLS /bin/t /bin/t
RUN --mount=type=bind,from=assets,source=/a,target=/a \\
    --mount=type=cache,target=/root/.cache true
COPY --from=5 /x /x
"""


def test_analyse_reports_from_stages_and_mounts() -> None:
    ci = dockerfile.stages(GRAPH)[-1]
    parents, reads = dockerfile.analyse(ci)
    assert parents == {"tools", "assets", "5"}
    assert ("assets", "/a") in reads
    assert all(source_from is not None for source_from, _ in reads)  # nothing from the context


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("ci", ["base", "deps", "tools", "assets", "5", "ci"]),  # FROM, COPY --from (name, index), mount
        ("deps", ["base", "deps"]),
        ("unrelated", ["tools", "unrelated"]),
        ("base", ["base"]),
        ("no-such-stage", []),
    ],
)
def test_chain_is_the_dependencies_in_dockerfile_order(target: str, expected: list[str]) -> None:
    assert keys(dockerfile.chain(dockerfile.stages(GRAPH), target)) == expected


def test_chain_follows_copy_from_an_unnamed_stage_by_index() -> None:
    text = "FROM python AS unused\nFROM python\nRUN make\nFROM python AS ci\nCOPY --from=1 /out /out\n"
    assert keys(dockerfile.chain(dockerfile.stages(text), "ci")) == ["1", "ci"]


def test_chain_follows_copy_from_a_named_stage_by_index() -> None:
    # BuildKit accepts the index of any stage in --from, named or not.
    text = "FROM python AS builder\nRUN make\nFROM python AS ci\nCOPY --from=0 /out /out\n"
    found = dockerfile.stages(text)
    assert keys(dockerfile.chain(found, "ci")) == ["builder", "ci"]
    assert dockerfile.context_sources(found, "ci").external == ("FROM python",)


@st.composite
def dockerfiles(draw: st.DrawFn) -> tuple[str, list[str], dict[str, set[str]]]:
    """A Dockerfile of named stages, each depending on some earlier ones, and that graph."""
    names = draw(st.lists(st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True), min_size=1, max_size=8, unique=True))
    graph: dict[str, set[str]] = {}
    text = ""
    for i, name in enumerate(names):
        earlier = names[:i]
        base = draw(st.sampled_from(["python:3.12-slim", *earlier]))
        copies = draw(st.lists(st.sampled_from(earlier), max_size=3)) if earlier else []
        mounts = draw(st.lists(st.sampled_from(earlier), max_size=2)) if earlier else []
        graph[name] = {*copies, *mounts} | ({base} if base in earlier else set())
        shown = draw(st.sampled_from([name, name.upper()]))
        text += f"FROM {base} AS {shown}\n"
        text += "".join(f"COPY --from={c.upper() if i % 2 else c} /out /{c}\n" for c in copies)
        text += "".join(f"RUN --mount=type=bind,from={m},target=/m echo\n" for m in mounts)
    return text, names, graph


@settings(max_examples=50)
@given(dockerfiles(), st.data())
def test_chain_is_the_transitive_closure(case: tuple[str, list[str], dict[str, set[str]]], data: st.DataObject) -> None:
    text, names, graph = case
    target = data.draw(st.sampled_from(names))
    needed, todo = set(), [target]
    while todo:
        key = todo.pop()
        if key not in needed:
            needed.add(key)
            todo += graph[key]
    assert keys(dockerfile.chain(dockerfile.stages(text), target)) == [n for n in names if n in needed]


# -- context_sources() ------------------------------------------------------------------------


def sources(text: str, target: str) -> Sources:
    return dockerfile.context_sources(dockerfile.stages(text), target)


def test_copy_and_add_sources_without_from() -> None:
    text = """\
FROM python:3.12-slim AS ci
COPY --chown=1000:1000 --chmod=644 requirements.txt setup.cfg /app/
ADD vendor.tar.gz /opt/
COPY --link src/ /app/src/
COPY requirements.txt /again/
"""
    assert sources(text, "ci") == Sources(
        paths=("requirements.txt", "setup.cfg", "vendor.tar.gz", "src/"),
        external=("FROM python:3.12-slim",),
    )


def test_json_form_copy() -> None:
    text = 'FROM python AS ci\nCOPY ["my file.txt", "conf/", "/app/"]\n'
    assert sources(text, "ci").paths == ("my file.txt", "conf/")


def test_json_form_copy_without_spaces() -> None:
    text = 'FROM python AS ci\nCOPY ["requirements.txt","/app/"]\n'
    assert sources(text, "ci").paths == ("requirements.txt",)


def test_bind_mount_sources() -> None:
    text = """\
FROM python AS ci
RUN --mount=type=bind,source=uv.lock,target=/uv.lock --mount=type=cache,target=/root/.cache uv sync
RUN --mount=type=bind,src=pyproject.toml,target=/p.toml true
RUN --mount=type=secret,id=token --mount=type=tmpfs,target=/tmp true
RUN --mount=target=/ctx ls /ctx
"""
    # type defaults to bind; source defaults to the context's root
    assert sources(text, "ci").paths == ("uv.lock", "pyproject.toml", ".")


def test_external_references() -> None:
    text = """\
FROM python:3.12-slim AS tools
FROM python:3.12-slim AS ci
ADD https://example.com/tool.tar.gz /opt/
ADD git@github.com:acme/lib.git /lib
COPY --from=ghcr.io/acme/tools:1.0 /bin/t /bin/t
COPY --from=tools /t /t
RUN --mount=type=bind,from=busybox:1.36,source=/bin,target=/bb true
COPY app.py /app/
"""
    found = sources(text, "ci")
    assert found.paths == ("app.py",)
    assert found.external == (
        "FROM python:3.12-slim",
        "https://example.com/tool.tar.gz",
        "git@github.com:acme/lib.git",
        "--from=ghcr.io/acme/tools:1.0",
        "--from=busybox:1.36",
    )


def test_sources_cover_the_whole_chain_only() -> None:
    text = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS base
FROM base AS deps
COPY requirements.txt .
FROM base AS docs
COPY docs/ /docs/
FROM deps AS ci
COPY . .
"""
    assert sources(text, "deps") == Sources(("requirements.txt",), ("FROM ${BASE_IMAGE}",))
    assert sources(text, "ci").paths == ("requirements.txt", ".")
    assert sources(text, "base").paths == ()
