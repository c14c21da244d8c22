"""A worker that stalls past its lease (a starved event loop, a slow database) but sent the copy or
the answer after all must not have it sent a second time by another worker.

An expired lease is released to pending with its last holder kept: that holder's late record
still lands, and its next lease extension takes the row back. Only a row another worker has
claimed meanwhile is theirs (seen in CI: two processes answered one `/follow` 29 s apart).
"""

from __future__ import annotations

import time

from sqlalchemy import text

from bridge.models import DeliveryStatus, NoticeLane
from bridge.notices import ClaimedNotice, NoticeOutcome, NoticeQueue
from bridge.ports import Reply
from bridge.store.rows import ClaimedDelivery, DeliveryOutcome
from tests.support import OPERATOR, Harness, build, person

LEASE_S = 3.0


async def _copy_released_from_a(store_url: str) -> tuple[Harness, ClaimedDelivery, float]:
    """One copy planned, claimed by worker w-a, whose lease another worker's reaper released."""
    h = build(store_url)
    await h.say(OPERATOR, "/newchannel news Daily News")
    await h.say(person(1), "/follow news")
    await h.say(OPERATOR, "/post news hello")
    await h.engine.drain_planning()
    now = time.time()
    with h.store.connection() as conn:
        (row,) = h.store.outbox.claim(conn, "w-a", now, LEASE_S, 10)
    with h.store.connection() as conn:  # another worker's reaper: w-a's lease ran out
        assert h.store.outbox.release_expired(conn, now + LEASE_S + 1) == 1
    return h, row, now


def _answer_released_from_a(store_url: str) -> tuple[Harness, NoticeQueue, ClaimedNotice, float]:
    """One answer queued, claimed by worker w-a, whose lease another worker's reaper released."""
    h = build(store_url)
    assert h.worker.notices is not None
    notices = h.worker.notices
    now = time.time()
    notices.enqueue(person(1), [Reply("You now follow News.")], NoticeLane.REPLY, now)
    (claimed,) = notices.claim("w-a", now, LEASE_S, 10)
    assert notices.release_expired(now + LEASE_S + 1) == 1
    return h, notices, claimed, now


async def test_a_copy_sent_by_a_stalled_worker_is_recorded_and_not_claimed_again(store_url: str) -> None:
    h, row, now = await _copy_released_from_a(store_url)
    outbox = h.store.outbox
    with h.store.connection() as conn:  # w-a sent it after all
        sent = DeliveryOutcome(row.id, DeliveryStatus.DELIVERED, ref_key="7:1", platform=row.platform)
        outbox.record(conn, "w-a", [sent], now + LEASE_S + 2, h.sealer)
    with h.store.connection() as conn:
        assert outbox.claim(conn, "w-b", now + LEASE_S + 3, LEASE_S, 10) == []
        status = conn.execute(text("SELECT status FROM delivery WHERE id = :id"), {"id": row.id}).scalar()
    assert status == DeliveryStatus.DELIVERED.value
    h.store.dispose()


async def test_a_stalled_worker_extending_its_lease_takes_its_copy_back(store_url: str) -> None:
    h, row, now = await _copy_released_from_a(store_url)
    outbox = h.store.outbox
    with h.store.connection() as conn:
        assert outbox.extend_leases(conn, "w-a", [row.id], now + 2 * LEASE_S + 1) == {row.id}
    with h.store.connection() as conn:
        assert outbox.claim(conn, "w-b", now + LEASE_S + 2, LEASE_S, 10) == []
    h.store.dispose()


async def test_a_copy_another_worker_claimed_meanwhile_is_theirs(store_url: str) -> None:
    h, row, now = await _copy_released_from_a(store_url)
    outbox = h.store.outbox
    with h.store.connection() as conn:
        (again,) = outbox.claim(conn, "w-b", now + LEASE_S + 1, LEASE_S, 10)
    with h.store.connection() as conn:  # w-a's late record and extension change nothing
        assert outbox.extend_leases(conn, "w-a", [row.id], now + 10 * LEASE_S) == set(), "not w-a's"
        late = DeliveryOutcome(row.id, DeliveryStatus.FAILED, error="late", platform=row.platform)
        outbox.record(conn, "w-a", [late], now + LEASE_S + 2, h.sealer)
        owner, status = conn.execute(
            text("SELECT lease_owner, status FROM delivery WHERE id = :id"), {"id": row.id}
        ).one()
    assert again.id == row.id and (owner, status) == ("w-b", DeliveryStatus.LEASED.value)
    h.store.dispose()


async def test_an_answer_sent_by_a_stalled_worker_is_not_sent_again(store_url: str) -> None:
    h, notices, claimed, now = _answer_released_from_a(store_url)
    sent = NoticeOutcome(claimed.id, DeliveryStatus.DELIVERED, platform=claimed.platform)
    notices.record("w-a", [sent], now + LEASE_S + 2)
    assert notices.claim("w-b", now + LEASE_S + 3, LEASE_S, 10) == []
    with h.store.connection() as conn:
        assert conn.execute(text("SELECT count(*) FROM notice")).scalar() == 0
    h.store.dispose()


async def test_a_stalled_worker_extending_its_lease_takes_its_answer_back(store_url: str) -> None:
    h, notices, claimed, now = _answer_released_from_a(store_url)
    assert notices.extend_leases("w-a", [claimed.id], now + 2 * LEASE_S + 1) == {claimed.id}
    assert notices.claim("w-b", now + LEASE_S + 2, LEASE_S, 10) == []
    h.store.dispose()


async def test_an_answer_another_worker_claimed_meanwhile_is_theirs(store_url: str) -> None:
    h, notices, claimed, now = _answer_released_from_a(store_url)
    (again,) = notices.claim("w-b", now + LEASE_S + 1, LEASE_S, 10)
    assert notices.extend_leases("w-a", [claimed.id], now + 10 * LEASE_S) == set(), "not w-a's"
    with h.store.connection() as conn:
        query = text("SELECT lease_owner FROM notice WHERE id = :id")
        owner = conn.execute(query, {"id": claimed.id}).scalar()
    assert again.id == claimed.id and owner == "w-b"
    h.store.dispose()
