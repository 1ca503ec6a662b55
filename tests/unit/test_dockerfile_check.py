"""Dockerfile problems found before any build: exit 2 naming the line, from plan, status and build.

The Dockerfiles are in dockerfile_cases.py; tests/engine/test_refs.py builds each with
BuildKit to show that BuildKit refuses the refused ones and builds the others.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bake import dockerfile_check, registry
from bake.dockerfile_check import DockerfileProblem, Facts

from .dockerfile_cases import ACCEPTED, PREAMBLE, REFUSED

ONE = [{"BASE_IMAGE": "python:3.11-slim", "PYTHON_VERSION": "3.11"}]
TWO = [*ONE, {"BASE_IMAGE": "python:3.13-slim", "PYTHON_VERSION": "3.13"}]
TOML = '[tool.bake-ci]\nimage = "acme/app"\npython = ["3.11", "3.13"]\nstages = ["app"]\n'


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_buildkit_refuses_is_refused_with_its_line(name: str) -> None:
    text, line, said = REFUSED[name]
    with pytest.raises(DockerfileProblem) as found:
        dockerfile_check.check(PREAMBLE + text, Facts(["app"], ONE), ["3.11"])
    assert found.value.line == line
    assert said in found.value.message


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_what_buildkit_builds_is_accepted(name: str) -> None:
    dockerfile_check.check(PREAMBLE + ACCEPTED[name], Facts(["app"], TWO), ["3.11", "3.13"])


def test_another_frontend_decides_for_itself() -> None:
    text = "# syntax=example.com/my/frontend:1\nFORM x\n"
    dockerfile_check.check(text, Facts(["app"], ONE), ["3.11"])
    with pytest.raises(DockerfileProblem):
        dockerfile_check.check("# syntax=docker/dockerfile:1\nFORM x\n", Facts(["app"], ONE), ["3.11"])


WRONG_PYTHON = [
    "FROM python:3.11-slim AS app\nRUN true\n",
    "ARG BASE_IMAGE=python:3.11-slim\nFROM python:3.11-slim AS app\n",  # declared, never used
    "ARG IMG=python:3.11-slim\nFROM ${IMG} AS base\nFROM base AS app\n",
    "FROM scratch AS app\nCOPY --from=python:3.11-slim /usr/local /usr/local\n",
]

RIGHT_PYTHON = [
    "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS app\n",
    "ARG PYTHON_VERSION\nFROM python:${PYTHON_VERSION}-slim AS app\n",
    "ARG BASE_IMAGE\nARG IMG=${BASE_IMAGE}\nFROM $IMG AS base\nFROM base AS app\n",
    "FROM debian:12 AS app\nARG PYTHON_VERSION\nRUN uv python install $PYTHON_VERSION\n",
    "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS py\nFROM debian:12 AS app\nCOPY --from=py /usr/local /usr/local\n",
]


@pytest.mark.parametrize("text", WRONG_PYTHON)
def test_a_target_that_ignores_its_python_is_refused_with_the_fix(text: str) -> None:
    with pytest.raises(DockerfileProblem) as found:
        dockerfile_check.check(text, Facts(["app"], TWO), ["3.11", "3.13"])
    message = found.value.message
    assert "app-py311, app-py313" in message
    assert "ARG BASE_IMAGE=" in message
    assert "FROM ${BASE_IMAGE} AS " in message
    # with one Python, the image is the one the target is named for
    dockerfile_check.check(text, Facts(["app"], ONE), ["3.11"])


@pytest.mark.parametrize("text", RIGHT_PYTHON)
def test_a_target_that_uses_its_python_is_accepted(text: str) -> None:
    dockerfile_check.check(text, Facts(["app"], TWO), ["3.11", "3.13"])


RunCli = Callable[..., "object"]


@pytest.mark.parametrize("command", [["plan"], ["plan", "--push"], ["status"], ["build", "--load"]])
def test_wrong_python_is_exit_2_from_every_command_naming_the_line(project, cli, command: list[str]) -> None:
    project(TOML, dockerfile="# deps first\nFROM python:3.11-slim AS app\nRUN true\n")
    run = cli(*command, env={"BAKE_CI_REGISTRY": "localhost:1/x"} if "--push" in command else {})
    assert run.rc == 2, run.err
    text = run.err + run.out
    assert "Dockerfile:2: `FROM python:3.11-slim AS app`" in text
    assert "    ARG BASE_IMAGE=python:3.11-slim\n    FROM ${BASE_IMAGE} AS app" in text


@pytest.mark.parametrize("name", ["unknown-instruction", "copy-from-cycle"])
@pytest.mark.parametrize("command", ["plan", "status", "build"])
def test_syntax_errors_and_cycles_are_exit_2_before_any_build(project, cli, name: str, command: str) -> None:
    text, line, said = REFUSED[name]
    project(TOML, dockerfile=PREAMBLE.replace("python:3.11-slim", "python") + text)
    run = cli(command)
    assert run.rc == 2, run.err
    assert f"Dockerfile:{line}: " in run.err
    assert said in run.err


def test_the_message_names_the_dockerfile_as_configured(project, cli, tmp_path: Path) -> None:
    project(
        TOML + 'dockerfile = "docker/ci.Dockerfile"\n',
        dockerfile=None,
        files={"docker/ci.Dockerfile": "FROM python AS app\nFORM x\n"},
    )
    run = cli("plan")
    assert run.rc == 2
    assert "docker/ci.Dockerfile:2: unknown instruction FORM" in run.err


# -- an image that does not exist -------------------------------------------------------------

NOT_FOUND = registry.Answer("localhost:5000/library/b:latest (mirror)", "not found")
NO_HOST = registry.Answer("registry-1.docker.io/library/b:latest", "gaierror: [Errno -2] Name or service not known")
LOCAL = registry.Answer("the local engine", "no such image")
REFUSED_CONN = registry.Answer("registry-1.docker.io/library/b:latest", "ConnectionRefusedError: refused")


@pytest.mark.parametrize(
    ("answers", "missing"),
    [
        ((NOT_FOUND, NO_HOST, LOCAL), True),
        ((NOT_FOUND, LOCAL), True),
        ((NO_HOST, LOCAL), False),  # nobody said "not found": maybe a network problem
        ((NOT_FOUND, REFUSED_CONN, LOCAL), False),  # docker.io could not be asked: it may have it
        ((NOT_FOUND, registry.Answer("the local engine", "Cannot connect to the Docker daemon")), False),
    ],
)
def test_an_image_is_missing_only_when_every_answer_says_so(
    answers: tuple[registry.Answer, ...], missing: bool
) -> None:
    assert registry.Resolution("b", None, answers).missing is missing
    assert not registry.Resolution("b", "sha256:" + "0" * 64, answers).missing


def test_a_missing_image_is_reported_at_the_line_that_names_it() -> None:
    text = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS base\nFROM b AS app\nCOPY --from=acme/tools:1 /t /t\n"
    missing = {"b": registry.Resolution("b", None, (NOT_FOUND, NO_HOST, LOCAL))}
    problem = dockerfile_check.missing_image(text, ONE, ["app"], missing)
    assert problem is not None
    assert problem.line == 3
    assert "no stage b is defined before this line" in problem.message
    assert "localhost:5000/library/b:latest (mirror): not found" in problem.message
    missing = {"acme/tools:1": registry.Resolution("acme/tools:1", None, (NOT_FOUND, LOCAL))}
    problem = dockerfile_check.missing_image(text, ONE, ["app"], missing)
    assert problem is not None
    assert problem.line == 4
    assert dockerfile_check.missing_image(text, ONE, ["base"], missing) is None  # base reads neither
