"""The privacy key's life: checked against the database at start-up, and rotated.

The database records a fingerprint of the key that sealed it (`privacy.key_fingerprint`, never
the key). A process whose key does not match refuses to start with the fix, rather than
regenerate a key and quietly lose every follower.

`channelbridge rotate-key` re-seals every sealed value and re-computes every blind index with a
new key, table by table in batches of one transaction each. Each sealed blob names the key that
sealed it (its key id), so a rotation killed half-way resumes where it stopped: rows already
under the new key are passed over. The processes must be stopped while it runs.

Steps (each durable before the next): the new key is written to `privacy.key.new`; the
database records `rotating_to` (processes now refuse to start); rows are re-sealed; the record
names the new key (sealed files — `*.sealed`, e.g. the Matrix adapter's store — are re-sealed
before that); the key files are swapped (`privacy.key` -> `privacy.key.old`,
`privacy.key.new` -> `privacy.key`). Re-running after a crash at any step finishes the job.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import OperationalError, ProgrammingError

from bridge.notices import NoticeQueue
from bridge.privacy import (
    KEY_FILE_NAME,
    NEW_KEY_FILE_NAME,
    OLD_KEY_FILE_NAME,
    SEALED_FILE_SUFFIX,
    Sealer,
    UnsealError,
    decode_key,
    generate_key,
    key_fingerprint,
    load_or_create_key,
    read_key_file,
    reseal_file,
    write_key_file,
)
from bridge.store import KeyRecord, Store


class KeyMismatch(RuntimeError):
    """The privacy key does not match the key this database was sealed with."""


def key_location(configured: bool, data_dir: Path) -> str:
    """Where the key comes from, in words an operator can act on."""
    if configured:
        return "[privacy] key (or CHANNELBRIDGE_PRIVACY__KEY)"
    return f"the key file {data_dir / KEY_FILE_NAME}"


def _key_record(store: Store) -> KeyRecord | None:
    """The recorded key state; None for a new database or one without a schema yet."""
    try:
        return store.atomically(store.keyring.record)
    except (OperationalError, ProgrammingError):  # no schema yet
        return None


def _has_sealed_data(store: Store) -> bool:
    try:
        return store.atomically(store.keyring.has_sealed_data)
    except (OperationalError, ProgrammingError):  # no schema yet
        return False


def load_key_for(store: Store, configured: str | None, data_dir: Path) -> bytes:
    """The operator's key; a new one is generated only for a database that holds nothing
    sealed yet. A missing key for a database with data is an error naming the fix."""
    recorded = _key_record(store)
    create = recorded is None and not _has_sealed_data(store)
    try:
        return load_or_create_key(configured, data_dir, create=create)
    except FileNotFoundError:
        raise
    except ValueError as exc:
        path = data_dir / KEY_FILE_NAME
        if not configured and not path.exists():
            raise KeyMismatch(
                f"the privacy key file {path} is missing, but the database holds data sealed with a key "
                f"(fingerprint {recorded.fingerprint[:8] if recorded else '?'}…). Restore the key from your "
                f"backup into {path} (chmod 600), or set [privacy] key; a new key cannot open the data"
            ) from exc
        raise


def verify_key(store: Store, sealer: Sealer, where: str) -> None:
    """Record the key's fingerprint in a new database; refuse a different key, or a database
    in the middle of a key rotation, with the fix."""
    store.atomically(store.keyring.record_if_absent, sealer.fingerprint)
    record = _key_record(store)
    assert record is not None
    if record.rotating_to:
        raise KeyMismatch(
            "a privacy key rotation is in progress on this database: run `channelbridge rotate-key "
            "--config <file>` again to finish it, then start"
        )
    if record.fingerprint != sealer.fingerprint:
        raise KeyMismatch(
            f"the privacy key from {where} is not the key this database was sealed with "
            f"(database key {record.fingerprint[:8]}…, this key {sealer.fingerprint[:8]}…). "
            "Restore the original key from your backup (mode 600). To change keys, use "
            "`channelbridge rotate-key`; never replace the key file by hand"
        )


@dataclass
class RotationReport:
    """What a rotation did, per table (counts only)."""

    resealed: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)
    invites_voided: int = 0
    key_file: Path | None = None

    def add(self, table: str, done: int, bad: int) -> None:
        self.resealed[table] = self.resealed.get(table, 0) + done
        self.unreadable[table] = self.unreadable.get(table, 0) + bad


#: (table, sealed column, platform column, kind): every sealed value in the database
SEALED_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("follower", "sealed", "platform", "account"),
    ("channeladmin", "sealed", "platform", "account"),
    ("personlanguage", "sealed", "platform", "account"),  # the language chosen with /lang
    ("post", "author_sealed", "author_platform", "address"),
    ("recurringpost", "author_sealed", "author_platform", "address"),
    ("delivery", "ref_sealed", "platform", "ref"),
    ("ledger", "follower_sealed", "platform", "payer"),  # its blind index is recomputed with it
)


def _rotate_table(
    store: Store,
    old: Sealer,
    new: Sealer,
    spec: tuple[str, str, str, str],
    batch: int,
    report: RotationReport,
    progress: Callable[[str], None],
) -> None:
    table, column, platform_column, kind = spec
    after = 0
    while True:
        with store.unit_of_work() as s:
            rows = store.keyring.sealed_after(
                s, table, column, platform_column, after, batch, with_index=kind == "account"
            )
            if not rows:
                return
            done = bad = 0
            accounts: list[tuple[int, bytes, str, str]] = []
            addresses: list[tuple[int, bytes]] = []
            refs: list[tuple[int, bytes, str | None, str | None]] = []
            payers: list[tuple[int, bytes, str]] = []
            for row in rows:
                blob = bytes(row.blob)
                if new.is_current(blob):
                    continue  # re-sealed before a crash
                try:
                    if kind == "ref":
                        key, alt = old.unseal_ref(blob, row_id=row.id, platform=row.platform)
                        refs.append(
                            (
                                row.id,
                                new.seal_ref(key, alt, row_id=row.id, platform=row.platform),
                                new.ref_index(row.platform, key) if key else None,
                                new.ref_index(row.platform, alt) if alt else None,
                            )
                        )
                    else:
                        address = old.unseal(row.platform, blob, table=table, row_id=row.id)
                        sealed = new.seal(address, table=table, row_id=row.id)
                        if kind == "account":
                            old_index = row.account_index or ""
                            accounts.append((row.id, sealed, old_index, new.address_index(address)))
                        elif kind == "payer":
                            payers.append((row.id, sealed, new.address_index(address)))
                        else:
                            addresses.append((row.id, sealed))
                    done += 1
                except (UnsealError, ValueError):
                    bad += 1
            store.keyring.reindex_accounts(s, table, accounts)
            store.keyring.reseal(s, table, column, addresses)
            store.keyring.reseal_refs(s, refs)
            store.keyring.reseal_payers(s, payers)
            after = rows[-1].id
        report.add(table, done, bad)
        if done:
            progress(f"{table}: {report.resealed[table]} re-sealed (up to row {after})")


def rotate_key(
    store: Store,
    configured: str | None,
    data_dir: Path,
    *,
    batch: int = 500,
    progress: Callable[[str], None] = lambda _line: None,
    file_dirs: Iterable[Path] = (),
) -> RotationReport:
    """Re-seal and re-index everything with a new key; resumable (see the module docstring).
    Sealed files are searched under `data_dir` and `file_dirs` (a store_dir kept elsewhere)."""
    report = RotationReport()
    new_path, key_path = data_dir / NEW_KEY_FILE_NAME, data_dir / KEY_FILE_NAME
    if (
        not configured
        and not key_path.exists()
        and new_path.exists()
        and (data_dir / OLD_KEY_FILE_NAME).exists()
    ):
        os.replace(new_path, key_path)  # a crash between the two renames of the last step
    current = load_or_create_key(configured, data_dir, create=False)
    if new_path.exists() and key_fingerprint(read_key_file(new_path)) == key_fingerprint(current):
        new_path.unlink()  # left over from an earlier rotation whose key is now the current one
    record = _key_record(store) or KeyRecord(key_fingerprint(current))
    if new_path.exists():
        new_key = read_key_file(new_path)
    else:
        while True:  # the key id is one byte: the new key must not share the old one's
            text = generate_key()
            if Sealer(decode_key(text)).key_id != Sealer(current).key_id:
                break
        write_key_file(new_path, text)
        new_key = decode_key(text)
    old, new = Sealer(current), Sealer(new_key)
    if record.fingerprint == new.fingerprint:
        progress("the database is already sealed with the new key; finishing the key files")
    else:
        if record.fingerprint != old.fingerprint:
            raise KeyMismatch(
                f"the current key from {key_location(bool(configured), data_dir)} is not the key this "
                "database was sealed with: restore it before rotating"
            )
        rotating = KeyRecord(old.fingerprint, rotating_to=new.fingerprint)
        store.atomically(store.keyring.set_record, rotating)
        for spec in SEALED_COLUMNS:
            _rotate_table(store, old, new, spec, batch, report, progress)
        report.add("notice", *NoticeQueue(store, old).reseal(new, batch))
        _reseal_files(old, new, [data_dir, *file_dirs], report)
        report.invites_voided = store.atomically(store.keyring.void_unused_invites)
        store.atomically(store.keyring.set_record, KeyRecord(new.fingerprint))
    report.key_file = _swap_key_files(configured, data_dir)
    return report


def _reseal_files(old: Sealer, new: Sealer, dirs: Iterable[Path], report: RotationReport) -> None:
    """Re-seal every sealed file under `dirs` (files already under `new` are passed over)."""
    paths = {p.resolve() for d in dirs if d.exists() for p in d.rglob("*" + SEALED_FILE_SUFFIX)}
    for path in sorted(paths):
        try:
            report.add("file", int(reseal_file(old, new, path)), 0)
        except UnsealError:
            report.add("file", 0, 1)


def _swap_key_files(configured: str | None, data_dir: Path) -> Path:
    """Make the new key the key file (the old one is kept as privacy.key.old); with a key
    set in config, the operator copies the new key there. Returns where the new key is."""
    new_path, key_path, old_path = (
        data_dir / n for n in (NEW_KEY_FILE_NAME, KEY_FILE_NAME, OLD_KEY_FILE_NAME)
    )
    if configured or not new_path.exists():
        return new_path if new_path.exists() else key_path
    if key_path.exists():
        os.replace(key_path, old_path)
    os.replace(new_path, key_path)
    fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return key_path
