"""Trying a registry request again while the registry says "later" (429, 5xx) or cannot be reached.

Small and self-contained on purpose: one function, :func:`call`, that runs an attempt
until it succeeds, raises something that is not :class:`Again`, or has used its attempts
or its time. The delay doubles from ``base`` with jitter, and a registry's
``Retry-After`` is honoured (up to ``cap``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Again(Exception):
    """An attempt failed for a reason that may pass: try again, after ``retry_after`` if given."""

    def __init__(self, message: str, retry_after: float | None = None, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        #: the registry could not be reached at all (as opposed to answering "later")
        self.unreachable = unreachable


def call(
    attempt: Callable[[], T],
    *,
    attempts: int = 7,
    base: float = 0.5,
    cap: float = 30.0,
    budget: float = 90.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_retry: Callable[[Again, float], None] | None = None,
) -> T:
    """``attempt()``, again after each :class:`Again`, at most ``attempts`` times and while the
    waits stay within ``budget`` seconds; the last :class:`Again` is raised when they run out."""
    started = clock()
    for n in range(attempts):
        try:
            return attempt()
        except Again as exc:
            delay = exc.retry_after if exc.retry_after is not None else base * 2**n * random.uniform(0.8, 1.2)
            delay = min(max(delay, 0.0), cap)
            if n + 1 >= attempts or clock() - started + delay > budget:
                raise
            if on_retry is not None:
                on_retry(exc, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
