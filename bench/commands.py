"""Command latency benchmark: prints its figures (it is not a test).

How long `/channels` and `/stats <handle>` take with a channel of 100,000 followers (target: under
5 ms each, since every command runs on the event loop). Followers are imported in bulk; a few
small channels are listed beside the big one. With `--with-post`, the big channel also has a
post delivered to every follower, so `/stats` counts that post's 100,000 deliveries too.

    python bench/commands.py                      # SQLite, 100,000 followers
    python bench/commands.py --with-post
    python bench/commands.py --pg postgresql+psycopg://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fanout import OPERATOR, _engine, _fresh, populate
from sqlalchemy import text

from bridge.engine import ChannelEngine
from bridge.ports import Address, Message
from bridge.store import Store

ROUNDS = 200


def _prepare(url: str, followers: int, with_post: bool) -> None:
    populate(url, followers)
    store = Store(url)
    engine = _engine(store)
    for n in range(5):
        engine.ensure_channel(f"small_{n}", f"Small {n}", "", True, [])
    if with_post:
        asyncio.run(engine.handle(Message(OPERATOR, "/post bench one post to everyone")))
        engine.plan(1)
        with store.connection() as conn:
            conn.execute(text("UPDATE delivery SET status = 'delivered', ref_index = 'r' || id"))
    store.dispose()


async def _time(engine: ChannelEngine, who: Address, command: str) -> tuple[float, float, str]:
    reply = ""
    for _ in range(10):  # warm caches and the connection pool
        reply = (await engine.handle(Message(who, command)))[0].text
    laps = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        await engine.handle(Message(who, command))
        laps.append(1000 * (time.perf_counter() - start))
    return statistics.median(laps), max(laps), reply


def measure(url: str) -> dict[str, tuple[float, float, str]]:
    """Median and worst milliseconds per command, with the last reply."""
    store = Store(url)
    engine = _engine(store)
    try:
        return {
            command: asyncio.run(_time(engine, who, command))
            for command, who in [
                ("/channels", Address("bench", "999999999")),
                ("/stats bench", OPERATOR),
            ]
        }
    finally:
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--followers", type=int, default=100_000)
    parser.add_argument("--pg", help="a PostgreSQL URL (its server is used; a database bench_* is created)")
    parser.add_argument("--with-post", action="store_true", help="add a post delivered to every follower")
    args = parser.parse_args()
    print(f"channelbridge command benchmark — {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp_name:
        stores = [("sqlite", None)] + ([("postgresql", args.pg)] if args.pg else [])
        for kind, base in stores:
            url = _fresh(base, Path(tmp_name), f"bench_commands_{kind}")
            _prepare(url, args.followers, args.with_post)
            for command, (median, worst, reply) in measure(url).items():
                first = reply.splitlines()[1] if "\n" in reply else reply
                print(
                    f"{kind:10} {args.followers:>7} followers{' + 1 post' if args.with_post else ''}: "
                    f"{command:13} median {median:6.2f} ms, worst {worst:6.2f} ms ({first[:60]})"
                )


if __name__ == "__main__":
    main()
