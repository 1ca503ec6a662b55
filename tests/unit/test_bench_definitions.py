"""The definition-cost benchmark (bench/definitions.py, bench/anatomy.py).

The variants and the proposed rules are pure edits of bake-ci's definition: tested here
without Docker, the rules' registry look-ups answered by a table. The large fixture's raw
bake file and the bench's second engine are checked on the real engine, in
tests/engine/test_bench_harness.py.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from bake.registry import Manifest

from .helpers import BENCH, load_bench

ROOT = BENCH.parent

definitions = load_bench("bench_definitions", "definitions.py")
anatomy = load_bench("anatomy", "anatomy.py")

SHA = "0123456789abcdef0123456789abcdef01234567"
IMAGE = "localhost:5000/ns/bench/chain-ci"
CACHE = f"{IMAGE}-cache"


def plan(branch: str = "feature") -> dict[str, object]:
    """What ``bake-ci plan --push --no-reuse --branch feature`` gives for one target."""
    target = {
        "args": {"BASE_IMAGE": "localhost:5000/library/python:3.11-slim", "PYTHON_VERSION": "3.11"},
        "cache-from": [
            f"type=registry,ref={CACHE}:s2-py3.11-{branch}",
            f"type=registry,ref={CACHE}:s2-py3.11-main",
            f"type=registry,ref={IMAGE}:s2-py3.11",
        ],
        "cache-to": [f"type=registry,ref={CACHE}:s2-py3.11-{branch},mode=max,ignore-error=true", "type=inline"],
        "labels": {"dev.bake-ci.target": "s2-py311"},
        "output": ["type=registry"],
        "tags": [f"{IMAGE}:s2-py3.11-{branch}", f"{IMAGE}:s2-py3.11-0123456"],
        "target": "s2",
    }
    return {"group": {"default": {"targets": ["s2-py311"]}}, "target": {"s2-py311": target}}


def fp_tag() -> str:
    return f"s2-py3.11-fp-{hashlib.sha256(f's2-py311@{SHA}'.encode()).hexdigest()[:12]}"


def test_the_raw_variant_keeps_one_tag_one_source_and_the_export() -> None:
    target = definitions.variant(plan(), SHA, "raw")["target"]["s2-py311"]
    assert target["tags"] == [f"{IMAGE}:s2-py3.11-feature"]
    assert target["cache-from"] == [f"type=registry,ref={CACHE}:s2-py3.11-feature"]
    assert target["cache-to"] == [f"type=registry,ref={CACHE}:s2-py3.11-feature,mode=max,ignore-error=true"]


def test_each_variant_adds_one_thing_to_raw() -> None:
    raw = definitions.variant(plan(), SHA, "raw")["target"]["s2-py311"]
    for name, key, expected in (
        ("raw-noexport", "cache-to", []),
        ("raw+inline", "cache-to", [*raw["cache-to"], "type=inline"]),
        ("raw+tags", "tags", [*plan()["target"]["s2-py311"]["tags"], f"{IMAGE}:{fp_tag()}"]),  # type: ignore[index]
        ("raw+sources", "cache-from", plan()["target"]["s2-py311"]["cache-from"]),  # type: ignore[index]
    ):
        edited = definitions.variant(plan(), SHA, name)["target"]["s2-py311"]
        assert edited[key] == expected, name
        assert {k: v for k, v in edited.items() if k != key} == {k: v for k, v in raw.items() if k != key}, name


def test_full_is_bake_cis_definition_with_its_fingerprint_tag_and_label() -> None:
    full = definitions.variant(plan(), SHA, "full")["target"]["s2-py311"]
    original = plan()["target"]["s2-py311"]  # type: ignore[index]
    assert full["tags"] == [*original["tags"], f"{IMAGE}:{fp_tag()}"]
    assert full["cache-from"] == original["cache-from"]
    assert full["cache-to"] == original["cache-to"]
    assert "dev.bake-ci.fingerprint" in full["labels"]


class Registry(definitions.Rules):  # type: ignore[misc,name-defined]
    """The rules with their look-ups answered from a table: ref -> manifest digest."""

    def __init__(self, digests: dict[str, str]) -> None:
        super().__init__()
        self.digests = digests
        self.asked: list[str] = []

    def head(self, ref: str) -> Manifest | None:
        self.asked.append(ref)
        digest = self.digests.get(ref)
        return None if digest is None else Manifest("application/vnd.oci.image.index.v1+json", digest, b"{}")


def test_rules_drop_missing_and_duplicate_sources_and_the_image_behind_a_cache_ref() -> None:
    rules = Registry({f"{CACHE}:s2-py3.11-main": "sha256:a", f"{IMAGE}:s2-py3.11": "sha256:i"})
    target = rules.plan(plan(), SHA)[0]["target"]["s2-py311"]
    assert target["cache-from"] == [f"type=registry,ref={CACHE}:s2-py3.11-main"]

    same = {f"{CACHE}:s2-py3.11-feature": "sha256:a", f"{CACHE}:s2-py3.11-main": "sha256:a"}
    target = Registry(same).plan(plan(), SHA)[0]["target"]["s2-py311"]
    assert target["cache-from"] == [f"type=registry,ref={CACHE}:s2-py3.11-feature"]

    only_image = Registry({f"{IMAGE}:s2-py3.11": "sha256:i"}).plan(plan(), SHA)[0]["target"]["s2-py311"]
    assert only_image["cache-from"] == [f"type=registry,ref={IMAGE}:s2-py3.11"]

    nothing = Registry({}).plan(plan(), SHA)[0]["target"]["s2-py311"]
    assert nothing["cache-from"] == []


def test_rules_asks_every_ref_once_and_tags_after_the_build() -> None:
    rules = Registry({})
    edited, after, record = rules.plan(plan(), SHA)
    target = edited["target"]["s2-py311"]
    assert sorted(rules.asked) == sorted(set(rules.asked))
    assert f"{CACHE}:{fp_tag()}" in rules.asked
    assert target["tags"] == [f"{IMAGE}:s2-py3.11-feature"]
    assert (f"{IMAGE}:s2-py3.11-feature", f"{IMAGE}:s2-py3.11-0123456") in after
    assert (f"{IMAGE}:s2-py3.11-feature", f"{IMAGE}:{fp_tag()}") in after
    # no cache for this fingerprint yet: export it, then record it under the fingerprint
    assert target["cache-to"] == [f"type=registry,ref={CACHE}:s2-py3.11-feature,mode=max,ignore-error=true",
                                  "type=inline"]  # fmt: skip
    assert record == ["s2-py311"]
    assert (f"{CACHE}:s2-py3.11-feature", f"{CACHE}:{fp_tag()}") in after


def test_rules_skip_the_export_when_the_fingerprints_cache_is_there() -> None:
    rules = Registry({f"{CACHE}:{fp_tag()}": "sha256:c", f"{CACHE}:s2-py3.11-main": "sha256:c"})
    edited, after, record = rules.plan(plan(), SHA)
    assert edited["target"]["s2-py311"]["cache-to"] == ["type=inline"]
    assert record == []
    assert (f"{CACHE}:{fp_tag()}", f"{CACHE}:s2-py3.11-feature") in after  # the branch's ref points at it

    rules = Registry({f"{CACHE}:{fp_tag()}": "sha256:c", f"{CACHE}:s2-py3.11-feature": "sha256:c"})
    _, after, _ = rules.plan(plan(), SHA)
    assert all(new != f"{CACHE}:s2-py3.11-feature" for _, new in after)  # already the same manifest


# -- anatomy ----------------------------------------------------------------------------------


def test_union_counts_overlapping_time_once() -> None:
    assert anatomy.union([(0.0, 1.0), (0.5, 2.0), (3.0, 4.0), (3.2, 3.5)]) == pytest.approx(3.0)
    assert anatomy.union([]) == 0.0


def test_categories_of_buildx_vertex_names() -> None:
    assert anatomy.category("importing cache manifest from localhost:5000/a-cache:x") == "cache import"
    assert anatomy.category("exporting cache to registry") == "cache export"
    assert anatomy.category("preparing build cache for export") == "cache export"
    assert anatomy.category("exporting to image") == "image export and push"
    assert anatomy.category("pushing manifest for localhost:5000/a:b@sha256:x") == "image export and push"
    assert anatomy.category("[internal] load metadata for localhost:5000/library/python:3.11-slim") == (
        "base image metadata"
    )
    assert anatomy.category("[s2-py311 s2 2/3] RUN cat a b") == "build steps"


def test_intervals_from_a_rawjson_stream_keep_each_vertex_once() -> None:
    def stamp(seconds: float) -> str:
        return f"2026-01-01T00:00:{seconds:09.6f}123Z"

    events = [
        {"vertexes": [{"digest": "a", "name": "importing cache manifest from r1", "started": stamp(1)}]},
        {
            "vertexes": [
                {"digest": "a", "name": "importing cache manifest from r1", "started": stamp(1), "completed": stamp(2)}
            ]
        },
        {
            "vertexes": [
                {
                    "digest": "b",
                    "name": "importing cache manifest from r2",
                    "started": stamp(1.5),
                    "completed": stamp(2.5),
                }
            ]
        },
        {
            "vertexes": [{"digest": "c", "name": "exporting to image", "started": stamp(3), "completed": stamp(5)}],
            "statuses": [{"vertex": "c", "id": "pushing layers", "started": stamp(3), "completed": stamp(4)}],
        },
    ]
    text = "$ docker buildx bake\n" + "\n".join(json.dumps(e, indent=2) for e in events)
    found = anatomy.summary(anatomy.intervals(text))
    assert found["cache import"] == (pytest.approx(1.5), 2)
    assert found["image export and push"] == (pytest.approx(2.0), 2)
    assert found["span"][0] == pytest.approx(4.0)


def test_run_py_keeps_the_definitions_block_of_the_results_file() -> None:
    results = load_bench("results", "results.py")
    old = results.with_definitions("old run.py table\n", "definitions table")
    assert old == "old run.py table\n\n<!-- definitions:start -->\ndefinitions table\n<!-- definitions:end -->\n"
    assert results.keep_definitions(old, "new table\n") == (
        "new table\n\n<!-- definitions:start -->\ndefinitions table\n<!-- definitions:end -->\n"
    )
    assert results.keep_definitions("no block", "new table\n") == "new table\n"
    assert results.with_definitions(old, "newer").count("definitions:start") == 1
    assert "newer" in results.with_definitions(old, "newer")
