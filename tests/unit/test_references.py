"""Image references as the distribution spec's grammar and docker's normalisation read them.

Every row was checked against the engine: ``docker image inspect REF`` says "invalid
reference format" (or an invalid digest) exactly for the rows that are errors here
(tests/engine/test_refs.py asks it again).
"""

from __future__ import annotations

import pytest

from bake.registry import DOCKER_HUB, InvalidReference, Reference

D = "sha256:" + "0123456789abcdef" * 4
D512 = "sha512:" + "0123456789abcdef" * 8

#: (reference, canonical form, host requests go to, repository, tag or digest asked for)
VALID = [
    ("python", "docker.io/library/python:latest", DOCKER_HUB, "library/python", "latest"),
    ("python:3.11-slim", "docker.io/library/python:3.11-slim", DOCKER_HUB, "library/python", "3.11-slim"),
    ("docker.io/python:3", "docker.io/library/python:3", DOCKER_HUB, "library/python", "3"),
    ("index.docker.io/library/python", "docker.io/library/python:latest", DOCKER_HUB, "library/python", "latest"),
    ("acme/app:1", "docker.io/acme/app:1", DOCKER_HUB, "acme/app", "1"),
    ("localhost/x", "localhost/x:latest", "localhost", "x", "latest"),
    ("localhost:5000/x", "localhost:5000/x:latest", "localhost:5000", "x", "latest"),
    ("localhost:5000", "docker.io/library/localhost:5000", DOCKER_HUB, "library/localhost", "5000"),
    ("host:5000/a/b:tag@" + D, "host:5000/a/b:tag@" + D, "host:5000", "a/b", D),
    ("python:3.11-slim@" + D, "docker.io/library/python:3.11-slim@" + D, DOCKER_HUB, "library/python", D),
    ("ghcr.io/acme/app-ci@" + D, "ghcr.io/acme/app-ci@" + D, "ghcr.io", "acme/app-ci", D),
    ("python@" + D512, "docker.io/library/python@" + D512, DOCKER_HUB, "library/python", D512),
    ("a.b.c/x/y/z", "a.b.c/x/y/z:latest", "a.b.c", "x/y/z", "latest"),
    ("[::1]:5000/x:y", "[::1]:5000/x:y", "[::1]:5000", "x", "y"),
    ("127.0.0.1:5000/a_b/c__d/e-f---g.h:v1.0_rc-2", None, "127.0.0.1:5000", "a_b/c__d/e-f---g.h", "v1.0_rc-2"),
    ("Foo/bar", "Foo/bar:latest", "Foo", "bar", "latest"),  # an upper-case first component is a host
    ("UPPER.io/x", "UPPER.io/x:latest", "UPPER.io", "x", "latest"),
    ("ab/cd:_x", "docker.io/ab/cd:_x", DOCKER_HUB, "ab/cd", "_x"),
    ("ab/cd:x" + "y" * 127, None, DOCKER_HUB, "ab/cd", "x" + "y" * 127),
    ("a__b", "docker.io/library/a__b:latest", DOCKER_HUB, "library/a__b", "latest"),
]

INVALID = [
    ("Python:3.11", "must be lowercase"),
    ("acme/App", "must be lowercase"),
    ("python:-slim", "not a tag"),
    ("python:3.11:slim", "not a repository name"),
    ("python:3.11@sha256:abc", "not a digest"),
    ("python@md5:0123456789abcdef0123456789abcdef", "unsupported digest algorithm"),
    ("python@sha512:" + "0" * 64, "128 hex digits"),
    ("python@sha256:" + "A" * 64, "lowercase hex"),
    ("a_-b", "not a repository name"),
    ("a___b", "not a repository name"),
    (".a", "not a repository name"),
    ("a.", "not a repository name"),
    ("a..b", "not a repository name"),
    ("a.-b", "not a repository name"),
    ("host:port/x", "not a registry host"),
    ("a-.b/x", "not a registry host"),
    ("ab/cd:x" + "y" * 128, "not a tag"),
    ("a//b", "not a repository name"),
    ("a/b/", "not a repository name"),
    ("", "no repository name"),
    (":tag", "no repository name"),
    ("a b", "not a repository name"),
    ("localhost:5000/" + "a" * 250, "longer than 255"),
]


@pytest.mark.parametrize(("ref", "canonical", "host", "repository", "reference"), VALID)
def test_valid_references_are_read_as_docker_reads_them(
    ref: str, canonical: str | None, host: str | None, repository: str | None, reference: str | None
) -> None:
    parsed = Reference.parse(ref)
    if canonical is not None:
        assert parsed.canonical == canonical
    if host is not None:
        assert (parsed.host, parsed.repository, parsed.reference) == (host, repository, reference)


@pytest.mark.parametrize(("ref", "why"), INVALID)
def test_invalid_references_are_errors_that_say_why(ref: str, why: str) -> None:
    with pytest.raises(InvalidReference, match=why):
        Reference.parse(ref)


def test_a_digest_names_the_image_and_the_tag_beside_it_is_kept_as_a_name() -> None:
    parsed = Reference.parse("localhost:5000/library/python:3.11-slim@" + D)
    assert parsed.repository == "library/python"  # not library/python:3.11-slim
    assert parsed.digest == D
    assert parsed.reference == D  # what the registry is asked for
    assert parsed.tag == "3.11-slim"
    assert str(parsed) == "localhost:5000/library/python:3.11-slim@" + D
    assert Reference.parse("python:3.11").digest == ""
    assert Reference.parse("python:3.11").domain == "docker.io"
