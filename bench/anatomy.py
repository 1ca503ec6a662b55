"""Where the wall time of one bake call goes, from buildx's ``--progress rawjson`` stream.

Each vertex (and each status line inside one, e.g. ``pushing manifest``) is put in a
category by its name; a category's wall time is the union of its intervals over all
targets, so 16 cache imports running side by side for 0.5 s count 0.5 s, not 8 s.

    docker buildx bake -f def.json --progress rawjson 2> trace.jsonl
    .venv/bin/python bench/anatomy.py trace.jsonl [more.jsonl ...]
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: (category, pattern on a vertex's or status's name), first match wins.
CATEGORIES = (
    ("cache import", re.compile(r"^importing cache manifest from ")),
    ("cache export", re.compile(r"^exporting cache|^preparing build cache|^writing (cache|layer|config)|^inferred ")),
    ("inline cache", re.compile(r"^preparing layers for inline cache")),
    ("image export and push", re.compile(r"^exporting to |^pushing |^exporting |^naming to |^unpacking to ")),
    ("base image metadata", re.compile(r"^\[internal\] load metadata for |^\[.*\] FROM |^resolve ")),
    ("frontend and context", re.compile(r"^\[internal\] |^transferring ")),
    ("build steps", re.compile(r"^\[")),
)  # fmt: skip


def _time(text: str | None) -> float | None:
    if not text:
        return None
    stamp = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    return dt.datetime.fromisoformat(stamp).timestamp()


def category(name: str) -> str:
    name = re.sub(r"^\[(?!internal\])[\w.-]+\] ", "", name)  # bake prefixes each vertex with its target: [ci-py312] ...
    for label, pattern in CATEGORIES:
        if pattern.search(name):
            return label
    return "other"


@dataclass(frozen=True)
class Interval:
    category: str
    name: str
    start: float
    end: float
    cached: bool


def events(text: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of a rawjson stream (buildx prints them indented, one after another),
    skipping any other text between them."""
    decoder = json.JSONDecoder()
    at = text.find("{")
    while at != -1:
        try:
            event, end = decoder.raw_decode(text, at)
        except ValueError:
            at = text.find("{", at + 1)
            continue
        if isinstance(event, dict):
            yield event
        at = text.find("{", end)


def intervals(text: str) -> list[Interval]:
    """The last known (start, end) of every vertex and status in a rawjson stream."""
    spans: dict[str, tuple[str, float | None, float | None, bool]] = {}
    for event in events(text):
        for v in event.get("vertexes") or []:
            key = "v" + v["digest"]
            old = spans.get(key, (v.get("name", ""), None, None, False))
            spans[key] = (
                v.get("name", old[0]),
                _time(v.get("started")) or old[1],
                _time(v.get("completed")) or old[2],
                bool(v.get("cached")) or old[3],
            )
        for s in event.get("statuses") or []:
            key = "s" + s["vertex"] + s["id"]
            old = spans.get(key, (s.get("id", ""), None, None, False))
            spans[key] = (old[0], _time(s.get("started")) or old[1], _time(s.get("completed")) or old[2], False)
    return [
        Interval(category(name), name, start, end, cached)
        for name, start, end, cached in spans.values()
        if start is not None and end is not None
    ]


def union(spans: Sequence[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def summary(found: Sequence[Interval]) -> dict[str, tuple[float, int]]:
    """Per category: (wall seconds, union over targets; number of intervals); plus ``span``."""
    out: dict[str, tuple[float, int]] = {}
    for label in dict.fromkeys([c for c, _ in CATEGORIES] + ["other"]):
        mine = [(i.start, i.end) for i in found if i.category == label]
        if mine:
            out[label] = (union(mine), len(mine))
    if found:
        out["span"] = (max(i.end for i in found) - min(i.start for i in found), len(found))
    return out


def main(argv: Sequence[str]) -> int:
    for path in argv:
        found = intervals(Path(path).read_text(errors="replace"))
        cells = ", ".join(f"{label} {secs:.2f} s ({n})" for label, (secs, n) in summary(found).items())
        print(f"{path}: {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
