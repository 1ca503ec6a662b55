"""Per-target results and how they are shown: a terminal table and GitHub Markdown."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bake.progress import TargetProgress


@dataclass(frozen=True)
class Result:
    target: str
    status: str  # built | failed | cancelled
    image: str
    digest: str | None
    seconds: float | None
    steps: int | None
    cached: int | None
    failed_step: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def results(
    targets: Sequence[str],
    tags: Mapping[str, str],
    metadata: Mapping[str, Any],
    progress: Mapping[str, TargetProgress] | None,
    succeeded: bool,
    total_seconds: float,
) -> list[Result]:
    """Combine buildx's metadata file (digests) with the progress stream (steps, times)."""
    out: list[Result] = []
    for target in targets:
        meta = metadata.get(target) or {}
        digest = meta.get("containerimage.digest") if isinstance(meta, dict) else None
        seen = progress.get(target) if progress else None
        failure = seen.failure if seen else None
        if succeeded:
            status = "built"
        elif failure is not None:
            status = "failed"
        elif seen is not None and seen.finished and any("exporting to" in v.name for v in seen.vertexes.values()):
            status = "built"
        else:
            status = "cancelled"
        out.append(
            Result(
                target=target,
                status=status,
                image=tags[target],
                digest=digest,
                seconds=(seen.seconds if seen and seen.seconds is not None else total_seconds),
                steps=len(seen.steps) if seen else None,
                cached=seen.cached_steps if seen else None,
                failed_step=failure.name if failure else None,
            )
        )
    return out


def _row(r: Result) -> list[str]:
    digest = r.digest[:19] if r.digest else "-"
    secs = f"{r.seconds:.1f}s" if r.seconds is not None else "-"
    cached = f"{r.cached}/{r.steps}" if r.steps is not None else "-"
    return [r.target, r.status, secs, cached, r.image, digest]


HEADER = ["TARGET", "STATUS", "TIME", "CACHED", "IMAGE", "DIGEST"]


def table(rows: Sequence[Result]) -> str:
    """A plain-text table aligned for a terminal or a CI log."""
    cells = [HEADER, *(_row(r) for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines) + "\n"


def markdown(rows: Sequence[Result], title: str = "bake-ci build") -> str:
    """The same table for ``GITHUB_STEP_SUMMARY``."""
    icon = {"built": "✅", "failed": "❌", "cancelled": "⏹️"}
    lines = [f"### {title}", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        row = _row(r)
        row[1] = f"{icon.get(r.status, '')} {r.status}".strip()
        row[4] = f"`{row[4]}`"
        row[5] = f"`{r.digest}`" if r.digest else "-"
        lines.append("| " + " | ".join(row) + " |")
    failed = [r for r in rows if r.failed_step]
    for r in failed:
        lines.append("")
        lines.append(f"**{r.target}** failed at `{r.failed_step}`")
    return "\n".join(lines) + "\n\n"


def load_metadata(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}
