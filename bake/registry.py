"""Just enough of the registry HTTP API to look up manifests and add tags, without processes.

The reuse path asks a registry a handful of questions (does this tag exist, what is this
base image's digest) and adds tags to an existing manifest. Through ``docker buildx
imagetools`` each costs a docker CLI and a buildx plugin process (about 0.1 s); over HTTP
it costs a request. Copying the manifest bytes also keeps the digest exactly, where
buildx 0.13's ``imagetools create`` wraps a single manifest in a new index.

Base images are resolved the way the engine pulls them: a docker.io name goes to the
engine's registry mirrors first (:func:`via_mirror`), and every answer is kept
(:class:`Resolution`) so a base that cannot be resolved is reported with the reason.

Authentication follows the distribution spec: anonymous first, then on ``401`` a Bearer
token from the realm the registry names, or Basic, with the credentials docker keeps
(``bake.auth.credentials``). Anything this client cannot do raises
:class:`RegistryError`, and callers fall back to buildx.

A request that fails for a transient reason (connection refused, reset or closed, a
timeout, HTTP 429 or 5xx) is sent again on :mod:`bake.retry`'s schedule (backoff with
jitter for up to a minute, or the registry's ``Retry-After``); other answers are returned
at once. An error after that says it was transient (:attr:`RegistryError.transient`), so
that no caller retries it again.
"""

from __future__ import annotations

import base64
import dataclasses
import errno
import hashlib
import http.client
import ipaddress
import json
import re
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bake import logs, retry
from bake.reference import DOCKER_IO, InvalidReference, split

__all__ = ["DOCKER_IO", "InvalidReference"]

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
DOCKER_HUB = "registry-1.docker.io"
TIMEOUT = 15.0
#: the first wait before a request is sent again (then doubled, with jitter: bake.retry)
BACKOFF = 0.5
POLICY = retry.Policy(first=BACKOFF)


def policy(environ: Mapping[str, str]) -> retry.Policy:
    """:data:`POLICY` with the retry budget of a run's environment (``BAKE_CI_RETRY_BUDGET``)."""
    return dataclasses.replace(POLICY, budget=retry.budget(environ))


#: answers worth another attempt; a longer ``Retry-After`` than this is not waited for in full
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = retry.LONGEST

Credentials = Callable[[str], "tuple[str, str] | None"]

log = logs.get_logger("bake.registry")


class RegistryError(Exception):
    """The registry could not be asked (network, auth scheme, unexpected answer).

    ``transient``: it failed for a reason that retrying might have fixed, and the
    request was retried already: callers must not retry it again.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class RegistryUnavailable(RegistryError):
    """The registry could not be reached, for a reason another attempt later may not meet."""


@dataclass(frozen=True)
class Reference:
    """An image reference: where its registry is, the repository, and a tag or a digest."""

    host: str  # where requests go: registry-1.docker.io for docker.io
    repository: str
    reference: str  # the digest when there is one, else the tag
    scheme: str = ""  # "http" or "https" when known (a mirror's URL); else chosen by host
    tag: str = ""  # a tag written together with a digest: the digest decides, the tag is a name

    @property
    def digest(self) -> str:
        """The digest the reference pins, or ``""`` (a tag never has a ``:``)."""
        return self.reference if ":" in self.reference else ""

    @property
    def domain(self) -> str:
        """The registry as docker names it (``docker.io``, not the host its API is on)."""
        return DOCKER_IO if self.host == DOCKER_HUB else self.host

    @property
    def canonical(self) -> str:
        """The fully qualified reference, as ``docker buildx imagetools inspect`` names it."""
        name = f"{self.domain}/{self.repository}"
        if not self.digest:
            return f"{name}:{self.reference}"
        return f"{name}:{self.tag}@{self.digest}" if self.tag else f"{name}@{self.digest}"

    def __str__(self) -> str:
        name = f"{self.host}/{self.repository}"
        if not self.digest:
            return f"{name}:{self.reference}"
        return f"{name}:{self.tag}@{self.digest}" if self.tag else f"{name}@{self.digest}"

    @classmethod
    def parse(cls, ref: str) -> Reference:
        """``[host[:port]/]path[:tag][@digest]`` the way docker reads it: Docker Hub by
        default (``python`` is ``docker.io/library/python``), ``latest`` without a tag or
        digest, and a digest, when there is one, names the image (the tag beside it does
        not). Raises :class:`InvalidReference` saying what is wrong."""
        domain, path, tag, digest = split(ref)
        host = DOCKER_HUB if domain == DOCKER_IO else domain
        if digest:
            return cls(host, path, digest, tag=tag)
        return cls(host, path, tag or "latest")


@dataclass(frozen=True)
class Manifest:
    media_type: str
    digest: str
    body: bytes

    @property
    def is_index(self) -> bool:
        return "index" in self.media_type or "list" in self.media_type


def platform_child(manifest: Manifest, platform: str) -> tuple[str | None, str]:
    """The digest of ``platform``'s image in ``manifest`` (pure): an index's entry for it,
    or a single manifest itself (an image of one platform). None, and why, when an index
    has no entry for it."""
    if not manifest.is_index:
        return manifest.digest, ""
    try:
        entries = json.loads(manifest.body).get("manifests") or []
    except (ValueError, AttributeError):
        return None, "its index cannot be read"
    os_name, _, rest = platform.partition("/")
    arch, _, variant = rest.partition("/")
    for entry in entries:
        found = entry.get("platform") or {} if isinstance(entry, dict) else {}
        same = found.get("os") == os_name and found.get("architecture") == arch
        if same and (not variant or found.get("variant") == variant):
            return str(entry.get("digest")), ""
    shown = sorted(
        f"{(e.get('platform') or {}).get('os')}/{(e.get('platform') or {}).get('architecture')}"
        for e in entries
        if isinstance(e, dict) and (e.get("platform") or {}).get("os") not in (None, "unknown")
    )
    return None, f"no {platform} image in its index (it has {', '.join(shown) or 'none'})"


def plain_http(host: str) -> bool:
    """Docker talks plain HTTP to registries on loopback (its default insecure range)."""
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0][1:]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…",scope="…"`` -> ("bearer", {...})."""
    scheme, _, params = header.strip().partition(" ")
    found = dict(re.findall(r'(\w+)="([^"]*)"', params))
    return scheme.lower(), found


def transient_error(exc: BaseException) -> bool:
    """A network failure another attempt may not meet (not a certificate or a bad URL)."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, ssl.SSLError):  # certificates, protocol: no retry fixes them
        return isinstance(reason, ssl.SSLEOFError)
    if isinstance(reason, socket.gaierror):
        return reason.errno == socket.EAI_AGAIN
    if isinstance(reason, (ConnectionError, TimeoutError, http.client.HTTPException)):
        return True
    return isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)


class Client:
    """One client per command run: it keeps tokens per repository and scope.

    A host that stayed unreachable through a whole retry schedule is asked once, without
    retries, for the rest of the run (until it answers again): a run's later look-ups do
    not each wait another minute for a registry that is down for good.
    """

    def __init__(
        self, credentials: Credentials, *, policy: retry.Policy = POLICY, clock: retry.Clock = retry.REAL_TIME
    ) -> None:
        self.credentials = credentials
        self.tokens: dict[tuple[str, str, str], str] = {}
        self.lock = threading.Lock()
        self.policy = policy
        self.clock = clock
        #: hosts that stayed unreachable through a whole schedule (see the class)
        self.down: set[str] = set()

    def _given_up(self, host: str, down: bool) -> None:
        with self.lock:
            (self.down.add if down else self.down.discard)(host)

    def _exchange(self, request: urllib.request.Request, host: str) -> tuple[int, dict[str, str], bytes]:
        """Send ``request``: its status, headers (lower-case names) and body, retried while transient."""
        with self.lock:
            policy = dataclasses.replace(self.policy, retries=0) if host in self.down else self.policy
        retries = retry.Retry(policy, self.clock)
        while True:
            try:
                try:
                    with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:
                        status, headers, body = resp.status, dict(resp.headers.items()), resp.read()
                except urllib.error.HTTPError as exc:
                    status, headers, body = exc.code, dict(exc.headers.items()), exc.read()
            except (OSError, http.client.HTTPException) as exc:
                transient = transient_error(exc)
                delay = retries.delay() if transient else None
                if delay is None:
                    self._given_up(host, transient)
                    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                    tried = f" ({retries.failures} attempts)" if retries.failures > 1 else ""
                    message = f"{host}: {type(reason).__name__}: {reason}{tried}"
                    kind = RegistryUnavailable if transient else RegistryError
                    raise kind(message, transient=transient) from None
                reason = type(exc).__name__
            else:
                headers = {k.lower(): v for k, v in headers.items()}
                if status not in RETRY_STATUSES:
                    self._given_up(host, False)
                    return status, headers, body
                delay = retries.delay(retry.retry_after(headers.get("retry-after"), self.clock.now()))
                if delay is None:
                    self._given_up(host, True)
                    return status, headers, body
                reason = f"HTTP {status}"
            log.debug("registry request retried", host=host, method=request.get_method(), reason=reason, delay=delay)
            retries.wait(delay)

    def _url(self, ref: Reference, what: str) -> str:
        if what.startswith(("http://", "https://")):  # a Location the registry answered with
            return what
        scheme = ref.scheme or ("http" if plain_http(ref.host) else "https")
        if what.startswith("/"):
            return f"{scheme}://{ref.host}{what}"
        return f"{scheme}://{ref.host}/v2/{ref.repository}/{what}"

    def _authorization(self, ref: Reference, challenge: str, actions: str) -> str:
        scheme, params = parse_challenge(challenge)
        creds = self.credentials(ref.host)
        if scheme == "basic":
            if creds is None:
                raise RegistryError(f"{ref.host} wants a login and docker has no credentials for it")
            return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        if scheme != "bearer" or "realm" not in params:
            raise RegistryError(f"{ref.host}: unsupported authentication {scheme!r}")
        query = {"service": params.get("service", ref.host), "scope": f"repository:{ref.repository}:{actions}"}
        request = urllib.request.Request(f"{params['realm']}?{urllib.parse.urlencode(query)}")
        if creds is not None:
            basic = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {basic}")
        try:
            status, _, body = self._exchange(request, ref.host)
        except RegistryError as exc:
            raise RegistryError(f"no token from the auth server of {exc}") from None
        if status != 200:
            raise RegistryError(f"{ref.host}: no token from its auth server (HTTP {status})")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise RegistryError(f"{ref.host}: no token from its auth server ({type(exc).__name__})") from None
        token = data.get("token") or data.get("access_token")
        if not token:
            raise RegistryError(f"{ref.host}: its auth server returned no token")
        return f"Bearer {token}"

    def _send(
        self,
        method: str,
        ref: Reference,
        what: str,
        *,
        actions: str,
        body: bytes | None = None,
        headers: dict[str, str],
    ) -> tuple[int, dict[str, str], bytes]:
        key = (ref.host, ref.repository, actions)
        log.debug("registry request", method=method, url=self._url(ref, what))
        for attempt in (1, 2):
            request = urllib.request.Request(self._url(ref, what), data=body, method=method, headers=dict(headers))
            with self.lock:
                auth = self.tokens.get(key)
            if auth:
                request.add_header("Authorization", auth)
            status, response_headers, data = self._exchange(request, ref.host)
            if status == 401 and attempt == 1:
                challenge = response_headers.get("www-authenticate", "")
                authorization = self._authorization(ref, challenge, actions)
                with self.lock:
                    self.tokens[key] = authorization
                continue
            return status, response_headers, data
        raise RegistryError(f"{ref.host}: still unauthorized after logging in")

    def manifest(self, ref: str | Reference) -> Manifest | None:
        """The manifest ``ref`` names, or None if the registry does not have it."""
        parsed = ref if isinstance(ref, Reference) else Reference.parse(ref)
        status, headers, body = self._send(
            "GET", parsed, f"manifests/{parsed.reference}", actions="pull", headers={"Accept": MANIFEST_TYPES}
        )
        if status == 404:
            return None
        if status != 200:
            raise RegistryError(f"{parsed.host}: GET manifest answered {status}", transient=status in RETRY_STATUSES)
        media_type = headers.get("content-type", "").split(";")[0] or json.loads(body).get("mediaType", "")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        return Manifest(media_type, digest, body)

    def blob(self, ref: str | Reference, digest: str) -> bytes:
        """The blob ``digest`` of ``ref``'s repository (an image's config), checked against its digest."""
        parsed = ref if isinstance(ref, Reference) else Reference.parse(ref)
        status, _, body = self._send("GET", parsed, f"blobs/{digest}", actions="pull", headers={})
        if status != 200:
            raise RegistryError(f"{parsed.host}: GET blob answered {status}")
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise RegistryError(f"{parsed.host}: the blob {digest[:19]} has other content than its digest")
        return body

    def tag(self, manifest: Manifest, ref: str) -> None:
        """Put ``manifest`` under the tag of ``ref`` (same repository: blobs are already there)."""
        parsed = Reference.parse(ref)
        status, _, _ = self._send(
            "PUT",
            parsed,
            f"manifests/{parsed.reference}",
            actions="pull,push",
            body=manifest.body,
            headers={"Content-Type": manifest.media_type},
        )
        if status not in (200, 201, 202):
            raise RegistryError(f"{parsed.host}: PUT manifest answered {status}", transient=status in RETRY_STATUSES)

    # -- what gc needs: listing, blobs, deleting ------------------------------------------------

    def request(
        self,
        method: str,
        ref: Reference,
        what: str,
        *,
        actions: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request about ``ref``'s repository (``what``: a path under ``/v2/REPO/``, an
        absolute path, or a URL the registry gave), authenticated for ``actions``: its status,
        headers and body, whatever the status."""
        return self._send(method, ref, what, actions=actions, body=body, headers=headers or {})

    def tag_page(self, ref: Reference, url: str | None = None, size: int = 1000) -> tuple[list[str], str | None]:
        """One page of ``ref``'s repository's tags, and the URL of the next page (``Link``)."""
        status, headers, body = self.request("GET", ref, url or f"tags/list?n={size}", actions="pull")
        if status == 404:
            return [], None
        if status != 200:
            raise RegistryError(f"{ref.host}: GET tags/list answered {status}")
        try:
            tags = json.loads(body).get("tags") or []
        except (ValueError, AttributeError):
            raise RegistryError(f"{ref.host}: tags/list answered something that is not JSON") from None
        match = re.match(r"\s*<([^>]+)>", headers.get("link", ""))
        return [str(t) for t in tags], (match[1] if match else None)


# -- resolving base images the way the engine pulls them ------------------------------------


def mirrors_of(value: object) -> list[str]:
    """The engine's ``RegistryConfig.Mirrors`` (from ``docker info``): URLs, or null."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise RegistryError(f"unexpected answer {str(value)[:80]!r}")
    return [m for m in value if m.strip()]


def parse_mirrors(text: str) -> list[str]:
    """``docker info --format '{{json .RegistryConfig.Mirrors}}'``: URLs, or null."""
    try:
        data = json.loads(text.strip() or "null")
    except ValueError:
        raise RegistryError(f"unexpected answer {text.strip()[:80]!r}") from None
    return mirrors_of(data)


def via_mirror(ref: Reference, mirror: str) -> Reference | None:
    """``ref`` as the engine pulls it through the registry mirror ``mirror`` (a URL).

    Engines mirror Docker Hub only, so any other registry's name gives None, as does a
    mirror URL without a host. The URL's scheme is kept (``http://`` mirrors are common
    on private networks); docker accepts no path in a mirror URL.
    """
    if ref.host != DOCKER_HUB:
        return None
    parts = urllib.parse.urlsplit(mirror if "://" in mirror else f"https://{mirror}")
    if not parts.netloc or parts.scheme not in ("http", "https"):
        return None
    return Reference(parts.netloc, ref.repository, ref.reference, parts.scheme)


_NO_SUCH_HOST_RE = re.compile(r"Name or service not known|no such host|nodename nor servname provided", re.IGNORECASE)


@dataclass(frozen=True)
class Answer:
    """What one place asked for a base image answered: a digest, "not found", or an error."""

    asked: str  # the reference or the question, as a user would type it
    said: str


@dataclass(frozen=True)
class Resolution:
    """A base image's digest (None if nothing had it) and every answer on the way."""

    ref: str
    digest: str | None
    answers: tuple[Answer, ...]

    @property
    def missing(self) -> bool:
        """Whether the image surely does not exist: a registry said "not found", the engine
        has no such image, and nothing else answered but that or "no such host" (a name
        no DNS knows, not a failure to ask it). A network error on the way is never this."""
        said = [a.said for a in self.answers]
        if self.digest or "not found" not in said:
            return False
        return all(s in ("not found", "no such image") or _NO_SUCH_HOST_RE.search(s) for s in said)

    def reason(self) -> str:
        """Why there is no digest: each place asked and its answer, and what to do."""
        asked = "; ".join(f"{a.asked}: {a.said}" for a in self.answers) or "nothing could be asked"
        return (
            f"base image {self.ref} cannot be resolved to a digest ({asked}), so its targets have no "
            "fingerprint and are built every time; push it to its registry or the engine's mirror, "
            "pull it into the engine, or set base-image to an image that can be resolved"
        )
