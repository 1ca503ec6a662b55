"""bake-ci shell and run, the parts without Docker: which files a mount stands for, the
docker run command line, the invoker, the reproduction line, the command line itself;
and the benign BuildKit lines folded away. (tests/engine/test_front.py runs them for real.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bake import bases, noise, registry, shell
from bake.cli import _args, parse_args
from bake.errors import UsageError
from bake.fingerprint import Fingerprint

from .conftest import MakeProject
from .helpers import fingerprints

TOML = """\
[tool.bake-ci]
image = "app-ci"
python = ["3.12"]
stages = ["deps", "ci"]
"""
DOCKERFILE = """\
FROM python:3.12-slim AS deps
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
FROM deps AS ci
COPY . .
"""
FILES = {"requirements.txt": "six==1.16.0\n", "app.py": "print(1)\n"}


@pytest.fixture(autouse=True)
def no_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    digest = "sha256:" + "a" * 64
    monkeypatch.setattr(
        bases, "resolve_base", lambda client, runner, ref, platform=None: registry.Resolution(ref, digest, ())
    )


def test_a_stage_that_only_copies_has_its_own_files_and_an_environment_without_them(
    project: MakeProject,
) -> None:
    root = project(TOML, dockerfile=DOCKERFILE, files=FILES)
    before = fingerprints(root).values
    assert before["ci-py312"].own == {"app.py", "Dockerfile", "pyproject.toml"}
    assert before["deps-py312"].own == frozenset()  # RUN pip install reads what it copies: no mount stands for it

    (root / "app.py").write_text("print(2)\n")
    after = fingerprints(root).values
    assert after["ci-py312"].value != before["ci-py312"].value
    assert after["ci-py312"].environment == before["ci-py312"].environment
    assert shell.only_mounted_changed(after["ci-py312"], before["ci-py312"].parts)

    (root / "requirements.txt").write_text("six==1.17.0\n")
    changed = fingerprints(root).values
    assert changed["ci-py312"].environment != before["ci-py312"].environment
    assert not shell.only_mounted_changed(changed["ci-py312"], before["ci-py312"].parts)


def test_a_dockerfile_change_is_never_made_up_for_by_a_mount() -> None:
    old = Fingerprint("a", {"dockerfile": "1", "file:app.py": "1"}, frozenset({"app.py"}))
    new = Fingerprint("b", {"dockerfile": "2", "file:app.py": "2"}, frozenset({"app.py"}))
    assert not shell.only_mounted_changed(new, old.parts)
    assert new.environment != old.environment
    same_file = Fingerprint("c", {"dockerfile": "1", "file:app.py": "2"}, frozenset({"app.py"}))
    assert shell.only_mounted_changed(same_file, old.parts)
    assert same_file.environment == old.environment


def test_docker_run_mounts_the_checkout_at_the_workdir_as_the_invoker() -> None:
    args = shell.docker_run_args(
        "reg/app-ci:ci-py3.12-main", ["pytest", "-x"], checkout=Path("/home/dev/app"), working_dir="/app",
        user=(1000, 1000), env=["-e", "HOME=/tmp"], platform=None, tty=False,
    )  # fmt: skip
    assert args[:5] == ["run", "--rm", "--init", "--interactive", "--pull"]
    assert "--tty" not in args
    assert args[args.index("--user") + 1] == "1000:1000"
    assert args[args.index("--mount") + 1] == "type=bind,source=/home/dev/app,target=/app"
    assert args[args.index("--workdir") + 1] == "/app"
    assert args[-3:] == ["reg/app-ci:ci-py3.12-main", "pytest", "-x"]

    tty = shell.docker_run_args(
        "img", [], checkout=Path("/c"), working_dir="", user=(1, 2), env=[], platform="linux/arm64", tty=True
    )
    assert "--tty" in tty
    assert tty[tty.index("--platform") + 1] == "linux/arm64"
    assert tty[tty.index("--workdir") + 1] == shell.DEFAULT_MOUNT  # no WORKDIR: not over the image's /
    none = shell.docker_run_args("img", [], checkout=None, working_dir="/app", user=(1, 2), env=[], platform=None,
                                 tty=False)  # fmt: skip
    assert "--mount" not in none


def test_environment_passes_through_sets_and_gives_a_home() -> None:
    assert shell.environment_options(["CI", "A=1"], {}) == ["-e", "CI", "-e", "A=1", "-e", "HOME=/tmp"]
    assert shell.environment_options(["HOME=/work"], {}) == ["-e", "HOME=/work"]
    with pytest.raises(UsageError, match="-e '1X'"):
        shell.environment_options(["1X"], {})
    with pytest.raises(UsageError, match="not an environment variable"):
        shell.environment_options(["=x"], {})


def test_the_invoker_owns_the_files_and_root_gives_them_to_the_checkouts_owner(tmp_path: Path) -> None:
    if os.getuid() != 0:
        assert shell.invoker(tmp_path, {}) == (os.getuid(), os.getgid())
        return
    os.chown(tmp_path, 1234, 2345)
    assert shell.invoker(tmp_path, {}) == (1234, 2345)


def test_the_reproduction_line_runs_as_printed() -> None:
    assert (
        shell.reproduction("ci-py312", "1a2b3c4d5e6f", "pytest -x")
        == "bake-ci run ci-py312 --commit 1a2b3c4 -- pytest -x"
    )
    assert shell.reproduction("ci-py312", None, None) == "bake-ci shell ci-py312"  # no placeholder to trip over
    assert shell.test_command(None, {"BAKE_CI_TEST_COMMAND": " make test "}) == "make test"
    assert shell.test_command("tox", {"BAKE_CI_TEST_COMMAND": "make test"}) == "tox"
    assert shell.test_command(None, {}) is None
    parsed = parse_args(shell.reproduction("ci-py312", "1a2b3c4", "pytest -x").split()[1:])
    assert (parsed.command, parsed.target, parsed.commit, parsed.run_command) == (
        "run", "ci-py312", "1a2b3c4", ["pytest", "-x"]
    )  # fmt: skip


def test_shell_and_run_on_the_command_line() -> None:
    ns = parse_args(["run", "ci-py312", "-e", "CI", "--no-mount", "--pr", "12", "--", "pytest", "-k", "x"])
    args = _args(ns, "console")
    assert (args.command, args.targets, args.run_command) == ("run", ("ci-py312",), ("pytest", "-k", "x"))
    assert (args.env, args.mount, args.pr, args.commit) == (("CI",), False, 12, None)
    shell_args = _args(parse_args(["shell", "ci-py312", "--commit", "abcdef1"]), "console")
    assert (shell_args.command, shell_args.mount, shell_args.commit, shell_args.run_command) == (
        "shell", True, "abcdef1", ()
    )  # fmt: skip
    with pytest.raises(SystemExit):
        parse_args(["shell", "ci-py312", "--commit", "abcdef1", "--pr", "3"])


def test_an_exact_ref_names_the_commit_or_pull_request_tag(project: MakeProject) -> None:
    from bake import config_load
    from bake.plan import build_plan, matrix

    root = project(
        TOML.replace('image = "app-ci"', 'image = "app-ci"\nregistry = "ghcr.io/acme"'), dockerfile=DOCKERFILE
    )
    proj = config_load.load(root / "pyproject.toml", {})
    t = build_plan(proj, matrix(proj), branch="main", sha=None, output="load")["ci-py312"]
    assert shell.exact_ref(t, "1A2B3C4D", None)[0] == "ghcr.io/acme/app-ci:ci-py3.12-1a2b3c4"
    assert shell.exact_ref(t, None, 42)[0] == "ghcr.io/acme/app-ci:ci-py3.12-pr-42"
    with pytest.raises(UsageError, match="--commit 'main'"):
        shell.exact_ref(t, "main", None)


def test_benign_buildkit_lines_are_folded_into_one_note_each() -> None:
    folded = noise.Folded()
    lines = [
        "WARNING: local cache import at /s/cache/ci-py312 not found due to err: could not read /s/index.json",
        "ERROR: (*service).Write failed: rpc error: code = Unavailable desc = ref layer-sha256:ab locked for "
        "382ms (since 2026-12-03 10:29:35 +0000 UTC m=+6.9): unavailable",
        "ERROR: (*service).Write failed: rpc error: code = Unavailable desc = ref layer-sha256:cd locked: unavailable",
        "ERROR: failed to solve: process did not complete successfully: exit code: 1",
    ]
    shown = [line for line in lines if not folded.take(line)]
    assert shown == [lines[-1]]  # a real error is never folded
    notes = folded.notes()
    assert len(notes) == 2
    assert "(2 times)" in notes[1]
    for note in notes:
        assert note.startswith("note: ")
        assert "error" not in note.lower()
        assert "failed" not in note.lower()
