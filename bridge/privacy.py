"""Sealing of platform addresses, keyed blind indexes, and log redaction.

A follower's or admin's platform address is personal data. It is stored only sealed
(AES-256-GCM with a key derived from the operator's privacy key) and found through a keyed blind
index (HMAC-SHA256), so a database dump alone reveals no identity.
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
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bridge.ports import Address

KEY_FILE_NAME = "privacy.key"
_NONCE_BYTES = 12


class PrivacyKeyError(ValueError):
    """The privacy key is not urlsafe base64 of 32 bytes."""


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


def load_or_create_key(configured: str | None, data_dir: Path) -> bytes:
    """The configured key, else the key file in `data_dir`, else a new one written there (0600)."""
    if configured:
        return decode_key(configured)
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        return decode_key(path.read_text())
    data_dir.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return decode_key(key)


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


class Sealer:
    """Seals addresses and computes blind indexes with subkeys of one master key."""

    def __init__(self, master_key: bytes) -> None:
        self._aead = AESGCM(_derive(master_key, b"channelbridge/seal/v1"))
        self._index_key = _derive(master_key, b"channelbridge/blind-index/v1")
        self._code_key = _derive(master_key, b"channelbridge/codes/v1")

    def blind_index(self, platform: str, identity: str) -> str:
        """A stable keyed pseudonym for one platform identity (hex, 32 chars)."""
        msg = f"{platform}\x00{identity}".encode()
        return hmac.new(self._index_key, msg, hashlib.sha256).hexdigest()[:32]

    def address_index(self, address: Address) -> str:
        """The blind index of an address's identity (its chat is not part of it)."""
        return self.blind_index(address.platform, address.id)

    def code_digest(self, code: str) -> str:
        """A keyed digest of a one-time code, so stored codes cannot be replayed from a dump."""
        return hmac.new(self._code_key, code.encode(), hashlib.sha256).hexdigest()

    def seal(self, address: Address) -> bytes:
        """Encrypt an address; the platform is bound as associated data."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        plain = json.dumps({"id": address.id, "chat": address.chat}).encode()
        return nonce + self._aead.encrypt(nonce, plain, address.platform.encode())

    def seal_bytes(self, data: bytes, context: str) -> bytes:
        """Encrypt arbitrary data (a queued message, a message reference); `context` (what the
        blob is and for which platform) is bound as associated data, so a blob sealed for one
        purpose does not open as another."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, b"data\x00" + context.encode())

    def unseal_bytes(self, sealed: bytes, context: str) -> bytes:
        """Decrypt what `seal_bytes` sealed with the same `context`."""
        nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        return self._aead.decrypt(nonce, body, b"data\x00" + context.encode())

    def unseal(self, platform: str, sealed: bytes) -> Address:
        """Decrypt a sealed address of `platform`."""
        nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        data = json.loads(self._aead.decrypt(nonce, body, platform.encode()))
        return Address(platform, data["id"], data.get("chat"))


_PATTERNS = [
    re.compile(r"@[A-Za-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(?::\d+)?"),  # Matrix user ids
    re.compile(r"![A-Za-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(?::\d+)?"),  # Matrix room ids
    re.compile(r"(?<![\w#])-?\d{6,}(?!\w)"),  # Telegram user and chat ids
]


def redact(text: str) -> str:
    """Replace anything that looks like a platform identity with `[redacted]`."""
    for pattern in _PATTERNS:
        text = pattern.sub("[redacted]", text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts platform identities from every record it passes."""

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
    """Attach the redacting filter to every handler of `logger` (root by default)."""
    target = logger or logging.getLogger()
    flt = RedactingFilter()
    for handler in target.handlers:
        handler.addFilter(flt)
    target.addFilter(flt)
    return flt
