"""The registry side of ``bake-ci gc``: requests with retries, and removing refs safely.

What the repositories hold is read by :mod:`bake.inventory`. :class:`Remover` applies the
verdicts over the distribution API, which has no "untag" and deletes manifests only by
digest:

- a manifest no kept ref reaches is deleted by digest, once each of its tags is checked
  again to still name it, and no kept tag of its target (nor a tag pushed since) names or
  reaches it; otherwise nothing is deleted;
- a tag whose manifest a kept ref still needs is untagged: a small placeholder manifest
  is pushed to the tag (after checking the tag again), then the placeholder is deleted.

Every request is retried on :mod:`bake.retry`'s schedule (the registry client's, backoff
with jitter within a budget): 429 and 5xx answers (their ``Retry-After`` honoured) and
unreachable registries are tried again; the client under it does not retry as well. A
registry that refuses deletes (405, 401/403 with a token lacking delete) raises
:class:`Refused`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bake import logs, registry, retry
from bake.holdings import Survey
from bake.redact import redact
from bake.retention import Repo, Verdict, split

log = logs.get_logger("bake.gc")

#: Marks the manifests gc pushes to untag a tag; a tag found naming one is left over.
PLACEHOLDER = "dev.bake-ci.gc-placeholder"
EMPTY = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY).hexdigest()
MANIFEST_TYPES = ("manifest", "index", "list")


class Refused(Exception):
    """The registry does not let this client delete (405, or no delete permission)."""


class Again(Exception):
    """A request failed for a reason that may pass (429, 5xx, no answer): retried, and
    raised once the retries are used up."""

    def __init__(self, message: str, retry_after: float | None = None, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        #: the registry could not be reached at all (as opposed to answering "later")
        self.unreachable = unreachable


def _again(status: int, headers: Mapping[str, str], what: str, now: float) -> Again:
    return Again(f"{what} answered HTTP {status}", retry.retry_after(headers.get("retry-after"), now))


class Registry:
    """The registry client of this run with gc's retries and answers around it. ``client``
    should not retry itself (``retry.Policy(retries=0)``): retries never nest."""

    def __init__(
        self, client: registry.Client, policy: retry.Policy = registry.POLICY, clock: retry.Clock = retry.REAL_TIME
    ) -> None:
        self.client = client
        self.policy = policy
        self.clock = clock

    def _request(
        self, method: str, ref: registry.Reference, what: str, *, actions: str, **kw: Any
    ) -> tuple[int, dict[str, str], bytes]:
        def attempt() -> tuple[int, dict[str, str], bytes]:
            try:
                status, headers, body = self.client.request(method, ref, what, actions=actions, **kw)
            except registry.RegistryUnavailable as exc:
                raise Again(redact(str(exc)), unreachable=True) from None
            except registry.RegistryError as exc:
                said = str(exc)
                if method != "GET" and any(w in said for w in ("unauthorized", "token", "credentials")):
                    raise Refused(f"{method} {ref.repository}: {redact(said)}") from None
                raise
            if status in registry.RETRY_STATUSES:
                raise _again(status, headers, f"{method} {ref.repository}/{what.split('?')[0]}", self.clock.now())
            return status, headers, body

        retries = retry.Retry(self.policy, self.clock)
        while True:
            try:
                return attempt()
            except Again as exc:
                delay = retries.delay(exc.retry_after)
                if delay is None:
                    raise
                log.info(
                    "registry request retried", request=f"{method} {ref.repository}", why=str(exc),
                    attempt=retries.attempt, delay=round(delay, 2),
                )  # fmt: skip
                retries.wait(delay)

    def tags(self, repo: registry.Reference) -> list[str]:
        found: list[str] = []
        url: str | None = "tags/list?n=1000"
        while url:
            status, headers, body = self._request("GET", repo, url, actions="pull")
            if status == 404:
                return found
            if status != 200:
                raise registry.RegistryError(f"{repo.host}: GET tags/list of {repo.repository} answered {status}")
            found += [str(t) for t in (json.loads(body).get("tags") or [])]
            link = headers.get("link", "")
            url = link[link.find("<") + 1 : link.find(">")] if "<" in link else None
        return found

    def manifest(self, repo: registry.Reference, reference: str) -> registry.Manifest | None:
        status, headers, body = self._request(
            "GET", repo, f"manifests/{reference}", actions="pull", headers={"Accept": registry.MANIFEST_TYPES}
        )
        if status == 404:
            return None
        if status != 200:
            raise registry.RegistryError(f"{repo.host}: GET manifest {reference} answered {status}")
        media_type = headers.get("content-type", "").split(";")[0] or str(json.loads(body).get("mediaType", ""))
        return registry.Manifest(media_type, "sha256:" + hashlib.sha256(body).hexdigest(), body)

    def digest(self, repo: registry.Reference, tag: str) -> str | None:
        """What ``tag`` names now (None: no such tag)."""
        status, headers, _ = self._request(
            "HEAD", repo, f"manifests/{tag}", actions="pull", headers={"Accept": registry.MANIFEST_TYPES}
        )
        if status == 404:
            return None
        if status == 200 and headers.get("docker-content-digest", "").startswith("sha256:"):
            return headers["docker-content-digest"]
        manifest = self.manifest(repo, tag)
        return manifest.digest if manifest else None

    def blob(self, repo: registry.Reference, digest: str) -> bytes | None:
        status, _, body = self._request("GET", repo, f"blobs/{digest}", actions="pull")
        return body if status == 200 else None

    def delete(self, repo: registry.Reference, digest: str) -> bool:
        """Delete the manifest ``digest``: True, or False when it was gone already."""
        status, _, body = self._request("DELETE", repo, f"manifests/{digest}", actions="pull,push,delete")
        if status in (200, 202):
            return True
        if status == 404:
            return False
        if status in (401, 403, 405):
            said = body.decode(errors="replace").strip()[:200]
            raise Refused(f"DELETE {repo.repository}@{digest[:19]} answered HTTP {status} ({redact(said)})")
        raise registry.RegistryError(f"{repo.host}: DELETE manifest answered {status}")

    def push_empty_blob(self, repo: registry.Reference) -> None:
        status, _, _ = self._request("HEAD", repo, f"blobs/{EMPTY_DIGEST}", actions="pull")
        if status == 200:
            return
        status, headers, _ = self._request("POST", repo, "blobs/uploads/", actions="pull,push", body=b"")
        location = headers.get("location", "")
        if status not in (201, 202) or not location:
            raise _refused_or_error(status, "POST blobs/uploads/")
        glue = "&" if "?" in location else "?"
        status, _, _ = self._request(
            "PUT",
            repo,
            f"{location}{glue}digest={EMPTY_DIGEST}",
            actions="pull,push",
            body=EMPTY,
            headers={"Content-Type": "application/octet-stream"},
        )
        if status not in (201, 202, 204):
            raise _refused_or_error(status, "PUT blob")

    def push_placeholder(self, repo: registry.Reference, tag: str, nonce: str) -> str:
        """Point ``tag`` at a new placeholder manifest; its digest."""
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2},
                "layers": [],
                "annotations": {PLACEHOLDER: nonce},
            },
            separators=(",", ":"),
        ).encode()
        status, _, _ = self._request(
            "PUT",
            repo,
            f"manifests/{tag}",
            actions="pull,push",
            body=body,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        if status not in (200, 201, 202):
            raise _refused_or_error(status, f"PUT manifest {tag}")
        return "sha256:" + hashlib.sha256(body).hexdigest()


def _refused_or_error(status: int, what: str) -> Exception:
    if status in (401, 403, 405):
        return Refused(f"{what} answered HTTP {status}")
    return registry.RegistryError(f"{what} answered HTTP {status}")


# -- removing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What became of a ref that was to go."""

    verdict: Verdict
    done: str  # deleted, untagged, gone already, or why not
    ok: bool


class Stopped(Exception):
    """gc stopped before the end: the registry refused, or stayed unreachable or busy."""

    def __init__(self, message: str, outcomes: list[Outcome], *, refused: bool, unreachable: bool) -> None:
        super().__init__(message)
        self.outcomes = outcomes
        self.refused = refused
        self.unreachable = unreachable


class Remover:
    """Applies the verdicts that remove refs, re-checking the registry before every change."""

    def __init__(
        self,
        reg: Registry,
        repos: Mapping[Repo, registry.Reference],
        prefixes: Sequence[str],
        found: Survey,
        verdicts: Sequence[Verdict],
    ) -> None:
        self.reg, self.repos, self.prefixes, self.found = reg, repos, prefixes, found
        self.verdicts = verdicts
        self.known = {(v.ref.repo, v.ref.tag) for v in verdicts}
        self.empty_pushed: set[Repo] = set()
        self.outcomes: list[Outcome] = []

    def _prefix(self, tag: str) -> str:
        parts = split(tag, self.prefixes)
        return parts[0] if parts else ""

    def _protected(self, repo: Repo, prefix: str) -> dict[str, str]:
        """Digests the kept tags of ``prefix`` (and tags pushed since the survey) name or
        reach now, each with the tag that does."""
        where = self.repos[repo]
        kept = [v.ref for v in self.verdicts if v.keep and v.ref.repo == repo and self._prefix(v.ref.tag) == prefix]
        new = [t for t in self.reg.tags(where) if (repo, t) not in self.known and self._prefix(t) == prefix]
        protected: dict[str, str] = {}
        for tag, was in [(r.tag, r.digest) for r in kept] + [(t, "") for t in new]:
            now = self.reg.digest(where, tag)
            if now is None:
                continue
            protected.setdefault(now, tag)
            todo = [now]
            while todo:
                digest = todo.pop()
                children = self.found.children.get(digest) if digest == was or digest in self.found.children else None
                if children is None:
                    manifest = self.reg.manifest(where, digest)
                    children = set()
                    if manifest is not None and manifest.is_index:
                        entries = json.loads(manifest.body).get("manifests") or []
                        children = {
                            str(e.get("digest")) for e in entries
                            if any(w in str(e.get("mediaType", "")) for w in MANIFEST_TYPES)
                        }  # fmt: skip
                    self.found.children[digest] = children
                for child in children:
                    if child not in protected:
                        protected[child] = tag
                        todo.append(child)
        return protected

    def _delete(self, repo: Repo, digest: str, group: list[Verdict], protected: Mapping[str, str]) -> None:
        where = self.repos[repo]
        if digest in protected:
            why = f"not deleted: kept tag {protected[digest]} now names or reaches it"
            self.outcomes += [Outcome(v, why, True) for v in group]
            return
        moved = [v for v in group if self.reg.digest(where, v.ref.tag) not in (digest, None)]
        if moved:
            why = f"not deleted: {moved[0].ref.tag} moved to another manifest since it was read"
            self.outcomes += [Outcome(v, why, True) for v in group]
            return
        done = "deleted" if self.reg.delete(where, digest) else "gone already"
        self.outcomes += [Outcome(v, done, True) for v in group]

    def _untag(self, v: Verdict) -> None:
        where = self.repos[v.ref.repo]
        if self.reg.digest(where, v.ref.tag) != v.ref.digest:
            self.outcomes.append(Outcome(v, "not untagged: the tag moved or went since it was read", True))
            return
        if v.ref.repo not in self.empty_pushed:
            self.reg.push_empty_blob(where)
            self.empty_pushed.add(v.ref.repo)
        placeholder = self.reg.push_placeholder(where, v.ref.tag, f"{v.ref.tag}@{v.ref.digest}")
        self.reg.delete(where, placeholder)
        self.outcomes.append(Outcome(v, "untagged", True))

    def run(self) -> list[Outcome]:
        """Remove every ref whose verdict says so; :class:`Stopped` if the registry will not."""
        going = [v for v in self.verdicts if not v.keep]
        groups: dict[tuple[Repo, str], dict[str, list[Verdict]]] = {}
        untags: dict[tuple[Repo, str], list[Verdict]] = {}
        for v in going:
            key = (v.ref.repo, self._prefix(v.ref.tag))
            if v.action == "untag":
                untags.setdefault(key, []).append(v)
            else:
                groups.setdefault(key, {}).setdefault(v.ref.digest, []).append(v)
        try:
            for key in sorted(set(groups) | set(untags)):
                repo, prefix = key
                if key in groups:
                    protected = self._protected(repo, prefix)
                    for digest, group in groups[key].items():
                        with self._failing(group):
                            self._delete(repo, digest, group, protected)
                for v in untags.get(key, []):
                    with self._failing([v]):
                        self._untag(v)
        except (Refused, Again) as exc:
            finished = (
                {o.verdict.ref.tag for o in self.outcomes if o.verdict.ref.repo == "image"},
                {o.verdict.ref.tag for o in self.outcomes if o.verdict.ref.repo == "cache"},
            )
            for v in going:
                if v.ref.tag not in finished[0 if v.ref.repo == "image" else 1]:
                    self.outcomes.append(Outcome(v, "not attempted: gc stopped", False))
            refused = isinstance(exc, Refused)
            unreachable = isinstance(exc, Again) and exc.unreachable
            raise Stopped(redact(str(exc)), self.outcomes, refused=refused, unreachable=unreachable) from None
        return self.outcomes

    @contextlib.contextmanager
    def _failing(self, group: list[Verdict]) -> Iterator[None]:
        """A registry answer that is neither "later" nor "refused" fails these refs only."""
        try:
            yield
        except registry.RegistryError as exc:
            self.outcomes += [Outcome(v, f"failed: {redact(str(exc))}", False) for v in group]
