"""Target identifiers, Python versions, branch slugs and tags."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bake.naming import (
    PLATFORM_SUFFIX_RE,
    PythonVersion,
    branch_name,
    branch_tag,
    platform_suffix,
    reserved,
    shown,
    slug,
    tag_prefix,
    target_id,
)

#: What docker accepts as a tag.
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
#: What bake accepts as a target name.
TARGET = re.compile(r"^[A-Za-z0-9_-]+$")

#: Stage names as the configuration accepts them (lowercase, as BuildKit lowercases them).
stages = st.from_regex(r"\A[a-z][a-z0-9._-]{0,59}\Z")
pythons = st.builds(PythonVersion, st.integers(1, 99), st.integers(0, 99))


@given(stage=stages, python=pythons, branch=st.text())
def test_any_branch_gives_a_valid_tag(stage: str, python: PythonVersion, branch: str) -> None:
    tag = branch_tag(stage, python, branch)
    assert TAG.match(tag), tag
    assert len(tag) <= 128
    assert tag.startswith(f"{stage}-py{python}-")


@given(
    stage=stages,
    python=pythons,
    prefix=st.text(alphabet=string.ascii_letters + string.digits + "/-_", min_size=200, max_size=300),
    suffixes=st.lists(
        st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=20),
        min_size=2,
        max_size=2,
        unique=True,
    ),
)
def test_long_branches_sharing_a_prefix_get_different_tags(
    stage: str, python: PythonVersion, prefix: str, suffixes: list[str]
) -> None:
    one, two = (branch_tag(stage, python, prefix + suffix) for suffix in suffixes)
    assert one != two
    assert TAG.match(one)
    assert TAG.match(two)


def test_long_branch_example() -> None:
    common = "feature/" + "x" * 200
    one = branch_tag("ci", PythonVersion(3, 12), common + "-one")
    two = branch_tag("ci", PythonVersion(3, 12), common + "-two")
    assert one != two
    assert len(one) == len(two) == 128
    assert one.startswith("ci-py3.12-feature-xxxx")


@pytest.mark.parametrize(
    ("branch", "expected"),
    [
        ("main", "main"),
        ("feature/Foo_Bar", "feature-foo_bar"),
        ("dependabot/pip/requests-2.31.0", "dependabot-pip-requests-2.31.0"),
        ("release/v1.2", "release-v1.2"),
        ("JIRA-123 fix the thing!", "jira-123-fix-the-thing"),
        ("--weird--", "weird"),
        (".hidden.", "hidden"),
        ("a//b", "a-b"),
    ],
)
def test_slug_examples(branch: str, expected: str) -> None:
    assert slug(branch, 100) == expected


@pytest.mark.parametrize("branch", ["", "/", "---", "ü"])
def test_branch_without_usable_characters_still_gets_a_tag(branch: str) -> None:
    tag = branch_tag("ci", PythonVersion(3, 12), branch)
    assert TAG.match(tag)
    assert len(tag) > len("ci-py3.12-")


def test_branches_without_usable_characters_are_told_apart() -> None:
    assert branch_tag("ci", PythonVersion(3, 12), "ü") != branch_tag("ci", PythonVersion(3, 12), "é")


@given(text=st.text(), max_len=st.integers(1, 128))
def test_slug_respects_max_len(text: str, max_len: int) -> None:
    out = slug(text, max_len)
    assert 1 <= len(out) <= max_len
    assert re.fullmatch(r"[a-z0-9_.-]+", out)


# -- Python versions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "major", "minor", "group"),
    [("3.8", 3, 8, "py38"), ("3.10", 3, 10, "py310"), ("3.13", 3, 13, "py313"), ("4.0", 4, 0, "py40")],
)
def test_python_version_parse_str_group(text: str, major: int, minor: int, group: str) -> None:
    version = PythonVersion.parse(text)
    assert (version.major, version.minor) == (major, minor)
    assert str(version) == text
    assert version.group == group


@pytest.mark.parametrize("text", ["3", "three", "3.x", "3.12.1", "3.", ".12", "03.12", "3.012", "", " 3.12", "v3.12"])
def test_python_version_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"X\.Y"):
        PythonVersion.parse(text)


def test_python_versions_sort_numerically() -> None:
    versions = [PythonVersion.parse(v) for v in ["3.13", "3.9", "3.10"]]
    assert [str(v) for v in sorted(versions)] == ["3.9", "3.10", "3.13"]


# -- identifiers -----------------------------------------------------------------------------


def test_target_ids_and_tag_prefixes() -> None:
    assert target_id("ci", PythonVersion(3, 12)) == "ci-py312"
    assert target_id("deps", PythonVersion(3, 9)) == "deps-py39"
    assert tag_prefix("ci", PythonVersion(3, 12)) == "ci-py3.12"


@given(stage=stages, python=pythons)
def test_target_ids_are_valid_bake_target_names(stage: str, python: PythonVersion) -> None:
    assert TARGET.match(target_id(stage, python))


# -- the reserved forms: no branch takes another kind of ref's tag ---------------------------

#: What each kind of ref other than a branch puts after ``STAGE-pyX.Y-`` (docs/tags.md).
OTHER_KINDS = re.compile(r"fp-[0-9a-f]{12}|[0-9a-f]{7,64}|pr-(?:[0-9]+|unknown)|.*__[a-z0-9]+-[a-z0-9].*", re.DOTALL)


@pytest.mark.parametrize(
    ("branch", "named"),
    [
        ("fp-0123456789ab", "branch-fp-0123456789ab"),
        ("FP-0123456789AB", "branch-FP-0123456789AB"),
        ("fp_0123456789ab", "branch-fp_0123456789ab"),
        ("9E9AB8D", "branch-9E9AB8D"),
        ("9e9ab8d0c0ffee", "branch-9e9ab8d0c0ffee"),
        ("../fp-x", "branch-../fp-x"),
        ("pr-12", "branch-pr-12"),
        ("PR/12", "branch-PR/12"),
        ("feature__linux-arm64", "feature__linux-arm64"),  # its slug is feature_linux-arm64
        ("feature/../fp-x", "feature/../fp-x"),  # feature-..-fp-x: a branch like any other
        ("main", "main"),
        ("cafe", "cafe"),  # too short for a commit tag
        ("fpx", "fpx"),
        ("prod-12", "prod-12"),
    ],
)
def test_branches_in_a_reserved_form_are_renamed(branch: str, named: str) -> None:
    assert branch_name(branch) == named
    assert not reserved(slug(branch_name(branch), 100))


@given(stage=stages, python=pythons, branch=st.text())
def test_no_branch_name_ever_gives_a_reserved_tag(stage: str, python: PythonVersion, branch: str) -> None:
    tag = branch_tag(stage, python, branch_name(branch))
    suffix = tag[len(tag_prefix(stage, python)) + 1 :]
    assert not reserved(suffix), (branch, tag)
    assert not OTHER_KINDS.fullmatch(suffix), (branch, tag)


@given(
    stage=stages,
    python=pythons,
    branch=st.one_of(
        st.from_regex(r"\A(?:[Ff][Pp]|[Pp][Rr])[-_./ ]?[0-9A-Za-z/._-]{0,200}\Z"),
        st.from_regex(r"\A[a-z]{0,10}_{2,4}(?:linux|windows)[-_/](?:amd64|arm64|arm-v7)\Z"),
        st.from_regex(r"\A[./-]{0,3}[0-9a-fA-F]{5,80}[./-]{0,3}\Z"),
        st.from_regex(r"\A[a-z]{0,10}/(?:\.\./)+[Ff][Pp]-[0-9a-f]{12}\Z"),
    ),
)
def test_names_close_to_the_reserved_forms_never_give_one(stage: str, python: PythonVersion, branch: str) -> None:
    tag = branch_tag(stage, python, branch_name(branch))
    suffix = tag[len(tag_prefix(stage, python)) + 1 :]
    assert not OTHER_KINDS.fullmatch(suffix), (branch, tag)


def test_the_reserved_forms_are_reserved() -> None:
    for fragment in ("fp-0123456789ab", "0123456", "9e9ab8d", "a" * 64, "pr-1", "pr-unknown"):
        assert reserved(fragment), fragment
    for fragment in ("main", "branch-fp-0123456789ab", "012345", "feature-login", "pr-x", "prefix"):
        assert not reserved(fragment), fragment


def test_no_branch_slug_holds_the_platform_separator() -> None:
    """``__`` starts a per-platform suffix (``…-main__linux-arm64``): no branch's slug has it."""
    for branch in ("feature__linux-arm64", "a___b", "x__LINUX-ARM64", "__"):
        assert "__" not in slug(branch, 100), branch
        assert not PLATFORM_SUFFIX_RE.search(branch_tag("ci", PythonVersion(3, 12), branch)), branch


def test_a_platform_s_plan_is_shown_as_its_target_and_platform() -> None:
    assert shown("ci-py312__linux-arm64") == "ci-py312 linux/arm64"
    assert shown("ci-py312__linux-arm-v7") == "ci-py312 linux/arm/v7"
    assert shown("ci-py312") == "ci-py312"
    assert shown("ci-py312" + platform_suffix("linux/amd64")) == "ci-py312 linux/amd64"
