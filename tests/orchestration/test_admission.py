"""The admission rule over plain values: no database, each case in well under a millisecond."""

from __future__ import annotations

import ast
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from anabranch.orchestration.concurrency import admission
from anabranch.orchestration.concurrency.admission import (
    Admission,
    Decay,
    GrantLease,
    KeepTicket,
    Limit,
    RefreshTicket,
    Ticket,
    Withdraw,
    admit,
    check_requests,
    decayed,
)
from anabranch.schemas import SlotGrant, SlotRequest
from anabranch.schemas.concurrency import WAITER_TICKET_SECONDS

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
TICKET = timedelta(seconds=WAITER_TICKET_SECONDS)


def limit(
    name: str,
    size: int,
    *,
    active: bool = True,
    decay: float = 0.0,
    decaying: float = 0.0,
    decayed_at: datetime | None = None,
) -> Limit:
    return Limit(uuid.uuid4(), name, size, active, decay, decaying, decayed_at)


def request(*names: str, at: float = 0.0, **fields: object) -> SlotRequest:
    """A request that arrived ``at`` seconds after NOW (negative: before)."""
    return SlotRequest(
        names=list(names), holder="test", since=NOW + timedelta(seconds=at), **fields
    )


def ticket(waiter: SlotRequest, on: Limit, *, expires_at: datetime = NOW + TICKET) -> Ticket:
    return Ticket(waiter.waiter_id, on.id, waiter.since, expires_at, waiter.occupy)


def run(
    requests: list[SlotRequest],
    limits: list[Limit],
    used: dict[uuid.UUID, float] | None = None,
    waiters: list[Ticket] | None = None,
    granted: dict[uuid.UUID, SlotGrant] | None = None,
) -> Admission:
    return admit(requests, limits, used or {}, waiters or [], granted or {}, NOW)


def test_a_request_on_a_free_limit_gets_a_lease_named_by_its_waiter_id() -> None:
    db = limit("db", 2)
    alone = request("db", lease_seconds=5)

    (grant,), writes = run([alone], [db])

    assert grant == SlotGrant(granted=True, lease_id=alone.waiter_id, limited_by=["db"])
    assert writes == [GrantLease(alone, [db.id], NOW + timedelta(seconds=5))]


def test_one_admission_answers_its_requests_in_order_as_slots_run_out() -> None:
    db = limit("db", 1)
    first, second = request("db"), request("db", at=1)

    (granted, waiting), writes = run([first, second], [db])

    assert granted.granted and not waiting.granted
    assert waiting.waiting_for == "concurrency limit 'db' (1/1 slots in use)"
    assert writes == [
        GrantLease(first, [db.id], NOW + timedelta(seconds=30)),
        KeepTicket(Ticket(second.waiter_id, db.id, second.since, NOW + TICKET, 1)),
    ]


def test_a_later_request_never_passes_an_earlier_waiter_on_a_shared_limit() -> None:
    db, cache = limit("db", 3), limit("cache", 1)
    earlier = request("db", "cache", at=-5)
    later = request("db", at=1)
    line = [ticket(earlier, db), ticket(earlier, cache)]

    (grant,), writes = run([later], [db, cache], waiters=line)

    assert not grant.granted
    assert grant.waiting_for == "concurrency limit 'db' (0/3 slots in use, 1 earlier waiter(s))"
    assert writes == [KeepTicket(Ticket(later.waiter_id, db.id, later.since, NOW + TICKET, 1))]


def test_a_request_that_arrived_first_goes_before_the_waiters_behind_it() -> None:
    db = limit("db", 1)
    waiting = request("db", at=5)
    first = request("db", at=-5)

    (grant,), _ = run([first], [db], waiters=[ticket(waiting, db)])

    assert grant.granted


def test_a_ticket_left_in_this_admission_holds_the_later_requests_back() -> None:
    db = limit("db", 2)
    big, small = request("db", occupy=2), request("db", at=1)

    (big_grant, small_grant), writes = run([big, small], [db], used={db.id: 1})

    # One slot is free: enough for the small request, but the big one asked first.
    assert not big_grant.granted and not small_grant.granted
    assert "1 earlier waiter(s)" in (small_grant.waiting_for or "")
    assert [type(w) for w in writes] == [KeepTicket, KeepTicket]


def test_the_first_waiter_gets_its_slots_and_gives_up_its_tickets() -> None:
    db = limit("db", 1)
    first = request("db", at=-5)
    behind = request("db", at=-1)

    (grant,), writes = run([first], [db], waiters=[ticket(first, db), ticket(behind, db)])

    assert grant.granted
    assert writes == [
        Withdraw(first.waiter_id),
        GrantLease(first, [db.id], NOW + timedelta(seconds=30)),
    ]


def test_a_waiter_stuck_on_another_full_limit_holds_no_one_back() -> None:
    # The holder of `a` asks for `b`; an earlier waiter wants `a` and `b` and waits for the
    # holder to release `a`. Queuing the holder behind it would deadlock them both.
    a, b = limit("a", 1), limit("b", 1)
    both = request("a", "b", at=-5)
    holder_asks = request("b")
    line = [ticket(both, a), ticket(both, b)]

    (grant,), _ = run([holder_asks], [a, b], used={a.id: 1}, waiters=line)

    assert grant.granted


def test_a_waiter_whose_other_limit_has_room_keeps_its_place() -> None:
    a, b = limit("a", 2), limit("b", 1)
    both = request("a", "b", at=-5)
    later = request("b")

    (grant,), _ = run([later], [a, b], used={a.id: 1}, waiters=[ticket(both, a), ticket(both, b)])

    assert not grant.granted and "1 earlier waiter(s)" in (grant.waiting_for or "")


def test_an_inactive_limit_never_counts_as_full_for_a_waiter() -> None:
    a, b = limit("a", 1, active=False), limit("b", 1)
    both = request("a", "b", at=-5)
    later = request("b")

    (grant,), _ = run([later], [a, b], used={a.id: 1}, waiters=[ticket(both, a), ticket(both, b)])

    assert not grant.granted


def test_asking_for_more_slots_than_the_limit_has_is_an_error_not_a_wait() -> None:
    (grant,), writes = run([request("db", occupy=3)], [limit("db", 2)])

    assert not grant.granted and grant.waiting_for is None
    assert grant.error == (
        "3 slots of concurrency limit 'db' can never be granted: its limit is 2. Occupy "
        "fewer or raise the limit."
    )
    assert writes == []


def test_a_rate_limit_needs_slot_decay() -> None:
    (grant,), writes = run([request("api", mode="rate")], [limit("api", 5)])

    assert grant.error is not None and "needs slot decay" in grant.error
    assert "--slot-decay-per-second" in grant.error
    assert writes == []


def test_a_rate_limit_takes_decaying_slots_instead_of_a_lease() -> None:
    api = limit("api", 5, decay=0.5, decaying=2.0, decayed_at=NOW - timedelta(seconds=2))

    (grant,), writes = run([request("api", mode="rate")], [api])

    assert grant == SlotGrant(granted=True, limited_by=["api"])
    assert writes == [Decay(api.id, 2.0)]  # 1 still decaying, and the one just taken


def test_rate_limited_grants_of_one_batch_add_up_their_decaying_slots() -> None:
    api = limit("api", 5, decay=1.0)

    grants, writes = run([request("api", mode="rate"), request("api", mode="rate")], [api])

    assert [grant.granted for grant in grants] == [True, True]
    # Written in order: the last one holds both grants' slots.
    assert writes == [Decay(api.id, 1.0), Decay(api.id, 2.0)]


def test_decaying_slots_count_until_they_drain() -> None:
    api = limit("api", 2, decay=0.5, decaying=2.0, decayed_at=NOW - timedelta(seconds=1))

    assert decayed(api, NOW) == 1.5
    assert decayed(api, NOW + timedelta(seconds=10)) == 0.0
    (grant,), _ = run([request("api", mode="rate")], [api])
    assert grant.waiting_for == "concurrency limit 'api' (1.5/2 slots in use)"


def test_inactive_limits_are_granted_without_taking_slots() -> None:
    off, db = limit("off", 0, active=False), limit("db", 1)

    (alone,), writes = run([request("off")], [off])
    assert alone == SlotGrant(granted=True) and writes == []

    mixed = request("off", "db")
    (grant,), writes = run([mixed], [off, db])
    assert grant.limited_by == ["db"]
    assert writes == [GrantLease(mixed, [db.id], NOW + timedelta(seconds=30))]


def test_a_missing_limit_fails_a_strict_request_and_is_ignored_by_a_lenient_one() -> None:
    db = limit("db", 1)

    (strict,), writes = run([request("db", "nowhere")], [db])
    assert not strict.granted and writes == []
    assert strict.error is not None and "No concurrency limit named 'nowhere'" in strict.error

    lenient = request("db", "nowhere", strict=False)
    (grant,), writes = run([lenient], [db])
    assert grant.granted and grant.limited_by == ["db"]
    (nothing,), _ = run([request("nowhere", strict=False)], [])
    assert nothing == SlotGrant(granted=True)


def test_keeping_a_place_writes_tickets_and_refreshes_them_only_when_half_lapsed() -> None:
    db, off = limit("db", 1), limit("off", 1, active=False)
    place = request("db", "off", keep_place=True)

    (grant,), writes = run([place], [db, off])
    assert grant == SlotGrant(granted=False, limited_by=["db"])
    assert writes == [KeepTicket(Ticket(place.waiter_id, db.id, place.since, NOW + TICKET, 1))]

    fresh = ticket(place, db, expires_at=NOW + TICKET * 0.75)
    assert run([place], [db], waiters=[fresh]).writes == []
    stale = ticket(place, db, expires_at=NOW + TICKET * 0.25)
    assert run([place], [db], waiters=[stale]).writes == [
        RefreshTicket(place.waiter_id, db.id, NOW + TICKET)
    ]


def test_a_request_granted_before_gets_the_same_answer_again() -> None:
    again = request("db")
    before = SlotGrant(granted=True, lease_id=again.waiter_id, limited_by=["db"])

    (grant,), writes = run([again], [limit("db", 1)], used={}, granted={again.waiter_id: before})

    assert grant is before and writes == []


def test_a_request_without_a_time_zone_is_refused() -> None:
    naive = SlotRequest(names=["db"], holder="test", since=datetime(2024, 6, 1))

    with pytest.raises(ValueError, match=r"requests\[1\]\.since must carry a time zone"):
        check_requests([request("db"), naive])


def test_the_rule_reads_and_writes_nothing_itself() -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(Path(admission.__file__).read_text())):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)

    assert not {m for m in imported if m.startswith(("sqlalchemy", "anabranch.database"))}
