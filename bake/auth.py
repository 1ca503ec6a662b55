"""The login docker keeps for a registry: credential helper, credential store, or config.json.

The secret goes to the registry client only, and is registered with bake.redact, so it
is hidden wherever it might show up later (an error quoting a URL, a log line). A config
that docker itself could not use (bad JSON, bad base64, a helper that answers garbage)
is an EnvironmentProblem naming the file or helper and the fix.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bake.engine import process
from bake.errors import EnvironmentProblem
from bake.redact import register


def _config_file(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise EnvironmentProblem(
            f"docker's config {path} cannot be read ({exc.strerror}). Fix its permissions or set DOCKER_CONFIG."
        ) from None
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise EnvironmentProblem(
            f"docker's config {path} is not valid JSON ({exc}). Fix it, or log in again with `docker login`."
        ) from None
    return data if isinstance(data, dict) else {}


def _keys(host: str) -> list[str]:
    keys = [host, f"https://{host}", f"http://{host}"]
    if host == "registry-1.docker.io":
        keys.insert(0, "https://index.docker.io/v1/")
    return keys


def _from_helper(runner: process.Runner, helper: str, keys: list[str]) -> tuple[str, str] | None:
    program = f"docker-credential-{helper}"
    for key in keys:
        try:
            out = runner.run([program, "get"], input=key, timeout=30)
        except process.CommandFailed as exc:
            if exc.code in (124, 126, 127):
                raise EnvironmentProblem(
                    f"docker's credential helper {program} cannot be run ({exc.output}). Install it, or remove "
                    "credsStore/credHelpers from docker's config.json."
                ) from None
            continue  # "credentials not found in native keychain": try the next key
        try:
            data = json.loads(out or "{}")
        except ValueError:
            raise EnvironmentProblem(
                f"docker's credential helper {program} answered something that is not JSON for {key}. "
                "Check the helper (`echo HOST | " + program + " get`) or log in again with `docker login`."
            ) from None
        if isinstance(data, dict) and data.get("Username") and data.get("Secret"):
            register(str(data["Secret"]))
            return str(data["Username"]), str(data["Secret"])
    return None


def credentials(runner: process.Runner, host: str) -> tuple[str, str] | None:
    """The login docker keeps for ``host``, if any (docker's config as the runner's
    environment names it; a credential helper run by the runner)."""
    path = _config_file(runner.environ)
    config = _read_config(path)
    keys = _keys(host)
    helpers = config.get("credHelpers") or {}
    helper = next((helpers[k] for k in keys if isinstance(helpers, dict) and k in helpers), None)
    helper = helper or config.get("credsStore")
    if helper:
        return _from_helper(runner, str(helper), keys)
    auths = config.get("auths") or {}
    for key in keys:
        entry = auths.get(key) if isinstance(auths, dict) else None
        encoded = entry.get("auth") if isinstance(entry, dict) else None
        if not encoded:
            continue
        try:
            decoded = base64.b64decode(str(encoded), validate=True).decode()
        except (binascii.Error, ValueError):
            raise EnvironmentProblem(
                f'the login for {key} in {path} is not valid base64 ("auths" -> "auth"). '
                f"Log in again with `docker login {host}`."
            ) from None
        user, sep, secret = decoded.partition(":")
        if not sep:
            raise EnvironmentProblem(
                f'the login for {key} in {path} has no "user:password" inside. Log in again with `docker login {host}`.'
            )
        register(secret)
        return user, secret
    return None


def logins(runner: process.Runner) -> Callable[[str], tuple[str, str] | None]:
    """:func:`credentials` of ``runner``, as a registry client asks for them (by host)."""
    return functools.partial(credentials, runner)
