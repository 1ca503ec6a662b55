"""Credentials that reach bake-ci from outside its configuration: a Dockerfile's ADD URL in
BuildKit's progress (names, errors, logs), buildx's own error lines, and a bare token
in front of the registry. (The real build is tests/engine/test_redaction.py.)"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from bake import redact
from bake.engine import buildx, process
from bake.progress import Tracker, describe

from .conftest import MakeProject, RunCli

PASSWORD = "hunter2-Secret"
URL = f"https://alice:{PASSWORD}@files.example/pkg.tar.gz"


@pytest.fixture(autouse=True)
def _no_registered_secrets() -> Iterator[None]:
    redact.forget_all()  # only the patterns: nothing registered by another test helps here
    yield
    redact.forget_all()


def test_an_add_url_is_hidden_in_every_line_and_result_the_tracker_gives() -> None:
    tracker = Tracker(["ci-py312", "ci-py313"])
    name = f"[ci-py312 ci 2/3] ADD {URL} /pkg.tar.gz"
    error = f"failed to load {URL}: invalid response status 401"
    log = base64.b64encode(f"GET {URL}: 401 Unauthorized\n".encode()).decode()
    events = tracker.feed({"vertexes": [{"digest": "sha256:1", "name": name, "started": "2026-03-01T12:00:00Z"}]})
    events += tracker.feed(
        {
            "vertexes": [{"digest": "sha256:1", "name": name, "completed": "2026-03-01T12:00:01Z", "error": error}],
            "logs": [{"vertex": "sha256:1", "data": log, "timestamp": "2026-03-01T12:00:00.5Z"}],
        }
    )
    lines = [describe(e) for e in events]
    failure = tracker.targets["ci-py312"].failure
    assert failure is not None
    shown = "\n".join([*lines, failure.name, failure.error, *failure.logs])
    assert PASSWORD not in shown
    assert "alice" not in shown
    assert "ADD https://***@files.example/pkg.tar.gz" in failure.name


def test_buildx_error_lines_are_hidden_before_anyone_sees_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    said = f"ERROR: failed to solve: failed to load {URL}: 401 Unauthorized\n"

    class Proc:
        returncode = 1

    class Stream:
        def __enter__(self) -> Proc:
            return Proc()

        def __exit__(self, *a: object) -> None:
            pass

    class Runner(process.Runner):
        def stream(self, args: object, *, cwd: Path) -> Stream:  # type: ignore[override]
            return Stream()

    monkeypatch.setattr(process, "lines", lambda proc: iter([said]))
    seen: list[str] = []
    run = buildx.bake(
        Runner({}), [], ["ci-py312"], cwd=tmp_path, metadata_file=tmp_path / "m.json", on_text=seen.append
    )
    assert PASSWORD not in "\n".join([*seen, *run.messages])
    assert seen == ["ERROR: failed to solve: failed to load https://***@files.example/pkg.tar.gz: 401 Unauthorized"]


@pytest.mark.parametrize(
    "value", ["ghp_abcdefTOKEN1234@ghcr.io/acme", "ghp_abcdefTOKEN1234@localhost:5000", "ghp_abcdefTOKEN1234@ghcr.io"]
)
def test_a_bare_token_in_front_of_the_registry_is_hidden_in_its_error(
    project: MakeProject, cli: RunCli, value: str
) -> None:
    project('[tool.bake-ci]\nimage = "acme/app-ci"\npython = ["3.12"]\n')
    result = cli("plan", env={"BAKE_CI_REGISTRY": value, "BAKE_CI_STATE_DIR": "/nonexistent/state"})
    assert result.rc == 2
    assert "ghp_abcdefTOKEN1234" not in result.err + result.out
    assert "BAKE_CI_REGISTRY" in result.err
    assert "'***@" in result.err


def test_a_bare_token_in_front_of_a_base_image_is_hidden_in_its_error(project: MakeProject, cli: RunCli) -> None:
    project('[tool.bake-ci]\nimage = "acme/app-ci"\npython = ["3.12"]\n')
    env = {"BAKE_CI_BASE_IMAGE": "ghp_abcdefTOKEN1234@ghcr.io/library/python:{python}-slim"}
    result = cli("plan", env=env)
    assert result.rc == 2
    assert "ghp_abcdefTOKEN1234" not in result.err + result.out
