"""Work pools, their queues and workers, and the workers' long poll for runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, status
from pydantic import BaseModel, Field

from anabranch.schemas.deployments import Worker, WorkerPoll, WorkerPollAnswer, WorkPool, WorkQueue
from anabranch.schemas.unset import UNSET
from anabranch.server.dependencies import Feed, Store
from anabranch.server.waiting import long_poll_work

router = APIRouter(tags=["work pools"])

PoolName = Annotated[str, Path(description="The pool's name, percent-encoded.")]
QueueName = Annotated[str, Path(description="The queue's name, percent-encoded.")]
_MAX_INT = 2**31 - 1


class PoolCreate(BaseModel):
    name: str = Field(min_length=1)
    type: str = "process"
    concurrency_limit: int | None = Field(default=None, ge=0, le=_MAX_INT)
    description: str | None = None


class QueueCreate(BaseModel):
    name: str = Field(min_length=1)
    priority: int | None = Field(default=None, ge=1, le=_MAX_INT)
    concurrency_limit: int | None = Field(default=None, ge=0, le=_MAX_INT)
    description: str | None = None


class PoolUpdate(BaseModel):
    """Only the fields sent change; ``"concurrency_limit": null`` clears the limit."""

    concurrency_limit: int | None = Field(default=None, ge=0, le=_MAX_INT)
    paused: bool | None = None


class QueueUpdate(PoolUpdate):
    priority: int | None = Field(default=None, ge=1, le=_MAX_INT)


@router.post("/work_pools")
def create_work_pool(body: PoolCreate, store: Store) -> WorkPool:
    """Create a pool with its ``default`` queue; for an existing pool, set the limit."""
    return store.create_work_pool(
        body.name, type=body.type, concurrency_limit=body.concurrency_limit,
        description=body.description,
    )


@router.get("/work_pools")
def read_work_pools(store: Store) -> list[WorkPool]:
    return store.read_work_pools()


@router.get("/work_pools/{name}")
def read_work_pool(name: PoolName, store: Store) -> WorkPool:
    return store.read_work_pool(name)


@router.patch("/work_pools/{name}")
def update_work_pool(name: PoolName, body: PoolUpdate, store: Store) -> WorkPool:
    return store.update_work_pool(name, **_given(body, "concurrency_limit", "paused"))


@router.delete("/work_pools/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_work_pool(name: PoolName, store: Store) -> None:
    store.delete_work_pool(name)


@router.post("/work_pools/{name}/queues")
def create_work_queue(name: PoolName, body: QueueCreate, store: Store) -> WorkQueue:
    return store.create_work_queue(
        body.name, work_pool_name=name, priority=body.priority,
        concurrency_limit=body.concurrency_limit, description=body.description,
    )


@router.get("/work_pools/{name}/queues")
def read_work_queues(name: PoolName, store: Store) -> list[WorkQueue]:
    return store.read_work_queues(work_pool_name=name)


@router.get("/work_queues")
def read_all_work_queues(store: Store) -> list[WorkQueue]:
    """The queues of every pool."""
    return store.read_work_queues()


@router.get("/work_pools/{name}/queues/{queue}")
def read_work_queue(name: PoolName, queue: QueueName, store: Store) -> WorkQueue:
    return store.read_work_queue(queue, work_pool_name=name)


@router.patch("/work_pools/{name}/queues/{queue}")
def update_work_queue(
    name: PoolName, queue: QueueName, body: QueueUpdate, store: Store
) -> WorkQueue:
    changes = _given(body, "concurrency_limit", "paused", "priority")
    return store.update_work_queue(queue, work_pool_name=name, **changes)


@router.delete("/work_pools/{name}/queues/{queue}", status_code=status.HTTP_204_NO_CONTENT)
def delete_work_queue(name: PoolName, queue: QueueName, store: Store) -> None:
    store.delete_work_queue(queue, work_pool_name=name)


@router.get("/work_pools/{name}/workers")
def read_workers(name: PoolName, store: Store) -> list[Worker]:
    return store.read_workers(name)


@router.post("/work_pools/{name}/poll")
async def poll_work(
    name: PoolName, body: Annotated[WorkerPoll, Body()], store: Store, feed: Feed
) -> WorkerPollAnswer:
    """A worker's heartbeat and long poll: due runs that every limit has room for (each now
    Pending and assigned to it), and which of its runs were asked to cancel."""
    return await long_poll_work(store, feed, name, body)


def _given(body: BaseModel, *fields: str) -> dict[str, Any]:
    """The fields the request sent; a limit sent as null clears it, one left out stays."""
    sent = body.model_fields_set
    values: dict[str, Any] = {field: getattr(body, field) for field in fields if field in sent}
    if "concurrency_limit" in fields and "concurrency_limit" not in sent:
        values["concurrency_limit"] = UNSET
    return values
