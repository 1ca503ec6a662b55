"""gc's retries (bake.backoff): Retry-After honoured, doubling delays, a bounded number of attempts and time."""

from __future__ import annotations

import pytest

from bake.backoff import Again, call


def flaky(failures: list[Again]) -> object:
    def attempt() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    return attempt


def test_retry_after_is_honoured_and_the_answer_returned() -> None:
    slept: list[float] = []
    attempt = flaky([Again("429", retry_after=3.0), Again("503", retry_after=0.0)])
    assert call(attempt, sleep=slept.append) == "done"  # type: ignore[arg-type]
    assert slept == [3.0, 0.0]


def test_delays_double_with_jitter_and_are_capped() -> None:
    slept: list[float] = []
    attempt = flaky([Again("down", unreachable=True) for _ in range(4)])
    assert call(attempt, base=1.0, cap=3.0, sleep=slept.append) == "done"  # type: ignore[arg-type]
    assert 0.8 <= slept[0] <= 1.2
    assert 1.6 <= slept[1] <= 2.4
    assert slept[2:] == [3.0, 3.0]


def test_attempts_and_time_run_out() -> None:
    slept: list[float] = []
    with pytest.raises(Again, match="still 429"):
        call(flaky([Again("still 429", retry_after=1.0)] * 10), attempts=3, sleep=slept.append)  # type: ignore[arg-type]
    assert slept == [1.0, 1.0]
    now = [0.0]
    with pytest.raises(Again):
        call(
            flaky([Again("slow", retry_after=30.0)] * 10),  # type: ignore[arg-type]
            budget=45.0,
            sleep=lambda s: now.__setitem__(0, now[0] + s),
            clock=lambda: now[0],
        )
    assert now[0] == 30.0  # a second wait of 30 s would pass the 45 s budget


def test_other_errors_are_not_retried() -> None:
    def attempt() -> str:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        call(attempt, sleep=lambda s: pytest.fail("slept"))
