"""The benchmark's numbers as Markdown: pure functions, no Docker (unit-tested in tests/unit/test_bench.py).

``bench/run.py`` collects :class:`Sample` objects (one per timed run) and hands them,
with a :class:`Meta` header and a few extra measurements, to :func:`markdown`.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness import ratio, ratio_cell, seconds_cell  # bench/ is on sys.path (see harness.py)

#: Scenario keys in table order, with the row titles.
SCENARIOS = {
    "cold": "1. cold (empty registry cache, pruned builder, no local images)",
    "warm": "2. warm from registry (pruned builder and local images)",
    "hot": "3. hot (nothing changed, local cache present)",
    "source": "4. source-only change (stats.py)",
    "deps": "5. dependency change (mdurl==0.1.2 -> 0.1.1)",
    "branch": "6. no change, new branch",
}
#: Contender keys in column order, with the column titles.
CONTENDERS = {
    "bake-ci": "bake-ci",
    "bake-ci-no-reuse": "bake-ci --no-reuse",
    "raw-bake": "raw bake",
    "sequential": "sequential",
}
BASELINE = "raw-bake"
START = "<!-- bench:start -->"
END = "<!-- bench:end -->"


@dataclass(frozen=True)
class Sample:
    """One timed run of one contender in one scenario."""

    scenario: str
    contender: str
    rep: int
    seconds: float
    #: What bake-ci did (``built 2, reused 2``); empty for the others.
    note: str = ""
    #: User + system CPU seconds of the contender's own processes (bake-ci, git, docker and buildx clients).
    cpu: float | None = None
    #: bake-ci: seconds from its start to its ``docker buildx bake`` call (None when it built nothing).
    before_bake: float | None = None


@dataclass(frozen=True)
class Meta:
    """The header line: when, on what, and how the numbers were taken."""

    date: str
    cores: int
    memory_gib: float
    dockerd: str
    buildx: str
    command: str
    total_seconds: float | None = None
    notes: Sequence[str] = field(default_factory=tuple)
    #: Which bake-ci was measured, e.g. ``commit 43fbb36``.
    bake_ci: str = ""


@dataclass(frozen=True)
class Check:
    """One acceptance threshold: ``value`` (a ratio) must be at most ``limit``."""

    name: str
    limit: float
    value: float | None
    informational: bool = False

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "not measured"
        return "PASS" if self.value <= self.limit else "FAIL"


def values(samples: Iterable[Sample], scenario: str, contender: str) -> list[float]:
    return [s.seconds for s in samples if s.scenario == scenario and s.contender == contender]


def before_bake(samples: Iterable[Sample], scenario: str, contender: str) -> list[float]:
    return [
        s.before_bake
        for s in samples
        if s.scenario == scenario and s.contender == contender and s.before_bake is not None
    ]


def _notes(samples: Sequence[Sample], scenario: str) -> str:
    seen = [s.note for s in samples if s.scenario == scenario and s.contender == "bake-ci" and s.note]
    return "; ".join(dict.fromkeys(seen))


def table(samples: Sequence[Sample], scenarios: Sequence[str], contenders: Sequence[str]) -> str:
    """Rows: scenarios; columns: each contender's median (min-max) and its ratio to raw bake."""
    head = ["scenario", "n"]
    for c in contenders:
        head.append(CONTENDERS[c])
        if c != BASELINE and BASELINE in contenders:
            head.append(f"{CONTENDERS[c]} ÷ raw bake")
    show_path = "bake-ci" in contenders
    if show_path:
        head.append("bake-ci did")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sc in scenarios:
        base = values(samples, sc, BASELINE)
        counts = [len(values(samples, sc, c)) for c in contenders]
        n = max(counts) if counts else 0
        row = [SCENARIOS.get(sc, sc), str(n)]
        for c in contenders:
            xs = values(samples, sc, c)
            row.append(seconds_cell(xs))
            if c != BASELINE and BASELINE in contenders:
                row.append(ratio_cell(ratio(xs, base)))
        if show_path:
            row.append(_notes(samples, sc) or "–")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def cpu_table(samples: Sequence[Sample], scenarios: Sequence[str], contenders: Sequence[str]) -> str:
    """Median CPU seconds (user + system) of each contender's own processes, per scenario."""
    head = ["scenario", *(CONTENDERS[c] for c in contenders)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sc in scenarios:
        row = [SCENARIOS.get(sc, sc).split(" (")[0]]
        for c in contenders:
            xs = [s.cpu for s in samples if s.scenario == sc and s.contender == c and s.cpu is not None]
            row.append("–" if not xs else f"{statistics.median(xs):.2f} s")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def checks(samples: Sequence[Sample]) -> list[Check]:
    """The issue's acceptance thresholds, as measured, plus the same ones without the reuse path."""

    def r(scenario: str, contender: str, base: str) -> float | None:
        return ratio(values(samples, scenario, contender), values(samples, scenario, base))

    return [
        Check("hot: bake-ci ≤ 1.05× raw bake", 1.05, r("hot", "bake-ci", BASELINE)),
        Check("warm from registry: bake-ci ≤ 1.05× raw bake", 1.05, r("warm", "bake-ci", BASELINE)),
        Check("cold: bake-ci ≤ 0.75× sequential", 0.75, r("cold", "bake-ci", "sequential")),
        Check("no change, new branch: bake-ci (reuse path) ≤ 0.2× raw bake", 0.2, r("branch", "bake-ci", BASELINE)),
        Check("hot: bake-ci --no-reuse ≤ 1.05× raw bake", 1.05, r("hot", "bake-ci-no-reuse", BASELINE), True),
        Check(
            "warm from registry: bake-ci --no-reuse ≤ 1.05× raw bake",
            1.05,
            r("warm", "bake-ci-no-reuse", BASELINE),
            True,
        ),
    ]


def acceptance(found: Sequence[Check]) -> str:
    lines = []
    for check in found:
        value = "" if check.value is None else f" (measured {check.value:.2f}×)"
        tag = " — informational, the build path without reuse" if check.informational else ""
        lines.append(f"- {check.verdict}: {check.name}{value}{tag}")
    return "\n".join(lines) + "\n"


def header(meta: Meta) -> str:
    text = (
        f"Measured {meta.date} on {meta.cores} cores, {meta.memory_gib:.1f} GiB memory; "
        f"dockerd {meta.dockerd}, buildx {meta.buildx}"
    )
    if meta.bake_ci:
        text += f"; bake-ci at {meta.bake_ci}"
    if meta.total_seconds is not None:
        text += f"; the whole run took {meta.total_seconds / 60:.1f} min"
    return text + f". Command: `{meta.command}`.\n"


def markdown(
    meta: Meta,
    samples: Sequence[Sample],
    scenarios: Sequence[str],
    contenders: Sequence[str],
    extras: Sequence[tuple[str, str]] = (),
) -> str:
    """The whole results file: header, table, extra measurements, notes, acceptance."""
    parts = [header(meta), table(samples, scenarios, contenders)]
    parts.append(
        "Wall time of each contender's whole command, median (min–max) over n repetitions; "
        "ratios are median over median of the same scenario.\n"
    )
    if extras:
        parts += ["**bake-ci's own overhead and other measurements**", ""]
        parts += [f"- {name}: {value}" for name, value in extras]
        parts.append("")
    if any(s.cpu is not None for s in samples):
        parts += [
            "**CPU time of each contender's own processes** (user + system of bake-ci's Python, git and the "
            "docker/buildx clients; not the engine's work), median:",
            "",
            cpu_table(samples, scenarios, contenders),
        ]
    if meta.notes:
        parts += ["**Notes**", ""]
        parts += [f"- {note}" for note in meta.notes]
        parts.append("")
    parts += ["**Acceptance** (as measured)", "", acceptance(checks(samples))]
    return "\n".join(parts)


def splice(text: str, block: str, start_marker: str = START, end_marker: str = END) -> str:
    """Replace what is between the bench markers of ``text`` (a README) with ``block``."""
    start, end = text.find(start_marker), text.find(end_marker)
    if start == -1 or end == -1 or end < start:
        raise ValueError(f"the README has no {start_marker} ... {end_marker} block")
    return text[: start + len(start_marker)] + "\n" + block.strip("\n") + "\n" + text[end:]


#: bench/definitions.py's block, in bench/results.md and the README.
DEFINITIONS_START = "<!-- definitions:start -->"
DEFINITIONS_END = "<!-- definitions:end -->"


def keep_definitions(old: str, new: str) -> str:
    """``new`` (run.py's results) followed by the definitions block of ``old``, if it has one."""
    start, end = old.find(DEFINITIONS_START), old.find(DEFINITIONS_END)
    if start == -1 or end < start:
        return new
    return new.rstrip("\n") + "\n\n" + old[start : end + len(DEFINITIONS_END)] + "\n"


def with_definitions(old: str, block: str) -> str:
    """``old`` with its definitions block replaced by ``block`` (appended if it has none)."""
    if DEFINITIONS_START in old:
        return splice(old, block, DEFINITIONS_START, DEFINITIONS_END)
    return old.rstrip("\n") + f"\n\n{DEFINITIONS_START}\n" + block.strip("\n") + f"\n{DEFINITIONS_END}\n"


def _label(event: Mapping[str, Any]) -> str:
    """``docker buildx imagetools inspect`` for a logged command, else the event's name."""
    name = str(event.get("event", "?"))
    cmd = event.get("cmd")
    if name != "run" or not isinstance(cmd, str):
        return name
    words: list[str] = []
    for word in cmd.split():
        if words and (word.startswith(("-", "{", "'", '"')) or "/" in word or ":" in word or "=" in word):
            break
        words.append(word.rsplit("/", 1)[-1])
        if len(words) == 4:
            break
    return " ".join(words)


def timeline(events: Sequence[Mapping[str, Any]], spawned: float, ended: float) -> str:
    """Where one bake-ci process spends its time, from its ``-v --log-format json`` events.

    Consecutive events with the same label are grouped, e.g. ``docker buildx imagetools inspect x4 at 0.28 s``.
    """
    groups: list[tuple[str, int, float]] = []
    for event in events:
        stamp = event.get("timestamp")
        if not isinstance(stamp, str):
            continue
        at = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() - spawned
        label = _label(event)
        if groups and groups[-1][0] == label:
            groups[-1] = (label, groups[-1][1] + 1, groups[-1][2])
        else:
            groups.append((label, 1, at))
    parts = [f"{label}{f' ×{n}' if n > 1 else ''} at {at:.2f} s" for label, n, at in groups]
    return "; ".join([*parts, f"exit at {ended - spawned:.2f} s"])
