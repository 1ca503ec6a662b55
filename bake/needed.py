"""What a step of a command needs from the steps before it, said where it is read.

A :class:`~bake.run.Run` field that a step sets (the project, the plan, ...) is a
:class:`Needed`: read before any step set it, it raises :class:`StepOrderError` naming
the step that makes it, instead of an ``AttributeError`` about a missing attribute.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, overload

from bake.errors import StepOrderError

T = TypeVar("T")


class Needed(Generic[T]):
    """A field an earlier step sets; ``made_by`` names that step (or steps)."""

    def __init__(self, made_by: str) -> None:
        self.made_by = made_by
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> Needed[T]: ...
    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> T: ...
    def __get__(self, obj: object | None, objtype: type | None = None) -> Needed[T] | T:
        if obj is None:
            return self
        try:
            found: T = vars(obj)[self.name]
        except KeyError:
            raise StepOrderError(
                f"a step read run.{self.name} before {self.made_by} made it: put {self.made_by} before it "
                "in the command's steps."
            ) from None
        return found

    def __set__(self, obj: Any, value: T) -> None:
        vars(obj)[self.name] = value

    def made(self, obj: object) -> bool:
        """Whether a step has set this field of ``obj``."""
        return self.name in vars(obj)
