"""Image references as the distribution spec's grammar and docker's normalisation read them.

Only the grammar, with nothing to import but ``re``: the configuration and the Dockerfile
checks validate references on every command's short path. :class:`bake.registry.Reference`
builds on it.
"""

from __future__ import annotations

import re


class InvalidReference(ValueError):
    """Not an image reference as docker and the distribution spec read them (the message says why)."""


# The distribution spec's grammar (github.com/distribution/reference, regexp.go), which
# docker and BuildKit parse with: name [":" tag] ["@" digest], name = [domain "/"] path.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
#: hex digits of the digest algorithms docker knows (github.com/opencontainers/go-digest)
_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
#: the most characters a repository name may have, its domain included
MAX_NAME = 255
DOCKER_IO = "docker.io"


def _split_domain(name: str) -> tuple[str, str]:
    """Docker's ``splitDockerDomain``: the first component is a registry host when it has a
    ``.`` or ``:``, is ``localhost``, or has an upper-case letter; else the name is Docker Hub's."""
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain, remainder = first, rest
    else:
        domain, remainder = DOCKER_IO, name
    if domain == "index.docker.io":
        domain = DOCKER_IO
    if domain == DOCKER_IO and "/" not in remainder:
        remainder = f"library/{remainder}"
    return domain, remainder


def split(ref: str) -> tuple[str, str, str, str]:
    """``(domain, path, tag, digest)`` of ``[host[:port]/]path[:tag][@digest]`` the way docker
    reads it: Docker Hub by default (``python`` is ``docker.io``, ``library/python``), and
    ``""`` for a tag or digest not written. Raises :class:`InvalidReference` saying why."""
    name, at, digest = ref.partition("@")
    if at and not _DIGEST_RE.fullmatch(digest):
        raise InvalidReference(f"{digest!r} is not a digest (ALGORITHM:HEX, e.g. sha256: and 64 hex digits)")
    if at:
        algorithm, _, hex_digits = digest.partition(":")
        want = _DIGEST_LENGTHS.get(algorithm)
        if want is None:
            raise InvalidReference(f"unsupported digest algorithm {algorithm!r} (sha256, sha384 or sha512)")
        if len(hex_digits) != want:
            raise InvalidReference(f"a {algorithm} digest has {want} hex digits, {digest!r} has {len(hex_digits)}")
        if hex_digits.lower() != hex_digits:
            raise InvalidReference(f"the digest {digest!r} must be lowercase hex")
    tag = ""
    last = name.rfind(":")
    if last > name.rfind("/"):
        name, tag = name[:last], name[last + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise InvalidReference(
                f"{tag!r} is not a tag (letters, digits, _ . -, not starting with . or -, at most 128)"
            )
    if not name:
        raise InvalidReference("no repository name")
    domain, path = _split_domain(name)
    if domain != DOCKER_IO and not _DOMAIN_RE.fullmatch(domain):
        raise InvalidReference(f"{domain!r} is not a registry host (HOST[:PORT])")
    if path.lower() != path:
        raise InvalidReference(f"repository name {path!r} must be lowercase")
    if not _PATH_RE.fullmatch(path):
        raise InvalidReference(
            f"{path!r} is not a repository name (lowercase letters and digits, separated by / . _ __ or -)"
        )
    if len(f"{domain}/{path}") > MAX_NAME:
        raise InvalidReference(f"the repository name is longer than {MAX_NAME} characters")
    return domain, path, tag, digest if at else ""
