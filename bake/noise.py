"""BuildKit's benign messages: kept in each target's log, folded into one note per kind on screen.

buildx prints them as ``WARNING:`` and ``ERROR:`` lines on builds that succeed; shown as
they come they read as failures. Each kind is recognised by its text, counted, and said
once at the end with what it means.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str
    pattern: re.Pattern[str]
    meaning: str


KINDS = (
    Kind(
        "local cache import … not found",
        re.compile(r"local cache import at .* not found"),
        "nothing was cached in the state folder for that target yet (its first build): expected, not a failure",
    ),
    Kind(
        "ref layer-… locked … unavailable",
        re.compile(r"\(\*service\)\.Write failed.*\blocked\b.*unavailable", re.IGNORECASE),
        "two targets wrote the same layer at once; BuildKit waited for the first and went on: nothing was lost",
    ),
)


def kind_of(line: str) -> Kind | None:
    """The benign kind ``line`` is, or None for a line that may matter."""
    for kind in KINDS:
        if kind.pattern.search(line):
            return kind
    return None


class Folded:
    """Counts the benign lines of a run (from any thread) and says them as notes."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def take(self, line: str) -> bool:
        """Whether ``line`` is benign (and counted: it is not to be shown)."""
        kind = kind_of(line)
        if kind is None:
            return False
        with self.lock:
            self.counts[kind.name] += 1
        return True

    def notes(self) -> list[str]:
        """One line per kind seen: what BuildKit said, how often, and what it means."""
        found = []
        for kind in KINDS:
            count = self.counts.get(kind.name, 0)
            if count:
                times = f" ({count} times)" if count > 1 else ""
                found.append(f"note: BuildKit said “{kind.name}”{times}: {kind.meaning}; see the targets' logs.")
        return found
