"""Privacy: sealed addresses, blind indexes, log redaction, and a raw database dump that
reveals no identity."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bridge.ports import Address, Message, PollVote, Reaction
from bridge.privacy import RedactingFilter, Sealer, UnsealError, load_or_create_key, redact
from tests.support import OPERATOR, build


def test_sealed_address_round_trips_and_binds_platform() -> None:
    sealer = Sealer(b"x" * 32)
    address = Address("matrix", "@alice:example.org", chat="!room:example.org")
    sealed = sealer.seal(address, table="follower", row_id=1)
    assert b"alice" not in sealed
    assert sealer.unseal("matrix", sealed, table="follower", row_id=1) == address
    with pytest.raises(UnsealError):
        sealer.unseal("telegram", sealed, table="follower", row_id=1)


def test_blind_index_is_stable_keyed_and_hides_the_id() -> None:
    a, b = Sealer(b"x" * 32), Sealer(b"y" * 32)
    addr = Address("telegram", "123456789")
    assert a.address_index(addr) == a.address_index(Address("telegram", "123456789", chat="5"))
    assert a.address_index(addr) != b.address_index(addr)
    assert "123456789" not in a.address_index(addr)


def test_an_update_number_is_the_same_in_every_process_with_the_key_and_fits_a_bigint() -> None:
    event_id = "$Wl7pGZf5n3nJ0v9X8qk2Yc1r4m6s8t0u2w4y6a8c0e2"
    a, same_key, other_key = Sealer(b"x" * 32), Sealer(b"x" * 32), Sealer(b"y" * 32)
    number = a.update_number("matrix", event_id)
    assert number == same_key.update_number("matrix", event_id)
    assert number != other_key.update_number("matrix", event_id)
    assert number != a.update_number("matrix", event_id + "x")
    assert number != a.update_number("telegram", event_id)
    assert 0 <= number < 2**60  # received_update.update_id is a signed 64-bit column


def test_key_is_generated_once_into_the_data_dir(tmp_path: Path) -> None:
    first = load_or_create_key(None, tmp_path)
    assert (tmp_path / "privacy.key").stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(None, tmp_path) == first


def test_log_filter_redacts_platform_identities() -> None:
    record = logging.LogRecord(
        "x",
        logging.INFO,
        __file__,
        1,
        "user %s in %s chat %s",
        ("@bob:matrix.org", "!abc:matrix.org", 987654321),
        None,
    )
    RedactingFilter().filter(record)
    text = record.getMessage()
    assert "bob" not in text and "abc" not in text and "987654321" not in text
    assert redact("post #12 delivered") == "post #12 delivered"


def test_address_repr_never_shows_the_identity() -> None:
    address = Address("telegram", "123456789", chat="123456789")
    assert "123456789" not in repr(address) and "123456789" not in f"{address}"


async def test_raw_database_contains_no_platform_identity(sqlite_store_url: str) -> None:
    store_url = sqlite_store_url
    harness = build(store_url)
    await harness.worker.start()
    tg = [Address("telegram", str(5_550_000_000 + n)) for n in range(3)]
    mx = [
        Address("matrix", f"@follower{n}:matrix.example.org", chat=f"!dmroom{n}:matrix.example.org")
        for n in range(3)
    ]
    await harness.say(OPERATOR, "/newchannel news Daily News")
    for a in tg + mx:
        await harness.say(a, "/follow news")
    await harness.say(OPERATOR, '/poll news "Q" "x" "y"')
    await harness.say(OPERATOR, "/post news hello")
    await harness.say(OPERATOR, "/invite-admin news")
    await harness.settle()
    for a in tg + mx:
        await harness.engine.handle(Message(a, "/vote 1 1"))
        await harness.engine.handle(PollVote(a, "poll-1", (0,)))
        await harness.engine.handle(Reaction(a, f"{a.target}:1", "👍"))
    code = (await harness.say(OPERATOR, "/invite-admin news")).split(": ", 1)[1].split()[0]
    await harness.say(mx[0], f"/accept {code}")
    await harness.say(OPERATOR, "/edit 2 hello again")
    await harness.settle()
    await harness.worker.stop()
    harness.store.dispose()  # checkpoint nothing away: read the db and the WAL as they are
    db = Path(store_url.removeprefix("sqlite:///"))
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert len(raw) > 10_000
    for a in tg + mx:
        assert a.id.encode() not in raw, a.platform
        if a.chat:
            assert a.chat.encode() not in raw
    assert b"follower0" not in raw and b"matrix.example.org" not in raw
    assert OPERATOR.id.encode() not in raw


def test_formatter_redacts_tracebacks_tokens_and_short_ids() -> None:
    from bridge.privacy import RedactingFormatter

    token = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw9"
    try:
        raise ValueError(f"[SQL: UPDATE delivery] [parameters: {{'chat_id': 4242}}] /bot{token}/getMe")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed for user %s", (77,), sys.exc_info()
        )
    line = RedactingFormatter("%(message)s").format(record)
    assert "Traceback" in line and "4242" not in line and token[11:] not in line and " 77" not in line
    assert (
        redact('{"chat": {"id": 31, "type": "private"}}') == '{"chat": {"id": [redacted], "type": "private"}}'
    )
    assert (
        redact("chat_id=12") == "chat_id=[redacted]" and redact("post #12 delivered") == "post #12 delivered"
    )
    assert redact("postgresql+psycopg://bridge:pw@db/cb") == "postgresql+psycopg://[redacted]@db/cb"


def test_matrix_device_ids_are_redacted() -> None:
    assert redact("Missing session for device HTTEBQYCIE") == "Missing session for device [redacted]"
    assert redact('{"device_id": "JQNUCGKKGX"}') == '{"device_id": "[redacted]"}'
    assert redact("device_id=ABCDEFGHIJ ok") == "device_id=[redacted] ok"
