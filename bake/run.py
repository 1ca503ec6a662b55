"""One command's run: what it was given, what it carries (the process runner, the registry
client), and what each step has found so far; :func:`execute` runs a command's steps over it.

The steps themselves live by concern (:mod:`bake.workflow`, :mod:`bake.build_steps`,
:mod:`bake.local_steps`, :mod:`bake.summary`); each reads the :class:`Run` and adds its part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bake import cache, ci, config, display, logs, policy, registry, report, reuse
from bake.args import Args, Output
from bake.engine import images, process
from bake.errors import StateFolderError
from bake.fingerprint import TargetFingerprints
from bake.needed import Needed
from bake.plan import Plan, Target
from bake.state import State

if TYPE_CHECKING:
    from bake.execute import Executor

log = logs.get_logger("bake")


@dataclass
class Run:
    """One command's run: its inputs, and what each step has found so far."""

    args: Args
    environ: Mapping[str, str]
    #: starts every process of the run, with ``environ``, and keeps what the engine said once
    runner: process.Runner
    #: the run's registry client (it keeps its tokens between requests)
    registry_client: registry.Client
    context: ci.Context = field(init=False)
    #: what the steps found so far, each set by the step named (read before it: StepOrderError)
    project = Needed[config.Project]("load")
    state = Needed[State]("load")
    targets = Needed[list[Target]]("select_targets")
    branch = Needed[str]("destination")
    sha = Needed["str | None"]("destination")
    output = Needed[Output]("destination")
    writes = Needed[policy.Writes | None]("destination")
    #: the fingerprint of each target (per platform: of each plan identifier), None when the
    #: command does not use them (:func:`bake.args.uses_fingerprints`)
    target_fingerprints = Needed[TargetFingerprints | None]("fingerprint")
    plan = Needed[Plan]("plan (or local_plan)")
    local_images = Needed[Callable[[str], images.LocalImage | None]]("ask_local_images")
    results: dict[str, report.Result] = field(default_factory=dict)
    executor: Executor | None = None
    shown: display.Display | None = None
    cache_after: cache.After = field(default_factory=lambda: cache.After({}))
    #: Targets whose image was published (their cache tags were written then).
    published: set[str] = field(default_factory=set)
    exit_code: int = 0
    #: the state folder could not be written after targets had been built or reused:
    #: the run ends with it once the summary is out
    state_error: StateFolderError | None = None
    #: a multi-platform project's platforms this run handles one by one (() for one image,
    #: and for shell and run, which build for the engine's own)
    platforms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.context = ci.from_environ(self.environ)

    @classmethod
    def start(cls, args: Args, environ: Mapping[str, str]) -> Run:
        """A command's run, with its own process runner and registry client."""
        runner = process.Runner(environ)
        return cls(args, environ, runner, reuse.client(runner))


Step = Callable[[Run], None]


def execute(steps: Sequence[Step], run: Run) -> None:
    for step in steps:
        log.debug("step", step=step.__name__)
        step(run)
