"""`/metrics` scrape time at 100,000 followers: prints its figures (it is not a test).

Builds a SQLite database with one channel of 100,000 followers (bench/fanout.py's bulk import),
serves `/metrics` from the product's HTTP server with the product's gauges (read from the
database at each scrape), and times real HTTP GETs: (a) idle, nothing queued; (b) during a
fan-out, with 100,000 copies queued. Goal: < 20 ms per scrape.

    python bench/metrics_scrape.py [--followers 100000] [--scrapes 50] [--pg URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from aiohttp import web
from sqlalchemy import text

from bench.fanout import _engine, populate
from bridge.flood import FloodControl
from bridge.http import HttpServer
from bridge.metrics import CONTENT_TYPE, Metrics
from bridge.ports import Message, RateLimits
from bridge.ratelimit import RateLimiter
from bridge.status import database_gauges
from bridge.store import Store


async def _scrape_times(port: int, scrapes: int) -> list[float]:
    times = []
    async with aiohttp.ClientSession() as session:
        for _ in range(scrapes):
            started = time.perf_counter()
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                await response.read()
                assert response.status == 200
            times.append(time.perf_counter() - started)
    return times


def _line(label: str, times: list[float], metrics: Metrics) -> str:
    ms = sorted(t * 1000 for t in times)
    p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
    return (
        f"{label}: p50 {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms, max {ms[-1]:.2f} ms"
        f" (gauges from the database: {metrics.last_gauge_s * 1000:.2f} ms at the last scrape)"
    )


async def run(url: str, followers: int, scrapes: int) -> None:
    """Populate, serve, scrape, report."""
    started = time.perf_counter()
    populate(url, followers)
    print(f"populated {followers:,} followers in {time.perf_counter() - started:.1f} s")
    store = Store(url)
    flood = FloodControl(RateLimiter())
    flood.configure("bench", RateLimits(30, 1, 20))
    metrics = Metrics()
    metrics.gauge_source = lambda: database_gauges(store, flood)

    async def serve(request: web.Request) -> web.Response:
        body = await asyncio.to_thread(metrics.render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    server = HttpServer("127.0.0.1", 0)
    server.add_route("GET", "/metrics", serve)
    await server.start()
    try:
        await _scrape_times(server.port, 3)  # warm the caches and the connection
        print(_line("(a) idle, 100k followers", await _scrape_times(server.port, scrapes), metrics))
        engine = _engine(store)
        from bench.fanout import OPERATOR

        await engine.handle(Message(OPERATOR, "/post bench queued, never sent"))
        await engine.drain_planning()
        body = metrics.render().decode()
        queued = [line for line in body.splitlines() if line.startswith("channelbridge_queue_depth{")]
        print(f"queued: {queued}")
        print(_line("(b) 100k copies queued", await _scrape_times(server.port, scrapes), metrics))
        if store.is_postgres:  # what autovacuum does soon after a fan-out is planned
            with store.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE delivery"))
            again = await _scrape_times(server.port, scrapes)
            print(_line("(b') the same after VACUUM ANALYZE", again, metrics))
    finally:
        await server.stop()
        store.dispose()


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--pg", help="a PostgreSQL URL of an empty database instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.pg or f"sqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(run(url, args.followers, args.scrapes))


if __name__ == "__main__":
    main()
