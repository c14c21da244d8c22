"""The Adapter protocol and the neutral inbound/outbound types, as adapters import them.

They are defined in `bridge.ports` so that the core never imports `adapters` (the dependency
direction is `adapters -> bridge`); this module is the adapter author's entry point.
"""

from bridge.ports import (
    MEDIA_KINDS,
    Adapter,
    Address,
    Button,
    Capabilities,
    Content,
    DeliveryError,
    Inbound,
    InboundHandler,
    InboundMedia,
    MediaContent,
    MediaRefRejected,
    Message,
    MessageRef,
    PermanentFailure,
    PollContent,
    PollVote,
    PostKind,
    RateLimits,
    Reaction,
    RecipientGone,
    Reply,
    RetryLater,
)

__all__ = [
    "MEDIA_KINDS",
    "Adapter",
    "Address",
    "Button",
    "Capabilities",
    "Content",
    "DeliveryError",
    "Inbound",
    "InboundHandler",
    "InboundMedia",
    "MediaContent",
    "MediaRefRejected",
    "Message",
    "MessageRef",
    "PermanentFailure",
    "PollContent",
    "PollVote",
    "PostKind",
    "RateLimits",
    "Reaction",
    "RecipientGone",
    "Reply",
    "RetryLater",
]
