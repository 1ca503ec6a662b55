"""Input fingerprints: a target's identity before it is built.

A target's fingerprint hashes everything its image is made from, which is what BuildKit
keys its cache on: the Dockerfile text of its stage and of every stage it depends on,
the resolved build args, the digest of every image it reads (``FROM``, ``COPY --from``,
``RUN --mount=from``), what each ``ADD <url>`` stands for, the platforms, and for each
path of the build context that a stage reads: its type, its permission bits, a
symlink's target (never followed), a file's bytes, and directories (empty ones too);
FIFOs, sockets and devices by type only. Modification times do not count, as they do
not for BuildKit. Two machines with the same inputs compute the same fingerprint, with
or without git; a change to any part changes it. The parts are kept too, so that
``status`` can say which one changed.

Context paths: ``[tool.bake-ci.stages.NAME] inputs`` (globs relative to the context) for
each stage of the target's chain, else the paths that stage COPYs/ADDs/bind-mounts from
the context, else (when a source uses a variable, or goes through a symlink) the whole
context; always minus ``.dockerignore``.

The context's paths are found in :mod:`bake.context` and what its files hold is hashed
in :mod:`bake.content`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import NamedTuple

SCHEMA = "bake-ci-fingerprint/2"
SHORT = 12


# -- the fingerprint itself -----------------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Fingerprint(NamedTuple):
    value: str
    parts: dict[str, str]
    #: Context files that only the target's own stage reads (none of the stages it is
    #: built on): what a checkout mounted over the image replaces (``bake-ci shell``).
    own: frozenset[str] = frozenset()

    @property
    def short(self) -> str:
        return self.value[:SHORT]

    @property
    def environment(self) -> str:
        """The fingerprint of everything but :attr:`own`: equal for two images whose
        difference a mounted checkout makes up for."""
        kept = {k: v for k, v in self.parts.items() if not (k.startswith("file:") and k[5:] in self.own)}
        return _sha(json.dumps(kept, sort_keys=True).encode())

    def changed_since(self, old: Mapping[str, str]) -> list[str]:
        """Names of the parts that differ from an earlier fingerprint's parts."""
        names = sorted(set(self.parts) | set(old))
        return [
            n.removeprefix("file:") if n.startswith("file:") else n for n in names if self.parts.get(n) != old.get(n)
        ]


def compute(
    *,
    stage_texts: Sequence[str],
    args: Mapping[str, str],
    base_digests: Mapping[str, str],
    files: Mapping[str, str],
    platforms: Sequence[str],
    external: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
    own: frozenset[str] = frozenset(),
) -> Fingerprint:
    """Hash the parts of a target (pure). ``files``: each context path's record;
    ``external``: what each reference outside the context resolved to."""
    parts = {
        "schema": SCHEMA,
        "dockerfile": _sha("\n\n".join(stage_texts).encode()),
        "build args": _sha(json.dumps(dict(sorted(args.items()))).encode()),
        "base image": _sha(json.dumps(dict(sorted(base_digests.items()))).encode()),
        "platforms": _sha(json.dumps(sorted(platforms)).encode()),
        "external sources": _sha(json.dumps(dict(sorted((external or {}).items()))).encode()),
        **{f"file:{path}": digest for path, digest in files.items()},
        **(extra or {}),
    }
    value = _sha(json.dumps(parts, sort_keys=True).encode())
    return Fingerprint(value, parts, own)
