"""Image references, digest pins, declared inputs and Dockerfile checks against the real engine.

- every Dockerfile bake-ci refuses, BuildKit refuses too, and every one it accepts BuildKit
  builds (tests/unit/dockerfile_cases.py);
- the reference table of tests/unit/test_references.py against buildx's own parser, and
  names and digests against ``docker buildx imagetools inspect``;
- a base image pinned by digest is never looked up, and re-pushing its tag changes nothing;
- declared ``inputs`` never hide a file the Dockerfile copies.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from unit.dockerfile_cases import ACCEPTED, PREAMBLE, REFUSED
from unit.test_references import INVALID, VALID

from bake import bases, reuse
from bake.engine import process
from bake.registry import InvalidReference, Reference

from .conftest import REGISTRY, Project, bake_ci, docker, make_project

LOCAL_BASE = f"{REGISTRY}/library/python:3.11-slim"

# -- Dockerfiles: bake-ci refuses what BuildKit refuses ----------------------------------------


def buildkit_builds(tmp: Path, text: str) -> subprocess.CompletedProcess[str]:
    (tmp / "a.txt").write_text("a\n")
    (tmp / "Dockerfile").write_text(PREAMBLE + text)
    return docker(
        "buildx", "build", "--quiet", "--target", "app", "--output", "type=cacheonly",
        "--build-arg", f"BASE_IMAGE={LOCAL_BASE}", str(tmp), check=False,
    )  # fmt: skip


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_buildkit_refuses_what_bake_ci_refuses(tmp_path: Path, name: str) -> None:
    built = buildkit_builds(tmp_path, REFUSED[name][0])
    assert built.returncode != 0, f"BuildKit built {name}, which bake-ci refuses"
    assert "failed to solve" in built.stderr, built.stderr


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_buildkit_builds_what_bake_ci_accepts(tmp_path: Path, name: str) -> None:
    built = buildkit_builds(tmp_path, ACCEPTED[name])
    assert built.returncode == 0, built.stderr


# -- references: buildx's parser and imagetools --------------------------------------------------

#: buildx 0.13 no longer checks a name's total length; registries refuse names over 255 characters
NOT_CHECKED_BY_BUILDX = {"localhost:5000/" + "a" * 250}
INVALID_WORDS = ("invalid reference format", "digest", "repository name must")


@pytest.mark.parametrize("ref", [row[0] for row in VALID] + [row[0] for row in INVALID])
def test_references_are_invalid_exactly_when_buildx_says_so(ref: str) -> None:
    if ref in NOT_CHECKED_BY_BUILDX or not ref:
        pytest.skip("buildx does not check this")
    said = docker("buildx", "imagetools", "inspect", "--", ref, check=False)
    buildx_invalid = said.returncode != 0 and any(w in said.stderr for w in INVALID_WORDS)
    try:
        Reference.parse(ref)
        ours = False
    except InvalidReference:
        ours = True
    assert ours == buildx_invalid, f"{ref!r}: buildx said {said.stderr.strip()[:200]!r}"


def imagetools(ref: str) -> dict[str, str]:
    out = docker("buildx", "imagetools", "inspect", ref).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()[:3])}


@pytest.fixture(scope="module")
def own_base() -> tuple[str, str]:
    """The local base copied into a namespace of this run (the shared tags are never re-pushed):
    its tag and its digest."""
    tag = f"{REGISTRY}/refs-{uuid.uuid4().hex[:8]}/python:3.11-slim"
    docker("buildx", "imagetools", "create", "-t", tag, LOCAL_BASE)
    return tag, imagetools(tag)["Digest"]


def test_names_and_digests_agree_with_imagetools(own_base: tuple[str, str]) -> None:
    tag, digest = own_base
    repository = tag.rsplit(":", 1)[0]
    for ref in (tag, f"{tag}@{digest}", f"{repository}@{digest}"):
        shown = imagetools(ref)
        assert Reference.parse(ref).canonical == shown["Name"]
        runner = process.Runner(os.environ)
        assert bases.resolve_base(reuse.client(runner), runner, ref).digest == shown["Digest"]


# -- digest pins -------------------------------------------------------------------------------------


def pinned_project(tmp: Path, base_image: str) -> Project:
    source = tmp / "source"
    source.mkdir()
    (source / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS app\nCOPY app.py /src/\n")
    (source / "app.py").write_text("print('hello')\n")
    (source / "pyproject.toml").write_text(
        f'[tool.bake-ci]\nimage = "refs/pinned"\npython = ["3.11"]\nstages = ["app"]\nbase-image = "{base_image}"\n'
    )
    return make_project(tmp, source)


def build(project: Project, tmp: Path, branch: str) -> tuple[str, list[dict[str, object]]]:
    """``build --push -v`` on ``branch``: the target's status and the run's debug events."""
    report = tmp / f"{branch}.json"
    args = ["build", "--push", "--branch", branch, "-v", "--log-format", "json", "--report", str(report)]
    result = bake_ci(*args, cwd=project.path, env=project.env)
    assert result.code == 0, result.err
    events = [json.loads(line) for line in result.err.splitlines() if line.startswith("{")]
    return str(json.loads(report.read_text())["targets"][0]["status"]), events


def status(project: Project) -> dict[str, object]:
    result = bake_ci("status", "--push", "--json", cwd=project.path, env=project.env)
    assert result.code == 0, result.err
    row: dict[str, object] = json.loads(result.out)[0]
    return row


def asked_for(events: list[dict[str, object]], repository: str) -> list[str]:
    """Registry requests and commands of a run that touched ``repository``."""
    found = [str(e.get("url", "")) for e in events if e.get("event") == "registry request"]
    found += [str(e.get("cmd", "")) for e in events if e.get("event") == "run"]
    return [f for f in found if repository in f]


@pytest.mark.parametrize("form", ["docker.io", "own registry"])
def test_a_base_pinned_by_digest_is_never_looked_up_and_every_target_is_reused(
    tmp_path: Path, form: str, own_base: tuple[str, str]
) -> None:
    tag, digest = own_base
    if form == "docker.io":  # through the engine's mirror: the shared tag is read, never written
        base = f"python:3.11-slim@{imagetools(LOCAL_BASE)['Digest']}"
        repository = "library/python"
    else:
        base = f"{tag}@{digest}"
        repository = tag.removeprefix(f"{REGISTRY}/").rsplit(":", 1)[0]
    project = pinned_project(tmp_path, base)
    built, events = build(project, tmp_path, "main")
    assert built == "built"
    assert not asked_for(events, repository)
    assert [e for e in events if e.get("event") == "pinned by digest, not looked up"]

    reused, events = build(project, tmp_path, "next")
    assert reused == "reused"
    assert not asked_for(events, repository), asked_for(events, repository)
    assert asked_for(events, "refs/pinned")  # -v does show the registry requests (the fingerprint tag's)


def test_re_pushing_the_tag_of_a_pinned_base_changes_nothing(tmp_path: Path, own_base: tuple[str, str]) -> None:
    tag, digest = own_base
    project = pinned_project(tmp_path, f"{tag}@{digest}")
    assert build(project, tmp_path, "main")[0] == "built"
    before = status(project)

    docker("buildx", "imagetools", "create", "-t", tag, f"{REGISTRY}/library/python:3.13-slim")
    assert imagetools(tag)["Digest"] != digest  # the tag now names another image

    after = status(project)
    assert after["fingerprint"] == before["fingerprint"]
    assert build(project, tmp_path, "after-repush")[0] == "reused"
    docker("buildx", "imagetools", "create", "-t", tag, f"{tag.rsplit(':', 1)[0]}@{digest}")  # put it back


# -- declared inputs -----------------------------------------------------------------------------------


def test_an_edit_to_a_copied_file_that_inputs_leave_out_is_built(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS deps\nCOPY requirements.txt constraints.txt /app/\n"
    )
    (source / "requirements.txt").write_text("idna\n")
    (source / "constraints.txt").write_text("idna<4\n")
    (source / "pyproject.toml").write_text(
        '[tool.bake-ci]\nimage = "refs/declared"\npython = ["3.11"]\n\n'
        '[tool.bake-ci.stages.deps]\ninputs = ["requirements.txt"]\n'
    )
    project = make_project(tmp_path, source)
    assert build(project, tmp_path, "main")[0] == "built"
    assert status(project)["action"] in ("none", "reuse")

    (project.path / "constraints.txt").write_text("idna<3\n")
    row = status(project)
    assert row["action"] == "build", row
    assert "constraints.txt" in json.dumps(row)
    assert build(project, tmp_path, "next")[0] == "built"


# -- the Python a target is named for --------------------------------------------------------------


def test_doctor_says_a_target_would_get_the_wrong_python_and_exits_2(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "Dockerfile").write_text("FROM python:3.11-slim AS deps\nRUN python --version\n")
    (source / "pyproject.toml").write_text('[tool.bake-ci]\nimage = "refs/wrong"\npython = ["3.11", "3.13"]\n')
    project = make_project(tmp_path, source)
    for command in ("plan", "status", "build", "doctor"):
        result = bake_ci(command, cwd=project.path, env=project.env)
        assert result.code == 2, (command, result.out, result.err)
        text = result.out + result.err
        assert "Dockerfile:1: `FROM python:3.11-slim AS deps`" in text, text
        assert "    ARG BASE_IMAGE=python:3.11-slim\n    FROM ${BASE_IMAGE} AS deps" in text, text
