"""`channelbridge backup` and `restore`: a consistent online snapshot of the database in one
file, with the fingerprint of the privacy key that sealed it (never the key).

The file is a gzipped tar with two members: `channelbridge-backup.json` (format, store kind,
schema revision, key fingerprint, time) and the database itself: `database.sqlite`, made with
SQLite's online backup API (consistent while the bridge runs), or `database.pgdump`, made
with `pg_dump --format=custom` when `pg_dump` is on PATH (otherwise the backup is refused
with what to install). The privacy key is not in the file: keep it apart (see the README).

`restore` refuses a backup whose key fingerprint is not the configured key's (the data would
not open), a backup of the other store kind, and a database that already holds data unless
`force` is given. PostgreSQL restores need `pg_restore`. Stop every process before restoring.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import inspect, make_url

from bridge import migrate
from bridge.store import Store, private_sqlite_file

#: the backup format this code writes and reads
FORMAT = 1
META_NAME = "channelbridge-backup.json"
SQLITE_NAME = "database.sqlite"
PGDUMP_NAME = "database.pgdump"


class BackupRefused(RuntimeError):
    """A backup or restore that cannot be done safely; the message says why and what to do."""


@dataclass(frozen=True)
class BackupMeta:
    """What a backup file says about itself (no secret, no identity)."""

    format: int
    store: str  #: "sqlite" or "postgresql"
    revision: str | None  #: the schema revision of the copy
    fingerprint: str  #: the privacy key's fingerprint (`bridge.privacy.key_fingerprint`)
    created_at: float

    def to_json(self) -> str:
        """The member's text."""
        return json.dumps(asdict(self), sort_keys=True, indent=2)

    @classmethod
    def from_json(cls, text: str) -> BackupMeta:
        """Read the member; raises BackupRefused when it is not a backup this code reads."""
        try:
            data = json.loads(text)
            meta = cls(
                int(data["format"]),
                str(data["store"]),
                data.get("revision"),
                str(data["fingerprint"]),
                float(data["created_at"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupRefused(
                "this file is not a channelbridge backup (its description is unreadable)"
            ) from exc
        if meta.format != FORMAT:
            raise BackupRefused(f"backup format {meta.format} is not one this version reads ({FORMAT})")
        return meta


def _kind(store: Store) -> str:
    return "sqlite" if store.is_sqlite else "postgresql"


def _sqlite_path(store: Store) -> Path:
    path = store.url.removeprefix("sqlite:///")
    if not path or path == ":memory:":
        raise BackupRefused("an in-memory database cannot be backed up")
    return Path(path)


def libpq_env(url: str) -> dict[str, str]:
    """The libpq environment (`PGHOST`, `PGPASSWORD`, ...) for a SQLAlchemy PostgreSQL URL, so
    no password appears on a command line (`ps` shows those to every user)."""
    parsed = make_url(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    pairs = {
        "PGHOST": parsed.host,
        "PGPORT": str(parsed.port) if parsed.port else None,
        "PGUSER": parsed.username,
        "PGPASSWORD": parsed.password if isinstance(parsed.password, str) else None,
        "PGDATABASE": parsed.database,
        "PGSSLMODE": parsed.query.get("sslmode") if isinstance(parsed.query.get("sslmode"), str) else None,
    }
    env.update({k: str(v) for k, v in pairs.items() if v})
    return env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupRefused(
            f"{name} is not on PATH: install the PostgreSQL client tools of the server's major version "
            "(e.g. `apt install postgresql-client-15`), or back up with your own PostgreSQL tooling and keep "
            "the privacy key apart"
        )
    return found


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:300]
        raise BackupRefused(f"{what} failed (exit {done.returncode}): {last}")


def backup(store: Store, fingerprint: str, dest: Path, *, clock: float | None = None) -> BackupMeta:
    """Write a backup of `store` to `dest` (replaced atomically), recording `fingerprint`."""
    meta = BackupMeta(
        FORMAT, _kind(store), migrate.current_revision(store.engine), fingerprint, clock or time.time()
    )
    dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".cb-backup-") as work:
        workdir = Path(work)
        if store.is_sqlite:
            copy = workdir / SQLITE_NAME
            path = _sqlite_path(store)
            if not path.is_file():
                raise BackupRefused(f"there is no database at {path}: check data_dir and [database] url")
            source = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=30)
            target = sqlite3.connect(copy)
            try:
                source.backup(target)  # the online backup API: a consistent copy while others write
            finally:
                target.close()
                source.close()
            member = copy
        else:
            member = workdir / PGDUMP_NAME
            _run(
                [_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "--file", str(member)],
                libpq_env(store.url),
                "pg_dump",
            )
        described = workdir / META_NAME
        described.write_text(meta.to_json())
        partial = workdir / "backup.tar.gz"
        with tarfile.open(partial, "w:gz") as archive:
            archive.add(described, arcname=META_NAME)
            archive.add(member, arcname=member.name)
        os.chmod(partial, 0o600)
        os.replace(partial, dest)
    return meta


def read_meta(src: Path) -> BackupMeta:
    """The description inside a backup file."""
    try:
        with tarfile.open(src, "r:gz") as archive:
            handle = archive.extractfile(META_NAME)
            if handle is None:
                raise KeyError(META_NAME)
            return BackupMeta.from_json(handle.read().decode())
    except (tarfile.TarError, KeyError, OSError) as exc:
        raise BackupRefused(f"this file is not a channelbridge backup ({type(exc).__name__})") from exc


def _holds_data(store: Store) -> bool:
    """Whether the database has any table of ours (a restore would replace it)."""
    try:
        names = set(inspect(store.engine).get_table_names())
    except Exception:  # a file that is not a database: let the restore replace it
        return False
    return bool(names & {"alembic_version", "keyvalue", "channel", "follower"})


def restore(store: Store, fingerprint: str, src: Path, *, force: bool = False) -> BackupMeta:
    """Replace the database of `store` with the backup `src`, after checking that it was sealed
    with the key whose fingerprint is `fingerprint` and is of the same store kind."""
    meta = read_meta(src)
    if meta.fingerprint != fingerprint:
        raise BackupRefused(
            f"this backup was sealed with another privacy key (backup key {meta.fingerprint[:8]}…,"
            f" configured key {fingerprint[:8]}…): configure the key that was in use when it was made"
            " (from its separate backup), then restore again; nothing was changed"
        )
    if meta.store != _kind(store):
        raise BackupRefused(
            f"this is a {meta.store} backup and the configured database is {_kind(store)}: point "
            "[database] url at a database of the same kind; nothing was changed"
        )
    if not force and _holds_data(store):
        raise BackupRefused(
            "the configured database already holds data: stop every process and pass --force to replace it, "
            "or restore into an empty database; nothing was changed"
        )
    with tempfile.TemporaryDirectory(prefix=".cb-restore-") as work:
        workdir = Path(work)
        name = SQLITE_NAME if store.is_sqlite else PGDUMP_NAME
        with tarfile.open(src, "r:gz") as archive:
            member = archive.getmember(name)
            if not member.isfile():
                raise BackupRefused("the backup's database member is not a file")
            handle = archive.extractfile(member)
            assert handle is not None
            copy = workdir / name
            with open(copy, "wb") as out:
                shutil.copyfileobj(handle, out)
        store.dispose()
        if store.is_sqlite:
            path = _sqlite_path(store)
            private_sqlite_file(path)
            source = sqlite3.connect(copy)
            target = sqlite3.connect(path, timeout=30)
            try:
                source.backup(target)  # page by page into the live file: WAL and locks stay right
            finally:
                target.close()
                source.close()
        else:
            _run(
                [
                    _tool("pg_restore"),
                    "--clean",
                    "--if-exists",
                    "--no-owner",
                    "--no-privileges",
                    "--single-transaction",
                    "--dbname",
                    make_url(store.url).database or "",
                    str(copy),
                ],
                libpq_env(store.url),
                "pg_restore",
            )
    return meta


__all__ = ["FORMAT", "BackupMeta", "BackupRefused", "backup", "libpq_env", "read_meta", "restore"]
