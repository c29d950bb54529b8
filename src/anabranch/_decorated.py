"""What Flow and Task share as decorated functions: option copies, repr, and pickling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from anabranch._pickling import reduce_by_reference

D = TypeVar("D", bound="Decorated")


class Decorated:
    """Base of Flow and Task: ``fn`` plus the option names ``with_options`` may change."""

    fn: Callable[..., Any]
    name: str
    _OPTIONS: tuple[str, ...] = ()

    def with_options(self: D, **options: Any) -> D:
        """A copy with some options changed; an unknown option is an error naming it."""
        unknown = set(options) - set(self._OPTIONS)
        if unknown:
            kind = type(self).__name__.lower()
            raise TypeError(
                f"with_options() got unknown {kind} options {sorted(unknown)}; "
                f"valid ones are {list(self._OPTIONS)}."
            )
        current = {name: getattr(self, name) for name in self._OPTIONS}
        return type(self)(self.fn, **{**current, **options})  # type: ignore[call-arg]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def __reduce_ex__(self, protocol: Any) -> Any:
        return reduce_by_reference(self, self.fn) or super().__reduce_ex__(protocol)
