"""Retention verdicts (bake.retention) on tables of refs, and gc's pure parts: trust, branch lists, settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from bake import ci, gc
from bake.args import Args
from bake.config import RetentionConfig, seconds
from bake.errors import UsageError
from bake.retention import DAY, Facts, Ref, Settings, Verdict, actions, classify, freed, kind_of, split

NOW = 1_800_000_000.0
PREFIXES = ["ci-py3.11", "deps-py3.11", "a-py3.1"]
SETTINGS = Settings(branch_days=14, pr_days=14, commit_days=30, keep_fingerprints=2, grace=3600)
FACTS = Facts(
    now=NOW,
    prefixes=PREFIXES,
    default_branch="main",
    fallback_branches=["main", "release"],
    branches={"main": NOW - 40 * DAY, "feature": NOW - DAY, "old": NOW - 20 * DAY, "undated": None},
    branches_from="git ls-remote --heads origin",
    commits={"1111111": NOW - 40 * DAY, "2222222": NOW - DAY, "3333333": NOW - 40 * DAY, "5555555": NOW - DAY},
    heads=frozenset({"3333333"}),
    reachable=frozenset({"1111111", "2222222", "3333333"}),
)


def ref(tag: str, digest: str = "sha256:a", written: float | None = NOW - 2 * DAY, **kw: object) -> Ref:
    return Ref(kw.pop("repo", "image"), tag, digest, written, **kw)  # type: ignore[arg-type]


def verdict(r: Ref, facts: Facts = FACTS, settings: Settings = SETTINGS, others: list[Ref] | None = None) -> Verdict:
    refs = [r, *(others or [])]
    return classify(refs, facts, settings)[0]


@pytest.mark.parametrize(
    ("repo", "suffix", "kind"),
    [
        ("image", "", "bare"),
        ("cache", "", "unknown"),
        ("image", "fp-0123456789ab", "fingerprint"),
        ("cache", "fp-0123456789ab", "fingerprint"),
        ("image", "fp-0123456789", "unknown"),  # fp-... is reserved: not a branch, not a fingerprint either
        ("image", "abcdef0", "commit"),
        ("image", "abcdef01", "commit"),  # 7 or more hex characters
        ("cache", "abcdef0", "unknown"),  # the cache repository has no commit refs; reserved for branches
        ("image", "pr-12", "pr"),
        ("image", "pr-012", "unknown"),  # reserved for requests, and not a number bake-ci writes
        ("image", "branch-pr-12", "branch"),  # a branch named pr-12, as bake.policy.identity renames it
        ("image", "branch-fp-0123456789ab", "branch"),
        ("image", "branch-9e9ab8d", "branch"),
        ("image", "feature-login", "branch"),
        ("image", "release_1.2", "branch"),
        ("image", "feature-linux-arm64", "branch"),
        ("image", "main__linux-arm64", "unknown"),  # per-platform refs: kept, not read
        ("image", "fp-0123456789ab__linux-arm64", "unknown"),
        ("cache", "pr-7__linux-arm-v7", "unknown"),
        ("image", "fp-0123456789ab-x", "unknown"),
        ("image", "Main", "unknown"),
        ("image", "-x", "unknown"),
    ],
)
def test_tags_are_read_by_the_forms_bake_ci_writes(repo: str, suffix: str, kind: str) -> None:
    assert kind_of(repo, suffix)[0] == kind  # type: ignore[arg-type]


def test_the_longest_configured_prefix_wins() -> None:
    assert split("a-py3.1-main", PREFIXES) == ("a-py3.1", "main")
    assert split("ci-py3.11", PREFIXES) == ("ci-py3.11", "")
    assert split("ci-py3.111-main", PREFIXES) is None
    assert split("other-py3.11-main", PREFIXES) is None


@pytest.mark.parametrize(
    ("tag", "written", "keep", "words"),
    [
        ("ci-py3.11", None, True, "bare tag"),
        ("ci-py3.11-main", NOW - 99 * DAY, True, "default branch main"),
        ("ci-py3.11-release", NOW - 99 * DAY, True, "fallback branch release"),
        ("ci-py3.11-feature", NOW - 99 * DAY, True, "branch feature is live"),
        ("ci-py3.11-undated", NOW - 99 * DAY, True, "date is unknown"),
        ("ci-py3.11-old", NOW - 99 * DAY, False, "no commit for 20 days"),
        ("ci-py3.11-gone", NOW - 2 * DAY, False, "no live branch is named gone (per git ls-remote"),
        ("ci-py3.11-gone", NOW - 60, True, "within the grace window"),
        ("ci-py3.11-gone", None, True, "cannot be told"),
        ("ci-py3.11-3333333", NOW - 99 * DAY, True, "head of a live branch"),
        ("ci-py3.11-1111111", NOW - DAY, False, "committed 40 days ago"),
        ("ci-py3.11-2222222", NOW - DAY, True, "was committed 24.0 h ago"),
        ("ci-py3.11-5555555", NOW - DAY, False, "on no live branch"),
        ("ci-py3.11-4444444", NOW - 40 * DAY, False, "built 40 days ago"),  # not in git: its build time
        ("ci-py3.11-4444444", None, True, "not known to git and no build time"),
        ("ci-py3.11-pr-3", NOW - 20 * DAY, False, "last built 20 days ago"),
        ("ci-py3.11-pr-3", NOW - DAY, True, "pull request 3 built"),
        ("ci-py3.11-pr-3", None, True, "cannot be told"),
        ("other-py3.11-main", NOW - 99 * DAY, True, "not a tag of a configured target"),
        # per-platform refs: judged as the ref before the suffix
        ("ci-py3.11-main__linux-arm64", NOW - 99 * DAY, True, "the linux-arm64 ref of ci-py3.11-main: the default"),
        ("ci-py3.11-feature__linux-arm-v7", NOW - 99 * DAY, True, "branch feature is live"),
        ("ci-py3.11-gone__linux-arm64", NOW - 99 * DAY, False, "no live branch is named gone"),
        ("ci-py3.11-gone__linux-arm64", NOW - 60, True, "within the grace window"),
        ("ci-py3.11-3333333__linux-amd64", NOW - 99 * DAY, True, "head of a live branch"),
        ("ci-py3.11-1111111__linux-arm64", NOW - DAY, False, "committed 40 days ago"),
        ("ci-py3.11-pr-3__linux-arm64", NOW - 20 * DAY, False, "last built 20 days ago"),
        ("ci-py3.11-pr-3__linux-arm64", NOW - DAY, True, "pull request 3 built"),
        ("ci-py3.11__linux-arm64", NOW - 99 * DAY, True, "per-platform bare tag"),
        ("ci-py3.11-x__linux-arm64__linux-arm64", NOW - 99 * DAY, True, "not a form bake-ci writes"),
        ("other-py3.11-main__linux-arm64", NOW - 99 * DAY, True, "not a tag of a configured target"),
    ],
)
def test_image_tag_verdicts(tag: str, written: float | None, keep: bool, words: str) -> None:
    found = verdict(ref(tag, written=written))
    assert (found.keep, words in found.reason) == (keep, True), found.reason


def test_open_requests_list_removes_closed_ones_at_any_age() -> None:
    facts = Facts(**{**FACTS.__dict__, "open_prs": frozenset({4})})
    assert not verdict(ref("ci-py3.11-pr-3", written=NOW - DAY), facts).keep
    assert verdict(ref("ci-py3.11-pr-4", written=NOW - DAY), facts).keep
    assert not verdict(ref("ci-py3.11-pr-4", written=NOW - 20 * DAY), facts).keep


def test_grace_zero_deletes_what_was_just_written() -> None:
    no_grace = Settings(**{**SETTINGS.__dict__, "grace": 0})
    assert not verdict(ref("ci-py3.11-gone", written=NOW - 1), settings=no_grace).keep
    assert not verdict(ref("ci-py3.11-gone", written=None), settings=no_grace).keep


def test_placeholders_left_by_an_interrupted_gc_go() -> None:
    found = verdict(ref("ci-py3.11-main", placeholder=True))
    assert (found.keep, found.kind) == (False, "placeholder")


def fps() -> list[Ref]:
    return [
        ref("ci-py3.11-main", "sha256:m", NOW - 5 * DAY),
        ref("ci-py3.11-fp-00000000000e", "sha256:m", NOW - 5 * DAY),
        ref("ci-py3.11-fp-000000000001", "sha256:1", NOW - 1 * DAY),
        ref("ci-py3.11-fp-000000000002", "sha256:2", NOW - 2 * DAY),
        ref("ci-py3.11-fp-000000000003", "sha256:3", NOW - 3 * DAY),
        ref("ci-py3.11-fp-00000000000f", "sha256:n", None),
        ref("deps-py3.11-fp-000000000009", "sha256:9", NOW - 9 * DAY),
    ]


def test_fingerprints_kept_are_the_newest_k_per_target_and_those_kept_tags_use() -> None:
    found = {v.ref.tag: v for v in classify(fps(), FACTS, SETTINGS)}
    assert "kept tag ci-py3.11-main" in found["ci-py3.11-fp-00000000000e"].reason
    assert found["ci-py3.11-fp-000000000001"].keep
    assert found["ci-py3.11-fp-000000000002"].keep
    assert not found["ci-py3.11-fp-000000000003"].keep
    assert found["ci-py3.11-fp-00000000000f"].keep  # no build time: kept, and says so
    assert found["deps-py3.11-fp-000000000009"].keep  # its own target's newest


def test_cache_fingerprint_refs_follow_their_image_or_a_kept_cache_ref() -> None:
    facts = Facts(
        **{
            **FACTS.__dict__,
            "cache_of": {
                "ci-py3.11-fp-aaaaaaaaaaa1": "ci-py3.11-fp-000000000001",
                "ci-py3.11-fp-aaaaaaaaaaa3": "ci-py3.11-fp-000000000003",
            },
        }
    )
    refs = [
        *fps(),
        ref("ci-py3.11-main", "sha256:cm", repo="cache"),
        ref("ci-py3.11-fp-aaaaaaaaaaa1", "sha256:c1", repo="cache"),
        ref("ci-py3.11-fp-aaaaaaaaaaa3", "sha256:c3", repo="cache"),
        ref("ci-py3.11-fp-bbbbbbbbbbbb", "sha256:cm", repo="cache"),
        ref("ci-py3.11-fp-cccccccccccc", "sha256:cx", repo="cache"),
        ref("ci-py3.11-fp-dddddddddddd", "sha256:cy", NOW - 60, repo="cache"),
    ]
    found = {v.ref.tag: v for v in classify(refs, facts, SETTINGS) if v.ref.repo == "cache"}
    assert found["ci-py3.11-fp-aaaaaaaaaaa1"].keep
    assert not found["ci-py3.11-fp-aaaaaaaaaaa3"].keep
    assert "kept cache ref ci-py3.11-main" in found["ci-py3.11-fp-bbbbbbbbbbbb"].reason
    assert not found["ci-py3.11-fp-cccccccccccc"].keep
    assert found["ci-py3.11-fp-dddddddddddd"].keep  # within the grace window


def test_per_platform_cache_refs_are_judged_as_their_branch_ref() -> None:
    refs = [
        ref("ci-py3.11-main__linux-arm64", written=NOW - 99 * DAY, repo="cache"),
        ref("ci-py3.11-gone__linux-arm64", "sha256:b", NOW - 99 * DAY, repo="cache"),
        ref("ci-py3.11-pr-3__linux-arm64", "sha256:c", NOW - 20 * DAY, repo="cache"),
    ]
    assert [v.keep for v in classify(refs, FACTS, SETTINGS)] == [True, False, False]


def platform_fps() -> list[Ref]:
    """A multi-platform target: the index under main's and a fingerprint tag, its two
    platforms' images (each an index of image and attestation) under their own tags."""
    return [
        ref("ci-py3.11-main", "sha256:index", NOW - 5 * DAY),
        ref("ci-py3.11-fp-00000000000a", "sha256:index", NOW - 5 * DAY),
        ref("ci-py3.11-fp-0000000000a1__linux-amd64", "sha256:amd", NOW - 5 * DAY),
        ref("ci-py3.11-fp-0000000000a2__linux-arm64", "sha256:arm", NOW - 5 * DAY),
        # newer per-platform builds of a branch that went: the newest 2 per platform are kept
        ref("ci-py3.11-fp-0000000000b1__linux-amd64", "sha256:b1", NOW - 1 * DAY),
        ref("ci-py3.11-fp-0000000000b2__linux-amd64", "sha256:b2", NOW - 2 * DAY),
        ref("ci-py3.11-fp-0000000000b3__linux-amd64", "sha256:b3", NOW - 3 * DAY),
        ref("ci-py3.11-fp-0000000000c1__linux-arm64", "sha256:c1", NOW - 1 * DAY),
    ]


PLATFORM_CHILDREN = {
    "sha256:index": frozenset({"sha256:amd-image", "sha256:amd-att", "sha256:arm-image", "sha256:arm-att"}),
    "sha256:amd": frozenset({"sha256:amd-image", "sha256:amd-att"}),
    "sha256:arm": frozenset({"sha256:arm-image", "sha256:arm-att"}),
}


def test_per_platform_fingerprints_are_counted_per_platform_and_kept_with_their_index() -> None:
    facts = Facts(**{**FACTS.__dict__, "children": PLATFORM_CHILDREN})
    found = {v.ref.tag: v for v in classify(platform_fps(), facts, SETTINGS)}
    for tag in ("ci-py3.11-fp-0000000000a1__linux-amd64", "ci-py3.11-fp-0000000000a2__linux-arm64"):
        assert found[tag].keep, found[tag].reason
        assert "kept multi-platform image ci-py3.11-main" in found[tag].reason
    assert found["ci-py3.11-fp-0000000000b1__linux-amd64"].keep
    assert "last 2 fingerprints of ci-py3.11 (linux-amd64)" in found["ci-py3.11-fp-0000000000b2__linux-amd64"].reason
    assert not found["ci-py3.11-fp-0000000000b3__linux-amd64"].keep  # the third newest of amd64
    assert found["ci-py3.11-fp-0000000000c1__linux-arm64"].keep  # arm64 counts its own


def test_per_platform_fingerprints_of_an_index_that_goes_are_counted_like_any_other() -> None:
    facts = Facts(**{**FACTS.__dict__, "children": PLATFORM_CHILDREN})
    refs = [r for r in platform_fps() if r.tag != "ci-py3.11-main"]
    refs[0] = ref("ci-py3.11-fp-00000000000a", "sha256:index", NOW - 50 * DAY)
    settings = Settings(**{**SETTINGS.__dict__, "keep_fingerprints": 1})
    found = {v.ref.tag: v for v in classify(refs, facts, settings)}
    assert found["ci-py3.11-fp-00000000000a"].keep  # the newest index of its target
    assert found["ci-py3.11-fp-0000000000a2__linux-arm64"].keep  # listed by it
    refs.append(ref("ci-py3.11-fp-00000000000d", "sha256:newer", NOW - DAY))
    found = {v.ref.tag: v for v in classify(refs, facts, settings)}
    assert not found["ci-py3.11-fp-00000000000a"].keep
    assert not found["ci-py3.11-fp-0000000000a1__linux-amd64"].keep  # b1 is amd64's newest
    assert found["ci-py3.11-fp-0000000000a2__linux-arm64"].keep is False  # c1 is arm64's newest


def test_per_platform_cache_fingerprint_refs_follow_their_platforms_image() -> None:
    facts = Facts(
        **{
            **FACTS.__dict__,
            "children": PLATFORM_CHILDREN,
            "cache_of": {
                "ci-py3.11-fp-aaaaaaaaaaa1__linux-amd64": "ci-py3.11-fp-0000000000a1__linux-amd64",
                "ci-py3.11-fp-aaaaaaaaaab3__linux-amd64": "ci-py3.11-fp-0000000000b3__linux-amd64",
            },
        }
    )
    refs = [
        *platform_fps(),
        ref("ci-py3.11-fp-aaaaaaaaaaa1__linux-amd64", "sha256:ca1", repo="cache"),
        ref("ci-py3.11-fp-aaaaaaaaaab3__linux-amd64", "sha256:cb3", repo="cache"),
    ]
    found = {v.ref.tag: v for v in classify(refs, facts, SETTINGS) if v.ref.repo == "cache"}
    assert found["ci-py3.11-fp-aaaaaaaaaaa1__linux-amd64"].keep
    assert not found["ci-py3.11-fp-aaaaaaaaaab3__linux-amd64"].keep


def test_a_ref_whose_manifest_a_kept_ref_needs_is_only_untagged() -> None:
    refs = [
        ref("ci-py3.11-main", "sha256:m"),
        ref("ci-py3.11-gone", "sha256:m"),  # shares main's manifest
        ref("ci-py3.11-gone2", "sha256:child"),  # a child of a kept index
        ref("ci-py3.11-gone3", "sha256:g"),
        ref("ci-py3.11-gone", "sha256:m", repo="cache"),  # another repository: main's image is not its concern
    ]
    out = actions(classify(refs, FACTS, SETTINGS), {"image": frozenset({"sha256:child"}), "cache": frozenset()})
    assert [v.action for v in out] == ["keep", "untag", "untag", "delete", "delete"]


def test_bytes_freed_count_only_blobs_no_staying_manifest_uses() -> None:
    refs = [ref("ci-py3.11-main", "sha256:m"), ref("ci-py3.11-gone", "sha256:g"), ref("ci-py3.11-gone2", "sha256:m")]
    out = actions(classify(refs, FACTS, SETTINGS), {})
    blobs = {"sha256:m": {"base": 100, "main": 10}, "sha256:g": {"base": 100, "own": 7, "shared": 5}}
    assert freed(out, blobs) == 12
    assert freed(out, blobs, kept_blobs={"shared"}) == 7


# -- gc's pure parts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "branch", "allowed"),
    [
        ({}, "main", True),  # a developer's own command, on the default branch
        ({}, "feature", False),  # only the default branch collects garbage (--branch main)
        ({"GITHUB_EVENT_NAME": "schedule", "GITHUB_REF_NAME": "main"}, "main", True),
        ({"GITHUB_EVENT_NAME": "push", "GITHUB_REF_NAME": "main"}, "main", True),
        ({"GITHUB_EVENT_NAME": "workflow_dispatch", "GITHUB_REF_NAME": "main"}, "main", True),
        ({"GITHUB_EVENT_NAME": "push", "GITHUB_REF_NAME": "feature"}, "feature", False),
        ({"GITHUB_EVENT_NAME": "workflow_run", "GITHUB_REF_NAME": "main"}, "main", False),
        ({"GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/3/merge"}, "main", False),
        ({"GITHUB_EVENT_NAME": "pull_request_target", "GITHUB_REF_NAME": "main"}, "main", False),
        ({"GITHUB_EVENT_NAME": "push", "GITHUB_REF_NAME": "main", "GITHUB_REF_TYPE": "tag"}, "main", False),
        ({"GITLAB_CI": "true", "CI_PIPELINE_SOURCE": "schedule", "CI_COMMIT_REF_NAME": "main"}, "main", True),
        (
            {"GITLAB_CI": "true", "CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "4"},
            "main",
            False,
        ),
        ({"CI": "true"}, "feature", False),  # another CI: a push of the branch git reports
        ({"CI": "true"}, "main", True),
    ],
)
def test_gc_follows_the_trust_policy(environ: dict[str, str], branch: str, allowed: bool) -> None:
    context = ci.detect(environ)
    if allowed:
        gc.check_trust(context, branch, "main")
    else:
        with pytest.raises(UsageError, match="gc deletes refs from the registry"):
            gc.check_trust(context, branch, "main")


def test_branches_file(tmp_path: Path) -> None:
    path = tmp_path / "branches"
    path.write_text("main 1800000000\n# comment\nfeature  # live\nold 2026-01-31T12:00:00Z\npr-4\n", encoding="utf-8")
    live = gc.read_branches(path)
    assert live.branches == {"main": 1_800_000_000.0, "feature": None, "old": 1769860800.0}
    assert live.open_prs == frozenset({4})
    path.write_text("main yesterday\n", encoding="utf-8")
    with pytest.raises(UsageError, match="line 1: 'yesterday' is not a time"):
        gc.read_branches(path)
    with pytest.raises(UsageError, match="cannot be read"):
        gc.read_branches(tmp_path / "missing")


def test_command_line_overrides_the_configuration() -> None:
    cfg = RetentionConfig()
    assert gc.settings(cfg, Args("gc")) == Settings(14, 14, 30, 5, 3600)
    chosen = gc.settings(cfg, Args("gc", grace="0", branch_days=7, keep_fingerprints=1))
    assert (chosen.grace, chosen.branch_days, chosen.keep_fingerprints) == (0, 7, 1)
    with pytest.raises(UsageError, match="--grace soon"):
        gc.settings(cfg, Args("gc", grace="soon"))
    with pytest.raises(UsageError, match="--branch-days -1: give a number of days above 0"):
        gc.settings(cfg, Args("gc", branch_days=-1))
    with pytest.raises(UsageError, match="--keep-fingerprints -2"):
        gc.settings(cfg, Args("gc", keep_fingerprints=-2))


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("1h", 3600), ("30m", 1800), ("1h30m", 5400), ("2d", 172800)])
def test_durations(text: str, value: float) -> None:
    assert seconds(text) == value


@pytest.mark.parametrize("text", ["", "1", "h", "1 h", "-1h", "1w"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        seconds(text)


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ("branch-days = 0", "tool.bake-ci.retention.branch-days = 0: must be a number of days above 0"),
        ('grace = "1 hour"', "tool.bake-ci.retention.grace = '1 hour': '1 hour' is not a duration"),
        ("keep-fingerprint = 3", "Did you mean 'keep-fingerprints'?"),
        ("keep-fingerprints = -1", "must be 0 or more"),
        ('pr-days = "7"', "tool.bake-ci.retention.pr-days = '7'"),
    ],
)
def test_retention_config_errors_name_the_key(tmp_path: Path, table: str, words: str) -> None:
    from bake.config_load import load
    from bake.errors import ConfigError

    (tmp_path / "Dockerfile").write_text("FROM python:3.12-slim AS ci\n", encoding="utf-8")
    path = tmp_path / "pyproject.toml"
    path.write_text(f'[tool.bake-ci]\nimage = "a/b"\npython = ["3.12"]\n[tool.bake-ci.retention]\n{table}\n')
    with pytest.raises(ConfigError) as caught:
        load(path, {})
    assert words in str(caught.value)
    assert caught.value.exit_code == 2
