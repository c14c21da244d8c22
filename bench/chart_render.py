"""`/stats <handle> chart` at scale: a channel with 100,000 followers and 1,000 posts (SQLite).

Builds the figures the chart reads (a year of daily follower snapshots, 1,000 settled posts
whose copy counts are kept on the post, reactions), then times reading the figures and drawing
the PNG, and writes the picture to docs/chart-example.png (the README shows it).

    .venv/bin/python bench/chart_render.py [--out docs/chart-example.png]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from bridge.engine.chart import render_png
from bridge.models import Channel, FollowerCount, Post, PostReaction, PostStatus
from bridge.store import Store
from bridge.store.charts import ChartData, day_of

FOLLOWERS = 100_000
POSTS = 1_000
DAY = 86_400.0


def build(store: Store, now: float) -> int:
    """The channel and its history; returns its id."""
    rng = random.Random(15)
    with store.unit_of_work() as s:
        channel = Channel(handle="news", name="Daily News", created_at=now - 365 * DAY)
        s.add(channel)
        s.flush()
        cid = channel.id or 0
        s.add(FollowerCount(channel_id=cid, platform="telegram", active=FOLLOWERS))
        for i in range(POSTS):
            delivered = FOLLOWERS - rng.randint(0, 900)
            counts = {"delivered": delivered, "failed": FOLLOWERS - delivered}
            s.add(
                Post(
                    channel_id=cid,
                    kind="text",
                    text=f"post {i}",
                    status=PostStatus.PUBLISHED.value,
                    created_at=now - (POSTS - i) * 3600,
                    published_at=now - (POSTS - i) * 3600,
                    send_counts=json.dumps(counts),
                )
            )
    with store.unit_of_work() as s:
        for day in range(365):  # a year of daily snapshots, growing to today's count
            at = now - (365 - day) * DAY
            followers = int(FOLLOWERS * (0.2 + 0.8 * day / 365)) + rng.randint(-500, 500)
            store.charts.snapshot(s, at, cid)
            s.connection().exec_driver_sql(
                "UPDATE followersnapshot SET followers = ? WHERE channel_id = ? AND day = ?",
                (followers, cid, day_of(at)),
            )
        last = store.charts.last_posts(s, store.fanout, cid)
        for figures in last:
            for n in range(rng.randint(0, 60)):
                s.add(PostReaction(post_id=figures.post_id, reactor_index=f"r{n}", key="👍"))
    return cid


def main() -> None:
    """Build, time, write."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs/chart-example.png"
    )
    args = parser.parse_args()
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/bench.db")
        store.create_schema()
        cid = build(store, now)
        render_png(ChartData("warm-up", [], []))  # matplotlib's first draw loads fonts
        timings = []
        png = b""
        for _ in range(5):
            started = time.perf_counter()
            with store.unit_of_work() as s:
                store.charts.snapshot(s, now, cid)
                data = ChartData(
                    "Daily News",
                    store.charts.followers_over_time(s, cid),
                    store.charts.last_posts(s, store.fanout, cid),
                )
            read = time.perf_counter()
            png = render_png(data)
            timings.append((read - started, time.perf_counter() - read))
        store.dispose()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(png)
    reads = sorted(r for r, _ in timings)
    draws = sorted(d for _, d in timings)
    total = sorted(r + d for r, d in timings)
    print(f"channel: {FOLLOWERS:,} followers, {POSTS:,} posts, {len(data.followers)} daily snapshots")
    print(f"figures read: median {1000 * reads[2]:.1f} ms; PNG drawn: median {1000 * draws[2]:.0f} ms")
    print(f"chart total: median {1000 * total[2]:.0f} ms, worst {1000 * total[-1]:.0f} ms (goal < 1000 ms)")
    print(f"wrote {args.out} ({len(png):,} bytes)")


if __name__ == "__main__":
    main()
