"""`channelbridge rotate-key` (issue 11, finding 3): a 10,000-follower database re-sealed and
re-indexed with a new key, killed with SIGKILL half-way, resumed, and complete afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from bridge import migrate
from bridge.engine import ChannelEngine
from bridge.keys import KeyMismatch, verify_key
from bridge.models import Vote
from bridge.ports import Address, Message
from bridge.privacy import Sealer, generate_key, read_key_file, write_key_file
from bridge.store import Store
from tests.support import OPERATOR

FOLLOWERS = 10_000
ROOT = Path(__file__).resolve().parents[2]


def _rotate(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-u", "-m", "bridge.cli", "rotate-key", "--batch-size", "100"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _kids(store: Store) -> dict[int, int]:
    with store.connection() as conn:
        rows = conn.execute(text("SELECT sealed FROM follower")).all()
    counts: dict[int, int] = {}
    for (blob,) in rows:
        counts[bytes(blob)[1]] = counts.get(bytes(blob)[1], 0) + 1
    return counts


async def test_rotate_key_survives_sigkill_and_finishes(tmp_path: Path, store_url: str) -> None:
    data_dir = tmp_path / "data"
    write_key_file(data_dir / "privacy.key", generate_key())
    old = Sealer(read_key_file(data_dir / "privacy.key"))
    store = Store(store_url)
    migrate.upgrade(store.engine, sealer=old)
    verify_key(store, old, "test")
    engine = ChannelEngine(store, old, operators=[OPERATOR])
    await engine.handle(Message(OPERATOR, "/newchannel news Daily News"))
    await engine.handle(Message(OPERATOR, '/poll news "Q" "a" "b"'))
    await engine.drain_planning()
    people = [Address("telegram", str(5_000_000_000 + n)) for n in range(FOLLOWERS)]
    store.import_followers(1, people, old, time.time())
    voters = people[:: FOLLOWERS // 20]
    with store.session() as s:
        for p in voters:
            s.add(Vote(post_id=1, voter_index=old.address_index(p), position=0))
    store.dispose()

    env = {
        **os.environ,
        "CHANNELBRIDGE_GENERAL__DATA_DIR": str(data_dir),
        "CHANNELBRIDGE_DATABASE__URL": store_url,
    }
    env.pop("CHANNELBRIDGE_CONFIG", None)
    first = _rotate(env)
    assert first.stdout is not None
    for line in first.stdout:
        if line.startswith("follower:") and int(line.split()[1]) >= 1000:
            first.send_signal(signal.SIGKILL)
            break
    first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL
    new_key = read_key_file(data_dir / "privacy.key.new")
    new = Sealer(new_key)
    kids = _kids(store)
    assert kids.get(new.key_id, 0) >= 1000 and kids.get(old.key_id, 0) > 0, kids  # truly half-way
    with pytest.raises(KeyMismatch, match="rotation is in progress"):
        verify_key(store, old, "test")

    second = _rotate(env)
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out
    assert "re-sealed" in out
    assert read_key_file(data_dir / "privacy.key") == new_key
    assert read_key_file(data_dir / "privacy.key.old") == old_key_bytes(old, data_dir)
    assert _kids(store) == {new.key_id: FOLLOWERS}
    verify_key(store, new, "test")
    with pytest.raises(KeyMismatch):
        verify_key(store, old, "test")
    with store.session() as s:
        for p in people[:: FOLLOWERS // 50] + voters:
            follower = store.follower_by_index(s, new.address_index(p))
            assert follower is not None
            assert new.unseal("telegram", follower.sealed, table="follower", row_id=follower.id or 0) == p
            assert store.follower_by_index(s, old.address_index(p)) is None
        for p in voters:
            moved = s.connection().execute(
                text("SELECT count(*) FROM vote WHERE voter_index = :i"), {"i": new.address_index(p)}
            )
            assert moved.scalar() == 1
        admins = store.admins(s, 1)
        owner = admins[0]
        opened = new.unseal(owner.platform, owner.sealed, table="channeladmin", row_id=owner.id or 0)
        assert opened == OPERATOR
        assert admins[0].account_index == new.address_index(OPERATOR)
    # a third run has nothing left to do
    third = _rotate(env)
    out, _ = third.communicate(timeout=300)
    assert third.returncode == 0, out
    store.dispose()


def old_key_bytes(old: Sealer, data_dir: Path) -> bytes:
    key = read_key_file(data_dir / "privacy.key.old")
    assert Sealer(key).fingerprint == old.fingerprint
    return key
