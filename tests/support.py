"""Test support: a fake adapter that records calls and returns scripted results, and builders
for an engine + worker over a real SQLite (or PostgreSQL) store."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bridge.delivery import DeliveryPolicy, DeliveryWorker
from bridge.engine import ChannelEngine, EngineOptions
from bridge.notices import NoticeQueue
from bridge.ports import (
    Address,
    Capabilities,
    Content,
    DeliveryError,
    InboundHandler,
    Message,
    MessageRef,
    RateLimits,
    Reply,
)
from bridge.privacy import Sealer
from bridge.ratelimit import RateLimiter
from bridge.store import Store
from bridge.when import parse_recurrence, parse_when

OPERATOR = Address("fake", "op-1000001")


@dataclass
class Call:
    """One call the fake adapter received."""

    action: str
    target: str
    post_id: int
    text: str = ""
    silent: bool = False
    media_ref: str | None = None
    has_data: bool = False
    earlier: bool = False  #: a new follower's copy of an earlier post
    kind: str = ""


class FakeAdapter:
    """An adapter that records every call. `script` maps a target to exceptions raised (in
    order) before that target's sends succeed; `rule` may raise for any call."""

    capabilities = Capabilities()
    default_limits = RateLimits(global_per_s=100_000, per_chat_per_s=100_000, group_per_min=6_000_000)

    def __init__(self, platform: str = "fake", delay: float = 0.0) -> None:
        self.platform = platform
        self.calls: list[Call] = []
        self.replies: list[tuple[str, str]] = []
        #: failures raised (in order) by the next replies
        self.reply_script: list[DeliveryError] = []
        #: (key of the reply edited, new text)
        self.edited_replies: list[tuple[str, str]] = []
        self.script: dict[str, list[DeliveryError]] = {}
        self.rule: Callable[[str, Address, Content | None], None] | None = None
        self.delay = delay
        self._ids = itertools.count(1)
        self.uploads = 0

    async def start(self, handler: InboundHandler) -> None:
        """Nothing to connect to."""

    async def stop(self) -> None:
        """Nothing to disconnect."""

    def _maybe_fail(self, action: str, address: Address, content: Content | None) -> None:
        queue = self.script.get(address.target)
        if queue:
            raise queue.pop(0)
        if self.rule is not None:
            self.rule(action, address, content)

    async def send(self, address: Address, content: Content) -> MessageRef:
        """Record a send; media without a platform ref counts as an upload."""
        if self.delay:
            await asyncio.sleep(self.delay)
        self._maybe_fail("send", address, content)
        media_ref = None
        if content.media is not None:
            media_ref = content.media.platform_ref
            if media_ref is None:
                self.uploads += 1
                media_ref = f"file-{content.media.blob_id}-{self.uploads}"
        self.calls.append(
            Call(
                "send",
                address.target,
                content.post_id,
                content.text,
                content.silent,
                media_ref,
                bool(content.media and content.media.data),
                content.earlier,
                content.kind.value,
            )
        )
        n = next(self._ids)
        return MessageRef(
            f"{address.target}:{n}", alt=f"poll-{n}" if content.poll else None, media_ref=media_ref
        )

    async def edit(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Record an edit."""
        self._maybe_fail("edit", address, content)
        self.calls.append(Call("edit", address.target, content.post_id, content.text))

    async def delete(self, address: Address, ref: MessageRef) -> None:
        """Record a delete."""
        self._maybe_fail("delete", address, None)
        self.calls.append(Call("delete", address.target, 0, ref.key))

    async def close_poll(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Record a poll close."""
        self._maybe_fail("close_poll", address, content)
        self.calls.append(Call("close_poll", address.target, content.post_id))

    async def reply(self, address: Address, reply: Reply) -> MessageRef | None:
        """Record a reply or notice (an edit of an earlier one in `edited_replies`)."""
        if self.reply_script:
            raise self.reply_script.pop(0)
        if reply.edit_of is not None:
            self.edited_replies.append((reply.edit_of, reply.text))
            return MessageRef(reply.edit_of)
        self.replies.append((address.target, reply.text))
        return MessageRef(f"{address.target}:r{next(self._ids)}")

    def sends_to(self, target: str) -> list[Call]:
        """Sends that reached one target."""
        return [c for c in self.calls if c.action == "send" and c.target == target]

    def of(self, action: str) -> list[Call]:
        """Calls of one kind."""
        return [c for c in self.calls if c.action == action]


@dataclass
class Harness:
    """An engine, a worker and a fake adapter over one store."""

    store: Store
    sealer: Sealer
    engine: ChannelEngine
    worker: DeliveryWorker
    adapter: FakeAdapter

    async def say(self, who: Address, text: str) -> str:
        """Send a command as `who`; returns the replies joined by newlines."""
        replies = await self.engine.handle(Message(who, text))
        return "\n".join(r.text for r in replies)

    async def settle(self) -> None:
        """Plan every fan-out and deliver everything due."""
        await self.engine.drain_planning()
        await self.worker.drain(timeout=30)


def person(n: int, platform: str = "fake") -> Address:
    """A follower address; ids look like real platform ids so privacy tests mean something."""
    return Address(platform, str(700_000_000 + n))


def build(
    url: str,
    *,
    adapter: FakeAdapter | None = None,
    policy: DeliveryPolicy | None = None,
    clock: Callable[[], float] | None = None,
    options: EngineOptions | None = None,
) -> Harness:
    """A harness over a fresh schema at `url`."""
    store = Store(url)
    store.create_schema()
    sealer = Sealer(b"k" * 32)
    fake = adapter or FakeAdapter()
    limiter = RateLimiter()
    limiter.configure(fake.platform, fake.default_limits)
    engine = ChannelEngine(
        store,
        sealer,
        operators=[OPERATOR],
        options=options or EngineOptions(),
        parse_when=parse_when,
        parse_recurrence=parse_recurrence,
        clock=clock or time.time,
    )
    worker = DeliveryWorker(
        store,
        sealer,
        {fake.platform: fake},
        limiter,
        policy=policy or DeliveryPolicy(concurrency=4, backoff_base_s=0.01, backoff_max_s=0.05),
        notices=NoticeQueue(
            store, sealer, progress_interval_s=(policy or DeliveryPolicy()).progress_interval_s
        ),
        clock=clock or time.time,
    )
    engine.set_on_work(worker.wake)
    return Harness(store, sealer, engine, worker, fake)


def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'test.db'}"
