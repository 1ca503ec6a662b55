"""Unit-test fixtures: a throwaway project directory and the real CLI entry point, no engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

from bake import logs, report
from bake.cli import main

from .fake_registry import FakeRegistry

#: A Dockerfile with three named stages; the last one (``ci``) is the default stage.
DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS base
RUN pip install --upgrade pip

FROM base AS deps
COPY requirements.txt .
RUN pip install -r requirements.txt

FROM deps AS ci
COPY . .
"""


@pytest.fixture(autouse=True)
def _no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests need no Docker: any docker command they run reaches no engine, and fails.
    Per test, not per session: the engine tests of the same pytest run keep their engine."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/unit-tests-use-no-engine.sock")
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    """What one test's CLI run configures (the log stream) ends with the test: tests pass
    in any order."""
    yield
    structlog.reset_defaults()
    logs.reset()


@dataclass(frozen=True)
class Run:
    rc: int
    out: str
    err: str


MakeProject = Callable[..., Path]
RunCli = Callable[..., Run]
MakeRegistry = Callable[..., FakeRegistry]


@pytest.fixture
def fake_registry() -> Iterator[MakeRegistry]:
    """``fake_registry(**options)`` starts a :class:`FakeRegistry`; all stop when the test ends."""
    made: list[FakeRegistry] = []

    def make(**options: object) -> FakeRegistry:
        made.append(FakeRegistry(**options))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for fake in made:
        fake.stop()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakeProject:
    """Write ``pyproject.toml`` (and a Dockerfile, and any other files) and chdir there."""
    monkeypatch.chdir(tmp_path)

    def make(toml: str, *, dockerfile: str | None = DOCKERFILE, files: Mapping[str, str] | None = None) -> Path:
        (tmp_path / "pyproject.toml").write_text(toml, encoding="utf-8")
        if dockerfile is not None:
            (tmp_path / "Dockerfile").write_text(dockerfile, encoding="utf-8")
        for name, text in (files or {}).items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return tmp_path

    return make


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> RunCli:
    """``bake-ci ARGS`` through ``bake.cli.main`` with exactly the given environment."""

    def run(*args: str, env: Mapping[str, str] | None = None) -> Run:
        capsys.readouterr()
        rc = main(list(args), environ=dict(env or {}))
        out, err = capsys.readouterr()
        return Run(rc, out, err)

    return run


def results(ids, tags, meta, progress, succeeded, total_seconds):
    """Results of one bake call over ``ids``, as the executor builds them."""
    return [
        report.result(
            t,
            image=tags[t],
            metadata=meta,
            progress=progress[t] if progress else None,
            succeeded=succeeded,
            stopped=False,
            seconds=total_seconds,
        )
        for t in ids
    ]
