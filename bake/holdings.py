"""What ``bake-ci gc`` found in the image and cache repositories: :class:`Survey`.

:func:`bake.inventory.survey` makes it, :mod:`bake.retention` judges its refs, and
:class:`bake.prune.Remover` checks against it what a kept ref still reaches. A module of
its own so that inventory (which reads through prune's registry client) and prune
(which removes what the survey found) do not import each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bake.retention import Ref, Repo, Verdict


@dataclass
class Survey:
    """The tags of both repositories, judged-ready, and what their manifests reach."""

    refs: list[Ref]
    #: manifest digest -> its blobs (config, layers, children manifests) and their sizes
    blobs: dict[str, dict[str, int]] = field(default_factory=dict)
    #: manifest digest -> the manifests it references (index children, attestations)
    children: dict[str, set[str]] = field(default_factory=dict)

    def reached(self, verdicts: Iterable[Verdict]) -> dict[Repo, frozenset[str]]:
        """Every manifest a kept ref reaches through indexes, per repository."""
        out: dict[Repo, set[str]] = {"image": set(), "cache": set()}
        for v in verdicts:
            if v.keep:
                todo = [v.ref.digest]
                while todo:
                    for child in self.children.get(todo.pop(), ()):
                        if child not in out[v.ref.repo]:
                            out[v.ref.repo].add(child)
                            todo.append(child)
        return {repo: frozenset(found) for repo, found in out.items()}
