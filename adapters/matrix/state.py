"""What the Matrix adapter keeps in `store_dir` between restarts, and how it is written.

`State` is the adapter's memory (DM map, rooms left, mirror rooms, reactions, the encrypted
media cache, recently handled events), written as JSON — sealed with the operator's privacy
key when the app gave a sealer (`state.sealed`), else in clear (`state.json`). `StoreDir` owns
every file of the directory except nio's own store: the state, the sync token, the random key
of the user-id hashes and the password login's session.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.ports import PermanentFailure
from bridge.privacy import Sealer, UnsealError, read_sealed_file, write_sealed_file

_STATE_FILE = "state.json"
_SEALED_STATE_FILE = "state.sealed"
_SESSION_FILE = "session.json"
_TOKEN_FILE = "sync_token"
_KEY_FILE = "state.key"
_MAX_REACTIONS = 5_000
_MAX_SEEN = 500
_MAX_GONE = 10_000  # rooms remembered as left by their follower
_GONE_TTL_S = 90 * 24 * 3600.0  # ... and for how long


@dataclass
class State:
    """What survives a restart, persisted as JSON under store_dir."""

    dm_rooms: dict[str, str] = field(default_factory=dict)  # user hash -> DM room id
    gone_rooms: dict[str, float] = field(default_factory=dict)  # DM room whose follower left -> when
    shared_rooms: dict[str, float] = field(default_factory=dict)  # ex-DM left as not private -> when
    mirror_rooms: list[str] = field(default_factory=list)  # rooms made by create_mirror_room
    reactions: dict[str, list[str]] = field(default_factory=dict)  # event -> [user hash, post_ref]
    enc_media: dict[str, dict[str, Any]] = field(default_factory=dict)  # blob id -> `file`
    seen: list[str] = field(default_factory=list)  # recently handled "<room>|<event>"

    @classmethod
    def load(cls, path: Path) -> State:
        """Read the state file, or start empty."""
        try:
            return cls.parse(path.read_bytes())
        except OSError:
            return cls()

    @classmethod
    def parse(cls, text: bytes) -> State:
        """The state written by `dumps` (empty when unreadable)."""
        try:
            raw = json.loads(text)
        except ValueError:
            return cls()
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        gone = known.get("gone_rooms")
        if isinstance(gone, list):  # written before gone rooms expired: they count from now
            now = time.time()
            known["gone_rooms"] = {room_id: now for room_id in gone if isinstance(room_id, str)}
        return cls(**known)

    def hash_user_ids(self, digest: Callable[[str], str]) -> bool:
        """Replace plain user ids (a state file written before ids were hashed); True if any."""
        changed = False
        for user_id in [k for k in self.dm_rooms if k.startswith("@")]:
            self.dm_rooms[digest(user_id)] = self.dm_rooms.pop(user_id)
            changed = True
        for entry in self.reactions.values():
            if entry and entry[0].startswith("@"):
                entry[0] = digest(entry[0])
                changed = True
        return changed

    def mark_gone(self, room_id: str, now: float) -> bool:
        """Remember that a DM's follower left (bounded: the oldest entries go first)."""
        if room_id in self.gone_rooms:
            return False
        self.gone_rooms[room_id] = now
        return True

    def forget_user(self, user_hash: str, rooms: Collection[str]) -> None:
        """Erase what names one person: their DM entry, their reactions, their rooms."""
        self.dm_rooms.pop(user_hash, None)
        for room_id in rooms:
            self.gone_rooms.pop(room_id, None)
            self.shared_rooms.pop(room_id, None)
            for other in [h for h, r in self.dm_rooms.items() if r == room_id]:
                del self.dm_rooms[other]
        prefixes = tuple(f"{room_id}|" for room_id in rooms)
        self.seen = [key for key in self.seen if not key.startswith(prefixes)]
        for event_id in [
            e for e, (who, ref) in self.reactions.items() if who == user_hash or ref.startswith(prefixes)
        ]:
            del self.reactions[event_id]

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename), bounding what only grows."""
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(self.dumps())
        os.replace(tmp, path)

    def dumps(self) -> bytes:
        """The state as JSON, after bounding what only grows."""
        if len(self.reactions) > _MAX_REACTIONS:
            for key in list(self.reactions)[: len(self.reactions) - _MAX_REACTIONS]:
                del self.reactions[key]
        self.seen = self.seen[-_MAX_SEEN:]
        self.gone_rooms = _bounded(self.gone_rooms)
        self.shared_rooms = _bounded(self.shared_rooms)
        return json.dumps(self.__dict__).encode()


def _bounded(rooms: dict[str, float]) -> dict[str, float]:
    """Rooms marked less than `_GONE_TTL_S` ago, at most `_MAX_GONE` of them (the newest)."""
    horizon = time.time() - _GONE_TTL_S
    if len(rooms) <= _MAX_GONE and all(t >= horizon for t in rooms.values()):
        return rooms
    kept = sorted((t, r) for r, t in rooms.items() if t >= horizon)[-_MAX_GONE:]
    return {r: t for t, r in kept}


class StoreDir:
    """The adapter's files in `store_dir` (nio's olm store aside, see `sealed_store`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: seals the state when set (the app's privacy key); else the state is plain JSON
        self.sealer: Sealer | None = None

    def prepare(self) -> None:
        """Create the directory, private to this user."""
        self.path.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            self.path.chmod(0o700)

    def hash_key(self) -> bytes:
        """The random key of the user-id hashes, created on first use (mode 0600)."""
        path = self.path / _KEY_FILE
        with contextlib.suppress(OSError, ValueError):
            key = bytes.fromhex(path.read_text().strip())
            if len(key) >= 16:
                return key
        key = os.urandom(32)
        tmp = path.with_name(_KEY_FILE + ".tmp")
        tmp.write_text(key.hex())
        tmp.chmod(0o600)
        os.replace(tmp, path)
        return key

    def load_state(self) -> State:
        """The state: sealed, or (no sealer, or written by an earlier version) state.json."""
        if self.sealer is not None:
            try:
                sealed = read_sealed_file(self.sealer, self.path / _SEALED_STATE_FILE)
            except UnsealError as exc:
                raise PermanentFailure(
                    f"matrix: the sealed state in {self.path} does not open with this privacy key"
                ) from exc
            if sealed is not None:
                return State.parse(sealed)
        return State.load(self.path / _STATE_FILE)

    def has_plain_state(self) -> bool:
        """True when a plain state.json is there (to be sealed, under a sealer)."""
        return (self.path / _STATE_FILE).exists()

    def save_state(self, state: State) -> None:
        """Write the state (sealed under a sealer, removing any plain copy)."""
        if self.sealer is None:
            state.save(self.path / _STATE_FILE)
            return
        write_sealed_file(self.sealer, self.path / _SEALED_STATE_FILE, state.dumps())
        with contextlib.suppress(FileNotFoundError):
            (self.path / _STATE_FILE).unlink()  # written by an earlier version, in clear

    def load_token(self) -> str | None:
        """The sync token of the last handled batch, if any."""
        with contextlib.suppress(OSError):
            return (self.path / _TOKEN_FILE).read_text().strip() or None
        return None

    def save_token(self, token: str) -> None:
        """Write the sync token atomically."""
        path = self.path / _TOKEN_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(token)
        os.replace(tmp, path)

    def load_session(self) -> dict[str, str]:
        """The access token and device id a password login saved (empty if none)."""
        with contextlib.suppress(OSError, ValueError):
            saved = json.loads((self.path / _SESSION_FILE).read_text())
            if isinstance(saved, dict):
                return {str(k): str(v) for k, v in saved.items()}
        return {}

    def save_session(self, access_token: str, device_id: str) -> None:
        """Keep a password login's token and device (mode 0600): restarts keep one device."""
        path = self.path / _SESSION_FILE
        path.write_text(json.dumps({"access_token": access_token, "device_id": device_id}))
        path.chmod(0o600)


def user_hash(key: bytes, user_id: str) -> str:
    """A keyed hash of a user id: what the state stores instead of the id."""
    return hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()[:32]
