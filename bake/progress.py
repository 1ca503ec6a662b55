"""Per-target accounting of buildx's ``--progress rawjson`` stream (pure, no I/O).

With several targets, buildx prefixes every vertex name with the target:
``[ci-py312 deps 2/3] RUN pip install ...``; with one target it does not. Each target's
stream holds every vertex of its graph, including steps shared with other targets.
A *step* is a Dockerfile instruction (``[stage n/m] ...``); everything else (loading
the definition, cache import/export, exporting the image) is bookkeeping.

Names, errors and log lines are redacted as they come in (``ADD https://user:pass@host/…``
names a step with its credentials): every progress line, the board, the logs on disk,
the report and the failure message are made from what the tracker keeps.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from bake.redact import redact

_STEP_RE = re.compile(r"^\[(?:\S+/\S+ )?(?:(?P<stage>[^\s\]]+) )?(?P<n>\d+)/(?P<m>\d+)\] (?P<cmd>.*)$", re.S)
_TS_RE = re.compile(r"(?P<base>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<frac>\d+))?(?P<tz>Z|[+-]\d\d:\d\d)?")
_CANCELED = ("context canceled", "canceled")
_NEVER = datetime.max.replace(tzinfo=timezone.utc)


def parse_time(text: str | None) -> datetime | None:
    """RFC 3339 with nanoseconds (Go) -> aware datetime (Python keeps microseconds)."""
    if not text:
        return None
    match = _TS_RE.fullmatch(text)
    if match is None:
        return None
    frac = (match["frac"] or "0")[:6].ljust(6, "0")
    tz = match["tz"] or "+00:00"
    return datetime.fromisoformat(f"{match['base']}.{frac}{'+00:00' if tz == 'Z' else tz}")


@dataclass
class Vertex:
    digest: str
    name: str
    started: datetime | None = None
    completed: datetime | None = None
    cached: bool = False
    error: str = ""
    logs: list[str] = field(default_factory=list)

    @property
    def instruction(self) -> str | None:
        """``RUN``, ``COPY``, ... for a Dockerfile step; None for bookkeeping vertexes."""
        match = _STEP_RE.match(self.name)
        return match["cmd"].split(" ", 1)[0].upper() if match else None

    @property
    def is_step(self) -> bool:
        """A Dockerfile instruction other than ``FROM`` (which only resolves the base
        image: BuildKit reports it DONE, never CACHED, even when nothing is pulled)."""
        return self.instruction not in (None, "FROM")

    @property
    def canceled(self) -> bool:
        return any(self.error.rstrip().endswith(c) for c in _CANCELED)


@dataclass(frozen=True)
class Step:
    """One Dockerfile instruction of a target, over all the vertexes that carried it.

    BuildKit can report one instruction under several digests (a vertex merged into an
    equal one of another target, or one made unnecessary by a cache hit further on).
    """

    name: str
    state: str  # "cached" | "done" | "error" | "skipped" | "pending"


@dataclass
class TargetProgress:
    """What one target's stream showed so far."""

    target: str
    vertexes: dict[str, Vertex] = field(default_factory=dict)

    @property
    def steps(self) -> list[Step]:
        """The target's build steps (see :attr:`Vertex.is_step`), in order of first appearance."""
        by_name: dict[str, list[Vertex]] = {}
        for v in self.vertexes.values():
            if v.is_step:
                by_name.setdefault(v.name, []).append(v)
        out = []
        for name, group in by_name.items():
            if any(v.error and not v.canceled for v in group):
                state = "error"
            elif any(v.completed and not v.cached and not v.error for v in group):
                state = "done"
            elif any(v.cached for v in group):
                state = "cached"
            elif self.finished:
                state = "skipped"
            else:
                state = "pending"
            out.append(Step(name, state))
        return out

    @property
    def cached_steps(self) -> int:
        """Steps whose result came from cache: reported CACHED, or skipped because a
        later step's result was found in cache."""
        return sum(1 for s in self.steps if s.state in ("cached", "skipped"))

    def cached_after(self, earlier: Sequence[TargetProgress]) -> int:
        """:attr:`cached_steps` of this attempt, less the steps an earlier attempt built.

        A retried call (say a push the registry refused) finds in the builder's cache what
        the first attempt built: those steps were built by this run, not taken from cache.
        """
        built = {s.name for p in earlier for s in p.steps if s.state in ("done", "error")}
        return sum(1 for s in self.steps if s.state in ("cached", "skipped") and s.name not in built)

    @property
    def failure(self) -> Vertex | None:
        """The first vertex that failed on its own: not cancelled because another did,
        and not a cache import that found nothing (buildx only warns about those)."""
        failed = [
            v
            for v in self.vertexes.values()
            if v.error and not v.canceled and not v.name.startswith("importing cache manifest")
        ]
        failed.sort(key=lambda v: v.completed or _NEVER)
        return failed[0] if failed else None

    @property
    def finished(self) -> bool:
        """Whether the image was exported: the last thing a target's build does."""
        return any(v.name.startswith("exporting to") and v.completed and not v.error for v in self.vertexes.values())

    @property
    def seconds(self) -> float | None:
        starts = [v.started for v in self.vertexes.values() if v.started]
        ends = [v.completed for v in self.vertexes.values() if v.completed]
        if not starts or not ends:
            return None
        return max(0.0, (max(ends) - min(starts)).total_seconds())


@dataclass(frozen=True)
class Event:
    """Something worth a line of plain output."""

    target: str
    kind: str  # "start" | "log" | "done"
    vertex: Vertex
    text: str = ""


class Tracker:
    """Feed it rawjson status objects; it keeps per-target progress and emits events."""

    def __init__(self, targets: Sequence[str]) -> None:
        self.targets = {t: TargetProgress(t) for t in targets}
        self._single = targets[0] if len(targets) == 1 else None
        self._owner: dict[tuple[str, str], str] = {}

    def _split(self, name: str) -> tuple[str | None, str]:
        if self._single is not None:
            return self._single, name
        for target in self.targets:
            for opener, rest in ((f"[{target} ", "["), (f"[{target}] ", "")):
                if name.startswith(opener):
                    return target, rest + name[len(opener) :]
        return None, name

    def feed(self, status: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        names: dict[str, list[str]] = {}
        for raw in status.get("vertexes") or []:
            target, name = self._split(redact(str(raw.get("name", ""))))
            if target is None:
                continue
            digest = str(raw.get("digest", ""))
            names.setdefault(digest, []).append(target)
            progress = self.targets[target]
            vertex = progress.vertexes.get(digest)
            if vertex is None:
                vertex = progress.vertexes[digest] = Vertex(digest, name)
            was_started, was_completed = vertex.started, vertex.completed
            vertex.started = parse_time(raw.get("started")) or vertex.started
            vertex.completed = parse_time(raw.get("completed")) or vertex.completed
            vertex.cached = vertex.cached or bool(raw.get("cached"))
            vertex.error = redact(str(raw["error"])) if raw.get("error") else vertex.error
            if vertex.started and not was_started:
                events.append(Event(target, "start", vertex))
            if vertex.completed and not was_completed:
                events.append(Event(target, "done", vertex))
        for entry in sorted(status.get("logs") or [], key=lambda e: str(e.get("timestamp", ""))):
            digest = str(entry.get("vertex", ""))
            owners = names.get(digest) or [t for t, p in self.targets.items() if digest in p.vertexes]
            try:
                data = redact(base64.b64decode(entry.get("data") or "").decode("utf-8", "replace"))
            except ValueError:
                continue
            for target in owners[:1]:
                vertex = self.targets[target].vertexes[digest]
                for line in data.splitlines():
                    vertex.logs.append(line)
                    events.append(Event(target, "log", vertex, line))
        return events


def describe(event: Event) -> str:
    """A plain-progress line for an event, prefixed with its target."""
    v = event.vertex
    if event.kind == "start":
        return f"[{event.target}] {v.name}"
    if event.kind == "log":
        return f"[{event.target}]   {event.text}"
    if v.error:
        return f"[{event.target}] {v.name}: {'CANCELED' if v.canceled else 'ERROR ' + v.error}"
    if v.cached:
        return f"[{event.target}] {v.name}: CACHED"
    secs = max(0.0, (v.completed - v.started).total_seconds()) if v.completed and v.started else 0.0
    return f"[{event.target}] {v.name}: DONE {secs:.1f}s"
