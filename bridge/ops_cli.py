"""The operator's commands `channelbridge backup`, `restore` and `status` (`bridge.cli` parses
the arguments and calls these). Each returns the process exit code and prints what it did."""

from __future__ import annotations

import sys
from pathlib import Path

from bridge import migrate
from bridge.backup import BackupRefused, backup, restore
from bridge.config import ConfigError, load_settings
from bridge.config_model import CoreSettings
from bridge.privacy import PrivacyKeyError, key_fingerprint, load_or_create_key
from bridge.status import gather, render
from bridge.store import Store


def _settings(config: Path | None) -> CoreSettings | None:
    try:
        return load_settings(config)
    except ConfigError as exc:
        print(f"channelbridge: the configuration has problems:\n{exc}", file=sys.stderr)
        return None


def _fingerprint(settings: CoreSettings) -> str:
    """The configured key's fingerprint (the key file in data_dir when none is configured);
    never creates a key."""
    configured = settings.privacy.key.get_secret_value() if settings.privacy.key else None
    return key_fingerprint(load_or_create_key(configured, settings.general.data_dir, create=False))


def backup_command(config: Path | None, dest: Path) -> int:
    """`channelbridge backup FILE`."""
    settings = _settings(config)
    if settings is None:
        return 1
    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        print(
            f"channelbridge: backup refused: there is no database at {url.removeprefix('sqlite:///')}",
            file=sys.stderr,
        )
        return 1
    store = Store(url)
    try:
        fingerprint = _fingerprint(settings)
        if migrate.current_revision(store.engine) is None:
            raise BackupRefused("the database has no schema yet: there is nothing to back up")
        record = store.atomically(store.keyring.record)
        if record is not None and record.fingerprint != fingerprint:
            raise BackupRefused(
                "the configured privacy key is not the key this database was sealed with: a backup "
                "would be recorded with the wrong key; configure the right key first"
            )
        meta = backup(store, fingerprint, dest)
    except (BackupRefused, PrivacyKeyError) as exc:
        print(f"channelbridge: backup refused: {exc}", file=sys.stderr)
        return 1
    finally:
        store.dispose()
    print(
        f"backed up the {meta.store} database (schema {meta.revision}) to {dest}; privacy key fingerprint "
        f"{meta.fingerprint[:8]}… — the key itself is not in the file: keep its own backup"
    )
    return 0


def restore_command(config: Path | None, src: Path, *, force: bool) -> int:
    """`channelbridge restore FILE [--force]`."""
    settings = _settings(config)
    if settings is None:
        return 1
    store = Store(settings.database_url)
    try:
        meta = restore(store, _fingerprint(settings), src, force=force)
        current, head = migrate.current_revision(store.engine), migrate.head_revision()
        record = store.atomically(store.keyring.record)
    except (BackupRefused, PrivacyKeyError) as exc:
        print(f"channelbridge: restore refused: {exc}", file=sys.stderr)
        return 1
    finally:
        store.dispose()
    print(
        f"restored the {meta.store} database from {src} (made {meta.created_at:.0f}, schema {meta.revision})"
    )
    if record is not None and record.fingerprint != meta.fingerprint:
        print(
            "channelbridge: warning: the restored database records another key than its backup file",
            file=sys.stderr,
        )
    if current != head:
        print(f"the schema is at {current}; this version needs {head}: run `channelbridge db upgrade`")
    return 0


def status_command(config: Path | None) -> int:
    """`channelbridge status`."""
    settings = _settings(config)
    if settings is None:
        return 1
    store = Store(settings.database_url)
    try:
        print("\n".join(render(gather(store))))
    except Exception as exc:
        print(f"channelbridge: could not read the status: {type(exc).__name__}", file=sys.stderr)
        return 1
    finally:
        store.dispose()
    return 0


__all__ = ["backup_command", "restore_command", "status_command"]
