"""Issue 11 (findings 1, 3, 9, 10, 17): delivery references sealed behind blind indexes, sealed
blobs bound to their row, legacy rows migrated, the key checked against the database, private
file modes, and no database password in a repr."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import text
from sqlmodel import select

from bridge import migrate
from bridge.app import App
from bridge.config import Settings, check_config, config_file_warnings, load_settings
from bridge.keys import KeyMismatch
from bridge.models import Delivery, Follower
from bridge.ports import Address, PollVote, Reaction
from bridge.privacy import KeyFileModeError, Sealer, UnsealError, _derive, generate_key
from bridge.store import Store
from tests.support import OPERATOR, FakeAdapter, Harness, person


def dump(store_url: str) -> bytes:
    """Everything the database holds, as an attacker with a copy would read it."""
    if store_url.startswith("sqlite"):
        db = Path(store_url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    url = store_url.replace("postgresql+psycopg://", "postgresql://")
    return subprocess.run(["pg_dump", "--data-only", url], check=True, capture_output=True).stdout


async def _followers_with_copies(h: Harness, n: int) -> list[Address]:
    people = [person(100 + i) for i in range(n)]
    await h.say(OPERATOR, "/newchannel news Daily News")
    for p in people:
        await h.say(p, "/follow news")
    await h.say(OPERATOR, '/poll news "Q" "x" "y"')
    await h.say(OPERATOR, "/post news hello")
    await h.settle()
    return people


async def test_delivery_refs_hold_no_chat_id_and_votes_still_find_the_copy(
    harness: Harness, store_url: str
) -> None:
    people = await _followers_with_copies(harness, 3)
    await harness.say(OPERATOR, "/edit 2 hello again")  # the edit reads the sealed reference
    await harness.settle()
    assert len(harness.adapter.of("edit")) == 3
    with harness.store.session() as s:
        rows = list(s.exec(select(Delivery).where(Delivery.action == "send")))
    refs = {}
    for row in rows:
        assert row.ref_sealed is not None and row.ref_index is not None
        refs[(row.post_id, row.follower_id)] = harness.sealer.unseal_ref(
            row.ref_sealed, row_id=row.id or 0, platform=row.platform
        )
    assert all(p.id in refs[(2, fid)][0] for p, fid in zip(people, sorted({f for _, f in refs}), strict=True))
    # votes and reactions arrive with the platform reference: the blind index finds the copy
    for p, fid in zip(people, sorted({f for _, f in refs}), strict=True):
        await harness.engine.handle(PollVote(p, refs[(1, fid)][1] or "", (0,)))
        await harness.engine.handle(Reaction(p, refs[(2, fid)][0], "👍"))
    assert "x — 3" in await harness.say(OPERATOR, "/results 1")
    assert "👍 3" in await harness.say(OPERATOR, "/stats news")
    harness.store.dispose()
    raw = dump(store_url)
    for p in people:
        assert p.id.encode() not in raw


async def test_a_swapped_sealed_address_fails_only_its_own_row(harness: Harness) -> None:
    people = await _followers_with_copies(harness, 4)
    with harness.store.connection() as conn:
        a, b = conn.execute(text("SELECT id, sealed FROM follower ORDER BY id LIMIT 2")).all()
        conn.execute(text("UPDATE follower SET sealed = :s WHERE id = :id"), {"s": b.sealed, "id": a.id})
        conn.execute(text("UPDATE follower SET sealed = :s WHERE id = :id"), {"s": a.sealed, "id": b.id})
    with harness.store.session() as s:
        swapped = s.get(Follower, a.id)
        assert swapped is not None
        with pytest.raises(UnsealError):
            harness.sealer.unseal(swapped.platform, swapped.sealed, table="follower", row_id=a.id)
    sent_before = len(harness.adapter.of("send"))
    await harness.say(OPERATOR, "/post news after the swap")
    await harness.settle()
    assert len(harness.adapter.of("send")) - sent_before == 2  # the two others still get it
    with harness.store.session() as s:
        failed = list(s.exec(select(Delivery).where(Delivery.post_id == 3, Delivery.status == "failed")))
    assert sorted(d.follower_id for d in failed) == sorted([a.id, b.id])
    assert all("does not open" in (d.error or "") for d in failed)
    assert people  # nobody's address reached the wrong chat
    assert {c.target for c in harness.adapter.of("send")[sent_before:]} == {p.target for p in people[2:]}


def _legacy_seal(key: bytes, address: Address) -> bytes:
    aead = AESGCM(_derive(key, b"channelbridge/seal/v1"))
    nonce = secrets.token_bytes(12)
    plain = json.dumps({"id": address.id, "chat": address.chat}).encode()
    return nonce + aead.encrypt(nonce, plain, address.platform.encode())


def test_migration_reseals_legacy_rows_and_seals_clear_refs(store_url: str) -> None:
    key = b"m" * 32
    sealer = Sealer(key)
    alice = Address("telegram", "5550001234", chat="5550001234")
    store = Store(store_url)
    try:
        migrate.upgrade(store.engine, "0002_count_index")
        with store.connection() as conn:
            conn.execute(
                text(
                    "INSERT INTO channel (handle, name, description, public, created_at)"
                    " VALUES ('n','N','',:t,0)"
                ),
                {"t": True},
            )
            conn.execute(
                text(
                    "INSERT INTO follower (platform, account_index, sealed, created_at) VALUES (:p,:i,:s,0)"
                ),
                {"p": "telegram", "i": sealer.address_index(alice), "s": _legacy_seal(key, alice)},
            )
            conn.execute(
                text(
                    "INSERT INTO post (channel_id, kind, text, status, created_at, edit_count, poll_multi,"
                    " planned, plan_cursor, summary_sent, author_platform, author_sealed)"
                    " VALUES (1,'text','hi','published',0,0,:f,1,-1,:f,'telegram',:s)"
                ),
                {"f": False, "s": _legacy_seal(key, alice)},
            )
            conn.execute(
                text(
                    "INSERT INTO delivery (post_id, action, platform, follower_id, silent, status, attempts,"
                    " next_attempt_at, created_at, ref_key, ref_alt)"
                    " VALUES (1,'send','telegram',1,:f,'delivered',1,0,0,'5550001234:77','poll-9')"
                ),
                {"f": False},
            )
        with pytest.raises(RuntimeError, match="db upgrade"):
            migrate.upgrade(store.engine)  # without the key: refused, nothing changed
        assert migrate.current_revision(store.engine) == "0002_count_index"
        with pytest.raises(RuntimeError, match="another key"):
            migrate.upgrade(store.engine, sealer=Sealer(b"w" * 32))
        migrate.upgrade(store.engine, sealer=sealer)
        with store.session() as s:
            follower = s.exec(select(Follower)).one()
            assert sealer.unseal("telegram", follower.sealed, table="follower", row_id=1) == alice
            copy = store.copy_by_ref_index(s, "telegram", sealer.ref_index("telegram", "5550001234:77"))
            assert copy is not None and copy.id == 1
            assert store.copy_by_ref_index(s, "telegram", sealer.ref_index("telegram", "poll-9")) is not None
            assert sealer.unseal_ref(copy.ref_sealed or b"", row_id=1, platform="telegram") == (
                "5550001234:77",
                "poll-9",
            )
            post = store.post(s, 1)
            assert post is not None
            assert sealer.unseal("telegram", post.author_sealed or b"", table="post", row_id=1) == alice
        store.dispose()
        assert b"5550001234" not in dump(store_url)
    finally:
        store.dispose()


def _settings(tmp_path: Path, url: str, **env: str) -> Settings:
    return load_settings(
        None,
        env={
            "CHANNELBRIDGE_GENERAL__DATA_DIR": str(tmp_path / "data"),
            "CHANNELBRIDGE_DATABASE__URL": url,
            **env,
        },
    )


async def _run_once(settings: Settings) -> App:
    app = App(settings, adapters=[FakeAdapter()])
    await app.start()
    await app.engine.handle(__import__("bridge.ports", fromlist=["Message"]).Message(person(1), "/channels"))
    await app.stop()
    return app


async def test_a_lost_or_changed_key_is_refused_with_the_fix(tmp_path: Path, store_url: str) -> None:
    settings = _settings(tmp_path, store_url)
    if store_url.startswith("postgresql"):
        migrate.upgrade(Store(store_url).engine)
    app = App(settings, adapters=[FakeAdapter()])
    await app.start()
    await app.engine.handle(__import__("bridge.ports", fromlist=["Message"]).Message(OPERATOR, "/start"))
    with app.store.session() as s:
        app.engine._follower(s, app.engine._actor(person(1)), create=True)
    await app.stop()
    key_file = tmp_path / "data" / "privacy.key"
    original = key_file.read_text()
    # the key file is lost: not regenerated, refused with the fix
    key_file.unlink()
    with pytest.raises(KeyMismatch, match=r"is missing.*Restore the key"):
        App(settings, adapters=[FakeAdapter()])
    assert not key_file.exists()
    # another key: refused at start with the key file named
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (generate_key() + "\n").encode())
    os.close(fd)
    app = App(settings, adapters=[FakeAdapter()])
    with pytest.raises(KeyMismatch, match=str(key_file)):
        await app.start()
    key_file.write_text(original)
    # a key file others can read: refused with the chmod
    key_file.chmod(0o644)
    with pytest.raises(KeyFileModeError, match=f"chmod 600 {key_file}"):
        App(settings, adapters=[FakeAdapter()])
    key_file.chmod(0o600)
    app = App(settings, adapters=[FakeAdapter()])
    await app.start()
    await app.stop()


async def test_data_dir_database_wal_and_shm_are_private(tmp_path: Path) -> None:
    settings = _settings(tmp_path, f"sqlite:///{tmp_path / 'data' / 'channelbridge.db'}")
    app = App(settings, adapters=[FakeAdapter()])
    await app.start()
    await app.engine.handle(
        __import__("bridge.ports", fromlist=["Message"]).Message(OPERATOR, "/newchannel news N")
    )
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = list(data.iterdir())
    assert {f.name for f in files} >= {
        "channelbridge.db",
        "channelbridge.db-wal",
        "channelbridge.db-shm",
        "privacy.key",
    }
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f.name
    await app.stop()


def test_database_password_never_shows_in_repr(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "postgresql+psycopg://bridge:s3cr3t-pw@db.example:5432/cb")
    assert "s3cr3t-pw" not in repr(settings) and "s3cr3t-pw" not in str(settings)
    assert "s3cr3t-pw" not in repr(settings.database)
    assert settings.database_url.endswith("s3cr3t-pw@db.example:5432/cb")  # still usable


def test_check_config_refuses_a_url_without_scheme_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[telegram]\nenabled = true\napi_base_url = "127.0.0.1:8081/bot"\n')
    code, lines = check_config(config, env={"CHANNELBRIDGE_TELEGRAM__TOKEN": "123456:" + "A" * 35})
    assert code == 1
    assert any("telegram.api_base_url" in line and "http" in line for line in lines), lines
    config.write_text('[matrix]\nhomeserver = "https://"\n')
    code, lines = check_config(config, env={})
    assert code == 1 and any("matrix.homeserver" in line for line in lines), lines


def test_a_readable_config_file_holding_a_token_is_warned_about(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[telegram]\ntoken = "123456:' + "A" * 35 + '"\n')
    config.chmod(0o644)
    (warning,) = config_file_warnings(config)
    assert "telegram.token" in warning and f"chmod 600 {config}" in warning
    config.chmod(0o600)
    assert config_file_warnings(config) == []


def test_pg_dump_is_on_path() -> None:
    assert shutil.which("pg_dump")
