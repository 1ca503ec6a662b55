"""Names: target identifiers (``ci-py312``), branch slugs, image tags and cache refs.

Everything here is pure string work, shared by planning, selection and reporting, so
that one identifier means the same thing everywhere.

Every tag bake-ci writes is ``STAGE-pyX.Y`` (the default branch's bare tag) or
``STAGE-pyX.Y-SUFFIX``, and each kind of ref owns a form of ``SUFFIX`` that no other
kind can produce (docs/tags.md has the whole table):

- ``fp-...``: fingerprint tags (images and cache);
- 7 or more hexadecimal characters: commit tags;
- ``pr-N`` and ``pr-unknown``: pull and merge requests;
- anything else: a branch or tag of the repository, slugged (:func:`slug`);
- any of these followed by ``__OS-ARCH[-VARIANT]``: one platform's image or cache of a
  multi-platform target (:func:`platform_suffix`); no slug holds ``__``.

A branch whose slug would take one of the reserved forms is named ``branch-NAME``
instead (:func:`branch_name`), as ``pr-12`` always was.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

MAX_TAG = 128

_PY_RE = re.compile(r"(?P<major>[1-9][0-9]?)\.(?P<minor>0|[1-9][0-9]?)")


@dataclass(frozen=True, order=True)
class PythonVersion:
    """A ``X.Y`` Python version."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> PythonVersion:
        match = _PY_RE.fullmatch(text)
        if match is None:
            raise ValueError(f"{text!r} is not a Python version of the form X.Y")
        return cls(int(match["major"]), int(match["minor"]))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def group(self) -> str:
        """The bake group and identifier suffix: ``py312``."""
        return f"py{self.major}{self.minor}"


def target_id(stage: str, python: PythonVersion) -> str:
    """The identifier ``STAGE-pyXY`` used for selection, logs and results."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", stage)
    return f"{safe}-{python.group}"


def tag_prefix(stage: str, python: PythonVersion) -> str:
    """The tag of a target's image on the default branch: ``STAGE-pyX.Y``."""
    return f"{stage}-py{python}"


def slug(text: str, max_len: int) -> str:
    """Turn a branch name into a tag fragment of at most ``max_len`` characters.

    Lowercase, only ``[a-z0-9_.-]``, no leading or trailing separators, and never two
    underscores in a row: ``__`` starts a per-platform suffix (:func:`platform_suffix`),
    so no branch can end its tags like another branch's per-platform refs. A name that
    has to be shortened keeps a hash of the original, so two long branches that share
    a prefix still get different tags.
    """
    if max_len < 1:
        raise ValueError("no room left for the branch in the tag")
    cleaned = re.sub(r"_{2,}", "_", re.sub(r"[^a-z0-9_.-]+", "-", text.lower())).strip("-.")
    if not cleaned:
        cleaned = "branch-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    if len(cleaned) <= max_len:
        return cleaned
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    if max_len <= len(digest):
        return digest[:max_len]
    head = cleaned[: max_len - len(digest) - 1].rstrip("-.")
    return f"{head}-{digest}" if head else digest


#: Forms only bake-ci's own kinds of ref may have: fingerprints, commits, pull requests.
#: Matched against a slug (lowercase, ``[a-z0-9_.-]``). Per-platform refs end with
#: ``__OS-ARCH``, which no slug can (:func:`slug`).
RESERVED_RE = re.compile(r"fp(?:[-_.].*)?|pr-(?:[0-9]+|unknown)|[0-9a-f]{7,}", re.DOTALL)


def reserved(fragment: str) -> bool:
    """Whether a tag suffix has a form reserved for another kind of ref than a branch."""
    return RESERVED_RE.fullmatch(fragment) is not None


def branch_name(branch: str) -> str:
    """What a branch's (or a git tag's) refs are named after: the branch itself, or
    ``branch-BRANCH`` when its slug would take a reserved form (``fp-...``, a commit,
    ``pr-N``). Whatever the length the slug is cut to, the result's slug
    is never reserved: reserved forms are prefixes, or whole names shorter than a cut."""
    return f"branch-{branch}" if reserved(slug(branch, MAX_TAG)) else branch


def branch_tag(stage: str, python: PythonVersion, branch: str, platform: str | None = None) -> str:
    """``STAGE-pyX.Y-BRANCH`` (plus :func:`platform_suffix` for one platform's image),
    always a valid tag of at most 128 characters."""
    prefix = tag_prefix(stage, python)
    suffix = platform_suffix(platform) if platform else ""
    return f"{prefix}-{slug(branch, MAX_TAG - len(prefix) - 1 - len(suffix))}{suffix}"


#: What :func:`platform_suffix` ends a ref with. No branch's slug contains ``__``
#: (:func:`slug`), so no branch can write another branch's per-platform refs.
PLATFORM_SUFFIX_RE = re.compile(r"__[a-z0-9]+-[a-z0-9]+(?:-[a-z0-9.]+)?\Z")


def shown(plan_id: str) -> str:
    """A plan identifier as summaries show it: ``ci-py312 linux/arm64`` for one platform's
    image (``ci-py312__linux-arm64``), the identifier itself otherwise (pure)."""
    target, sep, platform = plan_id.partition("__")
    return f"{target} {platform.replace('-', '/')}" if sep and platform else plan_id


def platform_suffix(platform: str) -> str:
    """What one platform's ref adds to the ref of the multi-platform image: ``__OS-ARCH[-VARIANT]``.

    ``linux/arm64`` -> ``__linux-arm64``, ``linux/arm/v7`` -> ``__linux-arm-v7``. It ends
    every per-platform name: the bake target (``ci-py312__linux-arm64``), the image tags
    (``ci-py3.12-main__linux-arm64``, ``ci-py3.12-SHA7__linux-arm64``,
    ``ci-py3.12-fp-HEX__linux-arm64``) and the cache ref (``ci-py3.12-main__linux-arm64``).
    The double underscore never comes from a stage, a Python version, a commit or a
    fingerprint, and bake target names allow it.
    """
    return "__" + platform.lower().replace("/", "-")
