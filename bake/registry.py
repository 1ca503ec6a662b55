"""Just enough of the registry HTTP API to look up manifests and add tags, without processes.

The reuse path asks a registry a handful of questions (does this tag exist, what is this
base image's digest) and adds tags to an existing manifest. Through ``docker buildx
imagetools`` each costs a docker CLI and a buildx plugin process (about 0.1 s); over HTTP
it costs a request. Copying the manifest bytes also keeps the digest exactly, where
buildx 0.13's ``imagetools create`` wraps a single manifest in a new index.

Authentication follows the distribution spec: anonymous first, then on ``401`` a Bearer
token from the realm the registry names, or Basic, with the credentials docker keeps
(``bake.auth.credentials``). Anything this client cannot do raises
:class:`RegistryError`, and callers fall back to buildx.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

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

Credentials = Callable[[str], "tuple[str, str] | None"]


class RegistryError(Exception):
    """The registry could not be asked (network, auth scheme, unexpected answer)."""


@dataclass(frozen=True)
class Reference:
    host: str
    repository: str
    reference: str  # a tag or a digest

    @classmethod
    def parse(cls, ref: str) -> Reference:
        """``[host/]repo[:tag|@digest]`` the way docker reads it (Docker Hub by default)."""
        name, reference = ref, "latest"
        if "@" in name:
            name, reference = name.split("@", 1)
        elif ":" in name.rsplit("/", 1)[-1]:
            name, reference = name.rsplit(":", 1)
        first, _, rest = name.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            host, repository = first, rest
        else:
            host, repository = DOCKER_HUB, name
        if host in ("docker.io", "index.docker.io"):
            host = DOCKER_HUB
        if host == DOCKER_HUB and "/" not in repository:
            repository = f"library/{repository}"
        return cls(host, repository, reference)


@dataclass(frozen=True)
class Manifest:
    media_type: str
    digest: str
    body: bytes

    @property
    def is_index(self) -> bool:
        return "index" in self.media_type or "list" in self.media_type


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


class Client:
    """One client per command run: it keeps tokens per repository and scope."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self.tokens: dict[tuple[str, str, str], str] = {}
        self.lock = threading.Lock()

    def _url(self, ref: Reference, what: str) -> str:
        scheme = "http" if plain_http(ref.host) else "https"
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
            with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:
                data = json.load(resp)
        except (OSError, ValueError) as exc:
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
        for attempt in (1, 2):
            request = urllib.request.Request(self._url(ref, what), data=body, method=method, headers=dict(headers))
            with self.lock:
                auth = self.tokens.get(key)
            if auth:
                request.add_header("Authorization", auth)
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:
                    return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 1:
                    challenge = exc.headers.get("WWW-Authenticate", "")
                    authorization = self._authorization(ref, challenge, actions)
                    with self.lock:
                        self.tokens[key] = authorization
                    continue
                return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
            except OSError as exc:
                raise RegistryError(f"{ref.host}: {type(exc).__name__}: {exc}") from None
        raise RegistryError(f"{ref.host}: still unauthorized after logging in")

    def manifest(self, ref: str) -> Manifest | None:
        """The manifest ``ref`` names, or None if the registry does not have it."""
        parsed = Reference.parse(ref)
        status, headers, body = self._send(
            "GET", parsed, f"manifests/{parsed.reference}", actions="pull", headers={"Accept": MANIFEST_TYPES}
        )
        if status == 404:
            return None
        if status != 200:
            raise RegistryError(f"{parsed.host}: GET manifest answered {status}")
        media_type = headers.get("content-type", "").split(";")[0] or json.loads(body).get("mediaType", "")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        return Manifest(media_type, digest, body)

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
            raise RegistryError(f"{parsed.host}: PUT manifest answered {status}")
