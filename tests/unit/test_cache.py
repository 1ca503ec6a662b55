"""Cutting a plan's registry cache to what helps, from each ref's look-up (bake/cache.py; no registry)."""

from __future__ import annotations

from bake import cache, workflow
from bake.cli import _args, _parser
from bake.plan import Plan
from bake.registry import Manifest

SHA = "0123456789abcdef0123456789abcdef01234567"
ENV = {"GITHUB_SHA": SHA, "BAKE_CI_STATE_DIR": "/state"}
TOML = """\
[tool.bake-ci]
image = "app-ci"
registry = "ghcr.io/acme"
python = ["3.12"]
"""
CACHE = "ghcr.io/acme/app-ci-cache"
IMAGE = "ghcr.io/acme/app-ci"
FP = "f" * 64


def plan(project, branch: str = "feature") -> Plan:
    project(TOML)
    ns = _parser().parse_args(["plan", "--push", "--no-reuse", "--branch", branch])
    run = workflow.Run.start(_args(ns, "console"), ENV)
    workflow.execute(workflow.COMMANDS["plan"][:-1], run)
    return run.plan


def m(digest: str) -> Manifest:
    return Manifest("application/vnd.oci.image.index.v1+json", digest, b"{}")


def sources(p: Plan) -> list[str | None]:
    return [cache.registry_ref(e) for e in p["ci-py312"].cache_from]


def test_sources_that_do_not_exist_are_dropped(project) -> None:
    p = plan(project)
    found = {f"{CACHE}:ci-py3.12-feature": None, f"{CACHE}:ci-py3.12-main": m("sha256:a"), f"{IMAGE}:ci-py3.12": None}
    trimmed, _ = cache.trim(p, {}, found, record_fingerprints=True)
    assert sources(trimmed) == [f"{CACHE}:ci-py3.12-main"]


def test_a_source_naming_the_same_manifest_as_an_earlier_one_is_dropped(project) -> None:
    p = plan(project)
    found = {f"{CACHE}:ci-py3.12-feature": m("sha256:a"), f"{CACHE}:ci-py3.12-main": m("sha256:a")}
    trimmed, _ = cache.trim(p, {}, {**found, f"{IMAGE}:ci-py3.12": None}, record_fingerprints=True)
    assert sources(trimmed) == [f"{CACHE}:ci-py3.12-feature"]


def test_the_default_branchs_image_is_a_source_only_without_any_cache_ref(project) -> None:
    p = plan(project)
    image = {f"{IMAGE}:ci-py3.12": m("sha256:i")}
    both = {f"{CACHE}:ci-py3.12-feature": m("sha256:a"), f"{CACHE}:ci-py3.12-main": m("sha256:b"), **image}
    assert sources(cache.trim(p, {}, both, record_fingerprints=True)[0]) == [
        f"{CACHE}:ci-py3.12-feature",
        f"{CACHE}:ci-py3.12-main",
    ]
    none = {f"{CACHE}:ci-py3.12-feature": None, f"{CACHE}:ci-py3.12-main": None, **image}
    assert sources(cache.trim(p, {}, none, record_fingerprints=True)[0]) == [f"{IMAGE}:ci-py3.12"]


def test_refs_the_registry_could_not_be_asked_about_stay(project) -> None:
    p = plan(project)
    trimmed, after = cache.trim(p, {"ci-py312": FP}, {}, record_fingerprints=True)
    assert trimmed == p
    assert after.tags == {}


def test_every_ref_is_asked_once(project) -> None:
    p = plan(project)
    refs = cache.refs_to_ask(p, {"ci-py312": FP})
    assert len(refs) == len(set(refs))
    fp_ref = cache.fingerprint_ref(p["ci-py312"], FP)
    assert fp_ref is not None
    assert fp_ref.startswith(f"{CACHE}:ci-py3.12-fp-")
    assert set(refs) == {*(r for r in sources(p) if r), fp_ref}


def test_the_fingerprint_ref_changes_with_the_export_options(project) -> None:
    p = plan(project)
    t = p["ci-py312"]
    other = t.__class__(**{**t.__dict__, "cache_to": tuple(e.replace("mode=max", "mode=min") for e in t.cache_to)})
    assert cache.fingerprint_ref(t, FP) != cache.fingerprint_ref(other, FP)
    assert cache.fingerprint_ref(t, FP) == cache.fingerprint_ref(t, FP)


def test_no_export_when_the_cache_for_these_inputs_is_there(project) -> None:
    p = plan(project)
    fp_ref = cache.fingerprint_ref(p["ci-py312"], FP)
    assert fp_ref is not None
    found = {fp_ref: m("sha256:c"), f"{CACHE}:ci-py3.12-feature": None}
    trimmed, after = cache.trim(p, {"ci-py312": FP}, found, record_fingerprints=True)
    assert trimmed["ci-py312"].cache_to == ("type=inline",)
    assert after.tags == {"ci-py312": ((fp_ref, f"{CACHE}:ci-py3.12-feature"),)}  # the branch's ref points at it

    found[f"{CACHE}:ci-py3.12-feature"] = m("sha256:c")
    trimmed, after = cache.trim(p, {"ci-py312": FP}, found, record_fingerprints=True)
    assert trimmed["ci-py312"].cache_to == ("type=inline",)
    assert after.tags == {}  # already the same manifest


def test_a_fresh_export_is_recorded_under_the_fingerprint(project) -> None:
    p = plan(project)
    fp_ref = cache.fingerprint_ref(p["ci-py312"], FP)
    trimmed, after = cache.trim(p, {"ci-py312": FP}, {fp_ref: None}, record_fingerprints=True)  # type: ignore[dict-item]
    assert trimmed["ci-py312"].cache_to == p["ci-py312"].cache_to
    assert after.tags == {"ci-py312": ((f"{CACHE}:ci-py3.12-feature", fp_ref),)}


def test_an_untrusted_run_never_tags_cache_by_fingerprint(project) -> None:
    """A fork's pull request must not record cache under a fingerprint every branch trusts."""
    p = plan(project)
    fp_ref = cache.fingerprint_ref(p["ci-py312"], FP)
    trimmed, after = cache.trim(p, {"ci-py312": FP}, {fp_ref: None}, record_fingerprints=False)  # type: ignore[dict-item]
    assert trimmed["ci-py312"].cache_to == p["ci-py312"].cache_to
    assert after.tags == {}


def test_without_a_fingerprint_the_export_stays(project) -> None:
    p = plan(project)
    trimmed, after = cache.trim(p, {}, {f"{CACHE}:ci-py3.12-feature": m("sha256:c")}, record_fingerprints=True)
    assert trimmed["ci-py312"].cache_to == p["ci-py312"].cache_to
    assert after.tags == {}


def test_registry_ref_reads_only_registry_entries() -> None:
    assert cache.registry_ref("type=registry,ref=r:1,mode=max") == "r:1"
    assert cache.registry_ref("type=inline") is None
    assert cache.registry_ref("type=local,src=/x") is None


def test_a_reused_target_points_its_branch_cache_at_the_reused_builds_cache(project) -> None:
    """Reusing a branch's image on main: main's cache ref follows, to that build's cache."""
    p = plan(project, branch="main")
    fp_ref = cache.fingerprint_ref(p["ci-py312"], FP)
    assert fp_ref is not None
    found = {fp_ref: m("sha256:new"), f"{CACHE}:ci-py3.12-main": m("sha256:old")}
    after = cache.reused_after(p, {"ci-py312": FP}, {"ci-py312"}, found)
    assert after.tags == {"ci-py312": ((fp_ref, f"{CACHE}:ci-py3.12-main"),)}
    found[f"{CACHE}:ci-py3.12-main"] = None  # no cache ref yet: written too
    assert cache.reused_after(p, {"ci-py312": FP}, {"ci-py312"}, found).tags == after.tags


def test_a_reused_target_leaves_its_branch_cache_alone_when_nothing_better_is_known(project) -> None:
    p = plan(project, branch="main")
    fp_ref = cache.fingerprint_ref(p["ci-py312"], FP)
    assert fp_ref is not None
    same = {fp_ref: m("sha256:c"), f"{CACHE}:ci-py3.12-main": m("sha256:c")}
    assert cache.reused_after(p, {"ci-py312": FP}, {"ci-py312"}, same).tags == {}
    absent = {fp_ref: None, f"{CACHE}:ci-py3.12-main": m("sha256:c")}
    assert cache.reused_after(p, {"ci-py312": FP}, {"ci-py312"}, absent).tags == {}  # type: ignore[dict-item]
    unknown = {f"{CACHE}:ci-py3.12-main": m("sha256:c")}
    assert cache.reused_after(p, {"ci-py312": FP}, {"ci-py312"}, unknown).tags == {}
    built = {fp_ref: m("sha256:new"), f"{CACHE}:ci-py3.12-main": m("sha256:old")}
    assert cache.reused_after(p, {"ci-py312": FP}, set(), built).tags == {}  # built: trim's business


def test_a_run_that_writes_no_cache_ref_points_none_after_reuse(project) -> None:
    """No export in the plan (a fork's run, or cache export off): nothing is written."""
    p = plan(project, branch="main")
    fp_ref = cache.fingerprint_ref(p["ci-py312"], FP)
    t = p["ci-py312"]
    no_export = Plan(**{**p.__dict__, "targets": (t.__class__(**{**t.__dict__, "cache_to": ("type=inline",)}),)})
    found = {fp_ref: m("sha256:new"), f"{CACHE}:ci-py3.12-main": m("sha256:old")}
    assert cache.reused_after(no_export, {"ci-py312": FP}, {"ci-py312"}, found).tags == {}  # type: ignore[dict-item]
