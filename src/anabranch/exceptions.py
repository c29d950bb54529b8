"""Every error anabranch raises on purpose; each docstring says when it is raised."""

from __future__ import annotations


class AnabranchError(Exception):
    """Base of every anabranch error."""


class ParameterTypeError(AnabranchError, TypeError):
    """A flow was called with parameters that do not match its signature or annotations."""


class UpstreamTaskError(AnabranchError):
    """A run could not start because a future it depends on did not complete."""


class MissingContextError(AnabranchError, RuntimeError):
    """Something that needs a flow or task run was used outside of one."""


class FailedRun(AnabranchError):
    """Raised by ``State.result()`` for a Failed or Crashed state whose cause was not kept."""


class CrashedRun(FailedRun):
    """The run was interrupted by something outside the user's code (signal, kill, crash)."""


class CancelledRun(AnabranchError):
    """The run was cancelled before it could finish."""


class RunTimeoutError(AnabranchError, TimeoutError):
    """A flow or task ran longer than its ``timeout_seconds``."""


class SerializationError(AnabranchError, ValueError):
    """A result could not be serialized or deserialized with the chosen serializer."""


class MissingResult(AnabranchError):
    """A state's result was not kept in memory and was not persisted."""


class ObjectNotFound(AnabranchError, LookupError):
    """A run, limit or other object does not exist in the store."""


class UnknownConcurrencyLimit(ObjectNotFound):
    """``concurrency()`` (strict) or ``concurrency_limit=`` named a limit that does not exist."""


class InvalidConcurrencyLimit(AnabranchError, ValueError):
    """A concurrency limit was given a negative size or slot decay."""


class ConcurrencySlotTimeout(AnabranchError, TimeoutError):
    """Slots of a concurrency limit could not be had within ``timeout_seconds``; nothing is
    held."""


class ConcurrencySlotError(AnabranchError, ValueError):
    """A request for slots that can never be granted (more than the limit, rate_limit() on a
    limit without decay)."""


class TerminationSignal(SystemExit):
    """SIGTERM arrived while a flow ran in the main thread; its runs end Crashed.

    A SystemExit, so ``except Exception`` in user code does not swallow it and the process
    exits with status 143 as it would have without anabranch.
    """
