"""The steps that build and publish: reuse, the registry cache, the build, the
multi-platform indexes and the local record (see :data:`bake.workflow.COMMANDS`)."""

from __future__ import annotations

import dataclasses
import functools
import gc
import sys
from typing import TYPE_CHECKING

from bake import cache, display, logs, naming, platforms, report, reuse
from bake.engine import images
from bake.errors import StateFolderError
from bake.files import write_atomic
from bake.fingerprint import record_local_image
from bake.plan import TargetPlan, build_plan
from bake.pool import parallel
from bake.report import Result

if TYPE_CHECKING:
    from bake.execute import Executor
    from bake.run import Run

log = logs.get_logger("bake")


def reuse_images(run: Run) -> None:
    """Targets whose inputs the registry already has an image for get this run's tags."""
    allowed = run.writes is not None and run.writes.branch_tags  # reusing adds this run's tags
    if (
        run.target_fingerprints is not None
        and run.output == "push"
        and allowed
        and not run.args.warm
        and not run.args.no_reuse
    ):
        reused = reuse.reuse(run.registry_client, run.runner, run.plan, run.target_fingerprints)
        run.results.update(reused)
        fps = {t: fp.value for t, fp in run.target_fingerprints.values.items()}
        cache.point_reused(run.registry_client, run.plan, fps, reused)  # the cache ref it would have written


def trim_cache(run: Run) -> None:
    """Only the registry cache that helps: sources that exist and differ, no export that would
    write what is there already (one parallel look-up per ref; see bake/cache.py)."""
    todo = [t for t in run.plan.targets if t.id not in run.results]
    if not run.project.config.registry or not todo:
        return
    fps = run.target_fingerprints  # computed by the fingerprint step (args.uses_fingerprints says when)
    values = {t: fp.value for t, fp in fps.values.items()} if fps else {}
    wanted = {t.id: values[t.id] for t in todo if t.id in values}
    found = cache.look_up(
        run.registry_client, cache.refs_to_ask(dataclasses.replace(run.plan, targets=tuple(todo)), wanted)
    )
    trusted = run.writes is not None and run.writes.fingerprint_tags
    run.plan, run.cache_after = cache.trim(run.plan, values, found, record_fingerprints=trusted)


def build(run: Run) -> None:
    """Build what reuse left, showing progress; the results of every target."""
    gc.enable()  # a long run from here on (the CLI turned it off for the short part)
    shown = display.choose(run.args.progress, run.plan.ids, run.context, json_logs=run.args.log_format == "json")
    run.shown = shown
    try:
        for row in run.results.values():
            shown.finished(row, None)
        todo = [t for t in run.plan.ids if t not in run.results]
        if todo:
            try:
                run.executor = _executor(run, shown)
            except StateFolderError as exc:
                if not run.results:
                    raise  # nothing done: no summary to show
                run.state_error = exc  # reused targets have their tags: show them, then the error
                for t in todo:
                    row = report.Result(target=t, status="cancelled", image=run.plan[t].image)
                    run.results[t] = row
                    shown.finished(row, None)
                return
            for row in run.executor.run(todo):
                run.results[row.target] = row
            run.state_error = run.executor.state_error
    finally:
        shown.close()
    if run.executor is not None and run.args.progress != "quiet":
        for note in run.executor.folded.notes():
            if run.args.log_format == "json":
                log.info("note", text=note)
            else:
                print(note, file=sys.stderr)


def _executor(run: Run, shown: display.Display) -> Executor:
    """Check the engine can do the build, write this run's bake file, set up its execution."""
    from bake.engine import checks
    from bake.execute import Executor, Options

    args, project, plan_ = run.args, run.project, run.plan
    info = checks.check(run.runner, args.builder, cache_export=plan_.exports_cache)
    folder = run.state.new_run_folder()
    with run.state.writing("writing the bake file for buildx"):
        write_atomic(folder.bake_file, plan_.to_json())
    options = Options(
        keep_going=args.warm or args.keep_going,
        jobs=args.jobs,
        retries=args.retries,
        builder=args.builder,
        no_cache=args.no_cache,
        pull=args.warm or args.pull,
    )

    def publish(target: str, digest: str) -> None:
        reuse.publish(run.registry_client, run.runner, plan_[target], digest)
        cache.finish(run.registry_client, run.cache_after, target)
        run.published.add(target)

    log.info(
        "build", targets=plan_.ids, branch=run.branch, output=run.output, keep_going=options.keep_going,
        builder=info.builder.name, driver=info.builder.driver, run=str(folder.root),
    )  # fmt: skip
    return Executor(
        plan_,
        root=project.root,
        files=[p for p in (project.bake_file, folder.bake_file) if p is not None],
        run_folder=folder,
        options=options,
        display=shown,
        runner=run.runner,
        publish=publish,
    )


def finish_cache(run: Run) -> None:
    """Built targets that published no image (``--cache-only``, ``--load --cache-to``) get
    their cache tags now: a skipped export's branch ref is pointed at the cache that is
    there, so the run writes the cache ref its plan says it writes."""
    done = [t for t, r in run.results.items() if r.status == "built" and t not in run.published]
    if run.cache_after.tags and done:
        parallel(lambda t: cache.finish(run.registry_client, run.cache_after, t), done)


def merge_images(run: Run) -> None:
    """A multi-platform project's indexes, once every platform's image is in the registry:
    at the end of a build of every platform, or as ``bake-ci merge`` after one job each.
    Each selected target's index is made from this run's per-platform images (their
    digests when this run built or reused them, else their tags), under the tags the
    run's trust policy lets it write; nothing when it may write no images."""
    from bake.merge import children, merge  # only multi-platform runs need it

    configured = run.project.config.platforms
    if not run.platforms or len(run.platforms) != len(configured):
        return  # one image per target, or one platform's job: nothing to merge here
    if run.writes is None or not run.writes.branch_tags:
        if run.args.command == "merge":
            log.warning("merge writes nothing to the registry", because=run.writes.reason if run.writes else "")
        return
    fps = run.target_fingerprints.values if run.target_fingerprints is not None else {}
    index_fps = {}
    for t in run.targets:
        per = {p: fps.get(t.id + naming.platform_suffix(p)) for p in run.platforms}
        if all(per.values()):
            index_fps[t.id] = platforms.index_fingerprint({p: fp.value for p, fp in per.items() if fp})
    index_plan = build_plan(
        run.project, run.targets, branch=run.branch, sha=run.sha, output="push", fingerprints=index_fps,
        writes=run.writes,
    )  # fmt: skip
    digests: dict[str, str | None] = {}
    todo: dict[str, TargetPlan] = {}
    for index in index_plan.targets:
        rows = [run.results.get(index.id + naming.platform_suffix(p)) for p in run.platforms]
        if run.args.command != "merge" and not all(r is not None and r.ok for r in rows):
            run.results[index.id] = Result(
                target=index.id, status="cancelled", image=index.image, error="not merged: a platform's image failed"
            )
            continue
        digests.update({r.target: r.digest for r in rows if r is not None})
        todo[index.id] = index
    per_platform = [p for p in run.plan.targets if p.target.id in todo]
    run.results.update(merge(run.registry_client, children(todo, per_platform, digests)))


def record(run: Run) -> None:
    """Remember the fingerprint of each image now in the local engine (built; reused ones are not)."""
    fps = run.target_fingerprints
    if fps is None or run.output == "cache-only":
        return
    built = [t for t in run.plan.targets if t.id in fps.values and run.results[t.id].status == "built"]
    ids = parallel(functools.partial(images.local_image_id, run.runner), [t.image for t in built])
    for t, image_id in zip(built, ids, strict=True):
        try:
            record_local_image(run.state, t.id, fps.values[t.id], t.image, image_id)
        except StateFolderError as exc:  # the images are built: the summary comes first
            run.state_error = run.state_error or exc
            break
