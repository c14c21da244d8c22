"""The neutral types and the Adapter port shared by the core and every platform adapter.

The core (`bridge`) never imports an adapter; adapters import these names (re-exported by
`adapters.base`). Everything here is plain data: no SDK object crosses this line.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from bridge.i18n import N_, _

if TYPE_CHECKING:
    from bridge.privacy import Sealer


@dataclass(frozen=True)
class Address:
    """An opaque platform identity: who sent an event, or where a copy is delivered.

    `id` is the stable identity (Telegram user id, Matrix user id, console name, or a mirror
    room's chat id). `chat` is the conversation to write to when it differs from `id`
    (a Matrix follower's direct room); adapters fill it, the core stores it sealed.
    """

    platform: str
    id: str
    chat: str | None = None

    @property
    def target(self) -> str:
        """The chat to write to."""
        return self.chat or self.id

    def __repr__(self) -> str:  # never leak an identity through a repr in a log line
        return f"Address({self.platform}, <sealed>)"

    __str__ = __repr__


class PostKind(enum.StrEnum):
    """What a post carries."""

    TEXT = "text"  #: plain or formatted text
    PHOTO = "photo"  #: an image with an optional caption
    VIDEO = "video"  #: a video with an optional caption
    STICKER = "sticker"  #: a sticker (no caption)
    POLL = "poll"  #: a question with 2-12 options (a quiz: one of them is the correct answer)
    VOICE = "voice"  #: a voice note (audio/ogg, with its duration) with an optional caption


MEDIA_KINDS = frozenset({PostKind.PHOTO, PostKind.VIDEO, PostKind.STICKER, PostKind.VOICE})


@dataclass(frozen=True)
class InboundMedia:
    """Media attached to an inbound message.

    `data` holds the bytes when the adapter already has them (the console); otherwise `fetch`
    downloads them, and the engine calls it only for an authorized sender, after checking `size`
    (what the platform announced, maybe nothing or a lie) against the cap for the kind.
    `fetch(limit)` returns the bytes, or raises `MediaTooLarge` as soon as they exceed `limit`,
    or another `DeliveryError` when the download fails. `platform_ref` is the platform's own
    reference (Telegram file_id, Matrix mxc:// URI) so the same platform can reuse it.
    """

    kind: PostKind
    data: bytes | None = None
    mime: str = "application/octet-stream"
    filename: str = "media"
    platform_ref: str | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    size: int | None = None
    fetch: Callable[[int], Awaitable[bytes]] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Message:
    """A text message (maybe with media) sent to the bot: a command or a caption command."""

    sender: Address
    text: str
    media: InboundMedia | None = None
    #: the language the platform reports for the sender ("fr", "en"; None: unknown); a
    #: language chosen with `/lang` wins over it
    language: str | None = None
    #: the platform's id of the update this came from (Telegram's `update_id`; a keyed number of
    #: a Matrix event id), None when it has none; with several processes each update is handled
    #: once (`bridge.inbox.ReceivedOnce`)
    update: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PollVote:
    """A native poll answer. `post_ref` is the key the adapter returned in `MessageRef.key`
    or `MessageRef.alt`; `option_ids` are 0-based option positions (empty = retracted)."""

    sender: Address
    post_ref: str
    option_ids: tuple[int, ...]
    update: int | None = field(default=None, compare=False)  #: as `Message.update`


@dataclass(frozen=True)
class Reaction:
    """A reaction on a delivered copy. `key` None means the reaction was removed."""

    sender: Address
    post_ref: str
    key: str | None
    update: int | None = field(default=None, compare=False)  #: as `Message.update`


@dataclass(frozen=True)
class PreCheckout:
    """A payer confirms an invoice the bot issued: the bot must accept or refuse it at once
    (Telegram allows 10 s). `payload` is the invoice's (no identity in it); the handler calls
    `answer(None)` to accept or `answer(message)` to refuse with a message the payer reads."""

    sender: Address
    payload: str
    currency: str
    total_amount: int
    answer: Callable[[str | None], Awaitable[None]] = field(compare=False, repr=False)
    update: int | None = field(default=None, compare=False)  #: as `Message.update`


@dataclass(frozen=True)
class PaymentReceived:
    """A payment went through (a first charge or a subscription's renewal). `expires_at` is
    when the paid period ends (Telegram's `subscription_expiration_date`), when it has one."""

    sender: Address
    payload: str
    currency: str
    total_amount: int
    charge_id: str  #: the platform's charge id (Telegram's telegram_payment_charge_id)
    expires_at: float | None = None
    recurring: bool = False  #: part of a subscription
    first_recurring: bool = False  #: the subscription's first payment (not a renewal)
    update: int | None = field(default=None, compare=False)  #: as `Message.update`


@dataclass(frozen=True)
class PaymentRefunded:
    """The platform refunded a payment (Telegram's `refunded_payment`)."""

    sender: Address
    payload: str
    currency: str
    total_amount: int
    charge_id: str
    update: int | None = field(default=None, compare=False)  #: as `Message.update`


@dataclass(frozen=True)
class PaidMediaPurchased:
    """Someone bought a pay-per-post copy (Telegram's `purchased_paid_media`); `payload` is
    the one the copy was sent with (no identity in it)."""

    sender: Address
    payload: str
    update: int | None = field(default=None, compare=False)  #: as `Message.update`


#: money events from a platform: never throttled (a pre-checkout must be answered within seconds)
PaymentEvent = PreCheckout | PaymentReceived | PaymentRefunded | PaidMediaPurchased
PAYMENT_EVENTS = (PreCheckout, PaymentReceived, PaymentRefunded, PaidMediaPurchased)

Inbound = Message | PollVote | Reaction | PaymentEvent


@dataclass(frozen=True)
class Button:
    """An inline button: pressing it sends `command` as if the user had typed it."""

    label: str
    command: str
    url: str | None = None  #: set: the button opens this link instead of sending `command`


@dataclass(frozen=True)
class Reply:
    """An answer to the sender of a command, or a notice. `text` is plain; `html` optional rich
    form. With `edit_of` (the `MessageRef.key` an earlier `reply` returned) the adapter edits
    that message in place instead of sending a new one (a post's progress message)."""

    text: str
    buttons: tuple[Button, ...] = ()
    html: str | None = None
    edit_of: str | None = None
    invoice: Invoice | None = None  #: a platform that sells adds a pay button for it
    #: a PNG picture (a `/stats` chart): sent as a photo/image with `text` as its caption
    image: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Invoice:
    """Something to pay for, attached to a reply: a platform with payments (Telegram Stars)
    turns it into a pay link; the payload names channel and tier, never a person."""

    title: str
    description: str
    payload: str
    stars: int
    period_s: int | None = None  #: a subscription's period (Telegram: 30 days), None: once


@dataclass(frozen=True)
class MediaContent:
    """A post's media as the adapter needs it to send one copy.

    When `platform_ref` is set the adapter must reuse it instead of uploading `data`.
    """

    blob_id: int
    kind: PostKind
    mime: str
    filename: str
    data: bytes | None
    platform_ref: str | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None


@dataclass(frozen=True)
class PollContent:
    """A poll as rendered to one copy."""

    question: str
    options: tuple[str, ...]
    multi: bool = False
    closed: bool = False
    correct: int | None = None  #: a quiz: the 0-based position of the correct option
    explanation: str = ""  #: a quiz: shown with the correct answer (at most 200 characters)

    @property
    def quiz(self) -> bool:
        """Whether this poll is a quiz (one option is the correct answer)."""
        return self.correct is not None


@dataclass(frozen=True)
class Content:
    """One rendered post for one destination.

    `delivery_id` identifies the outbox row; adapters derive idempotency keys from it
    (Matrix transaction ids). `silent` is set for muted followers.
    """

    post_id: int
    kind: PostKind
    channel_handle: str
    channel_name: str
    text: str = ""
    media: MediaContent | None = None
    poll: PollContent | None = None
    silent: bool = False
    delivery_id: int = 0
    edited: bool = False
    stars: int | None = None  #: pay-per-post: a platform that sells paid media asks this price
    paid_payload: str | None = None  #: sent with a paid-media copy, reported back on purchase
    buttons: tuple[Button, ...] = ()  #: e.g. a teaser's Subscribe button
    earlier: bool = False  #: a new follower's copy of a post published before they followed
    #: the channel's follow link on this platform; the adapter sets it (it knows its own bot)
    follow_url: str | None = None

    @property
    def header(self) -> str:
        """The line that introduces a post, e.g. `Daily News (#12)`, or `Daily News (#12,
        earlier post)` for a new follower's copy of an earlier post."""
        return f"{self.channel_name} (#{self.post_id}{_(EARLIER_MARK) if self.earlier else ''})"

    @property
    def follow_command(self) -> str:
        """What to send the bot to follow this post's channel (a copy's follow link)."""
        return f"/follow {self.channel_handle}"


#: how a header marks an earlier post
EARLIER_MARK = N_(", earlier post")  # in the operator's language (`general.language`)


@dataclass(frozen=True)
class MessageRef:
    """Where one copy landed. `key` addresses the copy for edit/delete (adapter-defined,
    e.g. `"<chat>:<message id>"`); `alt` is a second lookup key for inbound events that do not
    carry the message (a Telegram poll id); `media_ref` is the platform's reference for uploaded
    media, stored so every later copy reuses it."""

    key: str
    alt: str | None = None
    media_ref: str | None = None


class DeliveryError(Exception):
    """Base of the three failures an adapter may raise; nothing else is expected."""


class RetryLater(DeliveryError):
    """The platform asked us to wait (rate limit) or failed transiently; try again later."""

    def __init__(self, after_s: float | None = None, *, scope: str = "chat", reason: str = ""):
        #: seconds the platform asked for, or None to use exponential backoff
        self.after_s = after_s
        #: "chat" pauses that destination only; "global" pauses the whole platform token
        self.scope = scope
        self.reason = reason or "retry later"
        super().__init__(f"{self.reason} (after {after_s}s, scope {scope})")


class RecipientGone(DeliveryError):
    """The recipient blocked the bot, left the room or no longer exists."""

    def __init__(self, reason: str = "recipient is gone"):
        self.reason = reason
        super().__init__(reason)


class PermanentFailure(DeliveryError):
    """The platform refused this send for good; retrying will not help."""

    def __init__(self, reason: str = "permanent failure"):
        self.reason = reason
        super().__init__(reason)


class MediaRefRejected(PermanentFailure):
    """The platform no longer accepts a stored media reference (e.g. a Telegram file_id after
    the bot token changed): the worker forgets the reference and uploads the bytes again."""

    def __init__(self, reason: str = "the stored media reference was refused"):
        super().__init__(reason)


class MediaTooLarge(PermanentFailure):
    """The media is larger than the limit for its kind: it was not (fully) downloaded."""

    def __init__(self, reason: str = "the media is too large"):
        super().__init__(reason)


@dataclass(frozen=True)
class Capabilities:
    """What a platform can render natively; missing ones degrade visibly."""

    media: frozenset[PostKind] = field(default_factory=lambda: frozenset(MEDIA_KINDS))
    native_polls: bool = True
    reactions: bool = True
    edits: bool = True


@dataclass(frozen=True)
class RateLimits:
    """A platform's sending budget: a global rate, per-chat rate, and per-group rate.

    `paid_per_s`, when set, is a second global budget for fan-out copies sent as paid
    broadcasts (Telegram's `allow_paid_broadcast`); replies and notices stay on `global_per_s`.
    """

    global_per_s: float = 30.0
    per_chat_per_s: float = 1.0
    group_per_min: float = 20.0
    paid_per_s: float | None = None


InboundHandler = Callable[[Inbound], Awaitable[Sequence[Reply]]]


@runtime_checkable
class Adapter(Protocol):
    """A platform adapter. The app calls `start` once and `stop` once; the delivery worker
    calls `send`/`edit`/`delete`/`close_poll`, and `reply` for command answers and notices
    (queued by the app, paced like every copy). Failures are only `RetryLater`,
    `RecipientGone`, `PermanentFailure`."""

    platform: str
    capabilities: Capabilities
    default_limits: RateLimits

    async def start(self, handler: InboundHandler) -> None:
        """Connect and begin passing each inbound event to `handler`; returns once running."""

    async def stop(self) -> None:
        """Stop receiving, finish in-flight work, disconnect."""

    async def send(self, address: Address, content: Content) -> MessageRef:
        """Deliver one copy of a post to one follower chat or mirror room."""

    async def edit(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Replace an already delivered copy's content."""

    async def delete(self, address: Address, ref: MessageRef) -> None:
        """Remove an already delivered copy."""

    async def close_poll(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Close a delivered poll copy (no more answers)."""

    async def reply(self, address: Address, reply: Reply) -> MessageRef | None:
        """Answer a command, or send a notice, in that person's chat with the bot (or edit the
        earlier message `reply.edit_of`). The delivery worker calls it, under the same rate
        limiter and retry rules as copies; it returns where the message landed when the
        platform can edit it later, else None."""


@runtime_checkable
class ForgettingAdapter(Protocol):
    """An optional extension: an adapter that keeps something about people of its own (the
    Matrix adapter's direct-chat map, reactions, the DM itself) erases it when asked. The app
    calls `forget` after a `/forgetme` was applied and answered by the engine."""

    async def forget(self, address: Address) -> None:
        """Erase what this adapter keeps about the person at `address` (the sender of the
        `/forgetme`); failures are logged, never raised."""


@runtime_checkable
class SealingAdapter(Protocol):
    """An optional extension: an adapter that keeps files of its own that can name people (the
    Matrix adapter's olm store and state) seals them with the operator's privacy key. The app
    hands it the sealer before `start()`."""

    def use_sealer(self, sealer: Sealer) -> None:
        """Seal what this adapter writes to disk with `sealer` from now on."""


#: queues a notice of an adapter's own to a chat; with `wait`, returns once it went out (or
#: after a bounded wait), so what must follow it (leaving the room) does not overtake it
OutboxSend = Callable[[Address, str, bool], Awaitable[None]]


@runtime_checkable
class NoticingAdapter(Protocol):
    """An optional extension: an adapter with notices of its own to send (the Matrix adapter
    tells a shared room that commands work only in a direct chat, and why it leaves). The app
    hands it the reply lane before `start()`: those notices then go out through the delivery
    worker like every answer, paced and retried."""

    def use_outbox(self, send: OutboxSend) -> None:
        """Send this adapter's own notices with `send` from now on."""


@runtime_checkable
class SharedSendingAdapter(Adapter, Protocol):
    """An optional extension for several processes on one database: an adapter that can send
    from every process at once declares `shared_sending = True`, starts without receiving, and
    receives only while its process holds the platform's inbound lease. Adapters without it
    (one connection, one encryption store) run only in the lease holder, which then also sends
    everything for that platform."""

    shared_sending: bool

    async def start(self, handler: InboundHandler, *, receive: bool = True) -> None:
        """Connect; receive events only when `receive` is true."""

    async def set_receiving(self, receive: bool) -> None:
        """Begin or stop receiving events (the inbound lease was won or lost)."""


@runtime_checkable
class MirrorRoomHolder(Protocol):
    """An optional extension: an adapter that treats mirror rooms differently from private
    chats (the Matrix adapter accepts their invites and ignores commands in them) is told of
    every mirror room: the configured and stored ones before `start()`, and each one an
    operator adds while it runs."""

    def add_mirror_room(self, chat: str) -> None:
        """Treat `chat` as a mirror room from now on."""


@runtime_checkable
class MirrorRoomCreator(Protocol):
    """An optional extension: an adapter whose platform supports `/mirror <handle> create
    <platform>` creates a read-only room for a channel (its plug-in's `MirrorSyntax.creatable`)."""

    async def create_mirror_room(self, name: str, topic: str) -> str:
        """Create a read-only mirror room named `name` with `topic`; return its address."""


@dataclass(frozen=True)
class StarTransaction:
    """One entry of a platform's own list of Stars transactions (Telegram's
    `getStarTransactions`), as reconciliation needs it: never who paid."""

    id: str  #: for an invoice payment or its refund: the charge id
    amount: int  #: Stars
    date: float  #: epoch seconds
    incoming: bool  #: money in (a payment) rather than out (a refund)
    #: the invoice payload of an invoice payment or its refund ("" when not given); None for
    #: anything else (paid media, withdrawals)
    payload: str | None = None


@runtime_checkable
class StarsGateway(Protocol):
    """An optional extension: an adapter whose platform takes Stars payments (Telegram) gives
    money back, stops a subscription's renewals and lists its transactions. The engine calls
    `refund` for `/refund` and `set_subscription_canceled` for `/unsubscribe`; `channelbridge
    payments reconcile` calls `star_transactions`. Failures are `DeliveryError`s."""

    async def refund(self, payer: Address, charge_id: str) -> None:
        """Refund the charge `charge_id` to `payer` (Telegram's refundStarPayment)."""

    async def set_subscription_canceled(self, payer: Address, charge_id: str, canceled: bool) -> None:
        """Cancel (or resume) the renewals of the subscription `charge_id` belongs to."""

    async def star_transactions(self, offset: int, limit: int) -> list[StarTransaction]:
        """One page of the bot's Stars transactions, oldest first (`limit` at most 100)."""


@runtime_checkable
class LocalTerminal(Protocol):
    """An optional extension: an adapter that is the operator's own terminal (the console). The
    app makes its user an operator, lets it wait for deliveries (`:sync`), stops when its input
    ends, and leaves it out of the sending report."""

    finished: asyncio.Event
    """Set when the terminal's input ends: the app then shuts down."""

    @property
    def operator_address(self) -> Address:
        """The local user, who is an operator."""

    def set_sync(self, sync: Callable[[], Awaitable[None]]) -> None:
        """Install what waits until every due delivery is sent."""


@runtime_checkable
class ConnectedAdapter(Protocol):
    """An optional extension: an adapter that can tell whether its connection to the platform
    works right now (its last poll, sync or call succeeded). `/readyz` asks it; an adapter
    without it counts as connected once started."""

    def is_connected(self) -> bool:
        """Whether the platform answered lately; cheap, never blocks."""


@dataclass(frozen=True)
class WebhookSpec:
    """Where an adapter in webhook mode receives its updates: the HTTP address to listen on,
    the path, and the shared secret the platform sends in a header (`header`)."""

    host: str
    port: int
    path: str
    secret: str = field(repr=False)
    header: str


@runtime_checkable
class WebhookAdapter(Protocol):
    """An optional extension: an adapter that can receive by webhook. The app serves
    `webhook_spec()`'s path, records each update durably, acknowledges it, then hands it back
    to `process_update` (from a processor, possibly in another process)."""

    def webhook_spec(self) -> WebhookSpec | None:
        """The webhook to serve, or None in polling mode."""

    def update_key(self, update: dict[str, object]) -> int | None:
        """The update's unique id (deduplication), None for a body that is not an update."""

    async def process_update(self, update: dict[str, object]) -> None:
        """Run one recorded update through the normal inbound path (normalize -> handler)."""
