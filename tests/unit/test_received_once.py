"""Polled updates are claimed by id before they are handled, so that with several processes a
lease holder that stalled and the process that took its lease over never both run one."""

from __future__ import annotations

import time

from bridge.inbox import KEEP_IDS_S, ReceivedOnce
from bridge.store import Store


def _store(url: str) -> Store:
    store = Store(url)
    store.create_schema()
    return store


def test_an_update_is_claimed_once_across_processes(store_url: str) -> None:
    here, there = _store(store_url), Store(store_url)  # two processes, one database
    try:
        assert ReceivedOnce(here).first("telegram", 41)
        assert not ReceivedOnce(there).first("telegram", 41)
        assert not ReceivedOnce(here).first("telegram", 41)
        assert ReceivedOnce(there).first("telegram", 42)
        assert ReceivedOnce(there).first("spool", 41), "update ids are per platform"
    finally:
        here.dispose()
        there.dispose()


def test_an_update_a_webhook_recorded_counts_as_claimed(store_url: str) -> None:
    store = _store(store_url)
    try:
        with store.connection() as conn:
            (fresh,) = store.updates.record(conn, "telegram", [(7, b"{}")], time.time(), lambda b, _: b)
        assert fresh
        assert not ReceivedOnce(store).first("telegram", 7)
    finally:
        store.dispose()


def test_claims_are_forgotten_after_a_day(store_url: str) -> None:
    store = _store(store_url)
    now = [1_000_000.0]
    once = ReceivedOnce(store, clock=lambda: now[0])
    try:
        assert once.first("telegram", 5)
        now[0] += KEEP_IDS_S / 2
        assert not once.first("telegram", 5), "still remembered within the day"
        now[0] += KEEP_IDS_S  # the claim of update 5 is now more than a day old
        assert once.first("telegram", 6)  # this call also purges what is older than a day
        assert once.first("telegram", 5)
        assert not once.first("telegram", 6), "a recent claim survives the purge"
    finally:
        store.dispose()
