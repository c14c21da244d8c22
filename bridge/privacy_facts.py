"""What the bot stores about a person, as one list of facts: `/privacy` answers with it and
the README's "Privacy model" section is generated from it (tests/unit/test_privacy_facts.py
fails when the two differ). Each fact is one sentence; change a fact here, never in one place
only.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.i18n import N_, _


@dataclass(frozen=True)
class Fact:
    """One thing stored (or not), how it is protected, and who can see it."""

    topic: str  #: a few words, the README's bold lead
    text: str  #: one sentence


FACTS: tuple[Fact, ...] = (
    Fact(
        "Your address",
        N_(
            "Your platform address (user id and private chat) is stored only sealed (AES-256-GCM) and"
            " found through a keyed blind index (HMAC-SHA256), so a copy of the database alone names"
            " nobody.",
        ),
    ),
    Fact(
        "Followers registry",
        N_(
            "Which channels you follow, and whether you muted them, is kept against that sealed"
            " address: admins see only counts of followers per platform, and no follower can see"
            " who else follows.",
        ),
    ),
    Fact(
        "Admins",
        N_(
            "Admins' addresses and the author of each post are sealed the same way, and admins"
            " see each other by number only.",
        ),
    ),
    Fact(
        "Posts",
        N_(
            "Posts are stored as their admins wrote them, with a sealed reference to each copy"
            " delivered to you, so that edits and deletes reach every copy.",
        ),
    ),
    Fact(
        "Votes and reactions",
        N_(
            "Votes and reactions are counted per option and per emoji, never attributed: they are"
            " stored against your blind index only, to count you once and let you change them.",
        ),
    ),
    Fact(
        "Ledger",
        N_(
            "Each payment, renewal, refund or code redemption is one ledger row (kind, amount in"
            " Stars, charge id, channel, platform) with the payer sealed and blind-indexed, never"
            " named in clear; a refund repeats its charge id.",
        ),
    ),
    Fact(
        "Access codes",
        N_(
            "Access codes are stored only as digests, so the database holds no code that"
            " could be redeemed, and a failed /redeem is kept against your blind index (counted for"
            " 15 minutes, to slow guessing, then deleted by the next /redeem).",
        ),
    ),
    Fact(
        "Logs",
        N_(
            "Log lines carry no user, chat, room or event ids: every line passes through a redacting"
            " formatter.",
        ),
    ),
    Fact(
        "Language",
        N_(
            "The language you chose with /lang is kept against your blind index, with your address"
            " sealed; /forgetme erases it."
        ),
    ),
    Fact(
        "Erasing",
        N_(
            "/forgetme erases your follows, votes, reactions, delivery records and paid access;"
            " ledger rows stay, sealed, for the operator's accounting.",
        ),
    ),
    Fact(
        "The key",
        N_(
            "Whoever holds both the operator's privacy key and the database can open the sealed"
            " values; the operator keeps the key apart from database backups and can rotate it.",
        ),
    ),
    Fact(
        "Mirror rooms",
        N_(
            "In a Matrix mirror room (opt-in by the operator) every member can see the other"
            " members, and the platforms themselves see the messages they carry, as for any bot.",
        ),
    ),
)

#: the line /privacy adds when payments are on (Telegram's terms ask for /paysupport)
PAYSUPPORT = N_("For help with a payment, send /paysupport.")


def privacy_text(payments_enabled: bool) -> str:
    """The `/privacy` answer, in the language of the person asking: every fact, and where to get
    payment help when the bot sells."""
    lines = [_("What this bot stores about you:"), *("- " + _(fact.text) for fact in FACTS)]
    if payments_enabled:
        lines.append(_(PAYSUPPORT))
    return "\n".join(lines)


def readme_block() -> str:
    """The README's list of the same facts (Markdown, in English)."""
    return "\n".join(f"- **{fact.topic}.** {fact.text}" for fact in FACTS)


__all__ = ["FACTS", "PAYSUPPORT", "Fact", "privacy_text", "readme_block"]
