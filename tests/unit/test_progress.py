"""Per-target accounting of buildx ``--progress rawjson`` status objects, and reading that stream."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from bake.engine.buildx import iter_json_objects
from bake.progress import Event, Tracker, describe, parse_time

from .conftest import results
from .helpers import ts, vertex

PIP_ERROR = 'process "/bin/sh -c pip install -r requirements.txt" did not complete successfully: exit code: 1'


def log(digest: str, text: str, at: float = 0.0) -> dict[str, Any]:
    return {
        "vertex": f"sha256:{digest}",
        "stream": 1,
        "data": base64.b64encode(text.encode()).decode(),
        "timestamp": ts(at),
    }


def status(vertexes: list[dict[str, Any]] | None = None, logs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if vertexes:
        out["vertexes"] = list(vertexes)
    if logs:
        out["logs"] = list(logs)
    return out


A = "[ci-py311 "
B = "[ci-py312 "
FROM_311 = "base 1/2] FROM docker.io/library/python:3.11-slim"
FROM_312 = "base 1/2] FROM docker.io/library/python:3.12-slim"
UPGRADE = "base 2/2] RUN pip install --upgrade pip"
COPY_REQ = "deps 1/2] COPY requirements.txt ."
PIP = "deps 2/2] RUN pip install -r requirements.txt"

#: ci-py311 builds (1 of 4 steps cached; FROM is not a step); ci-py312 fails at ``RUN pip install`` after 4 s.
MIXED = [
    status(
        [
            vertex("a1", A + "internal] load build definition from Dockerfile", 0.0, 0.1),
            vertex("b1", B + "internal] load build definition from Dockerfile", 0.0, 0.1),
        ]
    ),
    status(
        [
            vertex("a2", A + FROM_311, 0.2, 0.2),
            vertex("a3", A + UPGRADE, 0.2, 0.2, cached=True),
            vertex("b2", B + FROM_312, 0.2, 0.2),
            vertex("b3", B + UPGRADE, 0.2),
        ]
    ),
    status(
        [
            vertex("a4", A + COPY_REQ, 0.3, 0.6),
            vertex("a5", A + PIP, 0.6),
            vertex("b3", B + UPGRADE, 0.2, 1.2),
        ]
    ),
    status(
        [vertex("a5", A + PIP, 0.6), vertex("b4", B + COPY_REQ, 1.2, 1.2, cached=True), vertex("b5", B + PIP, 1.3)],
        [log("a5", "Collecting x\nInstalling collected packages: x\n", 1.0)],
    ),
    status(
        [
            vertex("a5", A + PIP, 0.6, 2.6),
            vertex("a6", A + "ci 1/1] COPY . .", 2.6, 2.7),
            vertex("a7", "[ci-py311] exporting to image", 2.7, 3.5),
        ],
        [log("b5", "Collecting x\n", 2.0)],
    ),
    status(logs=[log("b5", "ERROR: No matching distribution found for x\n", 3.9)]),
    status([vertex("b5", B + PIP, 1.3, 4.0, error=PIP_ERROR)]),
]


def feed(tracker: Tracker, statuses: list[dict[str, Any]]) -> list[Event]:
    events: list[Event] = []
    for item in statuses:
        events += tracker.feed(item)
    return events


@pytest.fixture
def mixed() -> tuple[Tracker, list[Event]]:
    tracker = Tracker(["ci-py311", "ci-py312"])
    return tracker, feed(tracker, MIXED)


def test_steps_and_cached_steps_per_target(mixed: tuple[Tracker, list[Event]]) -> None:
    tracker, _ = mixed
    built, failed = tracker.targets["ci-py311"], tracker.targets["ci-py312"]
    assert [(s.name, s.state) for s in built.steps] == [
        ("[" + UPGRADE, "cached"),
        ("[" + COPY_REQ, "done"),
        ("[" + PIP, "done"),
        ("[ci 1/1] COPY . .", "done"),
    ]
    assert built.cached_steps == 1
    assert [(s.name, s.state) for s in failed.steps] == [
        ("[" + UPGRADE, "done"),
        ("[" + COPY_REQ, "cached"),
        ("[" + PIP, "error"),
    ]
    assert failed.cached_steps == 1
    assert built.finished
    assert not failed.finished


def test_bookkeeping_vertexes_belong_to_their_target_but_are_not_steps(mixed: tuple[Tracker, list[Event]]) -> None:
    tracker, _ = mixed
    names = [v.name for v in tracker.targets["ci-py311"].vertexes.values()]
    assert "[internal] load build definition from Dockerfile" in names
    assert "exporting to image" in names
    assert len(names) == 7
    assert len(tracker.targets["ci-py312"].vertexes) == 5


def test_durations(mixed: tuple[Tracker, list[Event]]) -> None:
    tracker, _ = mixed
    assert tracker.targets["ci-py311"].seconds == pytest.approx(3.5)
    assert tracker.targets["ci-py312"].seconds == pytest.approx(4.0)
    pip = tracker.targets["ci-py311"].vertexes["sha256:a5"]
    assert pip.completed is not None
    assert pip.started is not None
    assert (pip.completed - pip.started).total_seconds() == pytest.approx(2.0)


def test_failing_step_and_its_logs(mixed: tuple[Tracker, list[Event]]) -> None:
    tracker, _ = mixed
    assert tracker.targets["ci-py311"].failure is None
    failure = tracker.targets["ci-py312"].failure
    assert failure is not None
    assert failure.name == "[deps 2/2] RUN pip install -r requirements.txt"
    assert failure.error == PIP_ERROR
    assert failure.logs == ["Collecting x", "ERROR: No matching distribution found for x"]


def test_logs_go_to_their_own_target(mixed: tuple[Tracker, list[Event]]) -> None:
    tracker, _ = mixed
    assert tracker.targets["ci-py311"].vertexes["sha256:a5"].logs == [
        "Collecting x",
        "Installing collected packages: x",
    ]
    assert all(not v.logs for d, v in tracker.targets["ci-py312"].vertexes.items() if d != "sha256:b5")


def test_events_once_per_start_and_finish(mixed: tuple[Tracker, list[Event]]) -> None:
    _, events = mixed
    starts = [(e.target, e.vertex.digest) for e in events if e.kind == "start"]
    dones = [(e.target, e.vertex.digest) for e in events if e.kind == "done"]
    assert len(starts) == len(set(starts)) == 12
    assert len(dones) == len(set(dones)) == 12
    lines = [describe(e) for e in events]
    assert "[ci-py311] [base 2/2] RUN pip install --upgrade pip: CACHED" in lines
    assert "[ci-py311] [deps 1/2] COPY requirements.txt .: DONE 0.3s" in lines
    assert "[ci-py312]   ERROR: No matching distribution found for x" in lines
    assert f"[ci-py312] [deps 2/2] RUN pip install -r requirements.txt: ERROR {PIP_ERROR}" in lines


def test_results_of_a_partly_failed_build(mixed: tuple[Tracker, list[Event]]) -> None:
    tracker, _ = mixed
    tags = {"ci-py311": "acme/app-ci:ci-py3.11-main", "ci-py312": "acme/app-ci:ci-py3.12-main"}
    meta = {"ci-py311": {"containerimage.digest": "sha256:" + "1" * 64}}
    rows = results(["ci-py311", "ci-py312"], tags, meta, tracker.targets, succeeded=False, total_seconds=9.0)
    built, failed = rows
    assert (built.status, built.steps, built.cached, built.seconds) == ("built", 4, 1, pytest.approx(3.5))
    assert built.digest == "sha256:" + "1" * 64
    assert built.failed_step is None
    assert (failed.status, failed.steps, failed.cached) == ("failed", 3, 1)
    assert failed.failed_step == "[deps 2/2] RUN pip install -r requirements.txt"


def test_a_target_cancelled_because_another_failed_is_not_a_failure() -> None:
    tracker = Tracker(["ci-py311", "ci-py312"])
    feed(
        tracker,
        [
            status([vertex("a1", A + PIP, 0.0), vertex("b1", B + PIP, 0.0)]),
            status([vertex("b1", B + PIP, 0.0, 1.0, error=PIP_ERROR)]),
            status([vertex("a1", A + PIP, 0.0, 1.1, error="context canceled")]),
        ],
    )
    assert tracker.targets["ci-py311"].failure is None
    failure = tracker.targets["ci-py312"].failure
    assert failure is not None
    assert failure.name == "[" + PIP
    rows = results(["ci-py311", "ci-py312"], {"ci-py311": "a", "ci-py312": "b"}, {}, tracker.targets, False, 2.0)
    assert [r.status for r in rows] == ["cancelled", "failed"]


def test_the_first_real_error_is_the_failure() -> None:
    tracker = Tracker(["ci-py312"])
    feed(
        tracker,
        [
            status([vertex("c", "[deps 1/2] COPY requirements.txt .", 0.0, 0.5, error="context canceled")]),
            status([vertex("b", "[base 2/2] RUN false", 0.0, 2.0, error="exit code: 2")]),
            status([vertex("a", "[base 1/2] RUN false", 0.0, 1.0, error="exit code: 1")]),
        ],
    )
    failure = tracker.targets["ci-py312"].failure
    assert failure is not None
    assert failure.name == "[base 1/2] RUN false"


def test_single_target_stream_has_no_prefixes() -> None:
    tracker = Tracker(["ci-py312"])
    events = feed(
        tracker,
        [
            status([vertex("i", "[internal] load build definition from Dockerfile", 0.0, 0.25)]),
            status(
                [
                    vertex("f", "[base 1/2] FROM docker.io/library/python:3.12-slim", 0.5, 0.5),
                    # never started: a later step's result came from cache
                    vertex("s", "[deps 1/1] RUN pip install -r requirements.txt"),
                    vertex("c", "[ci 1/2] COPY . .", 0.5, 0.5, cached=True),
                    vertex("r", "[ci 2/2] RUN pytest -q", 0.5),
                ]
            ),
            status(logs=[log("r", "3 passed\n")]),
            status([vertex("r", "[ci 2/2] RUN pytest -q", 0.5, 2.0), vertex("e", "exporting to image", 2.0, 2.5)]),
        ],
    )
    progress = tracker.targets["ci-py312"]
    assert [(s.name, s.state) for s in progress.steps] == [
        ("[deps 1/1] RUN pip install -r requirements.txt", "skipped"),
        ("[ci 1/2] COPY . .", "cached"),
        ("[ci 2/2] RUN pytest -q", "done"),
    ]
    assert progress.cached_steps == 2
    assert progress.vertexes["sha256:r"].logs == ["3 passed"]
    assert progress.failure is None
    assert progress.finished
    assert progress.seconds == pytest.approx(2.5)
    assert {e.target for e in events} == {"ci-py312"}
    assert "[ci-py312] [ci 2/2] RUN pytest -q: DONE 1.5s" in [describe(e) for e in events]
    # buildx failed afterwards for another reason: this target still shows as built.
    rows = results(["ci-py312"], {"ci-py312": "acme/app-ci:ci-py3.12-main"}, {}, tracker.targets, False, 9.0)
    assert (rows[0].status, rows[0].steps, rows[0].cached) == ("built", 3, 2)


def test_an_unfinished_target_is_not_built() -> None:
    tracker = Tracker(["ci-py312"])
    tracker.feed(status([vertex("r", "[ci 1/1] RUN pytest -q", 0.0, 1.0), vertex("e", "exporting to image", 1.0)]))
    progress = tracker.targets["ci-py312"]
    assert not progress.finished
    assert [(s.name, s.state) for s in progress.steps] == [("[ci 1/1] RUN pytest -q", "done")]
    rows = results(["ci-py312"], {"ci-py312": "acme/app-ci:ci-py3.12-main"}, {}, tracker.targets, False, 9.0)
    assert rows[0].status == "cancelled"


def test_one_step_under_two_digests_counts_once() -> None:
    tracker = Tracker(["ci-py311", "ci-py312"])
    tracker.feed(
        status(
            [
                vertex("x1", B + UPGRADE, 0.0, 0.0, cached=True),
                vertex("x2", B + UPGRADE),
                vertex("e", "[ci-py312] exporting to image", 0.1, 0.2),
            ]
        )
    )
    progress = tracker.targets["ci-py312"]
    assert [(s.name, s.state) for s in progress.steps] == [("[" + UPGRADE, "cached")]
    assert progress.cached_steps == 1


def test_a_cache_import_that_finds_nothing_is_not_a_failure() -> None:
    tracker = Tracker(["ci-py312"])
    tracker.feed(
        status(
            [
                vertex(
                    "m",
                    "importing cache manifest from ghcr.io/acme/app-ci-cache:ci-py3.12-topic",
                    0.0,
                    0.1,
                    error="ghcr.io/acme/app-ci-cache:ci-py3.12-topic: not found",
                ),
                vertex("r", "[ci 1/1] RUN pytest -q", 0.1, 1.0),
                vertex("e", "exporting to image", 1.0, 1.5),
            ]
        )
    )
    assert tracker.targets["ci-py312"].failure is None
    rows = results(["ci-py312"], {"ci-py312": "x"}, {}, tracker.targets, True, 2.0)
    assert (rows[0].status, rows[0].failed_step) == ("built", None)


def test_vertexes_of_unknown_targets_are_ignored() -> None:
    tracker = Tracker(["ci-py311", "ci-py312"])
    events = tracker.feed(status([vertex("x", "[docs-py312 internal] load build definition", 0.0, 0.1)]))
    assert events == []
    assert all(not p.vertexes for p in tracker.targets.values())


# -- timestamps ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T12:00:01.123456789Z", datetime(2026, 3, 1, 12, 0, 1, 123456, timezone.utc)),
        ("2026-03-01T12:00:01Z", datetime(2026, 3, 1, 12, 0, 1, 0, timezone.utc)),
        ("2026-03-01T12:00:01.5Z", datetime(2026, 3, 1, 12, 0, 1, 500000, timezone.utc)),
        ("2026-03-01T14:00:01.25+02:00", datetime(2026, 3, 1, 12, 0, 1, 250000, timezone.utc)),
        ("2026-03-01T05:00:01.25-07:00", datetime(2026, 3, 1, 12, 0, 1, 250000, timezone.utc)),
        ("2026-03-01T05:00:01-07:00", datetime(2026, 3, 1, 12, 0, 1, 0, timezone.utc)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", [None, ""])
def test_parse_time_of_nothing(text: str | None) -> None:
    assert parse_time(text) is None


@pytest.fixture
def local_time_tokyo() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.mark.usefixtures("local_time_tokyo")
def test_failure_without_a_completion_time_outside_utc() -> None:
    tracker = Tracker(["ci-py312"])
    tracker.feed(status([vertex("a", "[ci 1/1] RUN false", 0.0, error="exit code: 1")]))
    failure = tracker.targets["ci-py312"].failure
    assert failure is not None
    assert failure.name == "[ci 1/1] RUN false"


# -- reading buildx's stderr ---------------------------------------------------------------


def test_iter_json_objects_mixed_with_plain_lines() -> None:
    first = {"vertexes": [vertex("a", "[internal] load build definition from Dockerfile", 0.0)]}
    second = {"logs": [log("a", "hello\n")]}
    third = {"vertexes": [vertex("a", "[internal] load build definition from Dockerfile", 0.0, 0.1)]}
    text = (
        '#0 building with "default" instance using docker driver\n'
        + json.dumps(first, indent=2)
        + "\n"
        + "WARNING: current commit information was not captured by the build\n"
        + "\n"
        + json.dumps(second, indent=2)
        + "\n"
        + json.dumps(third)
        + "\n"
        + "ERROR: target ci-py312: failed to solve: exit code: 1\n"
    )
    plain: list[str] = []
    objects = list(iter_json_objects(io.StringIO(text), plain.append))
    assert objects == [first, second, third]
    assert plain == [
        '#0 building with "default" instance using docker driver',
        "WARNING: current commit information was not captured by the build",
        "ERROR: target ci-py312: failed to solve: exit code: 1",
    ]


def test_iter_json_objects_keeps_a_truncated_object_as_text() -> None:
    plain: list[str] = []
    objects = list(iter_json_objects(io.StringIO('{"vertexes": [\n  {"digest": "sha256:a"\n'), plain.append))
    assert objects == []
    assert plain == ['{"vertexes": [\n  {"digest": "sha256:a"']


def test_importing_the_engine_does_not_need_docker() -> None:
    code = "import sys, bake.engine, bake.cli; assert 'python_on_whales' not in sys.modules, 'imported eagerly'"
    env = {"PATH": "", "DOCKER_HOST": "unix:///nonexistent/docker.sock", "HOME": "/nonexistent"}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_steps_are_listed_in_build_order_when_buildkit_reports_the_last_first() -> None:
    first = vertex("a1", "[deps 1/2] COPY requirements.txt .", 0, 0.1, cached=True)
    second = vertex("a2", "[deps 2/2] RUN pip install -r requirements.txt", 0, 0.1, cached=True)
    third = vertex("a3", "[ci 1/1] COPY . .", 0, 0.2)
    second["inputs"], third["inputs"] = ["sha256:a1"], ["sha256:a2"]
    tracker = Tracker(["ci-py312"])
    feed(tracker, [status([third, second, first])])
    names = [s.name for s in tracker.targets["ci-py312"].steps]
    assert names == ["[deps 1/2] COPY requirements.txt .", "[deps 2/2] RUN pip install -r requirements.txt",
                     "[ci 1/1] COPY . ."]  # fmt: skip
