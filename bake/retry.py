"""Trying again after a registry or network failure: the one schedule every retry follows.

A failed attempt is followed by a wait that doubles each time (``first``, ``2·first``,
… at most ``longest``), each drawn at random from its upper half (jitter, so that many
runners hit by the same outage do not come back at the same instant), or the server's
``Retry-After`` when it asks for longer. Retries go on for ``budget`` seconds after the
first failure: an outage of a minute (a registry restarting, a hosted registry's hiccup)
is waited out; no attempt starts after that, and there are at most ``retries`` of them.

Each operation retries at one level only: the registry client retries each HTTP request
(it sees ``Retry-After``), the executor each bake call, and the buildx fallbacks of
tagging each command; none of them wraps another that retries (see bake/reuse.py).

Time is injected (``sleep``, ``clock``, ``now``, ``random``): unit tests never sleep.
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bake.errors import UsageError

#: retries of one operation at most (the budget usually ends them first)
RETRIES = 8
#: the first wait, doubled after each failure
FIRST = 1.0
#: the longest single wait, a server's Retry-After included
LONGEST = 30.0
#: the environment variable that sets another budget, in seconds
BUDGET_ENV = "BAKE_CI_RETRY_BUDGET"


#: no retry starts this long after the first failure, unless BAKE_CI_RETRY_BUDGET says otherwise
BUDGET = 60.0


def budget(environ: Mapping[str, str]) -> float:
    """``BAKE_CI_RETRY_BUDGET`` in a run's environment: seconds of retries after the first
    failure (a job that would rather fail fast, a test of a registry that never answers);
    :data:`BUDGET` when it is unset or blank."""
    text = environ.get(BUDGET_ENV)
    if text is None or not text.strip():
        return BUDGET
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise UsageError(
            f"{BUDGET_ENV}={text!r} in the environment is not a number of seconds: unset it for "
            f"the default ({BUDGET:g} s), or give one such as {BUDGET_ENV}=5"
        )
    return value


#: each wait is drawn from [(1 - JITTER) * wait, wait]
JITTER = 0.5


@dataclass(frozen=True)
class Policy:
    """How many retries, how long the waits, for how long in all."""

    retries: int = RETRIES
    first: float = FIRST
    longest: float = LONGEST
    budget: float = BUDGET
    jitter: float = JITTER


@dataclass(frozen=True)
class Clock:
    """Time as a retry sees it (tests pass their own: no test waits)."""

    sleep: Callable[[float], object] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    now: Callable[[], float] = time.time  # wall clock, for a Retry-After date
    random: Callable[[], float] = _random.random


def retry_after(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` header in seconds from ``now``: delta-seconds or an HTTP-date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    import email.utils  # only for the rare date form

    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - now, 0.0)


#: real time, for everyone who does not inject their own
REAL_TIME = Clock()


class Retry:
    """The retries of one operation: ask :meth:`delay` after each failed attempt."""

    def __init__(self, policy: Policy, clock: Clock = REAL_TIME) -> None:
        self.policy = policy
        self.clock = clock
        #: attempts made so far (the caller's failed ones)
        self.failures = 0
        self.waited = 0.0
        self._deadline: float | None = None

    @property
    def attempt(self) -> int:
        """The number of the attempt about to start (1 for the first)."""
        return self.failures + 1

    def delay(self, retry_after: float | None = None) -> float | None:
        """After a failed attempt: how long to wait before the next, or None when none is left
        (retries or budget used up). ``retry_after``: what the server asked for, in seconds."""
        policy = self.policy
        now = self.clock.monotonic()
        if self._deadline is None:
            self._deadline = now + policy.budget
        self.failures += 1
        left = self._deadline - now
        if self.failures > policy.retries or left <= 0:
            return None
        nominal = min(policy.first * 2.0 ** (self.failures - 1), policy.longest)
        wait = nominal * (1.0 - policy.jitter * self.clock.random())
        if retry_after is not None:
            wait = max(wait, min(retry_after, policy.longest))
        return min(wait, left)

    def wait(self, seconds: float) -> None:
        self.waited += seconds
        self.clock.sleep(seconds)
