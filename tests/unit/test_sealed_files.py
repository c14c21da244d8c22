"""Sealed files (the Matrix adapter's olm store and state): sealed with the privacy key, bound to
their name, private, and re-sealed by `channelbridge rotate-key`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bridge import migrate
from bridge.keys import rotate_key, verify_key
from bridge.privacy import (
    KEY_FILE_NAME,
    Sealer,
    UnsealError,
    decode_key,
    generate_key,
    read_key_file,
    read_sealed_file,
    write_key_file,
    write_sealed_file,
)
from bridge.store import Store
from tests.support import sqlite_url


def test_a_sealed_file_opens_only_under_its_name_and_key(tmp_path: Path) -> None:
    sealer = Sealer(decode_key(generate_key()))
    path = tmp_path / "olm-store.sealed"
    write_sealed_file(sealer, path, b"@follower:localhost")
    assert b"follower" not in path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_sealed_file(sealer, path) == b"@follower:localhost"
    assert read_sealed_file(sealer, tmp_path / "missing.sealed") is None
    moved = tmp_path / "state.sealed"
    moved.write_bytes(path.read_bytes())
    with pytest.raises(UnsealError):
        read_sealed_file(sealer, moved)
    with pytest.raises(UnsealError):
        read_sealed_file(Sealer(decode_key(generate_key())), path)


def test_rotate_key_reseals_sealed_files_in_data_dir_and_store_dir(tmp_path: Path) -> None:
    data_dir, store_dir = tmp_path / "data", tmp_path / "elsewhere" / "matrix-store"
    store_dir.mkdir(parents=True)
    write_key_file(data_dir / KEY_FILE_NAME, generate_key())
    old = Sealer(read_key_file(data_dir / KEY_FILE_NAME))
    store = Store(sqlite_url(tmp_path))
    migrate.upgrade(store.engine)
    verify_key(store, old, "the key file")
    (data_dir / "matrix-store").mkdir()
    inside, outside = data_dir / "matrix-store" / "state.sealed", store_dir / "olm-store.sealed"
    write_sealed_file(old, inside, b"state")
    write_sealed_file(old, outside, b"olm")
    try:
        report = rotate_key(store, None, data_dir, file_dirs=[store_dir])
    finally:
        store.dispose()
    assert report.resealed["file"] == 2 and report.unreadable["file"] == 0
    new = Sealer(read_key_file(data_dir / KEY_FILE_NAME))
    assert new.fingerprint != old.fingerprint
    assert read_sealed_file(new, inside) == b"state" and read_sealed_file(new, outside) == b"olm"
