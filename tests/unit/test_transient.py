"""Which failures are retried: buildx's error strings (as the fault-injection tests met them), and
the registry client's retries against a registry in-process that fails on cue."""

from __future__ import annotations

import email.utils
import json
import socket
import ssl
import urllib.error

import pytest

from bake import retry
from bake.execute import is_push_race, is_transient
from bake.progress import Vertex
from bake.registry import MAX_RETRY_AFTER, Client, RegistryError, transient_error

from .conftest import MakeRegistry
from .fake_registry import FakeRegistry

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": INDEX}).encode()

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


def test_a_commands_whole_output_is_judged_by_its_last_error_line() -> None:
    output = f"#1 pushing\nerror: {TRANSIENT['EOF on a POST']}\nretrying in 1s\nERROR: {PERMANENT['401']}\n"
    assert not is_transient(None, [output])
    output = f"#1 pushing\nERROR: {TRANSIENT['503 on a blob upload']}\n"
    assert is_transient(None, [output])


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


#: the final error of the push the shared-layer race refused (bench/retention.py, day 3)
RACE = (
    f'{PUSH}: failed commit on ref "manifest-{BLOB}": unexpected status from PUT request to '
    f"http://{REG}/manifests/{BLOB}: 400 Bad Request"
)


def test_a_manifest_refused_with_400_is_the_shared_layer_race_not_a_transient_failure() -> None:
    assert is_push_race(Vertex("sha256:1", "exporting to image", error=RACE), [])
    assert is_push_race(None, [f"ERROR: failed to solve: {RACE}"])
    assert not is_transient(None, [f"ERROR: failed to solve: {RACE}"])  # retried once, not on the schedule


@pytest.mark.parametrize(
    "text",
    [
        f"ERROR: {PUSH}: unexpected status from PUT request to http://{REG}/blobs/uploads/x: 400 Bad Request",
        f"ERROR: {PUSH}: unexpected status from PUT request to http://{REG}/manifests/x: 401 Unauthorized",
        TRANSIENT["500 on a manifest PUT"],
    ],
)
def test_other_refusals_are_not_the_race(text: str) -> None:
    assert not is_push_race(None, [text])


def test_a_failing_run_step_is_never_the_race() -> None:
    step = Vertex("sha256:2", "[ci 2/2] RUN make", error='process "/bin/sh -c make" did not complete successfully')
    assert not is_push_race(step, [RACE])


# -- the registry HTTP client retries transient failures ------------------------------------------


@pytest.fixture
def flaky(fake_registry: MakeRegistry) -> FakeRegistry:
    """Manifests behind a script of faults: each request takes the next one ("ok" when none is left)."""
    fake = fake_registry()
    fake.put("team/app:fp-1", MANIFEST, INDEX)
    return fake


def client(delays: list[float], retries: int = 2) -> Client:
    # no jitter: the waits are the schedule's nominal ones (tests/unit/test_retry.py covers the jitter)
    clock = retry.Clock(sleep=delays.append, random=lambda: 0.0)
    return Client(lambda host: None, policy=retry.Policy(retries=retries, first=0.5), clock=clock)


@pytest.mark.parametrize("fault", ["503", "502", "500", "504", "429", "reset", "eof"])
def test_a_transient_failure_is_retried_with_backoff(flaky: FakeRegistry, fault: str) -> None:
    flaky.script = [fault, fault]
    delays: list[float] = []
    found = client(delays).manifest(f"{flaky.address}/team/app:fp-1")
    assert found is not None
    assert found.body == MANIFEST
    assert delays == [0.5, 1.0]
    assert len(flaky.requests) == 3


def test_retry_after_is_followed_up_to_a_limit(flaky: FakeRegistry) -> None:
    flaky.script = ["429 retry-after 3", "503 retry-after 3600"]
    delays: list[float] = []
    assert client(delays).manifest(f"{flaky.address}/team/app:fp-1") is not None
    assert delays == [3.0, MAX_RETRY_AFTER]


def test_retry_after_as_an_http_date_is_followed(flaky: FakeRegistry) -> None:
    now = 1_800_000_000.0
    flaky.script = [f"503 retry-after {email.utils.formatdate(now + 20, usegmt=True)}"]
    delays: list[float] = []
    clock = retry.Clock(sleep=delays.append, now=lambda: now, random=lambda: 0.0)
    assert Client(lambda host: None, clock=clock).manifest(f"{flaky.address}/team/app:fp-1") is not None
    assert delays == [20.0]


def test_a_tag_put_is_retried_too(flaky: FakeRegistry) -> None:
    delays: list[float] = []
    registry = client(delays)
    manifest = registry.manifest(f"{flaky.address}/team/app:fp-1")
    assert manifest is not None
    flaky.script = ["503", "reset"]
    registry.tag(manifest, f"{flaky.address}/team/app:ci-main")
    assert flaky.manifests["team/app:ci-main"] == (INDEX, MANIFEST)
    assert delays == [0.5, 1.0]


def test_when_retries_run_out_the_client_gives_up_with_a_registry_error(flaky: FakeRegistry) -> None:
    flaky.script = ["503"] * 3
    delays: list[float] = []
    with pytest.raises(RegistryError, match="503"):
        client(delays).manifest(f"{flaky.address}/team/app:fp-1")
    assert delays == [0.5, 1.0]
    flaky.script = ["reset"] * 3
    with pytest.raises(RegistryError, match=r"Connection|Remote"):
        client([]).manifest(f"{flaky.address}/team/app:fp-1")


def test_a_registry_that_stayed_down_is_asked_once_more_without_waiting_until_it_answers(flaky: FakeRegistry) -> None:
    delays: list[float] = []
    registry = client(delays)
    flaky.script = ["503"] * 3
    with pytest.raises(RegistryError, match="503"):
        registry.manifest(f"{flaky.address}/team/app:fp-1")
    assert delays == [0.5, 1.0]
    flaky.script, flaky.requests = ["503", "ok"], []
    with pytest.raises(RegistryError, match="503"):  # still down: one request, no wait
        registry.manifest(f"{flaky.address}/team/app:fp-1")
    assert (delays, len(flaky.requests)) == ([0.5, 1.0], 1)
    assert registry.manifest(f"{flaky.address}/team/app:fp-1") is not None  # back: it answers
    flaky.script = ["503"]
    assert registry.manifest(f"{flaky.address}/team/app:fp-1") is not None  # and is retried again
    assert delays == [0.5, 1.0, 0.5]


@pytest.mark.parametrize("status", [400, 403, 404, 501])
def test_an_answer_no_retry_can_change_is_not_retried(flaky: FakeRegistry, status: int) -> None:
    flaky.script = [str(status)]
    delays: list[float] = []
    if status == 404:
        assert client(delays).manifest(f"{flaky.address}/team/app:fp-1") is None
    else:
        with pytest.raises(RegistryError, match=str(status)):
            client(delays).manifest(f"{flaky.address}/team/app:fp-1")
    assert delays == []
    assert len(flaky.requests) == 1


def test_a_refused_connection_is_retried_then_reported(flaky: FakeRegistry) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    delays: list[float] = []
    with pytest.raises(RegistryError, match=r"127\.0\.0\.1:\d+: .*refused"):
        client(delays).manifest(f"127.0.0.1:{port}/team/app:fp-1")
    assert delays == [0.5, 1.0]


def test_a_certificate_or_a_bad_url_is_not_retried() -> None:
    cert = urllib.error.URLError(ssl.SSLCertVerificationError(1, "certificate verify failed"))
    assert not transient_error(cert)
    assert not transient_error(urllib.error.URLError("unknown url type: ftp"))
    assert not transient_error(urllib.error.URLError(socket.gaierror(socket.EAI_NONAME, "Name or service not known")))
    assert transient_error(urllib.error.URLError(socket.gaierror(socket.EAI_AGAIN, "Temporary failure")))
    assert transient_error(urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")))
    assert transient_error(TimeoutError("timed out"))
