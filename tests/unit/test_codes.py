"""Access codes (issue 13, part 7): `/codes` mints single-use 128-bit codes stored only as keyed
digests, `/redeem` grants the paid tier through the ledger, claims a code once even when two
connections race, and throttles wrong codes per sender in the database — on SQLite and
PostgreSQL."""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlmodel import Session, select

from bridge.engine import ChannelEngine, EngineOptions
from bridge.engine.codes import (
    CODE_BYTES,
    REDEEM_WINDOW_S,
    format_code,
    new_code,
    parse_code,
)
from bridge.keys import rotate_key, verify_key
from bridge.models import AccessCode, AuditEntry, Channel, LedgerEntry, LedgerKind, RedeemFailure
from bridge.outcomes import Claim
from bridge.ports import Address, Message
from bridge.privacy import Sealer, read_key_file, write_key_file
from bridge.store import Store
from tests.support import OPERATOR, Harness, build, person

START = 1_800_000_000.0  # 2027-01-15
DAY = 24 * 3600.0
CODE_RE = re.compile(r"CB(?:-[0-9A-HJKMNP-TV-Z]{5}){6}")


class _Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def _bot(
    store_url: str, *, enabled: bool = True, clock: _Clock | None = None, price: bool = True
) -> AsyncIterator[Harness]:
    options = EngineOptions(payments_enabled=enabled, payments_support="@help" if enabled else "")
    h = build(store_url, options=options, clock=clock or _Clock())
    await h.worker.start()
    try:
        await h.say(OPERATOR, "/newchannel news Daily News")
        if price:
            await h.say(OPERATOR, "/price news 100")
        yield h
    finally:
        await h.worker.stop()
        h.store.dispose()


async def _mint(h: Harness, count: int = 1, days: int = 30, who: Address = OPERATOR) -> list[str]:
    reply = await h.say(who, f"/codes news {count} {days}")
    codes = CODE_RE.findall(reply)
    assert len(codes) == count, reply
    return codes


def _follower_id(h: Harness, who: Address) -> int:
    with h.store.session() as s:
        follower = h.store.followers.by_index(s, h.sealer.address_index(who))
        assert follower is not None and follower.id is not None
        return follower.id


def _paid_until(h: Harness, who: Address) -> float | None:
    with h.store.session() as s:
        return h.store.payments.paid_until(s, _follower_id(h, who), 1)


def _spellings(code: str) -> list[str]:
    raw = parse_code(code)
    assert raw is not None
    body = code.replace("-", "")
    return [code, code.lower(), body, body[2:], raw.hex(), raw.hex().upper(), code.replace("-", " ")]


def _dump(store: Store) -> str:
    """Every row of every table, as text (bytes as hex and as latin-1)."""
    parts: list[str] = []
    with store.engine.connect() as conn:
        for table in inspect(store.engine).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        value = bytes(value)
                        parts.extend([value.hex(), value.decode("latin-1")])
                    else:
                        parts.append(str(value))
    return "\n".join(parts)


# ---- the format -----------------------------------------------------------------------------


def test_a_thousand_codes_are_distinct_128_bit_and_typable() -> None:
    made = [new_code() for _ in range(1000)]
    assert len({code for code, _ in made}) == 1000
    assert len({raw for _, raw in made}) == 1000
    for code, raw in made:
        assert CODE_RE.fullmatch(code), code
        assert len(raw) == CODE_BYTES == 16
        assert parse_code(code) == raw


def test_a_code_reads_the_same_in_any_case_without_dashes_and_with_look_alikes() -> None:
    raw = bytes(range(16))
    code = format_code(raw)
    for typed in (
        code,
        code.lower(),
        code.replace("-", ""),
        code.replace("-", " "),
        code[3:],
        f"  {code}  ",
        code.replace("0", "O").replace("1", "l"),
    ):
        assert parse_code(typed) == raw, typed


def test_typos_and_other_text_are_not_codes() -> None:
    raw = bytes(range(16))
    code = format_code(raw)
    wrong = "1" if code[10] != "1" else "2"
    for typed in (
        "",
        "hello",
        code[:-1],
        code + "X",
        code[:10] + wrong + code[11:],
        code.replace("-", "")[:-1] + "U",
        "CB-" + "0" * 25 + "1" + "0C68M",
    ):
        assert parse_code(typed) is None, typed


# ---- the store ------------------------------------------------------------------------------


def _channel(s: Session) -> int:
    channel = Channel(handle="news", name="Daily News", created_at=START)
    s.add(channel)
    s.flush()
    assert channel.id is not None
    return channel.id


def test_a_code_is_claimed_once(store_url: str) -> None:
    store = Store(store_url)
    store.create_schema()
    try:
        with store.unit_of_work() as s:
            store.codes.add(s, _channel(s), ["d1"], 30, START)
        with store.unit_of_work() as s:
            assert store.codes.claim(s, "d1", START) is Claim.WON
        with store.unit_of_work() as s:
            assert store.codes.claim(s, "d1", START + 1) is Claim.LOST
            assert store.codes.claim(s, "nope", START + 1) is Claim.LOST
    finally:
        store.dispose()


@pytest.mark.postgres
def test_two_connections_racing_for_one_code_redeem_it_once(store_url: str) -> None:
    if not store_url.startswith("postgresql"):
        pytest.skip("two processes share a database on PostgreSQL only")
    first, second = Store(store_url), Store(store_url)
    first.create_schema()
    with first.unit_of_work() as s:
        first.codes.add(s, _channel(s), ["race"], 30, START)
    barrier = threading.Barrier(2)
    won: list[Claim] = []

    def worker(store: Store) -> None:
        barrier.wait()
        with store.unit_of_work() as s:
            won.append(store.codes.claim(s, "race", START))
            threading.Event().wait(0.3)  # hold the row: the other waits, then sees it taken

    threads = [threading.Thread(target=worker, args=(store,)) for store in (first, second)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert sorted(c.value for c in won) == ["lost", "won"]
    finally:
        first.dispose()
        second.dispose()


# ---- /codes ---------------------------------------------------------------------------------


async def test_the_owner_mints_codes_shown_once_and_stored_as_digests(store_url: str) -> None:
    async with _bot(store_url) as h:
        reply = await h.say(OPERATOR, "/codes news 3 30")
        codes = CODE_RE.findall(reply)
        assert len(set(codes)) == 3
        assert "shown this once only" in reply and "30 days of Daily News (news)" in reply
        with h.store.session() as s:
            rows = s.exec(select(AccessCode)).all()
            audit = s.exec(select(AuditEntry).where(AuditEntry.action == "codes")).all()
        assert [(r.channel_id, r.days, r.redeemed_at) for r in rows] == [(1, 30, None)] * 3
        assert [(a.actor, a.detail) for a in audit] == [("operator", "3 codes of 30 days")]
        dump = _dump(h.store)
        for code in codes:
            for spelling in _spellings(code):
                assert spelling not in dump


async def test_codes_are_for_the_owner_with_payments_on_and_a_tier(store_url: str) -> None:
    async with _bot(store_url, price=False) as h:
        assert "no paid tier" in await h.say(OPERATOR, "/codes news 1 30")
        await h.say(OPERATOR, "/price news 100")
        await h.say(OPERATOR, "/price news off")  # a tier no longer on sale still takes codes
        assert len(await _mint(h)) == 1
        invite = (await h.say(OPERATOR, "/invite-admin news")).split(": ", 1)[1].split()[0]
        await h.say(person(5), f"/accept {invite}")
        await h.say(person(6), "/follow news")
        for who in (person(5), person(6), person(7)):
            assert "Only the owner of 'news'" in await h.say(who, "/codes news 1 30")
        assert "There is no channel 'nope'" in await h.say(OPERATOR, "/codes nope 1 30")
        for bad in ("/codes news 0 30", "/codes news 101 30", "/codes news 1 0", "/codes news 1 367"):
            assert "Usage: /codes" in await h.say(OPERATOR, bad)
        with h.store.session() as s:
            assert len(s.exec(select(AccessCode)).all()) == 1


async def test_codes_and_redeem_are_refused_while_payments_are_off(store_url: str) -> None:
    async with _bot(store_url, enabled=False, price=False) as h:
        assert "Payments are off" in await h.say(OPERATOR, "/codes news 1 30")
        assert "Payments are off" in await h.say(person(1), f"/redeem {new_code()[0]}")
        with h.store.session() as s:
            assert s.exec(select(RedeemFailure)).all() == []


# ---- /redeem --------------------------------------------------------------------------------


async def test_redeeming_grants_the_days_in_the_ledger_and_sends_the_back_catalogue(
    store_url: str,
) -> None:
    clock = _Clock()
    async with _bot(store_url, clock=clock) as h:
        assert "on its way" in await h.say(OPERATOR, "/post news --paid Members only")
        await h.settle()
        (code,) = await _mint(h, days=30)
        reader, other = person(1), person(2)

        reply = await h.say(reader, f"/redeem {code.lower()}")
        assert "You have access to the paid posts of Daily News (news) until 2027-02-14" in reply
        assert "last 30 days of paid posts are on their way" in reply
        assert _paid_until(h, reader) == START + 30 * DAY
        with h.store.session() as s:
            (entry,) = s.exec(select(LedgerEntry)).all()
            (row,) = s.exec(select(AccessCode)).all()
            assert h.store.followers.subscription(s, _follower_id(h, reader), 1) is not None
        assert (entry.kind, entry.amount, entry.telegram_payment_charge_id, entry.platform) == (
            LedgerKind.CODE.value,
            0,
            None,
            "fake",
        )
        assert entry.follower_index == h.sealer.address_index(reader)
        assert (row.redeemed_at, row.ledger_id) == (START, entry.id)
        await h.settle()
        assert [c.text for c in h.adapter.sends_to(reader.target)] == ["Members only"]

        # the same code again, by anyone, in any spelling: refused and counted
        assert await h.say(other, f"/redeem {code.replace('-', '')}") == "This code was already used."
        assert await h.say(reader, f"/redeem {code}") == "This code was already used."
        with h.store.session() as s:
            assert len(s.exec(select(LedgerEntry)).all()) == 1
            assert len(h.store.codes.failures_of(s, h.sealer.address_index(other))) == 1
        assert _paid_until(h, reader) == START + 30 * DAY


async def test_a_second_code_extends_access_from_its_end(store_url: str) -> None:
    clock = _Clock()
    async with _bot(store_url, clock=clock) as h:
        first, second = await _mint(h, 2, days=10)
        reader = person(1)
        await h.say(reader, f"/redeem {first}")
        clock.now += 2 * DAY
        await h.say(reader, f"/redeem {second}")
        assert _paid_until(h, reader) == START + 20 * DAY
        (late,) = await _mint(h, days=5)
        clock.now = START + 40 * DAY  # access ended: a new code counts from now
        await h.say(reader, f"/redeem {late}")
        assert _paid_until(h, reader) == START + 45 * DAY


async def test_the_sixth_attempt_is_refused_unchecked_until_the_window_passes(store_url: str) -> None:
    clock = _Clock()
    async with _bot(store_url, clock=clock) as h:
        (good,) = await _mint(h)
        guesser = person(1)
        for n in range(5):
            clock.now = START + n * 60
            assert await h.say(guesser, f"/redeem {new_code()[0]}") == "That code is not valid."
        clock.now = START + 5 * 60
        refused = await h.say(guesser, f"/redeem {good}")  # right, but not even looked at
        assert refused == "Too many wrong codes; try again in 10 minutes."
        with h.store.session() as s:
            (row,) = s.exec(select(AccessCode)).all()
            assert row.redeemed_at is None
            # another process, the same database: the same count
        other = build(h.store.url, options=h.engine.options, clock=clock)
        try:
            assert (await other.say(guesser, f"/redeem {good}")).startswith("Too many wrong codes")
        finally:
            other.store.dispose()
        # /forgetme does not reset the count
        await h.say(guesser, "/forgetme")
        assert (await h.say(guesser, f"/redeem {good}")).startswith("Too many wrong codes")
        # someone else is not slowed down by it; typos are not guesses and are not counted
        assert "not an access code" in await h.say(person(2), "/redeem CB-12345")

        clock.now = START + REDEEM_WINDOW_S + 1  # the first failure left the window
        assert "You have access" in await h.say(guesser, f"/redeem {good}")
        clock.now = START + 2 * REDEEM_WINDOW_S
        assert await h.say(person(3), f"/redeem {new_code()[0]}") == "That code is not valid."
        with h.store.session() as s:
            # failures leave the table once out of the window: it does not grow forever
            assert [f.sender_index for f in s.exec(select(RedeemFailure))] == [
                h.sealer.address_index(person(3))
            ]


async def test_typos_do_not_count_as_wrong_codes(store_url: str) -> None:
    async with _bot(store_url) as h:
        (good,) = await _mint(h)
        typo = good[:-1] + ("0" if good[-1] != "0" else "1")
        for _ in range(8):
            assert "not an access code" in await h.say(person(1), f"/redeem {typo}")
        assert "You have access" in await h.say(person(1), f"/redeem {good}")


async def test_a_code_of_a_deleted_channel_grants_nothing(store_url: str) -> None:
    async with _bot(store_url) as h:
        (code,) = await _mint(h)
        await h.say(OPERATOR, "/deletechannel news")
        assert "no longer exists" in await h.say(person(1), f"/redeem {code}")
        with h.store.session() as s:
            assert s.exec(select(LedgerEntry)).all() == []


async def test_codes_are_never_in_the_database_or_the_logs(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with _bot(store_url) as h:
        codes = await _mint(h, 4, days=7)
        await h.say(person(1), f"/redeem {codes[0]}")
        await h.say(person(1), f"/redeem {codes[0]}")
        await h.say(person(2), f"/redeem {codes[1].lower()}")
        await h.settle()
        dump = _dump(h.store)
        logs = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
        for code in codes:
            for spelling in _spellings(code):
                assert spelling not in dump
                assert spelling.lower() not in logs and spelling.upper() not in logs


async def test_codes_sold_before_a_key_rotation_still_redeem_after_it(store_url: str, tmp_path: Path) -> None:
    """Codes live in a shop for months: `rotate-key` must not void the unsold ones."""
    async with _bot(store_url) as h:
        (code,) = await _mint(h)
        data_dir = tmp_path / "data"
        harness_key = base64.urlsafe_b64encode(b"k" * 32).decode().rstrip("=")
        write_key_file(data_dir / "privacy.key", harness_key)
        verify_key(h.store, h.sealer, "test")
        rotate_key(h.store, None, data_dir)
        rotated = Sealer(read_key_file(data_dir / "privacy.key"))
        assert rotated.fingerprint != h.sealer.fingerprint
        engine = ChannelEngine(
            h.store, rotated, operators=[OPERATOR], options=h.engine.options, clock=h.engine.clock
        )

        replies = await engine.handle(Message(person(5), f"/redeem {code}"))
        assert "You have access to the paid posts of Daily News" in replies[0].text
        again = await engine.handle(Message(person(6), f"/redeem {code}"))
        assert again[0].text == "This code was already used."
