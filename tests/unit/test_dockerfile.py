"""``bake.dockerfile``: which stages a Dockerfile has, what each depends on, what it reads from the context."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bake import dockerfile, dockerfile_parser
from bake.dockerfile import Sources, Stage, Url

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
    assert [i.text.split() for i in build.body] == [
        ["RUN", "pip", "install", "--no-cache-dir", "build"],
        ["COPY", "pyproject.toml", "src/", "./"],
    ]
    # continuation lines are joined as BuildKit joins them: nothing added, indentation kept
    assert build.body[0].text == "RUN pip install     --no-cache-dir     build"
    assert [i.text for i in unnamed.body] == ["COPY --from=BUILD /dist /dist"]
    assert [i.text for i in final.body] == ["RUN   echo indented"]
    assert unnamed.text == "FROM python:3.12-slim\nCOPY --from=BUILD /dist /dist"
    assert final.text.startswith("from build as Final\n")  # the FROM line as written


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
    assert [i.text.split() for i in stage.body] == [["COPY", "requirements.txt", "/app/"]]


def test_preamble_is_everything_before_the_first_from() -> None:
    assert dockerfile.preamble_text(dockerfile_parser.parse(MULTI)) == (
        "# syntax=docker/dockerfile:1\nARG PY=3.12\nARG BASE_IMAGE=python:${PY}-slim"
    )
    assert dockerfile.preamble_text(dockerfile_parser.parse("FROM python AS ci\nARG INSIDE=1\n")) == ""
    preamble, _ = dockerfile.split_stages(dockerfile_parser.parse(MULTI))
    assert dockerfile.arg_defaults(preamble) == {"PY": "3.12", "BASE_IMAGE": "python:3.12-slim"}


@settings(max_examples=50)
@given(st.lists(st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,10}", fullmatch=True), min_size=1, max_size=6))
def test_stage_names_are_lowercased(names: list[str]) -> None:
    text = "".join(f"FROM python:3.12 AS {n}\nRUN echo {n}\n" for n in names)
    found = dockerfile.stages(text)
    assert [s.name for s in found] == [n.lower() for n in names]
    assert [s.index for s in found] == list(range(len(names)))
    assert all([i.text for i in s.body] == [f"RUN echo {n}"] for s, n in zip(found, names, strict=True))


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


def test_dependencies_are_the_base_copy_from_and_mounts() -> None:
    ci = dockerfile.stages(GRAPH)[-1]
    assert dockerfile.dependencies(ci) == {"deps", "tools", "assets", "5"}
    reads = dockerfile.references(ci)
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
    assert context_sources(found, "ci").images == ("python",)


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


def context_sources(
    all_stages: list[dockerfile.Stage], target: str, args: Mapping[str, str] | None = None
) -> dockerfile.Sources:
    """What the target's stages read, all together (what the fingerprint hashes, stage by stage)."""
    keys = set(dockerfile._by_key(all_stages))
    found = [dockerfile.stage_sources(stage, keys, args) for stage in dockerfile.chain(all_stages, target, args)]
    return dockerfile.Sources(
        tuple(dict.fromkeys(p for s in found for p in s.paths)),
        tuple(dict.fromkeys(i for s in found for i in s.images)),
        tuple(dict.fromkeys(u for s in found for u in s.urls)),
        tuple(dict.fromkeys(u for s in found for u in s.unknown)),
    )


# -- context_sources() ------------------------------------------------------------------------


def sources(text: str, target: str, args: dict[str, str] | None = None) -> Sources:
    return context_sources(dockerfile.stages(text), target, args)


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
        images=("python:3.12-slim",),
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
    assert found.images == ("python:3.12-slim", "ghcr.io/acme/tools:1.0", "busybox:1.36")
    assert found.urls == (Url("https://example.com/tool.tar.gz", None),)
    assert len(found.unknown) == 1
    assert "git@github.com:acme/lib.git" in found.unknown[0]


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
    assert sources(text, "deps") == Sources(("requirements.txt",), ("${BASE_IMAGE}",))
    assert sources(text, "deps", {"BASE_IMAGE": "python:3.13-slim"}).images == ("python:3.13-slim",)
    assert sources(text, "ci").paths == ("requirements.txt", ".")
    assert sources(text, "base").paths == ()


# -- reading as BuildKit's parser does (expected values checked against BuildKit's own parser) --


def instructions(text: str) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    return [(i.cmd, i.flags, i.args) for i in dockerfile_parser.parse(text).instructions]


def test_heredoc_bodies_are_content_not_instructions() -> None:
    text = """\
FROM python AS ci
COPY <<EOF /etc/app.conf
COPY secrets.txt /x
FROM evil AS other
EOF
RUN <<-"EOT" bash
\tCOPY also-not-a-file /y
\tEOT
COPY <<one <<two /dst/
1
one
2
two
RUN cat <<EOF > /f && echo done
hello
EOF
COPY app.py /app/
"""
    parsed = dockerfile_parser.parse(text)
    assert [i.cmd for i in parsed.instructions] == ["FROM", "COPY", "RUN", "COPY", "RUN", "COPY"]
    copy_conf = parsed.instructions[1]
    assert copy_conf.heredocs == (dockerfile_parser.Heredoc("EOF", "COPY secrets.txt /x\nFROM evil AS other\n"),)
    assert parsed.instructions[2].heredocs[0].content == "\tCOPY also-not-a-file /y\n"
    assert [h.name for h in parsed.instructions[3].heredocs] == ["one", "two"]
    assert len(dockerfile.stages(text)) == 1
    # a heredoc source is inline content: only app.py is read from the context
    assert sources(text, "ci").paths == ("app.py",)


def test_heredoc_content_is_part_of_the_stage_text() -> None:
    before = "FROM python AS ci\nCOPY <<EOF /etc/app.conf\nlevel=info\nEOF\n"
    after = before.replace("info", "debug")
    assert dockerfile.stages(before)[0].text != dockerfile.stages(after)[0].text


def test_quoted_heredoc_word_is_not_a_heredoc() -> None:
    text = 'FROM python AS ci\nRUN echo "<<EOF"\nCOPY a.txt /a\n'
    assert [i.cmd for i in dockerfile_parser.parse(text).instructions] == ["FROM", "RUN", "COPY"]


def test_continuations_are_joined_without_a_space_as_buildkit_does() -> None:
    # `echo a\` + `bc` runs `echo abc`; `echo a \` + `bc` runs `echo a bc`: different steps
    joined = dockerfile.stages("FROM python AS ci\nRUN echo a\\\nbc\n")[0]
    spaced = dockerfile.stages("FROM python AS ci\nRUN echo a \\\nbc\n")[0]
    assert [i.text for i in joined.body] == ["RUN echo abc"]
    assert [i.text for i in spaced.body] == ["RUN echo a bc"]
    assert joined.text != spaced.text


def test_comment_lines_inside_a_continuation_are_dropped() -> None:
    text = "FROM python AS ci\nCOPY a.txt \\\n  # not a source\n  b.txt /dst/\n"
    assert instructions(text)[1] == ("COPY", (), ("a.txt", "b.txt", "/dst/"))


def test_escape_directive_changes_the_continuation_character() -> None:
    text = "# escape=`\nFROM python AS ci\nCOPY a.txt `\n  b.txt C:\\dst\\\nRUN echo done\n"
    parsed = dockerfile_parser.parse(text)
    assert parsed.directives == {"escape": "`"}
    assert [(i.cmd, i.args) for i in parsed.instructions[1:]] == [
        ("COPY", ("a.txt", "b.txt", "C:\\dst\\")),  # a backslash is no continuation here
        ("RUN", ("echo done",)),
    ]


def test_directives_only_at_the_top() -> None:
    parsed = dockerfile_parser.parse("FROM python AS ci\n# escape=`\nRUN echo a \\\n b\n")
    assert parsed.directives == {}
    assert [i.text for i in parsed.instructions] == ["FROM python AS ci", "RUN echo a  b"]


def test_flags_json_and_shell_forms() -> None:
    text = """\
FROM --platform=$BUILDPLATFORM python AS ci
COPY --from=0 --chmod=755 ["c d.txt", "/e"]
COPY --chown="app user" "quoted.txt" 'single.txt' /dst/
ADD --checksum=sha256:abc https://example.com/x.tgz /
RUN --mount=type=bind,source=req.txt,target=/r pip install -r /r
"""
    assert instructions(text) == [
        ("FROM", ("--platform=$BUILDPLATFORM",), ("python", "AS", "ci")),
        ("COPY", ("--from=0", "--chmod=755"), ("c d.txt", "/e")),
        ("COPY", ("--chown=app user",), ('"quoted.txt"', "'single.txt'", "/dst/")),
        ("ADD", ("--checksum=sha256:abc",), ("https://example.com/x.tgz", "/")),
        ("RUN", ("--mount=type=bind,source=req.txt,target=/r",), ("pip install -r /r",)),
    ]
    # quotes are removed from sources as BuildKit's word processing does
    assert sources(text, "ci").paths == ("quoted.txt", "single.txt", "req.txt")


def test_from_flags_are_part_of_the_stage_text() -> None:
    amd = dockerfile.stages("FROM --platform=linux/amd64 python AS ci\n")[0]
    arm = dockerfile.stages("FROM --platform=linux/arm64 python AS ci\n")[0]
    assert amd.text != arm.text


@pytest.mark.parametrize(
    "source", ["$SRC", "${SRC}/app", '"${SRC}"', "src/$NAME.py"], ids=["plain", "braced", "quoted", "inside"]
)
def test_a_variable_in_a_source_means_the_whole_context(source: str) -> None:
    text = f"FROM python AS ci\nARG SRC=src\nCOPY {source} /app/\n"
    assert sources(text, "ci").paths == (".",)


def test_from_by_variable_uses_the_global_args() -> None:
    text = "ARG TOOLS=tools\nFROM python AS tools\nFROM python AS ci\nCOPY --from=${TOOLS} /t /t\n"
    found = dockerfile.stages(text)
    assert keys(dockerfile.chain(found, "ci", {"TOOLS": "tools"})) == ["tools", "ci"]
    assert context_sources(found, "ci", {"TOOLS": "busybox:1"}).images == ("python", "busybox:1")


def test_add_urls_git_refs_and_checksums() -> None:
    text = """\
FROM python AS ci
ADD --checksum=sha256:0123 https://example.com/pinned.tgz /opt/
ADD https://example.com/moving.tgz /opt/
ADD https://github.com/acme/lib.git#0123456789abcdef0123456789abcdef01234567 /lib
ADD https://github.com/acme/lib.git#main /lib2
"""
    found = sources(text, "ci")
    assert found.urls == (
        Url("https://example.com/pinned.tgz", "sha256:0123"),
        Url("https://example.com/moving.tgz", None),
    )
    assert len(found.unknown) == 1
    assert "lib.git#main" in found.unknown[0]
    assert found.paths == ()


def test_cache_mount_from_a_stage_is_a_dependency() -> None:
    text = "FROM python AS seed\nFROM python AS ci\nRUN --mount=type=cache,from=seed,target=/c true\n"
    assert keys(dockerfile.chain(dockerfile.stages(text), "ci")) == ["seed", "ci"]
    assert sources(text, "ci").paths == ()


def test_an_unterminated_heredoc_is_read_to_the_end_without_error() -> None:
    parsed = dockerfile_parser.parse("FROM python AS ci\nRUN <<EOF\necho never closed\n")
    assert parsed.instructions[-1].heredocs[0].content == "echo never closed\n"
