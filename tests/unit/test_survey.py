"""The context read by a copy of the process while the CLI starts (bake.survey): what it
hands over is what this process would have read, and only for the files the validated
configuration names. No Docker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bake import state, survey

PYPROJECT = '[tool.bake-ci]\nimage = "acme/app"\npython = ["3.12"]\n'


def project(tmp_path: Path, extra: str = "") -> Path:
    root = tmp_path / "project"
    (root / "docker").mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(PYPROJECT + extra)
    return root


def test_guess_names_the_context_dockerfile_and_memo_the_run_will_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path)
    monkeypatch.chdir(root)
    env = {"HOME": str(tmp_path / "home")}
    memo = state.State.locate(root, env).blob_memo()
    assert survey.guess(None, env, None) == survey.Request(root, root / "Dockerfile", memo)

    config = project(tmp_path, 'context = "docker"\ndockerfile = "docker/ci.Dockerfile"\n') / "pyproject.toml"
    expected = survey.Request(root / "docker", root / "docker" / "ci.Dockerfile", tmp_path / "st" / "blobs")
    assert survey.guess(config, env, tmp_path / "st") == expected
    assert survey.guess(config, {**env, "BAKE_CI_STATE_DIR": str(tmp_path / "st")}, None) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",  # no [tool.bake-ci]
        '[tool.bake-ci]\ncontext = ["."]\n',  # not a string: validation will say so
        "[tool.bake-ci\n",  # not TOML
        'tool = "x"\n',
    ],
)
def test_guess_reads_nothing_it_cannot_take_plainly(tmp_path: Path, text: str) -> None:
    (tmp_path / "pyproject.toml").write_text(text)
    assert survey.guess(tmp_path / "pyproject.toml", {}, None) is None
    assert survey.guess(tmp_path / "missing.toml", {}, None) is None


#: Run in a fresh interpreter: a fork is refused while another thread runs, and the
#: test process may have some.
SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from bake import fingerprint, logs, survey

    logs.configure("json")  # to stderr: stdout is the answer
    context, memo = Path(sys.argv[1]), Path(sys.argv[2])
    request = survey.Request(context, context / "Dockerfile", memo)

    def records(taken):
        entries, m = taken
        paths = sorted(entries)
        return {"entries": {p: list(entries[p][:4]) for p in paths},
                "records": fingerprint.content_records(context, entries, paths, memo=m)}

    out = {}
    here = fingerprint.survey(*request)
    out["here"] = records(here)
    here.memo.save(here.entries)  # what an earlier run leaves

    survey.start(request)
    out["copy"] = records(survey.take(*request))

    survey.start(request)
    out["other"] = survey.take(context / "sub", context / "Dockerfile", memo) is None

    survey.start(request)
    os.kill(survey._pending[1].pid, signal.SIGKILL)  # the copy dies before it answers
    out["killed"] = survey.take(*request) is None
    print(json.dumps(out))
    """
)


def test_the_copy_hands_over_what_this_process_would_read(tmp_path: Path) -> None:
    context = tmp_path / "context"
    (context / "src" / "empty").mkdir(parents=True)
    (context / "src" / "app.py").write_text("print('hello')\n")
    (context / "run.sh").write_text("#!/bin/sh\n")
    (context / "run.sh").chmod(0o755)
    (context / "link").symlink_to("src/app.py")
    (context / "dangling").symlink_to("nowhere")
    os.mkfifo(context / "fifo")
    (context / "build.log").write_text("ignored\n")
    (context / ".dockerignore").write_text("*.log\n")
    (context / "Dockerfile").write_text("FROM scratch\nCOPY . .\n")
    # the memo's files count as settled: they were written before the run (see Memo)
    old = 1_000_000_000
    for path in (context / "src" / "app.py", context / "run.sh", context / "Dockerfile", context / ".dockerignore"):
        os.utime(path, ns=(old, old))

    env = {**os.environ, "PYTHONPATH": str(Path(survey.__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(context), str(tmp_path / "memo")],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["copy"] == out["here"]
    assert "build.log" not in out["copy"]["entries"]
    assert out["copy"]["records"]["link"] == "link -> src/app.py"
    assert out["copy"]["records"]["fifo"].startswith("fifo ")
    assert out["copy"]["records"]["src/empty"].startswith("dir ")
    assert out["other"] is True  # read another context: this process reads its own
    assert out["killed"] is True  # no answer: this process reads the context itself
