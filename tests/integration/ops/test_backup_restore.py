"""`channelbridge backup` -> wipe -> `channelbridge restore` round-trips a 10,000-follower
database on SQLite and PostgreSQL, and a post is delivered to every follower after the
restore; a backup is refused by a process configured with another key."""

from __future__ import annotations

import tarfile
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bridge import migrate
from bridge.backup import read_meta
from bridge.cli import main
from bridge.ports import Message
from bridge.privacy import Sealer, decode_key
from bridge.store import Store
from tests.integration.ops.support import KEY, OTHER_KEY, fake, make_app
from tests.pg import fresh_database, pg_unavailable
from tests.support import OPERATOR, person

FOLLOWERS = 10_000


def _config(tmp_path: Path, url: str, key: str) -> Path:
    path = tmp_path / f"config-{key[:4]}.toml"
    path.write_text(
        f'[general]\ndata_dir = "{tmp_path / "data"}"\n[database]\nurl = "{url}"\n[privacy]\nkey = "{key}"\n'
    )
    return path


async def _populate(tmp_path: Path, url: str) -> None:
    """A channel with FOLLOWERS followers on the fake platform, through a real App start (which
    migrates SQLite and records the key)."""
    app = make_app(tmp_path / "data", url, metrics=False)
    await app.start()
    try:
        await app.engine.handle(Message(OPERATOR, "/newchannel news News"))
        with app.store.unit_of_work() as s:
            channel = app.store.channels.by_handle(s, "news")
        assert channel is not None and channel.id is not None
        app.store.import_followers(channel.id, (person(i) for i in range(FOLLOWERS)), app.sealer, time.time())
    finally:
        await app.stop()


def _wipe(url: str) -> None:
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            file.unlink(missing_ok=True)
        return
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def _follower_count(url: str) -> int:
    store = Store(url)
    try:
        with store.connection() as conn:
            return int(conn.execute(text("SELECT count(*) FROM follower")).scalar() or 0)
    finally:
        store.dispose()


async def test_backup_wipe_restore_round_trips_and_delivers(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = store_url
    if url.startswith("postgresql"):
        migrate.upgrade(Store(url).engine, sealer=Sealer(decode_key(KEY)))
    await _populate(tmp_path, url)
    config = _config(tmp_path, url, KEY)
    backup_file = tmp_path / "backups" / "cb.tar.gz"

    assert main(["backup", str(backup_file), "--config", str(config)]) == 0
    assert backup_file.stat().st_mode & 0o077 == 0
    meta = read_meta(backup_file)
    assert meta.fingerprint == Sealer(decode_key(KEY)).fingerprint
    with tarfile.open(backup_file) as archive:
        for member in archive.getmembers():  # the key is in no member, in no form
            handle = archive.extractfile(member)
            assert handle is not None
            content = handle.read()
            assert KEY.encode() not in content and decode_key(KEY) not in content, member.name

    _wipe(url)
    assert main(["restore", str(backup_file), "--config", str(_config(tmp_path, url, OTHER_KEY))]) == 1
    assert "another privacy key" in capsys.readouterr().err
    assert main(["restore", str(backup_file), "--config", str(config)]) == 0
    assert _follower_count(url) == FOLLOWERS
    # a second restore over the data is refused without --force
    assert main(["restore", str(backup_file), "--config", str(config)]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["restore", str(backup_file), "--config", str(config), "--force"]) == 0
    assert _follower_count(url) == FOLLOWERS

    app = make_app(tmp_path / "data", url, metrics=False)
    await app.start()
    try:
        replies = await app.engine.handle(Message(OPERATOR, "/post news After the restore"))
        assert replies
        await app.sync(timeout=240)
        sends = fake(app).of("send")
        assert len(sends) == FOLLOWERS
        assert len({c.target for c in sends}) == FOLLOWERS
    finally:
        await app.stop()


def test_backup_refuses_a_key_that_does_not_open_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'channelbridge.db'}"
    import asyncio

    asyncio.run(_small(tmp_path, url))
    assert (
        main(["backup", str(tmp_path / "x.tar.gz"), "--config", str(_config(tmp_path, url, OTHER_KEY))]) == 1
    )
    assert "not the key this database was sealed with" in capsys.readouterr().err
    assert not (tmp_path / "x.tar.gz").exists()


def test_restore_refuses_a_file_that_is_not_a_backup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    url = f"sqlite:///{tmp_path / 'data' / 'channelbridge.db'}"
    assert main(["restore", str(junk), "--config", str(_config(tmp_path, url, KEY))]) == 1
    assert "not a channelbridge backup" in capsys.readouterr().err


async def _small(tmp_path: Path, url: str) -> None:
    app = make_app(tmp_path / "data", url, metrics=False)
    await app.start()
    await app.stop()


@pytest.mark.postgres
def test_a_postgresql_backup_without_pg_dump_is_refused_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = pg_unavailable()
    if reason:
        pytest.skip(reason)
    with fresh_database() as url:
        migrate.upgrade(Store(url).engine, sealer=Sealer(decode_key(KEY)))
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        assert (
            main(["backup", str(tmp_path / "pg.tar.gz"), "--config", str(_config(tmp_path, url, KEY))]) == 1
        )
    err = capsys.readouterr().err
    assert "pg_dump is not on PATH" in err and "postgresql-client" in err
    assert not (tmp_path / "pg.tar.gz").exists()


def test_backup_of_a_missing_sqlite_database_is_refused_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "data" / "channelbridge.db"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "privacy.key").write_text(KEY + "\n")
    (tmp_path / "data" / "privacy.key").chmod(0o600)
    url = f"sqlite:///{db}"
    config = tmp_path / "c.toml"
    config.write_text(f'[general]\ndata_dir = "{tmp_path / "data"}"\n[database]\nurl = "{url}"\n')
    db.unlink(missing_ok=True)
    code = main(["backup", str(tmp_path / "b.tar.gz"), "--config", str(config)])
    assert code == 1 and not (tmp_path / "b.tar.gz").exists()
    assert "backup refused" in capsys.readouterr().err
