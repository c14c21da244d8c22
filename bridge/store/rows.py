"""Typed rows the store hands out: frozen values built `from_row`, never dicts or bare tuples."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from bridge.models import Channel, DeliveryAction, DeliveryStatus, Subscription
from bridge.ports import Address, Content
from bridge.privacy import Sealed


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """An outbox row a worker has leased, with what it needs to act on it."""

    id: int
    post_id: int
    action: DeliveryAction
    platform: str
    follower_id: int | None
    mirror_id: int | None
    source_id: int | None
    silent: bool
    attempts: int
    created_at: float = 0.0
    earlier: bool = False  #: a new follower's copy of an earlier post

    @classmethod
    def from_row(cls, r: Any) -> ClaimedDelivery:
        """From a row of `claim_deliveries`' RETURNING clause."""
        return cls(
            id=r.id,
            post_id=r.post_id,
            action=DeliveryAction(r.action),
            platform=r.platform,
            follower_id=r.follower_id,
            mirror_id=r.mirror_id,
            source_id=r.source_id,
            silent=bool(r.silent),
            attempts=r.attempts,
            created_at=r.created_at,
            earlier=bool(r.earlier),
        )


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened to one claimed row, recorded in a batch."""

    id: int
    status: DeliveryStatus
    ref_key: str | None = None
    ref_alt: str | None = None
    error: str | None = None
    next_attempt_at: float | None = None
    refund_attempt: bool = False  #: the platform asked us to wait: this try does not count
    platform: str = ""  #: the row's platform (its sealed reference is bound to it)


class SourceRef(NamedTuple):
    """The platform reference of a delivered copy a follow-up targets (None: never stored)."""

    key: str | None
    alt: str | None


@dataclass(frozen=True)
class DeliveryContext:
    """What a claimed batch needs loaded: each row's destination, the references of the copies
    follow-ups target, and rows whose sealed data does not open (with the reason)."""

    addresses: dict[int, Address | None]
    sources: dict[int, SourceRef]
    broken: dict[int, str]


class PlatformCount(NamedTuple):
    """Followers of a channel on one platform."""

    active: int  #: following and not paused
    muted: int  #: among the active ones, muted


class Tally(NamedTuple):
    """A poll's votes per option position, and how many distinct people voted."""

    votes: dict[int, int]
    voters: int


class Followed(NamedTuple):
    """One subscription of a follower, with its (live) channel."""

    subscription: Subscription
    channel: Channel


class FailureReason(NamedTuple):
    """One failure reason of a post's sends and how many copies failed with it."""

    reason: str
    copies: int  #: how many copies failed with it


class Due(NamedTuple):
    """Something timed: a post, poll or recurring post id and when it is due (epoch s)."""

    id: int
    at: float


class ScheduleSnapshot(NamedTuple):
    """What the scheduler must wake up for."""

    posts: list[Due]  #: scheduled posts
    polls: list[Due]  #: open poll deadlines
    recurring: list[Due]  #: active recurring posts' next occurrence


@dataclass(frozen=True)
class SendCounts:
    """A post's copies per status (leased ones count as pending)."""

    delivered: int = 0
    pending: int = 0
    failed: int = 0
    skipped: int = 0

    @classmethod
    def from_statuses(cls, by_status: dict[str, int]) -> SendCounts:
        """From rows per `DeliveryStatus` value."""
        return cls(
            delivered=by_status.get(DeliveryStatus.DELIVERED, 0),
            pending=by_status.get(DeliveryStatus.PENDING, 0) + by_status.get(DeliveryStatus.LEASED, 0),
            failed=by_status.get(DeliveryStatus.FAILED, 0),
            skipped=by_status.get(DeliveryStatus.SKIPPED, 0),
        )


@dataclass(frozen=True)
class ProgressReport:
    """What a post's author is to be told now, as figures (the caller words them)."""

    author: Sealed  #: who posted, sealed in the post's row
    post_id: int
    counts: SendCounts
    progress: bool  #: the progress message (edited in place) changes
    done: bool  #: the fan-out is over (the progress message says so)
    summary: bool  #: send the final summary, once, as a message of its own
    reasons: tuple[FailureReason, ...] = ()  #: the commonest failure reasons (summary only)


@dataclass
class PostView:
    """What the worker needs of a post to render copies (media bytes are loaded lazily)."""

    post_id: int
    status: str
    edit_count: int
    content: Content
    media_id: int | None
    media_refs: dict[str, str]
    loaded_at: float
    author: Sealed | None = None
    #: a paid post's teaser: the price of the channel's tier on sale (None: sales ended)
    price: int | None = None
    #: a closed poll's final votes (a new follower's earlier copy shows them)
    tally: Tally | None = None


@dataclass(frozen=True)
class KeyRecord:
    """The recorded privacy-key state."""

    fingerprint: str  #: the key every sealed value in the database opens with
    rotating_to: str | None = None  #: set while a rotation to that key runs

    @classmethod
    def from_json(cls, value: str) -> KeyRecord:
        """From the stored JSON."""
        data = json.loads(value)
        return cls(str(data.get("fingerprint", "")), data.get("rotating_to") or None)

    def to_json(self) -> str:
        """The stored JSON."""
        data: dict[str, Any] = {"fingerprint": self.fingerprint}
        if self.rotating_to:
            data["rotating_to"] = self.rotating_to
        return json.dumps(data)


class SealedRow(NamedTuple):
    """A row holding a sealed value (key rotation)."""

    id: int
    platform: str
    blob: bytes
    account_index: str | None = None  #: its blind index, for tables that have one


__all__ = [
    "ClaimedDelivery",
    "DeliveryContext",
    "DeliveryOutcome",
    "Due",
    "FailureReason",
    "Followed",
    "KeyRecord",
    "PlatformCount",
    "PostView",
    "ProgressReport",
    "ScheduleSnapshot",
    "SealedRow",
    "SendCounts",
    "SourceRef",
    "Tally",
]
