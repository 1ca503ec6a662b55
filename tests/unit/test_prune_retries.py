"""gc's registry requests (bake.prune.Registry) on bake.retry's schedule: Retry-After honoured,
doubling waits with jitter, a bounded number of retries and time, other failures not retried."""

from __future__ import annotations

import pytest

from bake import prune, registry, retry

REF = registry.Reference.parse("127.0.0.1:9/acme/app-ci:x")
OK = (200, {}, b"{}")


class Scripted:
    """A registry client answering from a script: (status, headers) tuples or exceptions."""

    def __init__(self, script: list[object]) -> None:
        self.script = script
        self.calls = 0

    def request(self, method: str, ref: registry.Reference, what: str, **kw: object) -> object:
        self.calls += 1
        step = self.script.pop(0) if self.script else OK
        if isinstance(step, Exception):
            raise step
        return step


class Time:
    def __init__(self, random: float = 0.0) -> None:
        self.t = 0.0
        self.waits: list[float] = []
        self.draw = random

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.t += seconds

    def clock(self) -> retry.Clock:
        return retry.Clock(sleep=self.sleep, monotonic=lambda: self.t, now=lambda: 1e9, random=lambda: self.draw)


def reg(script: list[object], time: Time, policy: retry.Policy = registry.POLICY) -> prune.Registry:
    return prune.Registry(Scripted(script), policy, time.clock())  # type: ignore[arg-type]


def test_retry_after_is_honoured_and_the_answer_returned() -> None:
    time = Time()
    r = reg([(429, {"retry-after": "3"}, b""), (503, {"retry-after": "0"}, b"")], time)
    assert r.blob(REF, "sha256:a") == b"{}"
    assert time.waits == [3.0, 1.0]  # the server's 3 s; then the schedule's own 1 s (longer than its 0)


def test_waits_double_with_jitter_and_are_capped() -> None:
    unreachable = [registry.RegistryUnavailable("127.0.0.1:9: connection refused") for _ in range(4)]
    time = Time(random=0.5)
    r = reg(list(unreachable), time, retry.Policy(first=1.0, longest=3.0))
    assert r.blob(REF, "sha256:a") == b"{}"  # answered once the registry is back
    assert time.waits == [0.75, 1.5, 2.25, 2.25]  # 1, 2, 3, 3 s each cut by a quarter at this draw


def test_retries_and_time_run_out() -> None:
    time = Time()
    r = reg([(429, {"retry-after": "1"}, b"")] * 10, time, retry.Policy(retries=2, first=0.5))
    with pytest.raises(prune.Again, match="HTTP 429"):
        r.blob(REF, "sha256:a")
    assert time.waits == [1.0, 1.0]
    time = Time()
    r = reg([(503, {"retry-after": "30"}, b"")] * 10, time, retry.Policy(budget=45.0))
    with pytest.raises(prune.Again, match="HTTP 503"):
        r.blob(REF, "sha256:a")
    assert time.waits == [30.0, 15.0]  # the second wait cut to what is left of the 45 s; no more
    time = Time()
    r = reg([registry.RegistryUnavailable("down")] * 20, time)
    with pytest.raises(prune.Again) as raised:
        r.blob(REF, "sha256:a")
    assert raised.value.unreachable
    assert sum(time.waits) == pytest.approx(retry.BUDGET)


def test_other_failures_are_not_retried() -> None:
    time = Time()
    with pytest.raises(registry.RegistryError, match="bad answer"):
        reg([registry.RegistryError("bad answer")], time).blob(REF, "sha256:a")
    with pytest.raises(prune.Refused, match="DELETE"):
        reg([registry.RegistryError("unauthorized: token lacks delete")], time).delete(REF, "sha256:a")
    assert time.waits == []
