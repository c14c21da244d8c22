"""Webhook acknowledgement latency under a 1,000-update burst: prints its figures (not a test).

The whole App (engine, delivery worker, Telegram adapter in webhook mode, SQLite or PostgreSQL)
runs in this process; the local Bot API server from the test suite and the client that plays
Telegram run in a second process, so their CPU is not the bridge's. The client POSTs 1,000
updates (each a `/channels` from a different person, so each is processed and answered) with
the secret header and times each request until its HTTP 200, which the bridge sends only once
the update is recorded. Two shapes: Telegram's way (at most `max_connections` = 40 requests in
flight, its default) and all 1,000 at once. Goal: p99 < 50 ms.

    python bench/webhook_ack.py [--updates 1000] [--connections 40] [--pg URL]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from sqlalchemy import text

SECRET = "bench-secret"
HEADER = "X-Telegram-Bot-Api-Secret-Token"


def _update(update_id: int, user: int) -> dict[str, Any]:
    who = {"id": user, "is_bot": False, "first_name": f"U{user}"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": int(time.time()),
            "chat": {"id": user, "type": "private", "first_name": who["first_name"]},
            "from": who,
            "text": "/channels",
        },
    }


async def _burst(url: str, first_id: int, users: list[int], connections: int) -> list[float]:
    """POST one update per user with at most `connections` in flight; each request's seconds."""
    slots = asyncio.Semaphore(connections)
    times: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as http:

        async def one(n: int) -> None:
            body = json.dumps(_update(first_id + n, users[n])).encode()
            async with slots:
                started = time.perf_counter()
                async with http.post(url, data=body, headers={HEADER: SECRET}) as response:
                    await response.read()
                    assert response.status == 200, response.status
                times.append(time.perf_counter() - started)

        await asyncio.gather(*(one(n) for n in range(len(users))))
    return times


def _telegram(conn: Connection) -> None:
    """The second process: the local Bot API server and the client playing Telegram."""
    from tests.telegram_api import FakeBotApi

    async def run() -> None:
        async with FakeBotApi() as api:
            conn.send((api.token, api.base_url, api.file_base_url))
            while True:
                order = await asyncio.to_thread(conn.recv)
                if order is None:
                    return
                url, first_id, count, connections = order
                users = [api.add_user(f"P{first_id + n}").id for n in range(count)]
                conn.send(await _burst(url, first_id, users, connections))

    asyncio.run(run())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _line(label: str, times: list[float], wall: float) -> str:
    ms = sorted(t * 1000 for t in times)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (
        f"{label}: {len(ms)} updates in {wall:.2f} s; ack p50 {statistics.median(ms):.1f} ms,"
        f" p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"
    )


async def _main(args: argparse.Namespace, conn: Connection) -> None:
    from adapters.telegram.adapter import TelegramAdapter
    from bridge.app import App
    from bridge.config import load_settings
    from bridge.ports import WebhookSpec

    token, base_url, file_url = conn.recv()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/tg"
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "CHANNELBRIDGE_GENERAL__DATA_DIR": tmp,
            "CHANNELBRIDGE_GENERAL__LOG_LEVEL": "WARNING",
            "CHANNELBRIDGE_OPERATORS": json.dumps([{"telegram": 1}]),
        }
        if args.pg:
            env["CHANNELBRIDGE_DATABASE__URL"] = args.pg
        settings = load_settings(None, env=env)
        adapter = TelegramAdapter(
            token,
            api_base_url=base_url,
            file_base_url=file_url,
            webhook=WebhookSpec("127.0.0.1", port, "/tg", SECRET, HEADER),
            webhook_url=url,
        )
        app = App(settings, adapters=[adapter])
        if args.pg:
            from bridge import migrate

            migrate.upgrade(app.store.engine, sealer=app.sealer)
            with app.store.connection() as c:
                c.execute(text("DELETE FROM received_update"))
        await app.start()
        gc.freeze()  # as `run_app` does after start-up
        profile = cProfile.Profile() if args.profile else None
        if profile is not None:
            profile.enable()
        try:
            conn.send((url, 1, 100, args.connections))  # warm-up: connections, statement caches
            await asyncio.to_thread(conn.recv)
            first = 101
            for label, connections in (
                (f"{args.connections} in flight (Telegram's default max_connections)", args.connections),
                (f"all {args.updates} at once", args.updates),
            ):
                started = time.perf_counter()
                conn.send((url, first, args.updates, connections))
                times = await asyncio.to_thread(conn.recv)
                wall = time.perf_counter() - started
                first += args.updates
                print(_line(label, times, wall))
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    with app.store.connection() as c:
                        left = c.execute(
                            text("SELECT count(*) FROM received_update WHERE NOT done")
                        ).scalar_one()
                    if not left:
                        break
                    await asyncio.sleep(0.1)
                print(f"  then processed (normalize -> App.handle) in {time.perf_counter() - started:.2f} s")
                await asyncio.sleep(2.0)  # the replies go out (30/s) in the background
        finally:
            if profile is not None:
                profile.disable()
                profile.dump_stats(args.profile)
            conn.send(None)
            await app.stop()


def main() -> None:
    """Parse the arguments, start the second process, run the two bursts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=40)
    parser.add_argument("--pg", help="a PostgreSQL URL (an empty database, migrated here)")
    parser.add_argument("--profile", help="write the bridge process's cProfile stats to this file")
    args = parser.parse_args()
    here, there = multiprocessing.Pipe()
    child = multiprocessing.get_context("spawn").Process(target=_telegram, args=(there,), daemon=True)
    child.start()
    try:
        asyncio.run(_main(args, here))
    finally:
        child.join(timeout=10)


if __name__ == "__main__":
    main()
