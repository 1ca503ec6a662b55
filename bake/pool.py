"""Independent work side by side: registry requests, docker commands, hashing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def parallel(fn: Callable[[T], R], items: Sequence[T], workers: int = 8) -> list[R]:
    """``fn`` over ``items`` in threads, results in order (one item: no thread at all)."""
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def background(fn: Callable[[], R], name: str) -> Future[R]:
    """Start ``fn`` now in a daemon thread (one that does not hold up the exit: an error
    found meanwhile does not wait for it); its result, or its exception, comes from the
    future."""
    answer: Future[R] = Future()

    def run() -> None:
        try:
            answer.set_result(fn())
        except BaseException as exc:  # raised where the answer is waited for
            answer.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return answer
