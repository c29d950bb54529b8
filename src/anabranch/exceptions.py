"""Every error anabranch raises on purpose; each docstring says when it is raised."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, ClassVar


class AnabranchError(Exception):
    """Base of every anabranch error.

    Errors of the store cross the wire by name: the server answers with the class name,
    the message and ``wire_fields()``, and the HTTP client raises the same class again
    with ``from_wire``; a class holding more than its message overrides both."""

    # Raised by a write after the rest of its work was kept (committed), not instead of it.
    keeps_the_rest: ClassVar[bool] = False

    def wire_fields(self) -> dict[str, Any]:
        """What the error holds besides its message, as JSON."""
        return {}

    @classmethod
    def from_wire(cls, message: str, fields: dict[str, Any]) -> AnabranchError:
        return cls(message)


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


class UntrustedResultStorage(AnabranchError, PermissionError):
    """A result reference points outside the storage locations this process reads results
    from (``$ANABRANCH_HOME/storage``, ANABRANCH_RESULTS_STORAGE,
    ANABRANCH_RESULTS_TRUSTED_STORAGE and the ``result_storage`` of its own flows and
    tasks). References come from the store, which any API client may write, so reading
    anywhere else could run a planted file's code; the message names the location and how to
    allow it."""


class ObjectNotFound(AnabranchError, LookupError):
    """A run, limit or other object does not exist in the store."""


class UnknownConcurrencyLimit(ObjectNotFound):
    """``concurrency()`` (strict) or ``concurrency_limit=`` named a limit that does not exist."""


class InvalidName(AnabranchError, ValueError):
    """A work pool or work queue was given a name that could not be stored or addressed
    (empty, too long, a control character, ``.``, ``..`` or a ``/``); the message names the
    rule. Concurrency limits and deployments raise their own error for the same rules."""


class InvalidConcurrencyLimit(AnabranchError, ValueError):
    """A concurrency limit was given a negative size or slot decay, or a name that could not
    be stored or addressed."""


class ConcurrencySlotTimeout(AnabranchError, TimeoutError):
    """Slots of a concurrency limit could not be had within ``timeout_seconds``; nothing is
    held."""


class ConcurrencySlotError(AnabranchError, ValueError):
    """A request for slots that can never be granted (more than the limit, rate_limit() on a
    limit without decay)."""


class StoreUnavailable(AnabranchError, ConnectionError):
    """The store (the anabranch server, or the embedded store's database) could not be
    reached for the client's whole retry budget (ANABRANCH_CLIENT_RETRY_SECONDS)."""


class ServerUnavailable(StoreUnavailable):
    """The anabranch server did not answer, or kept failing (5xx), for the HTTP client's
    whole retry budget; the message names the server and how to start it."""


class StoreUnusable(AnabranchError, OSError):
    """What anabranch keeps on this machine can not be kept as things are: the SQLite
    database or its folder can not be created or written, the file is not a database (or is
    damaged), or a local result storage folder is not writable. Raised at once, on first
    use, and never retried (waiting does not heal it); the message names the path and the
    fix."""


class InvalidStateTransition(AnabranchError, ValueError):
    """A written batch held a state change the state rules forbid (a final run moving on, a
    Cancelling run doing anything but becoming Cancelled). Raised by ``write_batch`` after
    the rest of the batch was stored; ``refused`` holds (run id, rule) for each such run."""

    keeps_the_rest = True

    def __init__(self, message: str, refused: Sequence[tuple[uuid.UUID, str]] = ()) -> None:
        super().__init__(message)
        self.refused = list(refused)

    def wire_fields(self) -> dict[str, Any]:
        return {"refused": [{"run_id": str(run_id), "rule": rule} for run_id, rule in self.refused]}

    @classmethod
    def from_wire(cls, message: str, fields: dict[str, Any]) -> AnabranchError:
        refused = [(uuid.UUID(item["run_id"]), str(item["rule"])) for item in fields["refused"]]
        return cls(message, refused)

    @classmethod
    def of(cls, refused: Sequence[tuple[uuid.UUID, str]]) -> InvalidStateTransition:
        """The error for these refusals, naming each run (the first few) and its rule."""
        shown = "; ".join(f"run {run_id}: {rule}" for run_id, rule in refused[:5])
        more = f"; and {len(refused) - 5} more" if len(refused) > 5 else ""
        changes = "state change" if len(refused) == 1 else "state changes"
        return cls(
            f"Refused {len(refused)} {changes} that break the state rules ({shown}{more}). "
            "The rest of the batch was stored.",
            refused,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.refused))


class TerminationSignal(SystemExit):
    """SIGTERM arrived while a flow ran in the main thread; its runs end Crashed.

    A SystemExit, so ``except Exception`` in user code does not swallow it and the process
    exits with status 143 as it would have without anabranch.
    """


class RunAlreadyFinal(AnabranchError, ValueError):
    """Cancelling a flow run that has ended, without asking for its descendants."""


class InvalidWorkPool(AnabranchError, ValueError):
    """A work pool or work queue was given a value it can not have: an unknown pool type, a
    limit or priority out of range, a queue that can not be deleted (a pool's default)."""


class InvalidRequest(AnabranchError, ValueError):
    """The server refused the values of a request before it reached the store (its schema:
    a wrong type, a number out of range); the message names each field and the problem."""


class InvalidParameters(AnabranchError, ValueError):
    """Raised when a run of a deployment is asked for with parameters its flow does not take."""


class DeploymentRunFailed(FailedRun):
    """Raised by ``run_deployment`` when the child run it waited for ends Failed, Crashed or
    Cancelled; the message names the child run and what it ended with."""


class EntrypointError(AnabranchError, ValueError):
    """An entrypoint (``path/to/file.py:flow_fn`` or ``package.module:flow_fn``) could not be
    loaded as a flow, or a flow has no entrypoint a worker could import it by; the message
    names the entrypoint and what to change."""


class InvalidDeployment(AnabranchError, ValueError):
    """``deploy`` was given settings that can not make a deployment (a name with a slash,
    both a cron and an interval, an unknown timezone or job variable, ...)."""


class ObjectAlreadyExists(AnabranchError, ValueError):
    """An object of that name exists already (an automation, say); the message says how to
    change it instead."""
