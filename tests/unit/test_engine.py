"""What the docker CLI's error output means (an absent image, or no engine at all), and
what git says about the checkout."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bake.engine import git, process
from bake.engine.docker import engine_down, is_not_found


@pytest.mark.parametrize(
    ("output", "absent"),
    [
        ("Error response from daemon: No such image: acme/app:ci-py3.12", True),
        ("ERROR: localhost:5000/acme/app:ci-py3.12-fp-0123456789ab: not found", True),
        ("manifest unknown: manifest unknown", True),
        ("GET https://registry.example/v2/acme/app/manifests/x: 404 Not Found", True),
        # a registry that cannot be reached is not an image that is not there
        ("dial tcp: lookup registry.example on 127.0.0.53:53: no such host", False),
        ("dial tcp 127.0.0.1:5999: connect: connection refused", False),
        ("401 Unauthorized", False),
    ],
)
def test_absent_images_are_told_from_unreachable_registries(output: str, absent: bool) -> None:
    assert is_not_found(output) is absent


@pytest.mark.parametrize(
    ("output", "down"),
    [
        ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?", True),
        ("error during connect: Get http://%2Fnowhere/v1.45/info: dial unix /nowhere: connect: no such file", True),
        ("Error response from daemon: No such image: acme/app:x", False),
    ],
)
def test_no_engine_is_told_from_other_failures(output: str, down: bool) -> None:
    assert engine_down(output) is down


def test_every_package_of_bake_is_shipped() -> None:
    """A non-editable install (this repository's own CI image) gets every subpackage."""
    import fnmatch
    import sys
    from pathlib import Path

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    root = Path(__file__).parents[2]
    include = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = [".".join(p.parent.relative_to(root).parts) for p in (root / "bake").rglob("__init__.py")]
    assert "bake.engine" in packages
    for package in packages:
        assert any(fnmatch.fnmatchcase(package, pattern) for pattern in include), package


def _git(repo: Path, *args: str) -> None:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env={**os.environ, **env})


def test_the_checked_out_branch_and_commit_come_from_one_git_call(tmp_path: Path) -> None:
    assert git.head(process.Runner(os.environ), tmp_path) == ("local", None)  # not a checkout
    _git(tmp_path, "init", "-q", "-b", "topic")
    assert git.head(process.Runner(os.environ), tmp_path) == ("local", None)  # no commit yet
    _git(tmp_path, "commit", "-q", "--allow-empty", "-m", "one")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git.head(process.Runner(os.environ), tmp_path) == ("topic", commit)
    _git(tmp_path, "checkout", "-q", "--detach")
    assert git.head(process.Runner(os.environ), tmp_path) == ("detached", commit)
