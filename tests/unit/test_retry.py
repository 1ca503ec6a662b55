"""The one retry schedule: backoff with jitter over a minute, Retry-After honoured, and the
buildx fallback of the registry client retried on it. Time is a fake clock: nothing sleeps."""

from __future__ import annotations

import email.utils

import pytest

from bake import bases, registry, retry
from bake.engine import images, process
from bake.engine.process import CommandFailed
from bake.errors import UsageError


class FakeTime:
    """A monotonic clock that moves only when something waits (or an attempt takes time)."""

    def __init__(self, randoms: list[float] | None = None, wall: float = 1_800_000_000.0) -> None:
        self.t = 0.0
        self.wall = wall
        self.waits: list[float] = []
        self.randoms = randoms

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.t += seconds

    def clock(self, random: float | None = None) -> retry.Clock:
        def draw() -> float:
            if random is not None:
                return random
            assert self.randoms, "no random number left"
            return self.randoms.pop(0)

        return retry.Clock(sleep=self.sleep, monotonic=lambda: self.t, now=lambda: self.wall + self.t, random=draw)


def waits_until_given_up(policy: retry.Policy, clock: retry.Clock, time: FakeTime, attempt: float = 0.0) -> int:
    """Fail every attempt (each taking ``attempt`` seconds) until the schedule gives up; attempts made."""
    r = retry.Retry(policy, clock)
    attempts = 0
    while True:
        attempts += 1
        time.t += attempt
        delay = r.delay()
        if delay is None:
            return attempts
        r.wait(delay)


def test_the_default_schedule_covers_at_least_half_a_minute_and_at_most_a_minute() -> None:
    for jitter in (0.0, 0.999999):  # the longest and the shortest waits the jitter can draw
        time = FakeTime()
        waits_until_given_up(retry.Policy(), time.clock(jitter), time)
        assert 30.0 <= sum(time.waits) <= retry.BUDGET, (jitter, time.waits)
    time = FakeTime()
    waits_until_given_up(retry.Policy(), time.clock(0.0), time)
    assert time.waits[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]  # doubling
    assert max(time.waits) <= retry.LONGEST
    assert sum(time.waits) == pytest.approx(retry.BUDGET)  # the last wait is cut to the budget


def test_an_outage_shorter_than_the_budget_is_waited_out() -> None:
    # attempts that fail at once while the registry is down for 50 s: one starts after it is back
    for jitter in (0.0, 0.5, 0.999999):
        time = FakeTime()
        r = retry.Retry(retry.Policy(), time.clock(jitter))
        while time.t < 50.0:
            delay = r.delay()
            assert delay is not None, f"gave up {time.t:.1f} s into a 50 s outage (jitter {jitter})"
            r.wait(delay)


def test_waits_are_jittered_within_their_upper_half() -> None:
    time = FakeTime(randoms=[0.0, 0.5, 0.999999, 0.25])
    r = retry.Retry(retry.Policy(first=2.0), time.clock())
    assert [r.delay() for _ in range(4)] == pytest.approx([2.0, 3.0, 4.000004, 14.0])


def test_two_runners_hit_by_one_outage_do_not_come_back_together() -> None:
    a, b = FakeTime(), FakeTime()
    waits_until_given_up(retry.Policy(), retry.Clock(sleep=a.sleep, monotonic=lambda: a.t), a)
    waits_until_given_up(retry.Policy(), retry.Clock(sleep=b.sleep, monotonic=lambda: b.t), b)
    assert a.waits != b.waits


def test_retries_stop_at_the_count_or_the_budget_whichever_comes_first() -> None:
    time = FakeTime()
    assert waits_until_given_up(retry.Policy(retries=2), time.clock(0.0), time) == 3
    assert time.waits == [1.0, 2.0]
    time = FakeTime()
    assert waits_until_given_up(retry.Policy(retries=0), time.clock(0.0), time) == 1
    assert time.waits == []
    # attempts of 25 s each: the budget (counted from the first failure) ends them
    time = FakeTime()
    # (failures at 25, 51, 78 and 107 s: the last is past 25 + 60 s)
    assert waits_until_given_up(retry.Policy(retries=100), time.clock(0.0), time, attempt=25.0) == 4
    assert time.waits == [1.0, 2.0, 4.0]


def test_a_long_first_attempt_does_not_use_up_the_budget() -> None:
    time = FakeTime()
    r = retry.Retry(retry.Policy(), time.clock(0.0))
    time.t += 600.0  # a ten-minute build, then the push fails
    assert r.delay() == 1.0


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    now = 1_800_000_000.0
    assert retry.retry_after("7", now) == 7.0
    assert retry.retry_after(email.utils.formatdate(now + 12, usegmt=True), now) == 12.0
    assert retry.retry_after(email.utils.formatdate(now - 50, usegmt=True), now) == 0.0
    for bad in (None, "", "soon", "-3", "1.5e9x"):
        assert retry.retry_after(bad, now) is None


def test_retry_after_is_waited_for_up_to_the_longest_wait() -> None:
    time = FakeTime()
    r = retry.Retry(retry.Policy(), time.clock(0.0))
    assert r.delay(retry_after=9.0) == 9.0  # longer than the backoff's 1 s: the server's word
    assert r.delay(retry_after=0.0) == 2.0  # shorter: the backoff's
    assert r.delay(retry_after=3600.0) == retry.LONGEST


# -- the registry client and its buildx fallback ---------------------------------------------


def test_a_registry_client_that_gave_up_on_a_transient_failure_is_not_retried_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Down:
        def manifest(self, ref: object) -> None:
            raise registry.RegistryError("registry.example: ConnectionRefusedError (9 attempts)", transient=True)

    asked: list[str] = []
    monkeypatch.setattr(images, "registry_descriptor", lambda runner, ref: asked.append(ref))
    with pytest.raises(registry.RegistryError, match="9 attempts"):
        bases.lookup(Down(), process.Runner({}), "registry.example/acme/app:1")  # type: ignore[arg-type]
    assert asked == [], "buildx was asked after the client had retried for a minute"


def test_the_buildx_fallback_is_retried_on_the_same_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    time = FakeTime()
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise CommandFailed(["docker", "buildx", "imagetools"], 1, "ERROR: 503 Service Unavailable")
        return "done"

    assert bases.through_buildx(process.Runner({}), flaky, "tag x", time.clock(0.0)) == "done"
    assert time.waits == [0.5, 1.0]

    def refused() -> str:
        raise CommandFailed(["docker", "buildx", "imagetools"], 1, "ERROR: 401 Unauthorized")

    with pytest.raises(CommandFailed):
        bases.through_buildx(process.Runner({}), refused, "tag x", time.clock(0.0))
    assert time.waits == [0.5, 1.0]  # a refusal is not retried


def test_the_budget_comes_from_the_environment_or_is_a_minute() -> None:
    assert retry.budget({}) == retry.budget({"BAKE_CI_RETRY_BUDGET": " "}) == 60.0
    assert retry.budget({"BAKE_CI_RETRY_BUDGET": "3"}) == 3.0
    assert retry.budget({"BAKE_CI_RETRY_BUDGET": "0.5"}) == 0.5
    for bad in ("soon", "-1", "inf", "nan"):
        with pytest.raises(UsageError, match=f"BAKE_CI_RETRY_BUDGET='{bad}' in the environment is not a number"):
            retry.budget({"BAKE_CI_RETRY_BUDGET": bad})
