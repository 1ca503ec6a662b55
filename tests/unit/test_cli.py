"""The command line around planning (no build), and how results are shown."""

from __future__ import annotations

import json

import pytest

from bake import __version__, report
from bake.args import Output, uses_fingerprints
from bake.cli import main

from .conftest import results

TOML = """\
[tool.bake-ci]
image = "acme/app-ci"
python = ["3.12", "3.13"]
stages = ["deps", "ci"]
"""
ENV = {"GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567"}


def test_matrix_shape(project, cli) -> None:
    project(TOML)
    run = cli("matrix")
    assert (run.rc, run.err) == (0, "")
    assert run.out.count("\n") == 1, "one line, for $GITHUB_OUTPUT"
    assert json.loads(run.out) == {
        "include": [
            {"target": "deps-py312", "stage": "deps", "python": "3.12"},
            {"target": "deps-py313", "stage": "deps", "python": "3.13"},
            {"target": "ci-py312", "stage": "ci", "python": "3.12"},
            {"target": "ci-py313", "stage": "ci", "python": "3.13"},
        ]
    }


def test_matrix_with_selection(project, cli) -> None:
    project(TOML)
    run = cli("matrix", "--stage", "ci")
    assert json.loads(run.out) == {
        "include": [
            {"target": "ci-py312", "stage": "ci", "python": "3.12"},
            {"target": "ci-py313", "stage": "ci", "python": "3.13"},
        ]
    }


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"], environ={})
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"bake-ci {__version__}\n"


def test_push_without_registry_is_a_usage_error(project, cli) -> None:
    project(TOML)
    run = cli("plan", "--push", "--no-reuse", "--branch", "main", env=ENV)
    assert (run.rc, run.out) == (2, "")
    assert run.err.startswith("bake-ci: usage error: --push needs a registry")
    assert "BAKE_CI_REGISTRY" in run.err
    assert "--load" in run.err


def test_push_with_registry_unset_by_env_is_a_usage_error(project, cli) -> None:
    project(TOML + 'registry = "ghcr.io/acme"\n')
    run = cli("plan", "--push", "--no-reuse", "--branch", "main", env={**ENV, "BAKE_CI_REGISTRY": ""})
    assert run.rc == 2
    assert "--push needs a registry" in run.err


def test_push_and_load_are_exclusive(project, cli) -> None:
    project(TOML)
    with pytest.raises(SystemExit) as exit_:
        cli("plan", "--push", "--load", env=ENV)
    assert exit_.value.code == 2


@pytest.mark.parametrize(
    ("registry", "env", "output"),
    [
        ('registry = "ghcr.io/acme"\n', {"CI": "true"}, "type=registry"),
        ('registry = "ghcr.io/acme"\n', {}, "type=docker"),
        ("", {"CI": "true"}, "type=docker"),
    ],
)
def test_default_output(project, cli, registry: str, env: dict[str, str], output: str) -> None:
    # in CI with a registry: push; anywhere else: load into the local engine
    project(TOML + registry)
    run = cli("plan", "--branch", "main", env={**ENV, **env})
    assert run.rc == 0, run.err
    for target in json.loads(run.out)["target"].values():
        assert target["output"] == [output]


def test_config_option(tmp_path, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    sub = tmp_path / "app"
    sub.mkdir()
    (sub / "pyproject.toml").write_text(TOML, encoding="utf-8")
    (sub / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS deps\nFROM deps AS ci\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    run = cli("matrix", "--config", "app/pyproject.toml")
    assert run.rc == 0, run.err
    assert len(json.loads(run.out)["include"]) == 4


def test_missing_config_file(tmp_path, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    monkeypatch.chdir(tmp_path)
    run = cli("matrix")
    assert run.rc == 2
    assert run.err.startswith("bake-ci: config error: pyproject.toml: no such file.")
    assert "--config" in run.err


# -- report ----------------------------------------------------------------------------------

DIGEST = "sha256:" + "ab" * 32
ROWS = [
    report.Result(
        target="deps-py312", status="built", image="ghcr.io/acme/app-ci:deps-py3.12-main",
        digest=DIGEST, seconds=12.34, steps=5, cached=3,
    ),
    report.Result(
        target="ci-py312", status="failed", image="ghcr.io/acme/app-ci:ci-py3.12-main",
        seconds=3.0, steps=4, cached=1, failed_step="[deps 2/2] RUN pip install -r requirements.txt",
    ),
    report.Result(target="ci-py313", status="cancelled", image="ghcr.io/acme/app-ci:ci-py3.13-main"),
    report.Result(target="ci-py311", status="reused", image="ghcr.io/acme/app-ci:ci-py3.11-main", digest=DIGEST),
]  # fmt: skip


def test_table_lists_every_target_and_status() -> None:
    lines = report.table(ROWS).splitlines()
    assert lines[0].split() == ["TARGET", "STATUS", "TIME", "CACHED", "IMAGE", "DIGEST"]
    assert len(lines) == 1 + len(ROWS)
    assert lines[1].split() == [
        "deps-py312",
        "built",
        "12.3s",
        "3/5",
        "ghcr.io/acme/app-ci:deps-py3.12-main",
        DIGEST[:19],
    ]
    assert lines[2].split() == ["ci-py312", "failed", "3.0s", "1/4", "ghcr.io/acme/app-ci:ci-py3.12-main", "-"]
    assert lines[3].split() == ["ci-py313", "cancelled", "-", "-", "ghcr.io/acme/app-ci:ci-py3.13-main", "-"]
    # columns line up
    status_at = lines[0].index("STATUS")
    assert [line[status_at:].split()[0] for line in lines[1:]] == ["built", "failed", "cancelled", "reused"]


def test_a_platform_build_s_rows_name_the_target_and_the_platform() -> None:
    repo = "localhost:5000/acme/app-ci"
    rows = [
        report.Result(
            target="ci-py311__linux-arm64", status="built", image=f"{repo}:ci-py3.11-main__linux-arm64",
            digest=DIGEST, seconds=9.04, steps=4, cached=3,
        ),
        report.Result(
            target="deps-py313__linux-arm-v7", status="failed", image=f"{repo}:deps-py3.13-main__linux-arm-v7",
            seconds=2.0, steps=3, cached=1, failed_step="[deps 2/2] RUN pip install",
        ),
        report.Result(target="ci-py311", status="merged", image=f"{repo}:ci-py3.11-main", digest=DIGEST),
    ]  # fmt: skip
    assert report.table(rows) == (
        "TARGET                   STATUS  TIME  CACHED  IMAGE" + " " * 54 + "DIGEST\n"
        f"ci-py311 linux/arm64     built   9.0s  3/4     {repo}:ci-py3.11-main__linux-arm64     {DIGEST[:19]}\n"
        f"deps-py313 linux/arm/v7  failed  2.0s  1/3     {repo}:deps-py3.13-main__linux-arm-v7  -\n"
        f"ci-py311                 merged  -     -       {repo}:ci-py3.11-main                  {DIGEST[:19]}\n"
    )
    assert "**deps-py313 linux/arm/v7** failed at `[deps 2/2] RUN pip install`" in report.markdown(rows)
    assert "| ci-py311 linux/arm64 | ✅ built |" in report.markdown(rows)


def test_on_a_terminal_the_digest_gives_way_and_every_image_stays_whole() -> None:
    full = report.table(ROWS).splitlines()
    assert max(map(len, full)) > 80
    cut = report.table(ROWS, width=80).splitlines()
    assert max(map(len, cut)) <= 80
    assert cut[0].split() == ["TARGET", "STATUS", "TIME", "CACHED", "IMAGE"]  # no room for a digest
    for row, line in zip(ROWS, cut[1:], strict=True):
        assert line.split()[-1] == row.image
    shorter = report.table(ROWS, width=90).splitlines()
    assert max(map(len, shorter)) <= 90
    assert shorter[1].split()[-2:] == [ROWS[0].image, DIGEST[:13] + "…"]
    # wide enough: nothing is cut; too narrow even without the digest: the images stay whole
    assert report.table(ROWS, width=200) == report.table(ROWS)
    assert all(row.image in report.table(ROWS, width=40) for row in ROWS)


def test_markdown_lists_every_target_status_and_failure() -> None:
    text = report.markdown(ROWS)
    lines = text.splitlines()
    assert lines[0] == "### bake-ci build"
    assert "| TARGET | STATUS | TIME | CACHED | IMAGE | DIGEST |" in lines
    assert f"| deps-py312 | ✅ built | 12.3s | 3/5 | `ghcr.io/acme/app-ci:deps-py3.12-main` | `{DIGEST}` |" in lines
    assert "| ci-py312 | ❌ failed | 3.0s | 1/4 | `ghcr.io/acme/app-ci:ci-py3.12-main` | - |" in lines
    assert "| ci-py313 | ⏹️ cancelled | - | - | `ghcr.io/acme/app-ci:ci-py3.13-main` | - |" in lines
    assert "**ci-py312** failed at `[deps 2/2] RUN pip install -r requirements.txt`" in lines
    assert text.endswith("\n\n"), "appending several summaries keeps them apart"


def test_results_without_progress_use_the_overall_outcome() -> None:
    tags = {"ci-py312": "a:1", "ci-py313": "a:2"}
    meta = report.load_metadata(json.dumps({"ci-py312": {"containerimage.digest": DIGEST}}))
    built = results(["ci-py312", "ci-py313"], tags, meta, None, succeeded=True, total_seconds=7.5)
    assert [(r.target, r.status, r.digest, r.seconds, r.steps) for r in built] == [
        ("ci-py312", "built", DIGEST, 7.5, None),
        ("ci-py313", "built", None, 7.5, None),
    ]
    failed = results(["ci-py312"], tags, {}, None, succeeded=False, total_seconds=1.0)
    assert failed[0].status == "cancelled"


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]"])
def test_unreadable_metadata_is_empty(text: str) -> None:
    assert report.load_metadata(text) == {}


@pytest.mark.parametrize(
    ("command", "output", "no_reuse", "reads"),
    [
        ("plan", "load", False, False),  # on a laptop a plan is a --load plan: no fingerprints
        ("plan", "push", False, True),
        ("plan", "push", True, False),
        ("plan", "cache-only", False, False),
        ("status", "load", False, True),
        ("pull", "load", False, True),
        ("build", "push", False, True),
        ("build", "load", False, True),  # recorded for status
        ("build", "push", True, True),  # its pushed images carry their fingerprint tag
        ("build", "cache-only", False, True),  # an export whose cache is there is skipped
        ("matrix", "push", False, False),
        ("doctor", "load", False, False),
    ],
)
def test_one_rule_says_which_runs_fingerprint(command: str, output: Output, no_reuse: bool, reads: bool) -> None:
    assert uses_fingerprints(command, output, no_reuse) is reads
