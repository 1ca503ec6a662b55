"""No credential survives redaction, whatever characters the password holds."""

from __future__ import annotations

import base64
import copy
import json
import shlex
import urllib.parse
from collections.abc import Callable, Iterator

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bake import redact
from bake.redact import MASK, redact_definition, redact_value

#: Any printable text: letters of every script, digits, punctuation, symbols and spaces
#: (no line breaks or control characters, which no credential on one line can hold).
PASSWORD = st.text(
    st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")),
    min_size=1,
    max_size=40,
)
USER = st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True)


@pytest.fixture(autouse=True)
def _no_registered_secrets() -> Iterator[None]:
    redact.forget_all()
    yield
    redact.forget_all()


def _hidden(text: str, password: str) -> None:
    out = redact.redact(text)
    assert password not in out, (text, out)
    assert redact.redact(out) == out, "redacting twice changes nothing"


# -- URLs with userinfo ----------------------------------------------------------------------

URL_FORMS: dict[str, Callable[[str, str], str]] = {
    "https": lambda u, p: f"https://{u}:{p}@ghcr.io/acme/app-ci:ci-py3.12-main",
    "in-a-log-line": lambda u, p: f"ERROR: pulling https://{u}:{p}@registry.example.com:5000/v2/x failed: 401",
    "cache-ref": lambda u, p: f"--cache-to type=registry,ref=oci://{u}:{p}@localhost:5000/app-cache:ci-main",
    "quoted": lambda u, p: f'url = "http://{u}:{p}@proxy.internal:3128"',
}


@pytest.mark.parametrize("form", URL_FORMS.values(), ids=URL_FORMS.keys())
@given(user=USER, password=PASSWORD)
def test_url_userinfo_is_hidden(form: Callable[[str, str], str], user: str, password: str) -> None:
    text = form(user, password)
    assume(password not in form(user, MASK))
    _hidden(text, password)


@given(token=PASSWORD.filter(lambda t: not any(c.isspace() or c in "/:" for c in t)))
def test_a_token_as_the_whole_userinfo_is_hidden(token: str) -> None:
    # No space, '/' or ':' in a bare token: "https://github.com/acme/app@v1.2" (pip's pinned
    # git URLs) must stay readable, and a token with ':' is the USER:PASSWORD form above.
    text = f"git fetch https://{token}@github.com/acme/app.git"
    assume(token not in f"git fetch https://{MASK}@github.com/acme/app.git")
    _hidden(text, token)


# Scheme-less ``USER:PASSWORD@host/path``, as in BAKE_CI_BASE_IMAGE: in free text the
# password may hold anything but must not start with a space (prose such as "error: x@y/z"
# would be hidden otherwise); configured values have no such limit (see below).
SCHEMELESS_FORMS: dict[str, Callable[[str, str], str]] = {
    "value": lambda u, p: f"{u}:{p}@registry.example.com/team/python:3.12-slim",
    "env": lambda u, p: f"BAKE_CI_BASE_IMAGE={u}:{p}@host.example/img",
    "prose": lambda u, p: f"warning: base image {u}:{p}@localhost:5000/python:3.12 is not in the registry",
    "build-arg": lambda u, p: shlex.join(["--set", f"*.args.BASE_IMAGE={u}:{p}@host.example/img:{{python}}"]),
}


@pytest.mark.parametrize("form", SCHEMELESS_FORMS.values(), ids=SCHEMELESS_FORMS.keys())
@given(user=USER, password=PASSWORD)
def test_schemeless_userinfo_is_hidden(form: Callable[[str, str], str], user: str, password: str) -> None:
    assume(not password[0].isspace())
    assume(password not in form(user, MASK))
    _hidden(form(user, password), password)


@given(user=USER, password=PASSWORD)
def test_a_configured_value_hides_any_password(user: str, password: str) -> None:
    value = f"{user}:{password}@host.example/img:{{python}}"
    assume(password not in f"{user}:{MASK}@host.example/img:{{python}}")
    shown = redact_value(value)
    assert password not in shown
    assert shown.endswith("@host.example/img:{python}")


@given(user=USER, password=PASSWORD)
def test_a_registered_value_is_hidden_everywhere_after(user: str, password: str) -> None:
    assume(len(password.strip()) >= redact.MIN_SECRET)
    redact.register_value(f"{user}:{password}@host.example/img")
    for text in (f"FROM {user}:{password}@host.example/img", f"password was {password}!", password):
        assert password not in redact.redact(text)


# -- flags, key=value, headers, JSON -----------------------------------------------------------

VALUE_FORMS: dict[str, Callable[[str], str]] = {
    "--password X": lambda p: shlex.join(["docker", "login", "--username", "bot", "--password", p, "ghcr.io"]),
    "--password=X": lambda p: shlex.join(["docker", "login", f"--password={p}", "ghcr.io"]),
    "-p X": lambda p: shlex.join(["docker", "login", "-u", "bot", "-p", p, "ghcr.io"]),
    "--registry-token X": lambda p: shlex.join(["tool", "--registry-token", p]),
    "password=X": lambda p: shlex.join(["env", f"password={p}", "true"]),
    "token=X": lambda p: shlex.join(["env", f"token={p}", "true"]),
    "PIP_TOKEN=X": lambda p: shlex.join(["docker", "build", "--build-arg", f"PIP_TOKEN={p}", "."]),
    "access_token in a query": lambda p: (
        f"GET https://ghcr.io/token?scope=pull&access_token={urllib.parse.quote(p, safe='')}&x=1 HTTP/1.1"
    ),
    "Authorization: Bearer": lambda p: f"Authorization: Bearer {p}",
    "Authorization: Basic": lambda p: "authorization: Basic " + base64.b64encode(f"bot:{p}".encode()).decode(),
    "curl -H": lambda p: shlex.join(["curl", "-H", f"Authorization: Bearer {p}", "https://ghcr.io/v2/"]),
    "JSON header": lambda p: json.dumps({"Authorization": f"Basic {p}", "Accept": "*/*"}, ensure_ascii=False),
    "JSON password": lambda p: json.dumps({"username": "bot", "password": p}, ensure_ascii=False),
    "docker config auth": lambda p: json.dumps(
        {"auths": {"ghcr.io": {"auth": base64.b64encode(f"bot:{p}".encode()).decode()}}}
    ),
    "dict repr": lambda p: repr({"user": "bot", "token": p}),
}


@pytest.mark.parametrize("form", VALUE_FORMS.values(), ids=VALUE_FORMS.keys())
@given(password=PASSWORD)
def test_credential_values_are_hidden(form: Callable[[str], str], password: str) -> None:
    text = form(password)
    secret_forms = {
        password,
        urllib.parse.quote(password, safe=""),
        base64.b64encode(f"bot:{password}".encode()).decode(),
        json.dumps(password)[1:-1],
        repr(password)[1:-1],
    }
    out = redact.redact(text)
    for secret in secret_forms:
        if secret not in MASK and secret not in form(MASK) and secret not in form("x"):
            assert secret not in out, (text, out)


# -- what must stay readable -------------------------------------------------------------------

UNCHANGED = [
    "ERROR: failed to solve: python:3.12-slim: not found",
    "#5 [deps 2/3] RUN mkdir -p /app && pip install -r requirements.txt",
    "FROM localhost:5000/library/python@sha256:" + "0123456789abcdef" * 4,
    "git clone git@github.com:acme/app.git",
    "mail me@example.com about it",
    "pip install git+https://github.com/acme/app@v1.2#egg=app",
    "docker login --password-stdin --username bot ghcr.io",
    "docker buildx bake --file - --push --metadata-file meta.json ci-py312",
    'WWW-Authenticate: Bearer realm="https://ghcr.io/token",service="ghcr.io"',
    "--secret id=pip,env=PIP_INDEX_TOKEN",
    "pyproject.toml: tool.bake-ci.registry = '***@ghcr.io/acme': credentials do not belong here",
    'Head "http://localhost:5000/v2/acme/app/manifests/ci-py3.12": EOF',
]


@pytest.mark.parametrize("line", UNCHANGED)
def test_ordinary_lines_are_left_alone(line: str) -> None:
    assert redact.redact(line) == line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://bot:p@ss word/x@ghcr.io/acme/img failed", "https://***@ghcr.io/acme/img failed"),
        ("BAKE_CI_BASE_IMAGE=user:p@ss word@host/img", "BAKE_CI_BASE_IMAGE=***@host/img"),
        ("docker login -u bot -p 'pa ss' ghcr.io", "docker login -u bot -p *** ghcr.io"),
        ("curl -H 'Authorization: Basic YTpi' https://x", "curl -H 'Authorization: Basic ***' https://x"),
        ('{"Authorization": "Bearer abc", "a": 1}', '{"Authorization": "Bearer ***", "a": 1}'),
        ("GET /v2/?access_token=abc&n=1", "GET /v2/?access_token=***&n=1"),
        ("two lines\nhttps://a:b@h.io/x", "two lines\nhttps://***@h.io/x"),
    ],
)
def test_what_is_hidden_and_what_stays(text: str, expected: str) -> None:
    assert redact.redact(text) == expected


# -- a bake definition to print ----------------------------------------------------------------


def _definition(user: str, password: str) -> dict[str, object]:
    return {
        "group": {"default": {"targets": ["ci-py312"]}},
        "target": {
            "ci-py312": {
                "args": {
                    "BASE_IMAGE": f"{user}:{password}@registry.example.com/python:3.12-slim",
                    "PIP_INDEX_URL": f"https://{user}:{password}@pypi.example.com/simple",
                    "PIP_PASSWORD": password,
                    "PYTHON_VERSION": "3.12",
                },
                "cache-from": [f"type=registry,ref={user}:{password}@registry.example.com/app-cache:ci"],
                "tags": ["registry.example.com/app:ci-py3.12-main"],
                "platforms": ["linux/amd64"],
            }
        },
    }


@given(user=USER, password=PASSWORD)
def test_redact_definition_hides_credentials_and_leaves_the_original(user: str, password: str) -> None:
    definition = _definition(user, password)
    original = copy.deepcopy(definition)
    shown = json.dumps(redact_definition(definition), ensure_ascii=False)
    assume(password not in json.dumps(redact_definition(_definition(user, "secret")), ensure_ascii=False))
    assert password not in shown
    assert json.dumps(password, ensure_ascii=False)[1:-1] not in shown
    assert definition == original, "buildx still reads the real values"
    target = json.loads(shown)["target"]["ci-py312"]
    assert target["args"]["PYTHON_VERSION"] == "3.12"
    assert target["args"]["BASE_IMAGE"] == "***@registry.example.com/python:3.12-slim"
    assert target["args"]["PIP_INDEX_URL"] == "https://***@pypi.example.com/simple"
    assert target["tags"] == ["registry.example.com/app:ci-py3.12-main"]


def test_short_secrets_are_not_registered() -> None:
    redact.register("ab")
    assert redact.redact("tab tab") == "tab tab"
