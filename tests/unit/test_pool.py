"""Work side by side (bake.pool): results in order, and work started in the background
whose answer or error comes when it is waited for."""

from __future__ import annotations

import threading

import pytest

from bake.pool import background, parallel


def test_parallel_keeps_the_order_of_the_items() -> None:
    assert parallel(lambda n: n * n, [3, 1, 2]) == [9, 1, 4]


def test_background_work_runs_in_another_thread_and_answers_when_asked() -> None:
    answer = background(lambda: threading.current_thread().name, name="lookups")
    assert answer.result(timeout=10) == "lookups"


def test_an_error_in_background_work_is_raised_where_the_answer_is_waited_for() -> None:
    def fail() -> None:
        raise KeyError("no such image")

    answer = background(fail, name="failing")
    with pytest.raises(KeyError, match="no such image"):
        answer.result(timeout=10)
