"""memchat: an in-memory chat platform, packaged the way a third party would add a platform.

It depends on `bridge.platforms` and `bridge.ports` only; its distribution (`../memchat_plugin-0.1.dist-info`)
registers `PLUGIN` in the `channelbridge.adapters` entry points.
"""

from __future__ import annotations

import itertools

from pydantic import Field

from bridge.platforms import OperatorId, PlatformPlugin, PlatformServices, PlatformSettings
from bridge.ports import (
    Address,
    Capabilities,
    Content,
    InboundHandler,
    Message,
    MessageRef,
    PermanentFailure,
    RateLimits,
    Reply,
)


class MemChatSettings(PlatformSettings):
    """[memchat]: whether it runs, and the longest text a chat takes."""

    enabled: bool = False
    max_text: int = Field(default=4096, gt=0)


class MemChatAdapter:
    """Chats held in memory: `say()` is a person typing to the bot; `sent` and `answers` are what
    the bot wrote to each chat."""

    platform = "memchat"
    capabilities = Capabilities(native_polls=False, reactions=False)
    default_limits = RateLimits(global_per_s=10_000, per_chat_per_s=10_000, group_per_min=600_000)

    def __init__(self, max_text: int) -> None:
        self.max_text = max_text
        self.sent: list[tuple[str, Content]] = []
        self.answers: list[tuple[str, str]] = []
        self._handler: InboundHandler | None = None
        self._ids = itertools.count(1)

    async def say(self, who: str, text: str) -> None:
        """`who` writes `text` to the bot."""
        assert self._handler is not None, "not started"
        await self._handler(Message(Address(self.platform, who), text))

    async def start(self, handler: InboundHandler) -> None:
        """Nothing to connect to."""
        self._handler = handler

    async def stop(self) -> None:
        """Nothing to disconnect."""
        self._handler = None

    async def send(self, address: Address, content: Content) -> MessageRef:
        """Keep one copy of a post."""
        if len(content.text) > self.max_text:
            raise PermanentFailure("too long for memchat")
        self.sent.append((address.target, content))
        return MessageRef(f"{address.target}:{next(self._ids)}")

    async def edit(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Not used here."""

    async def delete(self, address: Address, ref: MessageRef) -> None:
        """Not used here."""

    async def close_poll(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Not used here."""

    async def reply(self, address: Address, reply: Reply) -> MessageRef | None:
        """Keep the bot's answer to one person."""
        self.answers.append((address.target, reply.text))
        return None


def _build(section: MemChatSettings, services: PlatformServices) -> MemChatAdapter:
    return MemChatAdapter(section.max_text)


PLUGIN = PlatformPlugin(
    name="memchat",
    settings_model=MemChatSettings,
    factory=_build,
    operator=OperatorId(str, '"<name>"'),
)
