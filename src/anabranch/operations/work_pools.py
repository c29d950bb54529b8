# mypy: disable-error-code="empty-body"
"""Work pools, their queues and workers, and a worker's poll for runs."""

from __future__ import annotations

from anabranch.exceptions import InvalidName, ObjectNotFound
from anabranch.operations._declare import operation, wakes_workers
from anabranch.schemas.deployments import Worker, WorkerPoll, WorkerPollAnswer, WorkPool, WorkQueue
from anabranch.schemas.unset import UNSET, Unset

# Names may hold any character, "/" included: the client percent-encodes them.
_POOL = "/work_pools/{name}"
_QUEUE = "/work_pools/{work_pool_name}/queues/{name}"


class WorkPoolOperations:
    """Pools, queues, workers and the runs workers take."""

    @operation("POST", "/work_pools", implementation="work_pools:create_work_pool",
               errors=[InvalidName])
    def create_work_pool(
        self,
        name: str,
        *,
        type: str = "process",
        concurrency_limit: int | None = None,
        description: str | None = None,
    ) -> WorkPool:
        """Create a pool (with its ``default`` queue); for an existing one, set the limit
        when given."""

    @operation("GET", _POOL, implementation="work_pools:read_work_pool", errors=[ObjectNotFound])
    def read_work_pool(self, name: str) -> WorkPool:
        """One pool with its active runs and online workers."""

    @operation("GET", "/work_pools", implementation="work_pools:read_work_pools")
    def read_work_pools(self) -> list[WorkPool]:
        """Every pool, by name."""

    @operation("PATCH", _POOL, implementation="work_pools:update_work_pool",
               errors=[ObjectNotFound], wakes=wakes_workers)
    def update_work_pool(
        self,
        name: str,
        *,
        concurrency_limit: int | None | Unset = UNSET,
        paused: bool | None = None,
    ) -> WorkPool:
        """Set or clear (None) the pool's limit; pause or resume it."""

    @operation("DELETE", _POOL, implementation="work_pools:delete_work_pool",
               errors=[ObjectNotFound])
    def delete_work_pool(self, name: str) -> None:
        """Delete a pool, its queues and its workers' records."""

    @operation("POST", "/work_pools/{work_pool_name}/queues",
               implementation="work_pools:create_work_queue", errors=[InvalidName, ObjectNotFound])
    def create_work_queue(
        self,
        name: str,
        *,
        work_pool_name: str,
        priority: int | None = None,
        concurrency_limit: int | None = None,
        description: str | None = None,
    ) -> WorkQueue:
        """Create a queue in a pool; for an existing one, set what is given."""

    @operation("GET", _QUEUE, implementation="work_pools:read_work_queue", errors=[ObjectNotFound])
    def read_work_queue(self, name: str, *, work_pool_name: str) -> WorkQueue:
        """One queue of a pool."""

    @operation("GET", "/work_queues", implementation="work_pools:read_work_queues")
    def read_work_queues(self, *, work_pool_name: str | None = None) -> list[WorkQueue]:
        """The queues of a pool (of every pool when None), by priority."""

    @operation("PATCH", _QUEUE, implementation="work_pools:update_work_queue",
               errors=[ObjectNotFound], wakes=wakes_workers)
    def update_work_queue(
        self,
        name: str,
        *,
        work_pool_name: str,
        concurrency_limit: int | None | Unset = UNSET,
        priority: int | None = None,
        paused: bool | None = None,
    ) -> WorkQueue:
        """Set or clear (None) a queue's limit, its priority, or pause it."""

    @operation("DELETE", _QUEUE, implementation="work_pools:delete_work_queue",
               errors=[ObjectNotFound])
    def delete_work_queue(self, name: str, *, work_pool_name: str) -> None:
        """Delete a queue (not a pool's ``default``)."""

    @operation("GET", "/work_pools/{work_pool_name}/workers",
               implementation="work_pools:read_workers", errors=[ObjectNotFound])
    def read_workers(self, work_pool_name: str) -> list[Worker]:
        """The pool's workers, online or not."""

    # A long poll whose answer hands runs out: not resent when the answer is lost (the runs
    # it handed out are Pending already, and go back to the queue by zombie detection).
    @operation("POST", "/work/poll", implementation=None, errors=[ObjectNotFound],
               resend=False, holds_for="poll.wait")
    def poll_work(self, work_pool_name: str | None, poll: WorkerPoll) -> WorkerPollAnswer:
        """A worker's heartbeat and request for runs (``work_pool_name`` None: a ``serve``
        process's, for its own deployments): waits up to ``poll.wait`` seconds for a due run
        every limit has room for, or for one of its runs to be cancelled."""
