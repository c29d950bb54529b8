"""The HTTP transport: the client talks to `anabranch server` (ANABRANCH_API_URL) over httpx.

Bodies and answers are the pydantic schemas as JSON, the same objects the embedded client
passes in-process. Connection failures and 5xx answers are retried with back-off for
ANABRANCH_CLIENT_RETRY_SECONDS (default 60), then reported as ServerUnavailable naming the
server; a 4xx answer raises the error the embedded client would have raised, with the
server's message. Every request that changes something is safe to resend: slot requests
carry the lease id they ask for, and deployment runs an idempotency key.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from anabranch import _clock
from anabranch._redact import mask_passwords
from anabranch.exceptions import (
    AnabranchError,
    ConcurrencySlotError,
    InvalidConcurrencyLimit,
    InvalidDeployment,
    InvalidName,
    InvalidParameters,
    InvalidStateTransition,
    ObjectNotFound,
    ServerUnavailable,
    UnknownConcurrencyLimit,
)
from anabranch.schemas import (
    ConcurrencyLimit,
    FlowRun,
    LogRecord,
    RecordBatch,
    SlotGrant,
    SlotRequest,
    StateRecord,
    StateType,
    TaskRun,
)
from anabranch.schemas.deployments import (
    Deployment,
    DeploymentRunRequest,
    Worker,
    WorkerPoll,
    WorkerPollAnswer,
    WorkPool,
    WorkQueue,
    split_full_name,
)
from anabranch.schemas.text import storable_batch
from anabranch.schemas.unset import UNSET
from anabranch.settings import get_settings

T = TypeVar("T")

# Waits between attempts: 0.1 s doubling up to 2 s, within the client's retry budget.
FIRST_DELAY = 0.1
# Reads of the answer may wait on a busy database; connecting is quick or hopeless.
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# A batch bigger than this goes in parts: servers refuse bodies over 8 MiB by default.
_MAX_BATCH_BYTES = 2 * 1024 * 1024
# A long poll (run_deployment waiting on a child) is held by the server this long at most.
_LONG_POLL_SECONDS = 30.0


class HTTPClient:
    """An AnabranchClient over the anabranch server at ``api_url`` (``http://host:4200/api``).

    One keep-alive connection pool serves every thread of the process; a forked child opens
    its own. ``api_key`` defaults to ANABRANCH_API_KEY and is sent as a bearer token.
    """

    def __init__(
        self,
        api_url: str,
        api_key: str | None = None,
        *,
        retry_seconds: float | None = None,
        first_delay: float = FIRST_DELAY,
        timeout: httpx.Timeout = TIMEOUT,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        # What messages show: the URL without a password it may carry.
        self.shown_url = mask_passwords(self.api_url)
        if api_key is None or retry_seconds is None:
            settings = get_settings()
            api_key = settings.api_key if api_key is None else api_key
            if retry_seconds is None:
                retry_seconds = settings.client_retry_seconds
        # As bytes: a key may hold any character, and httpx would send str headers as ASCII.
        self._headers: dict[bytes, bytes] = {b"Content-Type": b"application/json"}
        if api_key:
            self._headers[b"Authorization"] = f"Bearer {api_key}".encode()
        self.retry_seconds = retry_seconds
        self._first_delay = first_delay
        self._timeout = timeout
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._http = self._new_session()
        self._closed = False
        self._stats = {"requests": 0, "retries": 0}

    def __repr__(self) -> str:
        return f"HTTPClient({self.shown_url!r})"

    # Runs, states and logs

    def write_batch(self, batch: RecordBatch) -> None:
        if not batch:
            return
        try:
            body = batch.model_dump_json()
        except ValueError:
            # Text JSON can not carry (a lone surrogate) is replaced as the store would.
            body = storable_batch(batch).model_dump_json()
        if len(body) > _MAX_BATCH_BYTES and len(batch) > 1:
            # Well under the server's body limit (ANABRANCH_SERVER_MAX_BODY_BYTES).
            for half in batch.halves():
                self.write_batch(half)
            return
        self._request("POST", "batches", content=body)

    def read_flow_run(self, flow_run_id: uuid.UUID) -> FlowRun:
        return self._get(FlowRun, f"flow_runs/{flow_run_id}")

    def read_flow_runs(
        self,
        *,
        limit: int | None = None,
        offset: int = 0,
        state_types: Sequence[StateType] | None = None,
        state_names: Sequence[str] | None = None,
        flow_name: str | None = None,
        parent_flow_run_id: uuid.UUID | None = None,
        tags: Sequence[str] | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[FlowRun]:
        params = _query(
            limit=limit,
            offset=offset or None,
            state_type=[StateType(t).value for t in state_types or ()],
            state_name=list(state_names or ()),
            flow_name=flow_name,
            parent_flow_run_id=parent_flow_run_id,
            tag=list(tags or ()),
            # Checked here too, so a naive bound raises the ValueError the embedded client
            # raises instead of the server's 400.
            started_after=_clock.require_aware(started_after, "started_after"),
            started_before=_clock.require_aware(started_before, "started_before"),
            created_after=_clock.require_aware(created_after, "created_after"),
            created_before=_clock.require_aware(created_before, "created_before"),
        )
        return self._get(list[FlowRun], "flow_runs", params=params)

    def read_task_runs(self, *, flow_run_id: uuid.UUID | None = None) -> list[TaskRun]:
        return self._get(list[TaskRun], "task_runs", params=_query(flow_run_id=flow_run_id))

    def read_task_run(self, task_run_id: uuid.UUID) -> TaskRun:
        return self._get(TaskRun, f"task_runs/{task_run_id}")

    def read_states(self, run_id: uuid.UUID) -> list[StateRecord]:
        return self._get(list[StateRecord], f"runs/{run_id}/states")

    def read_logs(
        self,
        *,
        flow_run_id: uuid.UUID | None = None,
        task_run_id: uuid.UUID | None = None,
        limit: int | None = None,
    ) -> list[LogRecord]:
        params = _query(flow_run_id=flow_run_id, task_run_id=task_run_id, limit=limit)
        return self._get(list[LogRecord], "logs", params=params)

    # Concurrency limits

    def create_concurrency_limit(
        self,
        name: str,
        limit: int,
        *,
        active: bool = True,
        slot_decay_per_second: float | None = None,
    ) -> ConcurrencyLimit:
        body = _query(
            name=name, limit=limit, active=active, slot_decay_per_second=slot_decay_per_second
        )
        response = self._request("POST", "concurrency_limits", json=body, kind="limit")
        return _parse(ConcurrencyLimit, response)

    def read_concurrency_limit(self, name: str) -> ConcurrencyLimit:
        return self._get(ConcurrencyLimit, _limit_path(name), kind="limit")

    def read_concurrency_limits(self) -> list[ConcurrencyLimit]:
        return self._get(list[ConcurrencyLimit], "concurrency_limits", kind="limit")

    def update_concurrency_limit(
        self,
        name: str,
        *,
        limit: int | None = None,
        active: bool | None = None,
        slot_decay_per_second: float | None = None,
    ) -> ConcurrencyLimit:
        body = _query(limit=limit, active=active, slot_decay_per_second=slot_decay_per_second)
        response = self._request("PATCH", _limit_path(name), json=body, kind="limit")
        return _parse(ConcurrencyLimit, response)

    def reset_concurrency_limit(self, name: str) -> ConcurrencyLimit:
        response = self._request("POST", _limit_path(name) + "/reset", kind="limit")
        return _parse(ConcurrencyLimit, response)

    def delete_concurrency_limit(self, name: str) -> None:
        self._request("DELETE", _limit_path(name), kind="limit")

    # Slots, leases and waiters

    def acquire_concurrency_slots(self, requests: Sequence[SlotRequest]) -> list[SlotGrant]:
        body = _adapter(list[SlotRequest]).dump_json(list(requests))
        # Safe to resend: a request names the lease it would be granted, and the store
        # answers a repeated request with that lease. Rate-limit requests take no lease,
        # and a resent one would count twice: only failures that prove it was not handled
        # are retried for them.
        idempotent = all(request.mode == "lease" for request in requests)
        response = self._request(
            "POST", "concurrency/acquire", content=body, kind="slots", idempotent=idempotent
        )
        return _parse(list[SlotGrant], response)

    def release_concurrency_slots(self, lease_id: uuid.UUID) -> bool:
        response = self._request("POST", f"concurrency/leases/{lease_id}/release", kind="slots")
        return bool(response.json()["released"])

    def renew_concurrency_leases(
        self, lease_ids: Sequence[uuid.UUID], seconds: float
    ) -> list[uuid.UUID]:
        body = {"lease_ids": [str(lease_id) for lease_id in lease_ids], "seconds": seconds}
        response = self._request("POST", "concurrency/leases/renew", json=body, kind="slots")
        return [uuid.UUID(lease_id) for lease_id in response.json()["lost"]]

    def withdraw_concurrency_waiter(self, waiter_id: uuid.UUID) -> None:
        self._request("DELETE", f"concurrency/waiters/{waiter_id}", kind="slots")

    def reap_concurrency_leases(self) -> int:
        return int(self._request("POST", "concurrency/reap", kind="slots").json()["reaped"])

    # Deployments and their runs

    def save_deployment(self, deployment: Deployment) -> Deployment:
        response = self._request(
            "POST", "deployments", content=deployment.model_dump_json(), kind="deployment"
        )
        return _parse(Deployment, response)

    def read_deployment(self, deployment_id: uuid.UUID) -> Deployment:
        return self._get(Deployment, f"deployments/{deployment_id}")

    def read_deployment_by_name(self, name: str) -> Deployment:
        flow_name, deployment_name = split_full_name(name)
        path = f"deployments/name/{_segment(flow_name)}/{_segment(deployment_name)}"
        return self._get(Deployment, path)

    def read_deployments(
        self, *, flow_name: str | None = None, work_pool_name: str | None = None
    ) -> list[Deployment]:
        params = _query(flow_name=flow_name, work_pool_name=work_pool_name)
        return self._get(list[Deployment], "deployments", params=params)

    def set_deployment_paused(self, deployment_id: uuid.UUID, paused: bool) -> Deployment:
        response = self._request("PATCH", f"deployments/{deployment_id}", json={"paused": paused})
        return _parse(Deployment, response)

    def delete_deployment(self, deployment_id: uuid.UUID) -> None:
        self._request("DELETE", f"deployments/{deployment_id}")

    def create_flow_run_from_deployment(
        self, deployment_id: uuid.UUID, request: DeploymentRunRequest | None = None
    ) -> FlowRun:
        body = (request or DeploymentRunRequest()).model_dump_json()
        # Resending is only safe with an idempotency key: without one a lost answer would
        # make a second run.
        idempotent = request is not None and request.idempotency_key is not None
        response = self._request(
            "POST", f"deployments/{deployment_id}/create_flow_run", content=body,
            kind="deployment run", idempotent=idempotent,
        )
        return _parse(FlowRun, response)

    def cancel_flow_run(
        self, flow_run_id: uuid.UUID, *, descendants: bool = False
    ) -> list[uuid.UUID]:
        response = self._request(
            "POST", f"flow_runs/{flow_run_id}/cancel", json={"descendants": descendants}
        )
        return [uuid.UUID(run_id) for run_id in response.json()["changed"]]

    def claim_flow_run(
        self, flow_run_id: uuid.UUID, *, process_id: int, worker_name: str | None = None
    ) -> bool:
        response = self._request(
            "POST",
            f"flow_runs/{flow_run_id}/claim",
            json={"process_id": process_id, "worker_name": worker_name},
        )
        return bool(response.json()["claimed"])

    def report_process_exit(
        self, flow_run_id: uuid.UUID, exit_code: int, *, worker_name: str | None = None
    ) -> None:
        self._request(
            "POST",
            f"flow_runs/{flow_run_id}/process_exit",
            json={"exit_code": exit_code, "worker_name": worker_name},
        )

    def wait_for_flow_run(self, flow_run_id: uuid.UUID, timeout: float) -> FlowRun:
        # Long polls of at most a minute each, so no proxy drops a quiet connection.
        deadline = _clock.monotonic() + timeout
        while True:
            remaining = max(0.0, deadline - _clock.monotonic())
            run = self._get(
                FlowRun, f"flow_runs/{flow_run_id}/wait",
                params={"timeout": min(remaining, _LONG_POLL_SECONDS)},
                timeout=_long_poll_timeout(self._timeout, min(remaining, _LONG_POLL_SECONDS)),
            )
            if (run.state is not None and run.state.is_final()) or remaining <= 0:
                return run

    # Work pools, queues and workers

    def create_work_pool(
        self,
        name: str,
        *,
        type: str = "process",
        concurrency_limit: int | None = None,
        description: str | None = None,
    ) -> WorkPool:
        body = _query(
            name=name, type=type, concurrency_limit=concurrency_limit, description=description
        )
        return _parse(WorkPool, self._request("POST", "work_pools", json=body, kind="pool"))

    def read_work_pool(self, name: str) -> WorkPool:
        return self._get(WorkPool, _pool_path(name))

    def read_work_pools(self) -> list[WorkPool]:
        return self._get(list[WorkPool], "work_pools")

    def update_work_pool(
        self, name: str, *, concurrency_limit: Any = UNSET, paused: bool | None = None
    ) -> WorkPool:
        body = _changes(concurrency_limit=concurrency_limit, paused=paused)
        return _parse(WorkPool, self._request("PATCH", _pool_path(name), json=body))

    def delete_work_pool(self, name: str) -> None:
        self._request("DELETE", _pool_path(name))

    def create_work_queue(
        self,
        name: str,
        *,
        work_pool_name: str,
        priority: int | None = None,
        concurrency_limit: int | None = None,
        description: str | None = None,
    ) -> WorkQueue:
        body = _query(
            name=name, priority=priority, concurrency_limit=concurrency_limit,
            description=description,
        )
        response = self._request(
            "POST", _pool_path(work_pool_name) + "/queues", json=body, kind="pool"
        )
        return _parse(WorkQueue, response)

    def read_work_queue(self, name: str, *, work_pool_name: str) -> WorkQueue:
        return self._get(WorkQueue, _queue_path(work_pool_name, name))

    def read_work_queues(self, *, work_pool_name: str | None = None) -> list[WorkQueue]:
        if work_pool_name is None:
            return self._get(list[WorkQueue], "work_queues")
        return self._get(list[WorkQueue], _pool_path(work_pool_name) + "/queues")

    def update_work_queue(
        self,
        name: str,
        *,
        work_pool_name: str,
        concurrency_limit: Any = UNSET,
        priority: int | None = None,
        paused: bool | None = None,
    ) -> WorkQueue:
        body = _changes(concurrency_limit=concurrency_limit, priority=priority, paused=paused)
        response = self._request("PATCH", _queue_path(work_pool_name, name), json=body)
        return _parse(WorkQueue, response)

    def delete_work_queue(self, name: str, *, work_pool_name: str) -> None:
        self._request("DELETE", _queue_path(work_pool_name, name))

    def read_workers(self, work_pool_name: str) -> list[Worker]:
        return self._get(list[Worker], _pool_path(work_pool_name) + "/workers")

    def poll_work(self, work_pool_name: str | None, poll: WorkerPoll) -> WorkerPollAnswer:
        if work_pool_name is None:
            path = "deployments/poll"
        else:
            path = _pool_path(work_pool_name) + "/poll"
        # Not resent when the answer is lost: the runs it handed out are Pending already,
        # and go back to the pool only through zombie detection.
        response = self._request(
            "POST", path, content=poll.model_dump_json(), idempotent=False,
            timeout=_long_poll_timeout(self._timeout, poll.wait),
        )
        return _parse(WorkerPollAnswer, response)

    # Lifecycle

    def statistics(self) -> dict[str, int]:
        """Requests sent (each attempt counts) and how many of them were retries."""
        with self._lock:
            return dict(self._stats)

    def close(self) -> None:
        """Close the connection pool; the client can not be used afterwards."""
        self._closed = True
        self._http.close()

    def __enter__(self) -> HTTPClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None

    # Transport

    def _new_session(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url + "/",
            headers=self._headers,
            timeout=self._timeout,
            # Loading the CA bundle costs ~50 ms, in every process; plain http needs none.
            verify=self.api_url.startswith("https://"),
        )

    def _session(self) -> httpx.Client:
        if self._pid != os.getpid():
            # A forked child must not share the parent's sockets, nor a lock that another
            # parent thread may have held at the fork: it makes its own.
            self._lock = threading.Lock()
            self._http = self._new_session()
            self._pid = os.getpid()
        return self._http

    def _get(self, shape: type[T], path: str, **options: Any) -> T:
        return _parse(shape, self._request("GET", path, **options))

    def _request(
        self,
        method: str,
        path: str,
        *,
        kind: str = "run",
        idempotent: bool = True,
        **options: Any,
    ) -> httpx.Response:
        if self._closed:
            raise AnabranchError(f"{self!r} is closed; get a new one with get_client().")
        backoff = _clock.Backoff(self.retry_seconds, first=self._first_delay)
        while True:
            session = self._session()
            with self._lock:
                self._stats["requests"] += 1
                self._stats["retries"] += backoff.attempts > 1
            try:
                response = session.request(method, path, **options)
            except httpx.TransportError as exc:
                if not idempotent and not _never_sent(exc):
                    raise self._unanswered(method, path, exc, backoff) from exc
                failure: httpx.TransportError | httpx.Response = exc
            else:
                if response.is_success:
                    return response
                if response.status_code < 500:
                    raise _refusal(response, method, path, self.shown_url, kind)
                failure = response
            if not backoff.wait():
                if isinstance(failure, httpx.Response):
                    raise _server_failure(failure, method, path, self.shown_url, backoff.attempts)
                raise self._unanswered(method, path, failure, backoff) from failure

    def _unanswered(
        self, method: str, path: str, exc: Exception, backoff: _clock.Backoff
    ) -> ServerUnavailable:
        attempts = backoff.attempts
        tries = (
            f"{attempts} attempts in {backoff.elapsed():.1f} s" if attempts > 1 else "1 attempt"
        )
        return ServerUnavailable(
            f"The anabranch server at {self.shown_url} did not answer {method} /{path} "
            f"({type(exc).__name__}: {exc or 'no detail'}; {tries}). Is `anabranch server "
            "start` running there? ANABRANCH_API_URL says where clients look for it."
        )

    # Schedules

    def backfill_deployment(
        self, deployment_id: uuid.UUID, *, start: datetime, end: datetime
    ) -> list[FlowRun]:
        # Safe to resend: the runs' idempotency keys make a repeated backfill a no-op. Ten
        # thousand runs take the server a while, hence the longer wait for the answer.
        body = {"start": start.isoformat(), "end": end.isoformat()}
        path = f"deployments/{deployment_id}/backfill"
        response = self._request(
            "POST", path, json=body, timeout=httpx.Timeout(300.0, connect=5.0)
        )
        return _parse(list[FlowRun], response)

    def schedule_runs(self) -> int:
        return int(self._request("POST", "schedules/tick").json()["created"])


def _never_sent(exc: httpx.TransportError) -> bool:
    """True when the failure proves the server never got the request (safe to resend)."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def _refusal(
    response: httpx.Response, method: str, path: str, api_url: str, kind: str
) -> AnabranchError:
    """The error the embedded client would raise, carrying the server's message; ``kind``
    says what the endpoint is about: "run", "limit" (limits), "slots" (slots, leases),
    "pool" (work pools and queues), "deployment" (saving one) or "deployment run" (a run of
    one: its parameters)."""
    detail = _detail(response)
    code = response.status_code
    if code == 409 and (refused := _refused_transitions(response)) is not None:
        return InvalidStateTransition(detail, refused)
    if code == 401 or code == 403:
        return AnabranchError(
            f"The anabranch server at {api_url} refused {method} /{path}: {detail} "
            "Set ANABRANCH_API_KEY to the server's API key."
        )
    if code == 404:
        if detail == "Not Found":  # no such route, rather than no such object
            return AnabranchError(
                f"The server at {api_url} has no endpoint {method} /{path}; is it an "
                "anabranch server, and does ANABRANCH_API_URL end in /api?"
            )
        if kind in ("limit", "slots"):
            return UnknownConcurrencyLimit(detail)
        return ObjectNotFound(detail)
    if code in (400, 409, 422) and kind == "limit":
        return InvalidConcurrencyLimit(detail)
    if code in (400, 409, 422) and kind == "slots":
        return ConcurrencySlotError(detail)
    if code in (400, 422) and kind == "deployment":
        return InvalidDeployment(detail)
    if code in (400, 422) and kind == "deployment run":
        return InvalidParameters(detail)
    if code in (400, 422) and kind == "pool":
        # Only a refused name is InvalidName, as embedded: the server names the error (400),
        # or its schema the field (422); a bad limit or priority is not a name's fault.
        try:
            answer = response.json()
        except ValueError:
            answer = None
        answer = answer if isinstance(answer, dict) else {}
        errors = answer.get("detail") if code == 422 else None
        if not isinstance(errors, list):
            errors = []
        fields = [error.get("loc", [])[-1:] for error in errors if isinstance(error, dict)]
        if answer.get("error") == InvalidName.__name__ or ["name"] in fields:
            return InvalidName(detail)
    return AnabranchError(
        f"The anabranch server at {api_url} refused {method} /{path} ({code}): {detail}"
    )


def _server_failure(
    response: httpx.Response, method: str, path: str, api_url: str, attempts: int
) -> ServerUnavailable:
    return ServerUnavailable(
        f"The anabranch server at {api_url} failed on {method} /{path} with "
        f"{response.status_code} ({_detail(response)}) {attempts} time(s); see its log."
    )


def _detail(response: httpx.Response) -> str:
    """The server's message: FastAPI's ``detail``, a string or a list of validation errors."""
    try:
        detail = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return response.text.strip() or response.reason_phrase
    if isinstance(detail, list):
        return "; ".join(_validation_error(error) for error in detail)
    return str(detail)


def _refused_transitions(response: httpx.Response) -> list[tuple[uuid.UUID, str]] | None:
    """The runs a 409 on a batch names as refused, or None if it is another conflict."""
    try:
        refused = response.json()["refused"]
        return [(uuid.UUID(item["run_id"]), str(item["rule"])) for item in refused]
    except (ValueError, KeyError, TypeError):
        return None


def _validation_error(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg', error)}"


def _limit_path(name: str) -> str:
    return "concurrency_limits/" + _segment(name)


def _segment(name: str) -> str:
    # Any character may appear in a name; "/" too, hence safe="".
    return quote(name, safe="")


def _pool_path(name: str) -> str:
    return "work_pools/" + _segment(name)


def _queue_path(pool_name: str, name: str) -> str:
    return f"{_pool_path(pool_name)}/queues/{_segment(name)}"


def _changes(**values: Any) -> dict[str, Any]:
    """A PATCH body: what was given; ``concurrency_limit=None`` is sent (it clears)."""
    return {
        key: value
        for key, value in values.items()
        if value is not UNSET and (value is not None or key == "concurrency_limit")
    }


def _long_poll_timeout(base: httpx.Timeout, wait: float) -> httpx.Timeout:
    """Room for the server to hold the request ``wait`` seconds before it answers."""
    read = None if base.read is None else base.read + wait
    return httpx.Timeout(base.connect, read=read, write=base.write, pool=base.pool)


def _query(**values: Any) -> dict[str, Any]:
    """Only the given values (None and empty lists are left out), UUIDs and datetimes as
    text."""
    return {
        key: _text(value) for key, value in values.items() if value is not None and value != []
    }


def _text(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


_adapters: dict[Any, TypeAdapter[Any]] = {}


def _adapter(shape: Any) -> TypeAdapter[Any]:
    """One TypeAdapter per shape: building one costs far more than validating with it."""
    adapter = _adapters.get(shape)
    if adapter is None:
        adapter = _adapters[shape] = TypeAdapter(shape)
    return adapter


def _parse(shape: type[T], response: httpx.Response) -> T:
    result: T = _adapter(shape).validate_json(response.content)
    return result
