"""One `channelbridge` process for the multi-process test: the real App on PostgreSQL with a
spool adapter that shares a folder with its sibling processes.

    python -m tests.pg_node CONFIG SPOOL_DIR TAG

The spool plays a platform: `inbox.txt` holds inbound lines (`<sender> <text>`), read from a
cursor kept in the folder (like Telegram's server-side update offset, and moved only once a line
was handled), only by the process that holds the inbound lease; a line's number is its update id;
every send is appended to `sent.log` as `<time> <target> <post> <tag>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path

from bridge.app import App, run_app
from bridge.config import load_settings
from bridge.ports import (
    Address,
    Capabilities,
    Content,
    InboundHandler,
    Message,
    MessageRef,
    RateLimits,
    Reply,
)

SPOOL_RATE = 600.0  #: the platform budget shared by every process (sends per second)


class SpoolAdapter:
    """A platform made of files, sendable from every process (`shared_sending`)."""

    platform = "spool"
    shared_sending = True
    capabilities = Capabilities(native_polls=False)
    default_limits = RateLimits(global_per_s=SPOOL_RATE, per_chat_per_s=1000, group_per_min=60_000)

    def __init__(self, folder: Path, tag: str) -> None:
        self.folder = folder
        self.tag = tag
        self._sent = os.open(folder / "sent.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._handled = os.open(folder / "handled.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._replies = os.open(folder / "replies.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._handler: InboundHandler | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, handler: InboundHandler, *, receive: bool = True) -> None:
        """Keep the handler; read the inbox only when told to receive."""
        self._handler = handler
        await self.set_receiving(receive)

    async def set_receiving(self, receive: bool) -> None:
        """Start or stop reading the inbox."""
        if receive and self._reader is None:
            self._reader = asyncio.create_task(self._read())
        elif not receive and self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    async def stop(self) -> None:
        """Stop reading."""
        await self.set_receiving(False)

    async def _read(self) -> None:
        cursor_file = self.folder / "cursor"
        inbox = self.folder / "inbox.txt"
        while True:
            cursor = int(cursor_file.read_text()) if cursor_file.exists() else 0
            lines = inbox.read_text().splitlines() if inbox.exists() else []
            for number in range(cursor, len(lines)):
                sender, _, text = lines[number].partition(" ")
                assert self._handler is not None
                message = Message(Address("spool", sender), text, update=number + 1)
                for reply in await self._handler(message):
                    await self.reply(Address("spool", sender), reply)
                os.write(self._handled, f"{number} {self.tag}\n".encode())
                tmp = cursor_file.with_suffix(f".{self.tag}")
                tmp.write_text(str(number + 1))
                tmp.replace(cursor_file)
            await asyncio.sleep(0.05)

    async def send(self, address: Address, content: Content) -> MessageRef:
        """Append one line per send."""
        os.write(self._sent, f"{time.time():.6f} {address.target} {content.post_id} {self.tag}\n".encode())
        return MessageRef(f"{address.target}:{content.post_id}")

    async def edit(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Not used by the test."""

    async def delete(self, address: Address, ref: MessageRef) -> None:
        """Not used by the test."""

    async def close_poll(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Not used by the test."""

    async def reply(self, address: Address, reply: Reply) -> MessageRef | None:
        """Replies go to a log too, as `<time> <target> <tag> <first line>` (the test reads who
        was answered, by which process, and when)."""
        line = f"{time.time():.6f} {address.target} {self.tag} {reply.text.splitlines()[0]}\n"
        os.write(self._replies, line.encode())
        return None


async def main(config: Path, folder: Path, tag: str) -> None:
    settings = load_settings(config)
    app = App(settings, adapters=[SpoolAdapter(folder, tag)])
    app.engine.add_operator(Address("spool", "operator"))
    with (folder / "nodes.log").open("a") as out:
        out.write(f"{tag} {app.worker.owner} {os.getpid()}\n")
    await run_app(app)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]))
