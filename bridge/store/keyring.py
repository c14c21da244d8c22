"""The privacy key's record, process state values, and re-sealing rows under a new key."""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import text
from sqlmodel import Session

from bridge.models import KeyValue
from bridge.privacy import KEY_RECORD
from bridge.store.rows import KeyRecord, SealedRow

#: the tables whose rows hold sealed values (a lost key must not be replaced silently then)
_SEALED_TABLES = ("follower", "channeladmin", "post", "personlanguage")


class Keyring:
    """Named queries on the key record, state values and sealed columns (the caller's session).
    Table and column names passed in come from `bridge.keys`' fixed specs, never from input."""

    def record(self, s: Session) -> KeyRecord | None:
        """The recorded privacy-key state, or None (a new database). Raises the driver's
        error when there is no schema yet: run it in a unit of work of its own."""
        value = (
            s.connection()
            .execute(text("SELECT value FROM keyvalue WHERE key = :k"), {"k": KEY_RECORD})
            .scalar()
        )
        return KeyRecord.from_json(value) if value else None

    def record_if_absent(self, s: Session, fingerprint: str) -> None:
        """Record the first key's fingerprint (a race between processes: the first wins)."""
        s.connection().execute(
            text(
                "INSERT INTO keyvalue (key, value, updated_at) VALUES (:k, :v, :now)"
                " ON CONFLICT (key) DO NOTHING"
            ),
            {"k": KEY_RECORD, "v": KeyRecord(fingerprint).to_json(), "now": time.time()},
        )

    def set_record(self, s: Session, record: KeyRecord) -> None:
        """Replace the privacy-key state (rotation steps)."""
        self.set_value(s, KEY_RECORD, record.to_json())

    def has_sealed_data(self, s: Session) -> bool:
        """Whether anything sealed is stored (raises when there is no schema yet, see `record`)."""
        conn = s.connection()
        return any(
            conn.execute(text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None
            for table in _SEALED_TABLES
        )

    def sealed_after(
        self,
        s: Session,
        table: str,
        column: str,
        platform_column: str,
        after: int,
        limit: int,
        *,
        with_index: bool = False,
    ) -> list[SealedRow]:
        """The next rows holding a sealed value, by id."""
        index = ", account_index" if with_index else ""
        rows = (
            s.connection()
            .execute(
                text(
                    f"SELECT id, {platform_column} AS platform, {column} AS blob{index} FROM {table}"
                    f" WHERE id > :after AND {column} IS NOT NULL ORDER BY id LIMIT :n"
                ),
                {"after": after, "n": limit},
            )
            .all()
        )
        return [
            SealedRow(r.id, r.platform, bytes(r.blob), r.account_index if with_index else None) for r in rows
        ]

    def reseal(self, s: Session, table: str, column: str, updates: Sequence[tuple[int, bytes]]) -> None:
        """Store re-sealed values (row id, blob)."""
        if updates:
            s.connection().execute(
                text(f"UPDATE {table} SET {column} = :b WHERE id = :id"),
                [{"id": row_id, "b": blob} for row_id, blob in updates],
            )

    def reindex_accounts(
        self, s: Session, table: str, updates: Sequence[tuple[int, bytes, str, str]]
    ) -> None:
        """Re-sealed accounts (row id, blob, old index, new index): the row, and the votes, quiz
        answers and reactions that carry the old blind index, move to the new one."""
        if not updates:
            return
        conn = s.connection()
        conn.execute(
            text(f"UPDATE {table} SET sealed = :b, account_index = :new WHERE id = :id"),
            [{"id": i, "b": b, "new": new} for i, b, _, new in updates],
        )
        moves = [{"old": old, "new": new} for _, _, old, new in updates if old != new]
        if moves:
            conn.execute(text("UPDATE vote SET voter_index = :new WHERE voter_index = :old"), moves)
            conn.execute(text("UPDATE quizanswer SET voter_index = :new WHERE voter_index = :old"), moves)
            conn.execute(
                text("UPDATE postreaction SET reactor_index = :new WHERE reactor_index = :old"), moves
            )

    def reseal_payers(self, s: Session, updates: Sequence[tuple[int, bytes, str]]) -> None:
        """Re-sealed ledger payers (row id, blob, blind index under the new key)."""
        if updates:
            s.connection().execute(
                text("UPDATE ledger SET follower_sealed = :b, follower_index = :i WHERE id = :id"),
                [{"id": row_id, "b": blob, "i": index} for row_id, blob, index in updates],
            )

    def reseal_refs(self, s: Session, updates: Sequence[tuple[int, bytes, str | None, str | None]]) -> None:
        """Re-sealed delivery references (row id, blob, key index, alt index)."""
        if updates:
            s.connection().execute(
                text(
                    "UPDATE delivery SET ref_sealed = :b, ref_index = :i, ref_alt_index = :a WHERE id = :id"
                ),
                [{"id": d, "b": b, "i": i, "a": a} for d, b, i, a in updates],
            )

    def void_unused_invites(self, s: Session) -> int:
        """Delete admin invites not yet accepted (their codes' digests depend on the key)."""
        return s.connection().execute(text("DELETE FROM admininvite WHERE used_at IS NULL")).rowcount or 0

    # ---- process state values ------------------------------------------------------------

    def get_value(self, s: Session, key: str) -> str | None:
        """A stored piece of process state."""
        row = s.get(KeyValue, key)
        return row.value if row else None

    def set_value(self, s: Session, key: str, value: str) -> None:
        """Store a piece of process state."""
        row = s.get(KeyValue, key)
        if row is None:
            s.add(KeyValue(key=key, value=value, updated_at=time.time()))
        else:
            row.value = value
            row.updated_at = time.time()
            s.add(row)


__all__ = ["Keyring"]
