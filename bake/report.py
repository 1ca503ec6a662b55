"""Per-target results and how they are shown: aligned tables, GitHub Markdown, JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from bake import naming
from bake.progress import TargetProgress

#: built: buildx built (or fully cached) it; reused: an image with the same inputs got
#: this run's tags, nothing was built; failed: its build failed; cancelled: it was stopped
#: (another target of its bake call failed, or the user interrupted the run).
#: merged: a multi-platform index was written from its platforms' images (bake.merge).
Status = Literal["built", "reused", "merged", "failed", "cancelled"]
ICONS: dict[Status, str] = {"built": "✅", "reused": "♻️", "merged": "🔗", "failed": "❌", "cancelled": "⏹️"}


@dataclass(frozen=True, kw_only=True)
class Result:
    """What happened to one target, as the summary, the report file and CI show it."""

    target: str
    status: Status
    image: str
    digest: str | None = None
    seconds: float | None = None
    steps: int | None = None
    cached: int | None = None
    failed_step: str | None = None
    error: str | None = None
    log_tail: tuple[str, ...] = ()
    attempts: int = 1
    log_file: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("built", "reused", "merged")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["log_tail"] = list(self.log_tail)
        return data


def result(
    target: str,
    *,
    image: str,
    metadata: Mapping[str, Any],
    progress: TargetProgress | None,
    succeeded: bool,
    stopped: bool,
    seconds: float,
    earlier: Sequence[TargetProgress] = (),
    log_file: str | None = None,
) -> Result:
    """Combine buildx's metadata (digest) with what the progress stream showed (steps, times).

    ``progress`` is the last attempt's stream, ``earlier`` those of the attempts before it:
    a step one of them built counts as built, and the time is that of every attempt.
    """
    meta = metadata.get(target)
    digest = meta.get("containerimage.digest") if isinstance(meta, dict) else None
    failure = progress.failure if progress and not stopped else None
    status: Status
    if succeeded:
        status = "built"
    elif failure is not None:
        status = "failed"
    elif progress is not None and progress.finished:
        status = "built"  # done before another target of the same bake call failed
    else:
        status = "cancelled"
    return Result(
        target=target,
        status=status,
        image=image,
        digest=digest,
        seconds=_seconds([*earlier, progress], seconds) if progress else seconds,
        steps=len(progress.steps) if progress else None,
        cached=progress.cached_after(earlier) if progress else None,
        failed_step=failure.name if failure else None,
        error=failure.error if failure else None,
        log_tail=tuple(failure.logs[-20:]) if failure else (),
        attempts=len(earlier) + 1,
        log_file=log_file,
    )


def _seconds(attempts: Sequence[TargetProgress], fallback: float) -> float:
    """The target's own time over its attempts (the waits between them left out)."""
    times = [p.seconds for p in attempts if p.seconds is not None]
    return sum(times) if times else fallback


def align(rows: Sequence[Sequence[str]], *, last_free: bool = False) -> str:
    """Rows of cells as aligned plain-text columns (the last one unpadded if ``last_free``)."""
    if not rows:
        return ""
    count = len(rows[0]) - (1 if last_free else 0)
    widths = [max(len(row[i]) for row in rows) for i in range(count)]
    lines = []
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:count], widths, strict=True)] + list(row[count:])
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _row(r: Result) -> list[str]:
    digest = r.digest[:19] if r.digest else "-"
    secs = f"{r.seconds:.1f}s" if r.seconds is not None else "-"
    cached = f"{r.cached}/{r.steps}" if r.steps is not None else "-"
    return [naming.shown(r.target), r.status, secs, cached, r.image or "-", digest]


HEADER = ["TARGET", "STATUS", "TIME", "CACHED", "IMAGE", "DIGEST"]


def table(rows: Sequence[Result], width: int | None = None) -> str:
    """A plain-text table aligned for a terminal or a CI log. With ``width`` (a terminal's),
    the DIGEST column gives way so that each line fits: cut short (``sha256:6294…``), else
    left out. The IMAGE column, the one users copy, is never cut (a line too long even
    without the digest wraps)."""
    cells = [HEADER, *(_row(r) for r in rows)]
    if width is not None:
        digest = HEADER.index("DIGEST")
        others = sum(max(len(row[i]) for row in cells) for i in range(len(HEADER)) if i != digest)
        room = width - others - 2 * (len(HEADER) - 1)
        longest = max(len(row[digest]) for row in cells)
        if room < longest:
            if room >= len("sha256:1234…"):
                for row in cells[1:]:
                    row[digest] = row[digest] if len(row[digest]) <= room else row[digest][: room - 1] + "…"
            else:
                cells = [row[:digest] + row[digest + 1 :] for row in cells]
    return align(cells)


def markdown(rows: Sequence[Result], title: str = "bake-ci build") -> str:
    """The same table for ``GITHUB_STEP_SUMMARY``."""
    lines = [f"### {title}", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        row = _row(r)
        row[1] = f"{ICONS[r.status]} {r.status}"
        row[4] = f"`{row[4]}`"
        row[5] = f"`{r.digest}`" if r.digest else "-"
        lines.append("| " + " | ".join(row) + " |")
    failed = [r for r in rows if r.failed_step]
    for r in failed:
        lines.append("")
        lines.append(f"**{naming.shown(r.target)}** failed at `{r.failed_step}`")
    return "\n".join(lines) + "\n\n"


def load_metadata(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}
