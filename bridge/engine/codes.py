"""Access codes: the owner mints them (`/codes`), anyone redeems one (`/redeem`).

Matrix has no payment standard, so a channel's paid tier can also be sold elsewhere (a shop)
as single-use codes. A code is 128 random bits from `secrets`, written in Crockford base32 with
four check characters, in groups: `CB-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX`. Case, dashes and
spaces do not matter, and `I`/`L` read as `1`, `O` as `0`. Only a SHA-256 digest of the 16
bytes is stored, so a database dump reveals no code (128 random bits cannot be found from their
digest). It is deliberately not keyed with the privacy key: codes sold in a shop must survive
`channelbridge rotate-key`. A code is shown once, to whoever minted it, and never logged.

Redeeming is throttled per sender (blind index): after `REDEEM_FAILURES` wrong or used codes
within `REDEEM_WINDOW_S`, further attempts are refused without looking at the code. Failures
are rows in the database, so every process counts them. A typo caught by the check
characters is not a guess at any code and is not counted. A good code is claimed by one
conditional UPDATE (two processes cannot both redeem it) and granted through `grant_access`
as a ledger row of kind `code` and amount 0.
"""

from __future__ import annotations

import hashlib
import math
import secrets

from bridge.commands import CodesArgs, RedeemArgs
from bridge.engine.access import grant_access
from bridge.engine.context import Context, find_channel, follower_row, require_owner
from bridge.engine.core import Refusal
from bridge.engine.payments import PAYMENTS_OFF
from bridge.i18n import _, ngettext
from bridge.models import LedgerKind
from bridge.ports import Reply
from bridge.store.payments import AlreadyRecorded

CODE_BYTES = 16  #: 128 bits of randomness per code
REDEEM_FAILURES = 5  #: wrong or used codes a sender may try within the window
REDEEM_WINDOW_S = 15 * 60.0
DAY_S = 24 * 3600
PREFIX = "CB"
#: what a code's digest is computed under (apart from its check characters' hash)
DIGEST_DOMAIN = b"channelbridge access code digest\x00"

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_DECODE = {ch: i for i, ch in enumerate(_ALPHABET)} | {"I": 1, "L": 1, "O": 0}
_DATA_CHARS = 26  # 128 bits padded to 130
_CHECK_CHARS = 4  # 20 bits of a hash: catches typos before they count as guesses
_GROUP = 5


def _check(raw: bytes) -> str:
    bits = int.from_bytes(hashlib.sha256(b"channelbridge access code\x00" + raw).digest()[:3]) >> 4
    return _chars(bits, _CHECK_CHARS)


def _chars(value: int, count: int) -> str:
    return "".join(_ALPHABET[(value >> (5 * (count - 1 - i))) & 31] for i in range(count))


def format_code(raw: bytes) -> str:
    """The typable form of a code's 16 bytes: `CB-` and six groups of five characters."""
    assert len(raw) == CODE_BYTES
    body = _chars(int.from_bytes(raw) << 2, _DATA_CHARS) + _check(raw)
    return "-".join([PREFIX, *(body[i : i + _GROUP] for i in range(0, len(body), _GROUP))])


def parse_code(typed: str) -> bytes | None:
    """The 16 bytes a typed code stands for, or None when it is not a well-formed code (wrong
    length, a character outside the alphabet, check characters that do not match)."""
    text = "".join(ch for ch in typed.upper() if ch not in "- \t")
    if len(text) == len(PREFIX) + _DATA_CHARS + _CHECK_CHARS and text.startswith(PREFIX):
        text = text[len(PREFIX) :]
    if len(text) != _DATA_CHARS + _CHECK_CHARS or any(ch not in _DECODE for ch in text):
        return None
    value = 0
    for ch in text[:_DATA_CHARS]:
        value = value << 5 | _DECODE[ch]
    if value & 3:
        return None
    raw = (value >> 2).to_bytes(CODE_BYTES)
    check = "".join(_ALPHABET[_DECODE[ch]] for ch in text[_DATA_CHARS:])
    return raw if check == _check(raw) else None


def new_code() -> tuple[str, bytes]:
    """A fresh code: its typable form and its 16 bytes."""
    raw = secrets.token_bytes(CODE_BYTES)
    return format_code(raw), raw


def code_digest(raw: bytes) -> str:
    """The digest stored for a code (never the code); the same under every privacy key."""
    return hashlib.sha256(DIGEST_DOMAIN + raw).hexdigest()


def cmd_codes(ctx: Context, cmd: CodesArgs) -> list[Reply]:
    """`/codes <handle> <count> <days>`."""
    if not ctx.options.payments_enabled:
        raise Refusal(PAYMENTS_OFF)
    channel = find_channel(ctx, cmd.handle)
    who = require_owner(ctx, channel)
    assert channel.id is not None
    if ctx.store.payments.last_tier(ctx.s, channel.id) is None:
        raise Refusal(
            _(
                "{handle} has no paid tier: set one with /price {handle} <stars> first."
            ).format(handle=channel.handle)
        )
    minted = [new_code() for _ in range(cmd.count)]
    digests = [code_digest(raw) for _, raw in minted]
    ctx.store.codes.add(ctx.s, channel.id, digests, cmd.days, ctx.clock())
    ctx.store.channels.audit(ctx.s, channel.id, who, "codes", f"{cmd.count} codes of {cmd.days} days")
    days = ngettext("{days} day", "{days} days", cmd.days).format(days=cmd.days)
    lines = [
        ngettext(
            "{count} access code for {days} of {name} ({handle}), each good once. They are shown"
            " this once only: keep them now. Each is redeemed with /redeem <code>.",
            "{count} access codes for {days} of {name} ({handle}), each good once. They are shown"
            " this once only: keep them now. Each is redeemed with /redeem <code>.",
            cmd.count,
        ).format(count=cmd.count, days=days, name=channel.name, handle=channel.handle),
        *(code for code, _ in minted),
    ]
    return [Reply("\n".join(lines))]


def cmd_redeem(ctx: Context, cmd: RedeemArgs) -> list[Reply]:
    """`/redeem <code>`. Returns its answer rather than raising a `Refusal`, so a failed
    attempt is recorded in the same transaction."""
    if not ctx.options.payments_enabled:
        raise Refusal(PAYMENTS_OFF)
    s, store, now, sender = ctx.s, ctx.store, ctx.clock(), ctx.actor.index
    store.codes.forget_failures_before(s, now - REDEEM_WINDOW_S)
    recent = store.codes.failures(s, sender, now - REDEEM_WINDOW_S)
    if recent.count >= REDEEM_FAILURES and recent.oldest_at is not None:
        minutes = max(1, math.ceil((recent.oldest_at + REDEEM_WINDOW_S - now) / 60))
        return [
            Reply(
                ngettext(
                    "Too many wrong codes; try again in {minutes} minute.",
                    "Too many wrong codes; try again in {minutes} minutes.",
                    minutes,
                ).format(minutes=minutes)
            )
        ]
    raw = parse_code(cmd.code)
    if raw is None:
        return [Reply(_(
            "That is not an access code: check it for typos (it looks like "
            "CB-XXXXX-XXXXX-...)."
        ))]
    digest = code_digest(raw)
    code = store.codes.by_digest(s, digest)
    if code is None or code.id is None:
        store.codes.fail(s, sender, now)
        return [Reply(_("That code is not valid."))]
    channel = store.channels.by_id(s, code.channel_id)
    if channel is None or channel.deleted_at is not None or channel.id is None:
        return [Reply(_("The channel of this code no longer exists."))]
    if code.redeemed_at is not None or not store.codes.claim(s, digest, now):
        store.codes.fail(s, sender, now)
        return [Reply(_("This code was already used."))]
    follower = follower_row(ctx.core, s, ctx.actor, create=True)
    assert follower is not None and follower.id is not None
    current = store.payments.paid_until(s, follower.id, channel.id)
    until = max(now, current or now) + code.days * DAY_S
    outcome = grant_access(ctx, channel, until, kind=LedgerKind.CODE, amount=0, charge_id=None)
    assert not isinstance(outcome, AlreadyRecorded)  # codes carry no charge id
    store.codes.link_ledger(s, code.id, outcome.entry_id)
    return [
        Reply(
            _(
                "You have access to the paid posts of {name} ({handle}) until {local}. The "
                "last 30 days of paid posts are on their way."
            ).format(name=channel.name, handle=channel.handle, local=ctx.core.local(until))
        )
    ]
