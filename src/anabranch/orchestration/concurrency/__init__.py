"""Concurrency limits: the rules, once, as functions over a connection in a write transaction.

Slots are held by leases that expire unless renewed (``leases``); requests that can not have
their slots yet wait in line with tickets (``waiters``); who gets slots, and in which order,
is decided over plain values by ``admission``, which ``acquisition`` reads for and writes
after; ``limits`` creates and reads the limits themselves. The operations of the store name
the functions re-exported here.
"""

from anabranch.orchestration.concurrency.acquisition import acquire
from anabranch.orchestration.concurrency.leases import reap, release, renew
from anabranch.orchestration.concurrency.limits import (
    create_limit,
    delete_limit,
    read_limit,
    read_limits,
    reset_limit,
    update_limit,
)
from anabranch.orchestration.concurrency.waiters import withdraw
from anabranch.schemas.concurrency import WAITER_TICKET_SECONDS

__all__ = [
    "WAITER_TICKET_SECONDS",
    "acquire",
    "create_limit",
    "delete_limit",
    "read_limit",
    "read_limits",
    "reap",
    "release",
    "renew",
    "reset_limit",
    "update_limit",
    "withdraw",
]
