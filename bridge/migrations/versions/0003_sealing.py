"""seal delivery references; bind every sealed blob to its row

Delivery rows kept the platform reference of each copy in clear (`ref_key`, `ref_alt`: a
Telegram chat id, a Matrix room and event). They become a sealed blob (`ref_sealed`) plus two
keyed blind indexes for lookups (`ref_index`, `ref_alt_index`). Every sealed address
(follower, channel admin, post and recurring-post authors) is re-sealed in the v2 format, which
binds it to its table, row id and platform.

Re-sealing needs the privacy key: `bridge.migrate.upgrade(..., sealer=...)` hands it over
(`channelbridge run` on SQLite and `channelbridge db upgrade` both do). A database with nothing
sealed (a new one) needs no key. Rows are converted in batches inside the migration's single
transaction (on PostgreSQL the DDL too, so a crash leaves the database as it was; pysqlite runs
DDL outside it, so a pre-flight check opens the first sealed row of each table before any DDL).

Revision ID: 0003_sealing
Revises: 0002_count_index
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlmodel.sql.sqltypes import AutoString

revision: str = "0003_sealing"
down_revision: str | None = "0002_count_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000
#: (table, sealed column, platform column) of every sealed address
_ADDRESS_COLUMNS = (
    ("follower", "sealed", "platform"),
    ("channeladmin", "sealed", "platform"),
    ("post", "author_sealed", "author_platform"),
    ("recurringpost", "author_sealed", "author_platform"),
)


class KeyNeeded(RuntimeError):
    """This migration re-seals rows with the privacy key: run it with `channelbridge db
    upgrade --config <file>` (or `channelbridge run` on SQLite), with the key the data was
    sealed with."""


def _sealer() -> Any:
    sealer = context.config.attributes.get("sealer")
    if sealer is None:
        raise KeyNeeded(
            "this migration re-seals rows with the privacy key: run it with `channelbridge db upgrade "
            "--config <file>` (or `channelbridge run` on SQLite), with the key the data was sealed with"
        )
    return sealer


def _open_legacy(sealer: Any, platform: str, blob: bytes, where: str) -> Any:
    from cryptography.exceptions import InvalidTag

    try:
        return sealer.unseal_legacy(platform, blob)
    except (InvalidTag, ValueError) as exc:
        raise KeyNeeded(
            f"{where} does not open with the configured privacy key: this database was sealed with "
            "another key. Restore the original key file (privacy.key in data_dir, mode 600) or set "
            "[privacy] key to it, then upgrade again."
        ) from exc


def _reseal_addresses(conn: sa.Connection) -> None:
    for table, column, platform_column in _ADDRESS_COLUMNS:
        after = 0
        while True:
            rows = conn.execute(
                sa.text(
                    f"SELECT id, {platform_column} AS platform, {column} AS blob FROM {table}"
                    f" WHERE id > :after AND {column} IS NOT NULL ORDER BY id LIMIT :n"
                ),
                {"after": after, "n": _BATCH},
            ).all()
            if not rows:
                break
            sealer = _sealer()
            updates = []
            for row in rows:
                address = _open_legacy(sealer, row.platform, bytes(row.blob), f"{table} #{row.id}")
                updates.append({"id": row.id, "b": sealer.seal(address, table=table, row_id=row.id)})
            conn.execute(sa.text(f"UPDATE {table} SET {column} = :b WHERE id = :id"), updates)
            after = rows[-1].id


def _seal_refs(conn: sa.Connection) -> None:
    after = 0
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT id, platform, ref_key, ref_alt FROM delivery WHERE id > :after"
                " AND (ref_key IS NOT NULL OR ref_alt IS NOT NULL) ORDER BY id LIMIT :n"
            ),
            {"after": after, "n": _BATCH},
        ).all()
        if not rows:
            break
        sealer = _sealer()
        conn.execute(
            sa.text(
                "UPDATE delivery SET ref_sealed = :s, ref_index = :i, ref_alt_index = :a,"
                " ref_key = NULL, ref_alt = NULL WHERE id = :id"
            ),
            [
                {
                    "id": row.id,
                    "s": sealer.seal_ref(
                        row.ref_key or "", row.ref_alt, row_id=row.id, platform=row.platform
                    ),
                    "i": sealer.ref_index(row.platform, row.ref_key) if row.ref_key else None,
                    "a": sealer.ref_index(row.platform, row.ref_alt) if row.ref_alt else None,
                }
                for row in rows
            ],
        )
        after = rows[-1].id


def _preflight(conn: sa.Connection) -> None:
    """Before any DDL (pysqlite runs DDL outside the transaction): with sealed data present, the
    key must be given and must open it."""
    for table, column, platform_column in _ADDRESS_COLUMNS:
        row = conn.execute(
            sa.text(
                f"SELECT id, {platform_column} AS platform, {column} AS blob FROM {table}"
                f" WHERE {column} IS NOT NULL ORDER BY id LIMIT 1"
            )
        ).first()
        if row is not None:
            _open_legacy(_sealer(), row.platform, bytes(row.blob), f"{table} #{row.id}")
    has_refs = conn.execute(
        sa.text("SELECT 1 FROM delivery WHERE ref_key IS NOT NULL OR ref_alt IS NOT NULL LIMIT 1")
    ).first()
    if has_refs is not None:
        _sealer()


def upgrade() -> None:
    """Apply this revision."""
    _preflight(op.get_bind())
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ref_sealed", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("ref_index", AutoString(), nullable=True))
        batch_op.add_column(sa.Column("ref_alt_index", AutoString(), nullable=True))
    conn = op.get_bind()
    _reseal_addresses(conn)
    _seal_refs(conn)
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_ref")
        batch_op.drop_index("ix_delivery_alt")
        batch_op.drop_column("ref_key")
        batch_op.drop_column("ref_alt")
        batch_op.create_index("ix_delivery_ref_index", ["platform", "ref_index"], unique=False)
        batch_op.create_index("ix_delivery_ref_alt_index", ["platform", "ref_alt_index"], unique=False)


def downgrade() -> None:
    """Revert the schema. Sealed data cannot go back to the old format: downgrading a database
    that holds any is refused (restore the backup taken before the upgrade instead)."""
    conn = op.get_bind()
    for table in ("follower", "channeladmin", "delivery"):
        if conn.execute(sa.text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None:
            raise RuntimeError(
                "0003_sealing cannot be undone on a database with data: "
                "restore the backup taken before upgrading"
            )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_ref_alt_index")
        batch_op.drop_index("ix_delivery_ref_index")
        batch_op.add_column(sa.Column("ref_alt", AutoString(), nullable=True))
        batch_op.add_column(sa.Column("ref_key", AutoString(), nullable=True))
        batch_op.drop_column("ref_alt_index")
        batch_op.drop_column("ref_index")
        batch_op.drop_column("ref_sealed")
        batch_op.create_index("ix_delivery_alt", ["platform", "ref_alt"], unique=False)
        batch_op.create_index("ix_delivery_ref", ["platform", "ref_key"], unique=False)
