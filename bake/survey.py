"""The build context read by a copy of this process while the CLI starts.

On the reuse path two costs of about the same size follow each other: importing the
rest of bake-ci and validating the configuration (pydantic above all), and reading a
large context (an lstat of every path, and the memo of earlier runs' hashes matched
against every file). With a second core they overlap: the CLI asks :func:`guess` which
context, Dockerfile and memo the run will read (from the raw configuration), and
:func:`start` has a forked copy of the process read them, with the same code
(:func:`bake.fingerprint.survey`). :func:`take` hands the copy's reading over only if
it read the very files that the validated configuration names; otherwise (no fork,
another context, a failed copy) the context is read in this process, as it would be
without this module. Either way the fingerprint is the same code's answer.
"""

from __future__ import annotations

import marshal
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from bake import fingerprint, logs
from bake.engine import process

log = logs.get_logger("bake")


class Request(NamedTuple):
    context: Path
    dockerfile: Path
    memo: Path


_pending: tuple[Request, process.Forked] | None = None


def guess(config_file: Path | None, environ: Mapping[str, str], state_dir: Path | None) -> Request | None:
    """What a run of this configuration will read, where the raw file says it plainly
    (as :func:`bake.config.load` and :meth:`bake.state.State.locate` will find it)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    from bake.state import State

    path = config_file if config_file is not None else Path("pyproject.toml")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))["tool"]["bake-ci"]
        context, dockerfile = table.get("context", "."), table.get("dockerfile", "Dockerfile")
        root = path.resolve().parent
    except (OSError, ValueError, LookupError, TypeError, AttributeError):
        return None
    if not isinstance(context, str) or not isinstance(dockerfile, str):
        return None
    return Request(root / context, root / dockerfile, State.locate(root, environ, state_dir).blob_memo())


def worthwhile() -> bool:
    """Whether a copy can run beside this process (with one core it only adds its cost)."""
    try:
        return len(os.sched_getaffinity(0)) > 1
    except AttributeError:  # pragma: no cover - no sched_getaffinity: not Linux
        return (os.cpu_count() or 1) > 1


def start(request: Request) -> None:
    """Have a copy of this process read ``request``'s context and memo, now."""
    global _pending
    discard()
    forked = process.fork_call(lambda: read(request))
    if forked is not None:
        _pending = (request, forked)


def take(context: Path, dockerfile: Path, memo_file: Path | None) -> fingerprint.Survey | None:
    """The copy's reading, if it read this context, Dockerfile and memo and finished
    well; None (and the copy stopped) otherwise."""
    global _pending
    if _pending is None:
        return None
    (request, forked), _pending = _pending, None
    if memo_file is None or request != Request(context, dockerfile, memo_file):
        log.debug("the context is read here: the copy read another", copy=[os.fspath(p) for p in request])
        forked.stop()
        return None
    answer = forked.result()
    try:
        if answer is None:
            raise ValueError("the copy failed")
        started, flat, blobs, size = marshal.loads(answer)
        new, entry, fields = tuple.__new__, fingerprint.Entry, [iter(flat)] * 8
        entries = {
            p: new(entry, (kind, mode, n, target, (mtime, ctime, ino)))
            for p, kind, mode, n, target, mtime, ctime, ino in zip(*fields, strict=True)
        }
    except (ValueError, TypeError, EOFError) as exc:
        log.debug("the context is read here", reason=str(exc))
        return None
    log.debug("the context was read by a copy of this process", pid=forked.pid, paths=len(entries))
    return fingerprint.Survey(entries, fingerprint.Memo.matched_elsewhere(memo_file, context, started, blobs, size))


def discard() -> None:
    """Stop a copy whose reading no one took."""
    global _pending
    if _pending is not None:
        _pending[1].stop()
        _pending = None


def read(request: Request) -> bytes:
    """In the copy: the context and memo that ``request`` names, as :func:`take` reads them."""
    entries, memo = fingerprint.survey(request.context, request.dockerfile, request.memo)
    assert memo is not None
    blobs = memo.blobs(entries, [p for p, e in entries.items() if e.kind == "file"])
    # one flat list: marshal reads it back several times faster than a dict of tuples
    flat = [x for p, e in entries.items() for x in (p, e.kind, e.mode, e.size, e.target, *e.identity)]
    return marshal.dumps((memo.started, flat, blobs, memo.size))
