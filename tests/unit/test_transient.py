"""Which failures are retried: buildx's error strings, as the fault-injection tests met them."""

from __future__ import annotations

import pytest

from bake.execute import is_transient
from bake.progress import Vertex

REG = "127.0.0.1:40495/faults-fb324c30-6e4679/tiny/app"
BLOB = "sha256:e8be9f08bc1b816ac588753d6c9a08bfe100d77eb45cd240b9e2ccf206dab930"
V2 = REG.replace("/faults", "/v2/faults", 1)
UPLOAD = f"http://{V2}/blobs/uploads/acf7711a-ae82-4b86-92e5-b7e1c0a4127c?_state=Svo3&digest=sha256%3Ab829"
PUSH = f"failed to push {REG}:ci-py3.11-main"
HEAD = f'failed to do request: Head "https://{V2}/blobs/{BLOB}"'

#: final errors of pushes that failed while the proxy injected a fault (buildx 0.13.1, dockerd 26.1)
TRANSIENT = {
    "503 on a blob upload": f"{PUSH}: unexpected status from POST request to http://{REG}/blobs/uploads/: "
    "503 Service Unavailable",
    "429 on a manifest PUT": f'{PUSH}: failed commit on ref "manifest-{BLOB}": unexpected status from PUT request '
    f"to http://{REG}/manifests/{BLOB}: 429 Too Many Requests",
    "502 on a HEAD": f"{PUSH}: unexpected status from HEAD request to http://{REG}/blobs/{BLOB}: 502 Bad Gateway",
    "500 on a manifest PUT": f"{PUSH}: unexpected status from PUT request to http://{REG}/manifests/x: "
    "500 Internal Server Error",
    "504": "received unexpected HTTP status: 504 Gateway Time-out",
    "connection reset": f'{PUSH}: failed commit on ref "config-{BLOB}": failed to do request: Put "{UPLOAD}": '
    "read tcp 127.0.0.1:57226->127.0.0.1:36015: read: connection reset by peer",
    "closed connection": f'{PUSH}: failed to do request: Put "{UPLOAD}": readfrom tcp 127.0.0.1:42690->'
    "127.0.0.1:40681: write tcp 127.0.0.1:42690->127.0.0.1:40681: use of closed network connection",
    "broken pipe": f'failed to do request: Put "{UPLOAD}": write tcp 127.0.0.1:1->127.0.0.1:2: write: broken pipe',
    "EOF on a HEAD (registry killed)": f"{PUSH}: {HEAD}: EOF",
    "EOF on a POST": f'failed to do request: Post "https://{REG}/blobs/uploads/": EOF',
    "EOF at the end": "error reading manifest: EOF",
    "unexpected EOF": f"{PUSH}: failed to copy: httpReadSeeker: failed open: unexpected EOF",
    "refused (registry down)": f'{PUSH}: failed to do request: Head "https://{REG}/blobs/{BLOB}": '
    "dial tcp 127.0.0.1:38101: connect: connection refused",
    "cache export 503": f'error writing manifest blob: failed commit on ref "{BLOB}": unexpected status from PUT '
    f"request to http://{REG}-cache/manifests/ci-py3.11-main: 503 Service Unavailable",
    "i/o timeout": f"{HEAD}: dial tcp 10.0.0.1:443: i/o timeout",
    "TLS handshake timeout": f"{HEAD}: net/http: TLS handshake timeout",
    "deadline": "failed to resolve source metadata: context deadline exceeded",
    "docker hub rate limit": "toomanyrequests: You have reached your pull rate limit.",
    "DNS": f"{HEAD}: dial tcp: lookup registry.example on 127.0.0.53:53: server misbehaving",
}

#: failures another attempt cannot fix
PERMANENT = {
    "401": f"{PUSH}: unexpected status from HEAD request to http://{REG}/blobs/{BLOB}: 401 Unauthorized",
    "403": f"{PUSH}: unexpected status from PUT request to http://{REG}/manifests/x: 403 Forbidden",
    "denied": "failed to authorize: failed to fetch oauth token: denied: requested access to the resource is denied",
    "no credentials": "pull access denied, repository does not exist or may require authorization: "
    "authorization failed: no basic auth credentials",
    "TLS to a plain-HTTP registry": f"{HEAD}: tls: first record does not look like a TLS handshake",
    "bad certificate": f"{HEAD}: tls: failed to verify certificate: x509: certificate signed by unknown authority",
    "missing base image": "failed to resolve source metadata for docker.io/library/nope:1: "
    "docker.io/library/nope:1: not found",
    "Dockerfile heredoc typo": "dockerfile parse error on line 4: unknown instruction: EOF",
    "bad reference": "invalid reference format",
    "a build error": 'failed to compute cache key: failed to calculate checksum of ref: "/missing.txt": not found',
}


@pytest.mark.parametrize("error", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_a_registry_or_network_failure_is_transient(error: str) -> None:
    assert is_transient(Vertex("sha256:1", "exporting to image", error=error), [])
    assert is_transient(None, [f"ERROR: target ci-py311: failed to solve: {error}"])
    assert is_transient(None, [error])  # how the CLI asks about a result's error


@pytest.mark.parametrize("error", PERMANENT.values(), ids=PERMANENT.keys())
def test_a_failure_no_retry_can_fix_is_not_transient(error: str) -> None:
    assert not is_transient(Vertex("sha256:1", "exporting to image", error=error), [])
    assert not is_transient(None, [f"ERROR: failed to solve: {error}"])


def test_a_failing_run_step_is_never_transient_even_when_its_output_says_so() -> None:
    step = Vertex(
        "sha256:2",
        "[deps 2/3] RUN pip install -r requirements.txt",
        error='process "/bin/sh -c pip install -r requirements.txt" did not complete successfully: exit code: 1',
        logs=["ConnectionResetError(104, 'Connection reset by peer')", "503 Service Unavailable"],
    )
    messages = ["ERROR: failed to solve: connection reset by peer; 503 Service Unavailable; unexpected EOF"]
    assert not is_transient(step, messages)


def test_the_final_error_decides_not_buildkits_earlier_retries() -> None:
    messages = [
        f'error: failed to do request: Head "https://{REG}/blobs/{BLOB}": EOF',
        "retrying in 4s",
        f"ERROR: failed to solve: {PERMANENT['401']}",
    ]
    assert not is_transient(None, messages)
    messages = [f"ERROR: failed to solve: {PERMANENT['401']}", f"ERROR: failed to solve: {TRANSIENT['EOF on a POST']}"]
    assert is_transient(None, messages)


@pytest.mark.parametrize(
    "text",
    [
        "ERROR: failed to solve: process exited 1: 500 tests passed, 2 failed",  # a number, not a status
        f"ERROR: {PUSH}: unexpected status from PUT request to http://127.0.0.1:5000/v2/x: 400 Bad Request",
        "ERROR: failed to solve: pushing to 127.0.0.1:5000 is not allowed: 501 Not Implemented",
        "ERROR: failed to solve: canceled",
    ],
)
def test_other_failures_are_not_transient(text: str) -> None:
    assert not is_transient(None, [text])
