"""Sealing of platform addresses and message references, keyed blind indexes, key checks,
and log redaction.

A follower's or admin's platform address — and every platform reference that can point at a
person (the chat id inside a message reference) — is personal data. It is stored only sealed
and found through a keyed blind index (HMAC-SHA256), so a database dump alone reveals no
identity.

Sealed blob format (v2)::

    0x02 | key id (1 byte) | nonce (12 bytes) | AES-256-GCM ciphertext and tag

The associated data binds the blob to its row: ``channelbridge/v2 \\0 key id \\0 table \\0
row id \\0 platform``. A blob moved to another row, table or platform does not open. The key
id says which key sealed it, so `channelbridge rotate-key` can tell re-sealed rows from old
ones. Legacy (v1) blobs — nonce and ciphertext with only the platform as associated data — are
opened only by the schema migration that re-seals them (`unseal_legacy`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bridge.ports import Address

KEY_FILE_NAME = "privacy.key"
NEW_KEY_FILE_NAME = "privacy.key.new"
OLD_KEY_FILE_NAME = "privacy.key.old"
KEY_RECORD = "privacy:key"  #: the keyvalue row holding the key fingerprint (never the key)
_NONCE_BYTES = 12
_VERSION = 2
_HEADER = 2  # version byte + key id byte


class PrivacyKeyError(ValueError):
    """The privacy key is not urlsafe base64 of 32 bytes."""


class KeyFileModeError(PrivacyKeyError):
    """The privacy key file can be read by other users of this machine."""


class UnsealError(ValueError):
    """A sealed value cannot be opened with this key (another key sealed it, or it was
    moved to another row, or it was altered)."""


def decode_key(text: str) -> bytes:
    """Decode an operator-supplied key (urlsafe base64 of 32 bytes)."""
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (ValueError, TypeError) as exc:
        raise PrivacyKeyError("privacy.key must be urlsafe base64 of 32 bytes") from exc
    if len(raw) != 32:
        raise PrivacyKeyError("privacy.key must be urlsafe base64 of 32 bytes")
    return raw


def generate_key() -> str:
    """A fresh random key in the form `privacy.key` expects."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def check_key_file_mode(path: Path) -> None:
    """Refuse a key file that group or others may read or write."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileModeError(
            f"the privacy key file {path} has mode {mode:04o}: other users of this machine can read it; "
            f"fix: chmod 600 {path}"
        )


def read_key_file(path: Path) -> bytes:
    """The key in `path`, after checking that only its owner can read it."""
    check_key_file_mode(path)
    return decode_key(path.read_text())


def write_key_file(path: Path, key: str) -> None:
    """Write a key file readable by its owner only, durably (fsync)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def load_or_create_key(configured: str | None, data_dir: Path, *, create: bool = True) -> bytes:
    """The configured key, else the key file in `data_dir`, else (when `create`) a new one
    written there (0600). Raises `PrivacyKeyError` when there is none and `create` is False."""
    if configured:
        return decode_key(configured)
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        return read_key_file(path)
    if not create:
        raise PrivacyKeyError(f"the privacy key file {path} is missing")
    key = generate_key()
    write_key_file(path, key)
    return decode_key(key)


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


def key_fingerprint(master: bytes) -> str:
    """A stable fingerprint of a key (HMAC of a constant under a derived subkey): safe to store,
    reveals nothing of the key, tells keys apart."""
    check = _derive(master, b"channelbridge/fingerprint/v1")
    return hmac.new(check, b"channelbridge key check", hashlib.sha256).hexdigest()[:32]


def key_id_of(master: bytes) -> int:
    """The key id written into every blob a key seals (1..255, from its fingerprint)."""
    return int(key_fingerprint(master)[:2], 16) % 255 + 1


@dataclass(frozen=True)
class Sealed:
    """A sealed value with the row it is bound to: what is needed to open it."""

    table: str
    row_id: int
    platform: str
    blob: bytes

    def __repr__(self) -> str:
        return f"Sealed({self.table}#{self.row_id}, {self.platform})"


class Sealer:
    """Seals addresses and references and computes blind indexes with subkeys of one master
    key. Subkey labels are those of the first version, so the blind indexes of a database
    sealed before v2 stay valid under the same key."""

    def __init__(self, master_key: bytes) -> None:
        self._aead = AESGCM(_derive(master_key, b"channelbridge/seal/v1"))
        self._index_key = _derive(master_key, b"channelbridge/blind-index/v1")
        self._ref_key = _derive(master_key, b"channelbridge/ref-index/v1")
        self._code_key = _derive(master_key, b"channelbridge/codes/v1")
        self._update_key = _derive(master_key, b"channelbridge/update-id/v1")
        self.fingerprint = key_fingerprint(master_key)
        self.key_id = key_id_of(master_key)

    def blind_index(self, platform: str, identity: str) -> str:
        """A stable keyed pseudonym for one platform identity (hex, 32 chars)."""
        msg = f"{platform}\x00{identity}".encode()
        return hmac.new(self._index_key, msg, hashlib.sha256).hexdigest()[:32]

    def address_index(self, address: Address) -> str:
        """The blind index of an address's identity (its chat is not part of it)."""
        return self.blind_index(address.platform, address.id)

    def ref_index(self, platform: str, ref: str) -> str:
        """The blind index of a platform message reference (finds a copy by an inbound vote)."""
        msg = f"{platform}\x00{ref}".encode()
        return hmac.new(self._ref_key, msg, hashlib.sha256).hexdigest()[:32]

    def update_number(self, platform: str, update_ref: str) -> int:
        """A keyed number (0 <= n < 2**60) for a platform's textual update id (a Matrix event id):
        what `received_update` claims, the same in every process holding the key."""
        msg = f"{platform}\x00{update_ref}".encode()
        return int(hmac.new(self._update_key, msg, hashlib.sha256).hexdigest()[:15], 16)

    def code_digest(self, code: str) -> str:
        """A keyed digest of a one-time code, so stored codes cannot be replayed from a dump."""
        return hmac.new(self._code_key, code.encode(), hashlib.sha256).hexdigest()

    # ---- sealing ------------------------------------------------------------------------

    def _aad(self, key_id: int, table: str, row_id: int, platform: str) -> bytes:
        return f"channelbridge/v{_VERSION}\x00{key_id}\x00{table}\x00{row_id}\x00{platform}".encode()

    def seal_bytes(self, plain: bytes, *, table: str, row_id: int, platform: str) -> bytes:
        """Encrypt `plain`, bound to one row of one table and to the platform."""
        if not row_id:
            raise ValueError("a sealed value is bound to its row: insert the row first")
        nonce = secrets.token_bytes(_NONCE_BYTES)
        aad = self._aad(self.key_id, table, row_id, platform)
        return bytes([_VERSION, self.key_id]) + nonce + self._aead.encrypt(nonce, plain, aad)

    def unseal_bytes(self, sealed: bytes, *, table: str, row_id: int, platform: str) -> bytes:
        """Decrypt what `seal_bytes` sealed for this row; `UnsealError` when it cannot be opened."""
        sealed = bytes(sealed)
        if len(sealed) < _HEADER + _NONCE_BYTES + 16 or sealed[0] != _VERSION:
            raise UnsealError(f"{table} #{row_id}: not a sealed value of this version")
        if sealed[1] != self.key_id:
            raise UnsealError(
                f"{table} #{row_id}: sealed with key id {sealed[1]}, this process has key id {self.key_id}"
            )
        nonce, body = sealed[_HEADER : _HEADER + _NONCE_BYTES], sealed[_HEADER + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, self._aad(self.key_id, table, row_id, platform))
        except InvalidTag as exc:
            raise UnsealError(f"{table} #{row_id}: sealed value does not open (moved or altered)") from exc

    def seal(self, address: Address, *, table: str, row_id: int) -> bytes:
        """Seal an address into one row (`table`, `row_id`)."""
        plain = json.dumps({"id": address.id, "chat": address.chat}).encode()
        return self.seal_bytes(plain, table=table, row_id=row_id, platform=address.platform)

    def unseal(self, platform: str, sealed: bytes, *, table: str, row_id: int) -> Address:
        """Open a sealed address of `platform` stored in row `row_id` of `table`."""
        data = json.loads(self.unseal_bytes(sealed, table=table, row_id=row_id, platform=platform))
        return Address(platform, data["id"], data.get("chat"))

    def open(self, sealed: Sealed) -> Address:
        """Open a `Sealed` address."""
        return self.unseal(sealed.platform, sealed.blob, table=sealed.table, row_id=sealed.row_id)

    def seal_ref(self, key: str, alt: str | None, *, row_id: int, platform: str) -> bytes:
        """Seal a delivered copy's platform reference into its delivery row."""
        plain = json.dumps({"key": key, "alt": alt}).encode()
        return self.seal_bytes(plain, table="delivery", row_id=row_id, platform=platform)

    def unseal_ref(self, sealed: bytes, *, row_id: int, platform: str) -> tuple[str, str | None]:
        """Open a sealed reference of a delivery row: (key, alt)."""
        data = json.loads(self.unseal_bytes(sealed, table="delivery", row_id=row_id, platform=platform))
        return str(data["key"]), data.get("alt")

    def is_current(self, sealed: bytes | None) -> bool:
        """Whether a blob was sealed (v2) by this key."""
        return (
            sealed is not None
            and len(sealed) > _HEADER
            and sealed[0] == _VERSION
            and sealed[1] == self.key_id
        )

    def unseal_legacy(self, platform: str, sealed: bytes) -> Address:
        """Open a v1 blob (before row binding). Only the migration that re-seals them calls this."""
        sealed = bytes(sealed)
        nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        data = json.loads(self._aead.decrypt(nonce, body, platform.encode()))
        return Address(platform, data["id"], data.get("chat"))


# ---- sealed files ---------------------------------------------------------------------------

SEALED_FILE_SUFFIX = ".sealed"  #: files that hold one value sealed with the privacy key


def write_sealed_file(sealer: Sealer, path: Path, plain: bytes) -> None:
    """Seal `plain` (bound to the file's name) into `path`: atomically (temp file, fsync,
    rename), readable by its owner only."""
    blob = sealer.seal_bytes(plain, table="file", row_id=1, platform=path.name)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(blob)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_sealed_file(sealer: Sealer, path: Path) -> bytes | None:
    """What `write_sealed_file` sealed into `path`; None when there is no such file,
    `UnsealError` when it does not open with this key."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    return sealer.unseal_bytes(blob, table="file", row_id=1, platform=path.name)


def reseal_file(old: Sealer, new: Sealer, path: Path) -> bool:
    """Re-seal one sealed file from `old` to `new` (`channelbridge rotate-key`); True if it
    was re-sealed, False if `new` had sealed it already (a resumed rotation)."""
    if new.is_current(path.read_bytes()):
        return False
    plain = read_sealed_file(old, path)
    assert plain is not None
    write_sealed_file(new, path, plain)
    return True


# ---- log redaction -------------------------------------------------------------------------

_REDACTED = "[redacted]"
_ID_WORDS = r"(?:chat_id|user_id|from_user_id|sender_chat_id|chat|user|sender|room_id|follower|recipient)"
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # bot tokens, alone or inside a Bot API URL (/bot<token>/method)
    (re.compile(r"(?<![\w])\d{5,}:[A-Za-z0-9_-]{30,}"), _REDACTED),
    (re.compile(r"/bot[^/\s\"']+(?=/)"), "/bot" + _REDACTED),
    # URL credentials (scheme://user:password@host)
    (re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+@"), _REDACTED + "@"),
    # access tokens in query strings and headers
    (re.compile(r"(?i)(access_token=|authorization: bearer |bearer )[^\s&\"']+"), r"\1" + _REDACTED),
    # Matrix user, room and event ids
    (re.compile(r"@[A-Za-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(?::\d+)?"), _REDACTED),
    (re.compile(r"![A-Za-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(?::\d+)?"), _REDACTED),
    (re.compile(r"\$[A-Za-z0-9_\-/+=]{20,}(?::[A-Za-z0-9.\-]+)?"), _REDACTED),
    # a number named as an id, however short: chat_id=12, "chat_id": 12, chat_id: '12', user 12
    (
        re.compile(r"(?i)(\b" + _ID_WORDS + r"\b[\"']?\s*(?:=|:|\s)\s*[\"']?)-?\d+"),
        r"\1" + _REDACTED,
    ),
    # a Matrix device id named as such (matrix-nio logs "Missing session for device ABCDEFGHIJ")
    (
        re.compile(r"(?i)(\bdevice(?:_id)?\b[\"']?\s*(?:=|:|\s)\s*[\"']?)[A-Za-z0-9_\-]{6,}"),
        r"\1" + _REDACTED,
    ),
    # the "id" of a JSON object (a Telegram chat or user), however short
    (re.compile(r"([\"']id[\"']\s*:\s*)-?\d+"), r"\1" + _REDACTED),
    # a long number anywhere (Telegram user and chat ids)
    (re.compile(r"(?<![\w#])-?\d{6,}(?!\w)"), _REDACTED),
]


def redact(text: str) -> str:
    """Replace anything that looks like a platform identity or a secret with `[redacted]`."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter that redacts the whole formatted record — message, traceback and stack —
    after formatting, so nothing an exception carries (SQL parameters, URLs) escapes."""

    def __init__(
        self, fmt: str | None = None, datefmt: str | None = None, *, inner: logging.Formatter | None = None
    ):
        super().__init__(fmt, datefmt)
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        """Format with the wrapped formatter (or our own format), then redact every character."""
        try:
            text = self._inner.format(record) if self._inner is not None else super().format(record)
        except Exception:  # a broken format string must not break logging
            text = f"{record.levelname} {record.name}: {record.msg!r}"
        return redact(text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the message of every record it passes (for handlers
    whose formatter we do not own; `RedactingFormatter` also covers tracebacks)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message, redact it, and drop the arguments."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not break logging
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Redact every handler of `logger` (root by default): its formatter is wrapped in a
    `RedactingFormatter` (tracebacks included), and a `RedactingFilter` is attached too."""
    target = logger or logging.getLogger()
    flt = RedactingFilter()
    for handler in target.handlers:
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(inner=handler.formatter or logging.Formatter()))
        handler.addFilter(flt)
    target.addFilter(flt)
    return flt


def sealed_rows(rows: Iterable[tuple[int, str, bytes | None]], table: str) -> list[Sealed]:
    """`Sealed` values from (row id, platform, blob) rows, skipping empty blobs."""
    return [Sealed(table, row_id, platform, bytes(blob)) for row_id, platform, blob in rows if blob]
