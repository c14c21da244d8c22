"""matrix-nio's encryption store kept in memory, persisted as one file sealed with the privacy key.

nio's olm/megolm store (peewee on SQLite) necessarily holds the user ids, device ids and
identity keys of everyone the bot shares keys with, and the ids of their rooms. On disk in clear
that names every Matrix follower. Here the store is an in-memory SQLite database that starts from
an image (`sqlite3.Connection.deserialize`) and is written back (`serialize`) sealed — AES-GCM
under the operator's privacy key, see `bridge.privacy.write_sealed_file` — whenever it changed.
A plain store left by an earlier version (`<user>_<device>.db` and nio's trust files) is read
once, then removed after its sealed copy is written.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from nio.store import SqliteStore
from peewee import SqliteDatabase

from bridge.privacy import Sealer, read_sealed_file, write_sealed_file

STORE_FILE = "olm-store.sealed"
_PLAIN_SUFFIXES = (".db", ".db-journal", ".db-wal", ".db-shm", ".trusted_devices",
                   ".blacklisted_devices", ".ignored_devices")  # fmt: skip


class _ImageDatabase(SqliteDatabase):
    """An in-memory SQLite database whose connection starts from a serialized image."""

    def __init__(self, image: bytes | None) -> None:
        super().__init__(":memory:", pragmas={"foreign_keys": 1, "secure_delete": 1})
        self._image = image

    def _add_conn_hooks(self, conn: sqlite3.Connection) -> None:
        if self._image:
            conn.deserialize(self._image)
        super()._add_conn_hooks(conn)


class SealedStore:
    """The sealed file of one bot's nio store, and the nio store class that reads from it."""

    def __init__(self, sealer: Sealer, store_dir: Path) -> None:
        self._sealer = sealer
        self._dir = store_dir
        self._path = store_dir / STORE_FILE
        self._written_changes = -1
        self._legacy: list[Path] = []

    def store_class(self) -> type[SqliteStore]:
        """The store class for `AsyncClientConfig(store=...)`: in memory, from the sealed image
        (or, the first time, from a plain store an earlier version left in `store_dir`).
        Raises `bridge.privacy.UnsealError` when the sealed file does not open with the key."""
        image = read_sealed_file(self._sealer, self._path)
        owner = self

        class _InMemory(SqliteStore):
            def _create_database(self) -> SqliteDatabase:
                return _ImageDatabase(image if image is not None else owner._plain_image(self))

        return _InMemory

    def _plain_image(self, store: Any) -> bytes | None:
        """The image of the plain store file nio would have used, if there is one."""
        plain = Path(store.database_path)
        if not plain.exists():
            return None
        stem = plain.name[: -len(".db")]
        self._legacy = [self._dir / f"{stem}{suffix}" for suffix in _PLAIN_SUFFIXES]
        source = sqlite3.connect(plain)
        try:
            return source.serialize()
        finally:
            source.close()

    def save(self, store: Any) -> bool:
        """Write the store's image sealed if it changed since the last write; True if written.
        Plain files of an earlier version go once their sealed copy exists."""
        if store is None:
            return False
        conn = store.database.connection()
        if conn.total_changes == self._written_changes and self._path.exists():
            return False
        write_sealed_file(self._sealer, self._path, conn.serialize())
        self._written_changes = conn.total_changes
        for path in self._legacy:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._legacy = []
        return True
