"""A delivery worker process for the crash test: sends through a recording fake adapter that
appends one line per send to a file, until nothing is due. Run as
`python -m tests.crash_worker DB_URL RECORD_FILE CONCURRENCY LEASE_S`."""

from __future__ import annotations

import asyncio
import os
import sys

from bridge.delivery import DeliveryPolicy, DeliveryWorker
from bridge.ports import Address, Content, MessageRef
from bridge.privacy import Sealer
from bridge.ratelimit import RateLimiter
from bridge.store import Store
from tests.support import FakeAdapter


class RecordingAdapter(FakeAdapter):
    """Appends `<target> <post id>` to a file per send, with O_APPEND so a kill loses no line."""

    def __init__(self, path: str) -> None:
        super().__init__(delay=0.002)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    async def send(self, address: Address, content: Content) -> MessageRef:
        ref = await super().send(address, content)
        os.write(self._fd, f"{address.target} {content.post_id}\n".encode())
        return ref


async def main(url: str, record: str, concurrency: int, lease_s: float) -> None:
    store = Store(url)
    adapter = RecordingAdapter(record)
    limiter = RateLimiter()
    worker = DeliveryWorker(
        store,
        Sealer(b"k" * 32),
        {"fake": adapter},
        limiter,
        policy=DeliveryPolicy(concurrency=concurrency, batch_size=50, lease_s=lease_s),
    )
    await worker.start()
    await worker.drain(timeout=120)
    await worker.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
