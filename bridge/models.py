"""SQLModel tables: channels, admins, the private follower registry, posts, polls, the outbox.

Timestamps are float seconds since the epoch (UTC); they compare and index cheaply on every
backend. Platform addresses and message references appear only sealed (`sealed`,
`author_sealed`, `ref_sealed`: bound to their table and row, see `bridge.privacy`) or as keyed
blind indexes (`*_index`). `MediaUpload.ref` stays in clear: it names an uploaded file, not a
person or a chat.
"""

from __future__ import annotations

import enum

from sqlalchemy import BigInteger, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Column, Field, SQLModel


class PostStatus(enum.StrEnum):
    """Where a post is in its life."""

    DRAFT = "draft"  #: created, not yet scheduled or published
    SCHEDULED = "scheduled"  #: waiting for its time (scheduled_at)
    PUBLISHING = "publishing"  #: claimed by one process, fan-out being planned
    PUBLISHED = "published"  #: fan-out planned; copies are being or were delivered
    DELETED = "deleted"  #: removed by an admin (copies deleted where delivered)
    CANCELLED = "cancelled"  #: a scheduled post cancelled before it went out
    SKIPPED = "skipped"  #: a scheduled post missed by more than the grace, per late_policy


class DeliveryStatus(enum.StrEnum):
    """The state of one outbox row."""

    PENDING = "pending"  #: due at next_attempt_at
    LEASED = "leased"  #: claimed by a worker until lease_expires_at
    DELIVERED = "delivered"  #: the platform accepted it; ref_sealed says where
    FAILED = "failed"  #: given up: permanent failure or attempts exhausted (error says why)
    SKIPPED = "skipped"  #: not sent on purpose (post deleted, follower gone); error says why


class DeliveryAction(enum.StrEnum):
    """What an outbox row does."""

    SEND = "send"  #: deliver a new copy
    EDIT = "edit"  #: replace the content of the copy made by source_id
    DELETE = "delete"  #: remove the copy made by source_id
    CLOSE_POLL = "close_poll"  #: close the poll copy made by source_id
    TEASER = "teaser"  #: tell a free follower that a paid post went out (never edited or deleted)


class NoticeLane(enum.IntEnum):
    """Which queue a message that is not a post copy waits in; lower lanes go first."""

    REPLY = 0  #: the answer to a command someone just sent: ahead of everything
    NOTICE = 1  #: admin notices, progress messages and summaries: ahead of fan-out copies


#: rows still to be sent: only these hold back later rows to the same chat
OPEN_STATUSES = (DeliveryStatus.PENDING.value, DeliveryStatus.LEASED.value)
_OPEN = text("status IN ('pending', 'leased')")


class AdminRole(enum.StrEnum):
    """An admin's powers in one channel."""

    OWNER = "owner"  #: created the channel; may remove admins and delete the channel
    ADMIN = "admin"  #: may post, edit, delete posts and see statistics


class Channel(SQLModel, table=True):
    """A broadcast channel."""

    id: int | None = Field(default=None, primary_key=True)
    handle: str = Field(index=True, unique=True, max_length=32)
    name: str
    description: str = ""
    public: bool = True
    created_at: float
    deleted_at: float | None = None
    last_admin_number: int = 0  #: admin numbers handed out so far; a number is never reused
    history: int | None = None  #: earlier posts a new follower gets (None: config `general.history`)
    #: follows that came through the channel's link (a count, never who)
    link_follows: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class ChannelAdmin(SQLModel, table=True):
    """An admin of one channel; identified by a blind index, reachable through a sealed address."""

    __table_args__ = (
        UniqueConstraint("channel_id", "account_index"),
        UniqueConstraint("channel_id", "number"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", index=True)
    number: int  #: shown to admins instead of an identity (`/removeadmin <handle> <number>`)
    role: str = AdminRole.ADMIN.value
    account_index: str = Field(index=True)
    platform: str
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    added_at: float


class AdminInvite(SQLModel, table=True):
    """A one-time code that makes whoever accepts it an admin of a channel."""

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", index=True)
    code_digest: str = Field(index=True, unique=True)
    created_at: float
    expires_at: float
    used_at: float | None = None
    created_by: int | None = Field(default=None, index=True)  #: the inviting ChannelAdmin's id


class FollowerCount(SQLModel, table=True):
    """Subscriptions of one channel on one platform, counted as they change, so counting
    followers never scans the subscription table. Written in the same transaction as the
    subscriptions it counts (see `Store.subscribe`)."""

    channel_id: int = Field(foreign_key="channel.id", primary_key=True)
    platform: str = Field(primary_key=True)
    active: int = 0  #: not paused
    muted: int = 0  #: muted among the active ones
    paused: int = 0  #: the platform said the follower is gone


class Follower(SQLModel, table=True):
    """One person on one platform, known only by a blind index and a sealed address."""

    id: int | None = Field(default=None, primary_key=True)
    platform: str
    account_index: str = Field(index=True, unique=True)
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: float


class PersonLanguage(SQLModel, table=True):
    """The language one person chose with `/lang`, found by their blind index; the sealed
    address lets `rotate-key` compute the index under a new key. `/forgetme` removes it."""

    id: int | None = Field(default=None, primary_key=True)
    platform: str
    account_index: str = Field(index=True, unique=True)
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    language: str = Field(max_length=8)  #: a catalog's language code: "en", "fr"
    updated_at: float


class Subscription(SQLModel, table=True):
    """A follower following a channel."""

    __table_args__ = (
        UniqueConstraint("follower_id", "channel_id"),
        Index("ix_subscription_channel_follower", "channel_id", "follower_id"),
        Index("ix_subscription_channel_paused", "channel_id", "paused"),  # counts without the table
    )

    id: int | None = Field(default=None, primary_key=True)
    follower_id: int = Field(foreign_key="follower.id", index=True)
    channel_id: int = Field(foreign_key="channel.id")
    muted: bool = False
    paused: bool = False  #: the platform said the follower is gone (blocked the bot, left)
    created_at: float


class MediaBlob(SQLModel, table=True):
    """The bytes of a photo, video or sticker, kept so every platform can get a copy."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    mime: str
    filename: str
    sha256: str = Field(index=True)
    size: int
    data: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    width: int | None = None
    height: int | None = None
    duration: int | None = None


class MediaUpload(SQLModel, table=True):
    """A platform's own reference to an uploaded media blob (file_id, mxc:// URI)."""

    __table_args__ = (UniqueConstraint("media_id", "platform"),)

    id: int | None = Field(default=None, primary_key=True)
    media_id: int = Field(foreign_key="mediablob.id")
    platform: str
    ref: str


class Post(SQLModel, table=True):
    """A post of a channel: text, media or poll."""

    __table_args__ = (Index("ix_post_status_scheduled", "status", "scheduled_at"),)

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", index=True)
    kind: str
    text: str = ""
    media_id: int | None = Field(default=None, foreign_key="mediablob.id")
    status: str = PostStatus.DRAFT.value
    created_at: float
    scheduled_at: float | None = None
    published_at: float | None = None
    edited_at: float | None = None
    edit_count: int = 0
    deleted_at: float | None = None
    poll_multi: bool = False
    poll_closes_at: float | None = None
    poll_closed_at: float | None = None
    recurring_id: int | None = Field(default=None, foreign_key="recurringpost.id")
    author_platform: str | None = None  #: who to tell about progress (sealed)
    author_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    planned: int = 0  #: copies planned so far (for progress)
    plan_cursor: int = 0  #: fan-out planning resumes after this follower id
    plan_lease_until: float | None = None  #: a planner crashed if this passed while publishing
    progress_notified_at: float | None = None
    summary_sent: bool = False
    #: the copies per status once nothing is left to send (JSON; `/stats` reads it)
    send_counts: str | None = None
    paid: bool = False  #: goes to subscribers only (free followers get a teaser, mirrors nothing)
    stars: int | None = None  #: pay-per-post: Telegram followers get it as paid media at this price
    purchases: int = 0  #: pay-per-post purchases reported by the platform (a count)
    #: a quiz: the 0-based position of its correct option (None: not a quiz)
    quiz_correct: int | None = None
    quiz_explanation: str = ""  #: a quiz: shown with the correct answer (at most 200 characters)


class PostEdit(SQLModel, table=True):
    """The edit history of a post: the text it had before each edit."""

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    previous_text: str
    edited_at: float


class PollOption(SQLModel, table=True):
    """One option of a poll post; `position` is 0-based."""

    __table_args__ = (UniqueConstraint("post_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    position: int
    text: str


class Vote(SQLModel, table=True):
    """One chosen option of one voter (a blind id) in one poll."""

    __table_args__ = (UniqueConstraint("post_id", "voter_index", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    voter_index: str = Field(index=True)
    position: int


class QuizAnswer(SQLModel, table=True):
    """One person's first answer to a quiz (a blind id): whether it was right, counted by
    `/results`, and the mark that the correct answer was revealed to them (once)."""

    __table_args__ = (UniqueConstraint("post_id", "voter_index"),)

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    voter_index: str = Field(index=True)
    correct: bool


class PostReaction(SQLModel, table=True):
    """One reactor's (a blind id) current reaction on a post."""

    __table_args__ = (UniqueConstraint("post_id", "reactor_index"),)

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    reactor_index: str = Field(index=True)
    key: str


class MirrorRoom(SQLModel, table=True):
    """A read-only room or channel an operator named to receive every post of a channel."""

    __table_args__ = (UniqueConstraint("channel_id", "platform", "chat_id"),)

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", index=True)
    platform: str
    chat_id: str
    created_at: float


class Delivery(SQLModel, table=True):
    """An outbox row: one action (send, edit, delete, close poll) for one copy of a post."""

    __table_args__ = (
        Index("ix_delivery_due", "status", "next_attempt_at"),
        Index("ix_delivery_post_status", "post_id", "status"),
        Index("ix_delivery_ref_index", "platform", "ref_index"),
        Index("ix_delivery_ref_alt_index", "platform", "ref_alt_index"),
        Index("ix_delivery_follower", "follower_id"),
        # per-chat order: a row waits while an earlier one to the same chat is still open
        Index("ix_delivery_open_follower", "follower_id", "id", sqlite_where=_OPEN, postgresql_where=_OPEN),
        Index("ix_delivery_open_mirror", "mirror_id", "id", sqlite_where=_OPEN, postgresql_where=_OPEN),
        # the queue-depth gauge counts open rows per platform from this alone
        Index("ix_delivery_open_platform", "platform", sqlite_where=_OPEN, postgresql_where=_OPEN),
    )

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id")
    action: str = DeliveryAction.SEND.value
    platform: str
    follower_id: int | None = None
    mirror_id: int | None = None
    source_id: int | None = None  #: for edit/delete/close: the send whose copy this targets
    silent: bool = False
    status: str = DeliveryStatus.PENDING.value
    attempts: int = 0
    next_attempt_at: float
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    #: the copy's platform reference (it names the chat: a person), sealed to this row
    ref_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    ref_index: str | None = None  #: keyed blind index of the reference's key (votes, reactions)
    ref_alt_index: str | None = None  #: keyed blind index of its alternative key (a poll id)
    error: str | None = None
    created_at: float
    done_at: float | None = None
    #: a new follower's copy of an earlier post (history); raw INSERTs elsewhere leave it out
    earlier: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})


class RecurringPost(SQLModel, table=True):
    """A text posted on a recurring schedule (`/every`)."""

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", index=True)
    spec: str
    text: str
    active: bool = True
    created_at: float
    next_at: float | None = None
    author_platform: str | None = None
    author_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    paid: bool = False  #: each occurrence is a paid post


class FollowerSnapshot(SQLModel, table=True):
    """A channel's follower count on one day (UTC), for the followers-over-time chart: one
    row per channel per day, counts only."""

    channel_id: int = Field(foreign_key="channel.id", primary_key=True)
    day: str = Field(primary_key=True, max_length=10)  #: "YYYY-MM-DD"
    followers: int  #: active followers, every platform
    taken_at: float


class AuditEntry(SQLModel, table=True):
    """What an admin did to a channel (actor shown as admin number or 'operator')."""

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int | None = Field(default=None, index=True)
    actor: str
    action: str
    detail: str = ""
    at: float


class KeyValue(SQLModel, table=True):
    """Small pieces of process state (leases, cursors) shared through the database."""

    key: str = Field(primary_key=True)
    value: str
    updated_at: float


class Notice(SQLModel, table=True):
    """A message the bot sends that is not a copy of a post: a command reply, an admin notice,
    a post's progress message or its summary. It takes the same road as fan-out copies (the
    delivery worker, the rate limiter, the retry rules) in a lane ahead of them.

    The destination and the body are sealed; `chat_index` is a blind index of the chat, so
    notices to one chat go out in order. A progress message (`post_id` set) is one row for the
    post's whole fan-out: each update re-opens the row and is sent as an edit of `ref_sealed`.
    """

    __table_args__ = (
        Index("ix_notice_due", "status", "lane", "next_attempt_at"),
        Index("ix_notice_open_chat", "chat_index", "id", sqlite_where=_OPEN, postgresql_where=_OPEN),
        Index("ix_notice_progress", "post_id", unique=True),  #: one progress message per post
    )

    id: int | None = Field(default=None, primary_key=True)
    lane: int = NoticeLane.NOTICE.value
    platform: str
    chat_index: str
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  #: the sealed Address
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  #: the sealed Reply
    post_id: int | None = None  #: set on a post's progress message
    ref_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    status: str = DeliveryStatus.PENDING.value
    attempts: int = 0
    next_attempt_at: float
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    error: str | None = None
    created_at: float
    sent_at: float | None = None  #: when the message (or its latest edit) went out
    stale: bool = False  #: the progress text changed while it was being sent: edit once more


# ---- paid channels (issue 13): tiers, entitlements, the ledger ---------------------------


class LedgerKind(enum.StrEnum):
    """What a money event of the ledger is (amounts in Telegram Stars)."""

    CHARGE = "charge"  #: a first payment for a tier
    RENEWAL = "renewal"  #: a recurring payment of a subscription
    REFUND = "refund"  #: money given back (the amount is positive: what was refunded)
    CODE = "code"  #: an access code redeemed (amount 0, no charge id)


class Tier(SQLModel, table=True):
    """A channel's paid tier: a price in Stars per period. Changing the price ends the tier
    and starts another; at most one tier of a channel is on sale."""

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", index=True)
    price: int  #: Stars per period
    period_s: int = 30 * 24 * 3600
    on_sale: bool = True
    teaser: bool = True  #: free followers get a one-line teaser of its paid posts
    created_at: float
    ended_at: float | None = None


class Entitlement(SQLModel, table=True):
    """Paid access of one follower to one channel, until `paid_until` (no foreign key to the
    follower: `/forgetme` removes it with the follower)."""

    __table_args__ = (
        UniqueConstraint("follower_id", "channel_id"),
        # the once-a-minute sweep for endings not yet told reads this, not the whole table
        Index("ix_entitlement_expiry", "expiry_noticed", "paid_until"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", index=True)
    follower_id: int
    paid_until: float
    expiry_noticed: bool = False  #: the follower was told that access ended (once)


class LedgerEntry(SQLModel, table=True):
    """One money event. The payer is sealed to the row (`follower_sealed`) and found through a
    keyed blind index (`follower_index`); a Telegram charge id is recorded once."""

    __tablename__ = "ledger"
    #: a charge is recorded once per kind: its refund repeats its charge id
    __table_args__ = (UniqueConstraint("telegram_payment_charge_id", "kind", name="uq_ledger_charge_kind"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    amount: int  #: Stars
    telegram_payment_charge_id: str | None = None  #: None for codes
    channel_id: int = Field(foreign_key="channel.id", index=True)
    platform: str
    follower_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    follower_index: str = Field(index=True)
    created_at: float


class AccessCode(SQLModel, table=True):
    """A single-use code for `days` of a channel's paid tier (sold outside the bot, redeemed
    with `/redeem`). Only a keyed digest of the code is kept, never the code."""

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", index=True)
    digest: str = Field(index=True, unique=True)
    days: int
    created_at: float
    redeemed_at: float | None = None
    ledger_id: int | None = None  #: the ledger row of its redemption


class RedeemFailure(SQLModel, table=True):
    """One failed `/redeem` attempt, by the sender's blind index: attempts are throttled."""

    id: int | None = Field(default=None, primary_key=True)
    sender_index: str = Field(index=True)
    at: float


# ---- webhook mode (issue 14 part 1): updates recorded before they are acknowledged ------


class ReceivedUpdate(SQLModel, table=True):
    """One update a platform pushed to our webhook, recorded before the HTTP 200 that tells the
    platform it arrived. `(platform, update_id)` is unique: a redelivery is acknowledged and not
    run again. `body` is the sealed update (it holds user ids), NULL once processed: what
    remains of a processed row is its update_id, kept a day for deduplication."""

    __tablename__ = "received_update"
    __table_args__ = (
        UniqueConstraint("platform", "update_id", name="uq_received_update"),
        Index("ix_received_update_open", "done", "claimed_until"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform: str
    update_id: int = Field(sa_type=BigInteger)
    body: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    received_at: float
    done: bool = False
    claimed_by: str | None = None
    claimed_until: float = 0.0
