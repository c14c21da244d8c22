"""The Adapter protocol and the neutral inbound/outbound types, as adapters import them, and
the one inbound dispatch loop every adapter uses.

The types are defined in `bridge.ports` so that the core never imports `adapters` (the
dependency direction is `adapters -> bridge`); this module is the adapter author's entry point.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable

from bridge.commands import COMMAND_PREFIXES
from bridge.ports import (
    MEDIA_KINDS,
    Adapter,
    Address,
    Button,
    Capabilities,
    Content,
    DeliveryError,
    ForgettingAdapter,
    Inbound,
    InboundHandler,
    InboundMedia,
    MediaContent,
    MediaRefRejected,
    MediaTooLarge,
    Message,
    MessageRef,
    NoticingAdapter,
    OutboxSend,
    PermanentFailure,
    PollContent,
    PollVote,
    PostKind,
    RateLimits,
    Reaction,
    RecipientGone,
    Reply,
    RetryLater,
    SealingAdapter,
)

__all__ = [
    "COMMAND_PREFIXES",
    "MEDIA_KINDS",
    "Adapter",
    "Address",
    "Button",
    "Capabilities",
    "Content",
    "DeliveryError",
    "Dispatcher",
    "ForgettingAdapter",
    "Inbound",
    "InboundHandler",
    "InboundMedia",
    "MediaContent",
    "MediaRefRejected",
    "MediaTooLarge",
    "Message",
    "MessageRef",
    "NoticingAdapter",
    "OutboxSend",
    "PermanentFailure",
    "PollContent",
    "PollVote",
    "PostKind",
    "RateLimits",
    "Reaction",
    "RecipientGone",
    "Reply",
    "RetryLater",
    "SealingAdapter",
    "trace",
]

log = logging.getLogger(__name__)

#: sends one answer (the adapter's `reply`)
SendReply = Callable[[Address, Reply], Awaitable[MessageRef | None]]


class Dispatcher:
    """The one loop from an inbound event to its answers, shared by every adapter.

    The adapter turns a platform event into an `Inbound` and calls the dispatcher; it passes
    the event to the handler and sends each `Reply` the handler returns through the adapter's
    `reply`, once (under the app the handler queues its answers in the delivery worker's
    reply lane and returns none: the worker paces and retries them). A failing handler or
    answer is logged without its message (a message may name someone), never raised.
    """

    def __init__(self, platform: str, handler: InboundHandler, reply: SendReply) -> None:
        self.platform = platform
        self._handler = handler
        self._reply = reply

    async def __call__(self, event: Inbound, reply_to: Address | None = None) -> None:
        """Handle one event; its answers go to `reply_to`, by default the sender."""
        try:
            replies = await self._handler(event)
        except Exception as exc:
            log.error(
                "%s: the handler failed on an inbound %s: %s", self.platform, type(event).__name__, trace(exc)
            )
            return
        for answer in replies:
            await self.answer(reply_to or event.sender, answer)

    async def answer(self, to: Address, reply: Reply) -> MessageRef | None:
        """Send one answer now; a failure is logged and the answer dropped."""
        try:
            return await self._reply(to, reply)
        except DeliveryError as exc:  # e.g. the person blocked the bot meanwhile
            log.warning("%s: could not send a reply: %s", self.platform, exc)
        except Exception as exc:
            log.error("%s: could not send a reply: %s", self.platform, trace(exc))
        return None


def trace(exc: BaseException | None) -> str:
    """An exception's type and stack without its message (a message may name someone)."""
    if exc is None:
        return "no exception"
    frames = "".join(traceback.format_tb(exc.__traceback__))
    return f"{type(exc).__name__}\n{frames}".rstrip()
