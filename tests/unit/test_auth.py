"""docker's logins as bake-ci reads them: config.json, credential helpers, and broken ones.

Credential helpers are real programs here (small scripts on PATH), run through the
process runner as docker runs them: the host name on stdin, JSON on stdout."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from bake import auth
from bake.engine import process
from bake.errors import EnvironmentProblem

HOST = "registry.example:5000"


@pytest.fixture
def docker_config(tmp_path: Path) -> Path:
    """DOCKER_CONFIG and a bin folder on PATH for helpers, as the runner's environment."""
    config = tmp_path / "docker"
    config.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return config


def runner(config: Path) -> process.Runner:
    """The runner of a run whose environment has DOCKER_CONFIG and the helpers' bin folder on PATH."""
    return process.Runner({"PATH": f"{config.parent / 'bin'}:{os.environ['PATH']}", "DOCKER_CONFIG": str(config)})


def helper(config: Path, name: str, script: str) -> None:
    path = config.parent / "bin" / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script, encoding="utf-8")
    path.chmod(0o755)


def write(config: Path, data: object) -> None:
    (config / "config.json").write_text(json.dumps(data), encoding="utf-8")


def test_no_config_means_no_login(docker_config: Path) -> None:
    assert auth.credentials(runner(docker_config), HOST) is None


def test_auths_entry_with_a_password_of_any_characters(docker_config: Path) -> None:
    secret = "p@ss: word/with:colons"
    encoded = base64.b64encode(f"ci-bot:{secret}".encode()).decode()
    write(docker_config, {"auths": {f"https://{HOST}": {"auth": encoded}}})
    assert auth.credentials(runner(docker_config), HOST) == ("ci-bot", secret)


def test_bad_base64_names_the_file_and_the_fix(docker_config: Path) -> None:
    write(docker_config, {"auths": {HOST: {"auth": "not base64!!"}}})
    with pytest.raises(EnvironmentProblem) as caught:
        auth.credentials(runner(docker_config), HOST)
    message = str(caught.value)
    assert str(docker_config / "config.json") in message
    assert f"docker login {HOST}" in message


def test_a_config_that_is_not_json(docker_config: Path) -> None:
    (docker_config / "config.json").write_text("{ nope", encoding="utf-8")
    with pytest.raises(EnvironmentProblem, match="not valid JSON"):
        auth.credentials(runner(docker_config), HOST)


def test_credential_helper_answers_with_the_login(docker_config: Path) -> None:
    helper(docker_config, "fake", 'read host; echo "{\\"Username\\": \\"u-$host\\", \\"Secret\\": \\"s3cret\\"}"\n')
    write(docker_config, {"credHelpers": {HOST: "fake"}})
    assert auth.credentials(runner(docker_config), HOST) == (f"u-{HOST}", "s3cret")


def test_credential_helper_without_a_login_for_the_host(docker_config: Path) -> None:
    helper(docker_config, "fake", 'echo "credentials not found in native keychain" >&2; exit 1\n')
    write(docker_config, {"credsStore": "fake"})
    assert auth.credentials(runner(docker_config), HOST) is None


def test_credential_helper_that_prints_garbage(docker_config: Path) -> None:
    helper(docker_config, "fake", "echo 'this is not json'\n")
    write(docker_config, {"credsStore": "fake"})
    with pytest.raises(EnvironmentProblem, match="docker-credential-fake answered something that is not JSON"):
        auth.credentials(runner(docker_config), HOST)


def test_missing_credential_helper(docker_config: Path) -> None:
    write(docker_config, {"credsStore": "absent"})
    with pytest.raises(EnvironmentProblem, match="docker-credential-absent cannot be run"):
        auth.credentials(runner(docker_config), HOST)


def test_the_secret_is_never_in_the_message(docker_config: Path) -> None:
    helper(docker_config, "fake", 'echo \'{"Username": "u", "Secret": \' \n')
    write(docker_config, {"credsStore": "fake"})
    with pytest.raises(EnvironmentProblem) as caught:
        auth.credentials(runner(docker_config), HOST)
    assert "Secret" not in str(caught.value)
