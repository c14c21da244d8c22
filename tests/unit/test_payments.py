"""Paid channels, the foundation (issue 13): the tier, entitlement and ledger tables on SQLite
and PostgreSQL, a charge id granting once (also from two connections racing), grants that
never shorten, and the commands `/price`, `/revenue` and `/paysupport` through the engine."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlmodel import select

from bridge import migrate
from bridge.commands import parse_command
from bridge.config import ConfigError, load_settings
from bridge.engine import EngineOptions
from bridge.keys import rotate_key, verify_key
from bridge.models import AuditEntry, Channel, LedgerKind, Tier
from bridge.ports import Address
from bridge.privacy import Sealer, generate_key, read_key_file, write_key_file
from bridge.store import AlreadyRecorded, Recorded, Store
from tests.support import OPERATOR, Harness, build, person

START = 1_800_000_000.0  # 2027-01-15
DAY = 24 * 3600.0
SUPPORT = "@news_payments_help"


def _channel(store: Store, handle: str = "news") -> int:
    with store.unit_of_work() as s:
        channel = Channel(handle=handle, name="Daily News", created_at=START)
        s.add(channel)
        s.flush()
        assert channel.id is not None
        return channel.id


def _charge(
    store: Store,
    sealer: Sealer,
    channel_id: int,
    payer: Address,
    charge_id: str | None,
    *,
    until: float,
    follower_id: int = 1,
    kind: LedgerKind = LedgerKind.CHARGE,
    amount: int = 100,
    now: float = START,
    hold_s: float = 0.0,
) -> Recorded | AlreadyRecorded:
    with store.unit_of_work() as s:
        result = store.payments.record_charge(
            s,
            sealer,
            kind=kind,
            channel_id=channel_id,
            payer=payer,
            amount=amount,
            charge_id=charge_id,
            now=now,
            grant=(follower_id, until),
        )
        time.sleep(hold_s)  # keep the transaction open: a racing process waits on the charge id
        return result


# ---- the store ------------------------------------------------------------------------------


def test_the_migration_makes_the_three_tables_on_both_stores(store_url: str) -> None:
    store = Store(store_url)
    try:
        migrate.upgrade(store.engine)
        tables = set(inspect(store.engine).get_table_names())
        assert {"tier", "entitlement", "ledger"} <= tables
        uniques = inspect(store.engine).get_unique_constraints("ledger")
        # a charge id once per kind: a refund row repeats the id of the charge it gives back
        assert [u["column_names"] for u in uniques] == [["telegram_payment_charge_id", "kind"]]
    finally:
        store.dispose()


def test_one_charge_id_is_recorded_and_granted_once(store_url: str) -> None:
    store, sealer = Store(store_url), Sealer(b"k" * 32)
    store.create_schema()
    try:
        cid = _channel(store)
        first = _charge(store, sealer, cid, person(1), "tg-charge-1", until=START + 30 * DAY)
        again = _charge(store, sealer, cid, person(1), "tg-charge-1", until=START + 90 * DAY)

        assert isinstance(first, Recorded)
        assert again == AlreadyRecorded("tg-charge-1")
        with store.unit_of_work() as s:
            assert store.payments.paid_until(s, 1, cid) == START + 30 * DAY  # the second granted nothing
            entries = store.payments.entries_of(s, sealer.address_index(person(1)))
            assert [e.id for e in entries] == [first.entry_id]
            assert sealer.unseal(
                entries[0].platform, entries[0].follower_sealed, table="ledger", row_id=first.entry_id
            ) == person(1)
        # codes carry no charge id: each redemption is its own row
        for _ in range(2):
            code = _charge(
                store, sealer, cid, person(2), None, until=START + DAY, kind=LedgerKind.CODE, amount=0
            )
            assert isinstance(code, Recorded)
    finally:
        store.dispose()


@pytest.mark.postgres
def test_two_connections_racing_for_one_charge_grant_it_once(store_url: str) -> None:
    if not store_url.startswith("postgresql"):
        pytest.skip("two processes share a database on PostgreSQL only")
    first, second = Store(store_url), Store(store_url)
    first.create_schema()
    sealer = Sealer(b"k" * 32)
    cid = _channel(first)
    barrier = threading.Barrier(2)
    results: dict[str, Recorded | AlreadyRecorded] = {}
    errors: list[BaseException] = []

    def worker(name: str, store: Store, until: float) -> None:
        try:
            barrier.wait()
            results[name] = _charge(store, sealer, cid, person(1), "tg-race", until=until, hold_s=0.3)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=("a", first, START + 30 * DAY)),
        threading.Thread(target=worker, args=("b", second, START + 60 * DAY)),
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors, errors
        won = [name for name, r in results.items() if isinstance(r, Recorded)]
        assert len(won) == 1 and len(results) == 2, results
        with first.unit_of_work() as s:
            count = s.connection().execute(text("SELECT count(*) FROM ledger")).scalar_one()
            assert count == 1
            expected = START + (30 if won == ["a"] else 60) * DAY
            assert first.payments.paid_until(s, 1, cid) == expected
    finally:
        first.dispose()
        second.dispose()


def test_a_grant_extends_and_never_shortens(store_url: str) -> None:
    store = Store(store_url)
    store.create_schema()
    try:
        cid = _channel(store)
        with store.unit_of_work() as s:
            p = store.payments
            assert p.grant(s, 7, cid, START + 30 * DAY) == START + 30 * DAY
            assert p.grant(s, 7, cid, START + 10 * DAY) == START + 30 * DAY
            assert p.grant(s, 7, cid, START + 60 * DAY) == START + 60 * DAY
            assert p.paid_until(s, 7, cid) == START + 60 * DAY
            assert p.entitled(s, 7, cid, START + 59 * DAY)
            assert not p.entitled(s, 7, cid, START + 61 * DAY)
            assert not p.entitled(s, 8, cid, START)
            assert p.subscribers(s, cid, START) == 1
            assert p.revoke(s, 7, cid)
            assert not p.entitled(s, 7, cid, START)
            assert p.subscribers(s, cid, START) == 0
    finally:
        store.dispose()


def test_revenue_is_counted_per_month_and_kind(store_url: str) -> None:
    store, sealer = Store(store_url), Sealer(b"k" * 32)
    store.create_schema()
    try:
        cid = _channel(store)
        dec = 1_798_761_600.0  # 2027-01-01 00:00 UTC
        _charge(store, sealer, cid, person(1), "c1", until=dec + 30 * DAY, now=dec - 3600)  # 2026-12
        _charge(store, sealer, cid, person(2), "c2", until=dec + 30 * DAY, now=dec + 60)
        _charge(
            store, sealer, cid, person(1), "c3", until=dec + 60 * DAY, now=dec + 120, kind=LedgerKind.RENEWAL
        )
        _charge(store, sealer, cid, person(2), "c4", until=dec, now=dec + 180, kind=LedgerKind.REFUND)
        with store.unit_of_work() as s:
            rows = store.payments.revenue_by_month(s, cid)
        assert [(r.month, r.kind, r.count, r.stars) for r in rows] == [
            ("2026-12", LedgerKind.CHARGE, 1, 100),
            ("2027-01", LedgerKind.CHARGE, 1, 100),
            ("2027-01", LedgerKind.REFUND, 1, 100),
            ("2027-01", LedgerKind.RENEWAL, 1, 100),
        ]
    finally:
        store.dispose()


def test_ledger_rows_hold_no_identity_in_clear(store_url: str) -> None:
    store, sealer = Store(store_url), Sealer(b"k" * 32)
    store.create_schema()
    try:
        cid = _channel(store)
        payer = Address("telegram", "700000042", "700000042")
        _charge(store, sealer, cid, payer, "tg-charge-42", until=START + 30 * DAY)
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM ledger")).mappings().all()
            entitlements = conn.execute(text("SELECT * FROM entitlement")).mappings().all()
        raw = repr([dict(r) for r in rows]) + repr([dict(r) for r in entitlements])
        blobs = b"".join(bytes(v) for r in rows for v in r.values() if isinstance(v, bytes | memoryview))
        assert "700000042" not in raw
        assert b"700000042" not in blobs
        assert rows[0]["follower_index"] == sealer.address_index(payer)
    finally:
        store.dispose()


def test_rotate_key_reseals_and_reindexes_the_ledger(store_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_key_file(data_dir / "privacy.key", generate_key())
    old = Sealer(read_key_file(data_dir / "privacy.key"))
    store = Store(store_url)
    try:
        migrate.upgrade(store.engine, sealer=old)
        verify_key(store, old, "test")
        cid = _channel(store)
        payer = Address("telegram", "700000077")
        recorded = _charge(store, old, cid, payer, "tg-rotate", until=START + 30 * DAY)
        assert isinstance(recorded, Recorded)

        report = rotate_key(store, None, data_dir)

        new = Sealer(read_key_file(data_dir / "privacy.key"))
        assert new.fingerprint != old.fingerprint
        assert report.resealed.get("ledger") == 1
        with store.unit_of_work() as s:
            assert store.payments.entries_of(s, old.address_index(payer)) == []
            (entry,) = store.payments.entries_of(s, new.address_index(payer))
            opened = new.unseal(
                entry.platform, entry.follower_sealed, table="ledger", row_id=recorded.entry_id
            )
            assert opened == payer
    finally:
        store.dispose()


# ---- the commands ---------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def _bot(
    store_url: str, *, enabled: bool = True, clock: Callable[[], float] | None = None
) -> AsyncIterator[Harness]:
    options = EngineOptions(payments_enabled=enabled, payments_support=SUPPORT if enabled else "")
    h = build(store_url, options=options, clock=clock)
    await h.worker.start()
    try:
        await h.say(OPERATOR, "/newchannel news Daily News")
        yield h
    finally:
        await h.worker.stop()
        h.store.dispose()


def _tiers(h: Harness) -> list[tuple[int, bool]]:
    with h.store.session() as s:
        return [(t.price, t.on_sale) for t in s.exec(select(Tier).order_by(Tier.id))]  # type: ignore[arg-type]


def _audit(h: Harness) -> list[tuple[str, str, str]]:
    with h.store.session() as s:
        entries = s.exec(select(AuditEntry).where(AuditEntry.action == "price")).all()
        return [(e.actor, e.action, e.detail) for e in entries]


async def _code(h: Harness) -> str:
    reply = await h.say(OPERATOR, "/invite-admin news")
    return reply.split(": ", 1)[1].split()[0]


async def test_price_sets_changes_and_ends_the_tier_and_is_audited(store_url: str) -> None:
    async with _bot(store_url) as h:
        assert "250 Stars" in await h.say(OPERATOR, "/price news 250")
        assert _tiers(h) == [(250, True)]
        helper = person(9)
        assert "admin #2" in await h.say(helper, f"/accept {await _code(h)}")
        assert "(was 250)" in await h.say(helper, "/price news 300")
        assert _tiers(h) == [(250, False), (300, True)]
        ended = await h.say(helper, "/price news off")
        assert "keep access" in ended
        assert _tiers(h) == [(250, False), (300, False)]
        assert "no paid tier" in await h.say(OPERATOR, "/price news off")
        assert _audit(h) == [
            ("operator", "price", "250 Stars / 30 days"),
            ("admin #2", "price", "300 Stars / 30 days"),
            ("admin #2", "price", "off"),
        ]
        with h.store.session() as s:
            assert h.store.payments.last_tier(s, 1) is not None
            assert h.store.payments.tier_of(s, 1) is None


async def test_price_is_refused_to_strangers_followers_and_removed_admins(store_url: str) -> None:
    async with _bot(store_url) as h:
        await h.say(OPERATOR, "/price news 100")
        follower, stranger, removed = person(1), person(2), person(3)
        await h.say(follower, "/follow news")
        assert "admin #2" in await h.say(removed, f"/accept {await _code(h)}")
        await h.say(OPERATOR, "/removeadmin news 2")
        for who in (stranger, follower, removed):
            for text_ in ("/price news 500", "/price news off"):
                assert "Only admins of 'news'" in await h.say(who, text_)
        assert _tiers(h) == [(100, True)]
        assert _audit(h) == [("operator", "price", "100 Stars / 30 days")]


async def test_bad_prices_get_the_usage_line_and_change_nothing(store_url: str) -> None:
    async with _bot(store_url) as h:
        usage = "Usage: /price <handle> <stars|off>"
        for bad in (
            "/price news 0",
            "/price news 10001",
            "/price news -1",
            "/price news lots",
            "/price news",
        ):
            reply = await h.say(OPERATOR, bad)
            assert reply.endswith(usage), reply
        assert _tiers(h) == []


async def test_price_is_refused_while_payments_are_off(store_url: str) -> None:
    async with _bot(store_url, enabled=False) as h:
        assert "Payments are off" in await h.say(OPERATOR, "/price news 100")
        assert _tiers(h) == []
        assert "payments are off" in await h.say(person(1), "/paysupport")


async def test_paysupport_shows_the_configured_contact_to_anyone(store_url: str) -> None:
    async with _bot(store_url) as h:
        assert SUPPORT in await h.say(person(1), "/paysupport")
        assert SUPPORT in await h.say(OPERATOR, "/paysupport")


async def test_revenue_shows_counts_only_to_the_owner_and_operators(store_url: str) -> None:
    clock = _Clock()
    async with _bot(store_url, clock=clock) as h:
        await h.say(OPERATOR, "/price news 100")
        payers = [person(n, "telegram") for n in (11, 12)]
        for n, payer in enumerate(payers):
            await h.say(payer, "/follow news")
            _charge(h.store, h.sealer, 1, payer, f"tg-{n}", until=START + 30 * DAY, follower_id=n + 10)
        _charge(h.store, h.sealer, 1, payers[0], "tg-r", until=START, kind=LedgerKind.REFUND, follower_id=10)
        with h.store.session() as s:
            h.store.payments.revoke(s, 10, 1)

        admin = person(5)
        await h.say(admin, f"/accept {await _code(h)}")
        assert "Only the owner of 'news'" in await h.say(admin, "/revenue news")
        assert "Only the owner of 'news'" in await h.say(payers[1], "/revenue news")

        report = await h.say(OPERATOR, "/revenue news")
        assert "Subscribers now: 1" in report
        assert "On sale: 30 days for 100 Stars" in report
        assert (
            "2027-01: charges 2, renewals 0, refunds 1, codes 0; 200 Stars in, 100 refunded, 100 net"
            in report
        )
        for payer in payers:
            assert payer.id not in report
            assert h.sealer.address_index(payer) not in report


async def test_forgetme_ends_paid_access(store_url: str) -> None:
    async with _bot(store_url) as h:
        await h.say(person(1), "/follow news")
        with h.store.session() as s:
            follower = h.store.followers.by_index(s, h.sealer.address_index(person(1)))
            assert follower is not None and follower.id is not None
            fid = follower.id
            h.store.payments.grant(s, fid, 1, START + 30 * DAY)
        await h.say(person(1), "/forgetme")
        with h.store.session() as s:
            assert h.store.payments.paid_until(s, fid, 1) is None


def test_price_grammar_takes_off_in_any_case() -> None:
    assert parse_command("/price news Off") == parse_command("/price news off")


# ---- the config section ---------------------------------------------------------------------


def test_payments_are_off_by_default_and_need_a_support_contact_when_on(tmp_path: Path) -> None:
    settings = load_settings(env={})
    assert (settings.payments.enabled, settings.payments.teaser, settings.payments.support) == (
        False,
        True,
        "",
    )

    path = tmp_path / "config.toml"
    path.write_text("[payments]\nenabled = true\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    (problem,) = caught.value.problems
    assert problem.key == "payments.support"
    assert "required when payments are enabled" in problem.message
    assert "payments.support" in problem.fix

    on = load_settings(path, env={"CHANNELBRIDGE_PAYMENTS__SUPPORT": SUPPORT})
    assert on.payments.enabled and on.payments.support == SUPPORT
