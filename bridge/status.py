"""What a deployment is doing, from the database: the metrics' gauges, each process's snapshot
of its adaptive send rates, and the report `channelbridge status` prints.

Send rates live in each process's flood control (`bridge.flood`); `Snapshots` writes them
every few seconds into the keyvalue table (`status:<process>`, with the process id and its
start time), so `channelbridge status`, run elsewhere, shows them with their age, and shows
which processes are alive. Everything here is counts, times, platform names and process
names: no identity, sealed or not, is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bridge.flood import FloodControl
from bridge.metrics import Gauges
from bridge.store import Store
from bridge.store.ops import SNAPSHOT_PREFIX

log = logging.getLogger(__name__)

#: a process whose snapshot or heartbeat is older than this is shown as gone
ALIVE_S = 30.0


def database_gauges(store: Store, flood: FloodControl, clock: Callable[[], float] = time.time) -> Gauges:
    """The gauges at one scrape: depths, totals and due posts from the database (index probes
    and small tables), send rates from flood control (memory)."""
    now = clock()
    with store.connection() as conn:
        ops = store.ops
        depth, oldest = ops.open_rows(conn)
        followers = ops.followers_by_platform(conn)
        due = ops.scheduled_due(conn, now)
    rates = {platform: (rate, ceiling) for platform, (rate, ceiling, _, _) in flood.report().items()}
    return Gauges(
        queue_depth=depth,
        send_rate=rates,
        followers=followers,
        scheduled_due=due,
        oldest_queued_s=max(0.0, now - oldest) if oldest is not None else 0.0,
    )


class Snapshots:
    """Writes this process's snapshot (its send rates) every `interval_s`; removes it at stop."""

    def __init__(
        self,
        store: Store,
        owner: str,
        flood: FloodControl,
        *,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.owner = owner
        self.flood = flood
        self.interval_s = interval_s
        self.clock = clock
        self.started_at = clock()
        self._task: asyncio.Task[None] | None = None

    @property
    def key(self) -> str:
        """This process's keyvalue key."""
        return f"{SNAPSHOT_PREFIX}{self.owner}"

    def write(self) -> None:
        """Write the snapshot now."""
        rates = {p: [round(r, 3), round(c, 3)] for p, (r, c, _, _) in self.flood.report().items()}
        value = json.dumps(
            {"pid": os.getpid(), "started_at": self.started_at, "rates": rates}, sort_keys=True
        )
        with self.store.connection() as conn:
            self.store.ops.put_key(conn, self.key, value, self.clock())

    async def start(self) -> None:
        """Write one snapshot at once, then keep them fresh."""
        self.write()
        self._task = asyncio.create_task(self._loop(), name="status-snapshots")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await asyncio.to_thread(self.write)
            except Exception:
                log.warning("could not write the status snapshot; will retry")

    async def stop(self) -> None:
        """Stop writing and remove the snapshot (the process is gone)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception), self.store.connection() as conn:
            self.store.ops.drop_key(conn, self.key)


@dataclass(frozen=True)
class ProcessState:
    """One process as the database knows it."""

    name: str  #: the worker's owner id (`w-…`)
    pid: int | None
    age_s: float  #: since its last snapshot or heartbeat
    rates: dict[str, tuple[float, float]] = field(default_factory=dict)  #: platform -> (rate, ceiling)

    @property
    def alive(self) -> bool:
        """Whether it wrote lately."""
        return self.age_s <= ALIVE_S


@dataclass(frozen=True)
class StatusReport:
    """Everything `channelbridge status` prints."""

    at: float
    queue_depth: dict[tuple[str, str], int]
    oldest_open_age_s: float | None
    followers: dict[str, int]
    scheduled_due: int
    next_posts: list[tuple[int, float]]
    next_recurring: list[tuple[int, float]]
    leases: dict[str, tuple[str, float]]  #: lease name -> (holder, age of its renewal)
    processes: list[ProcessState]


def gather(store: Store, clock: Callable[[], float] = time.time, upcoming: int = 5) -> StatusReport:
    """Read the report from the database."""
    now = clock()
    with store.connection() as conn:
        ops = store.ops
        depth, oldest = ops.open_rows(conn)
        followers = ops.followers_by_platform(conn)
        due = ops.scheduled_due(conn, now)
        posts = ops.next_scheduled(conn, upcoming)
        recurring = ops.next_recurring(conn, upcoming)
        lease_rows = ops.keys(conn, "lease:")
        members = ops.keys(conn, "member:")
        snapshots = ops.keys(conn, SNAPSHOT_PREFIX)
    leases = {
        row.key.removeprefix("lease:"): (row.value, max(0.0, now - row.updated_at))
        for row in lease_rows
        if row.value
    }
    processes: dict[str, ProcessState] = {}
    for row in members:
        name = row.key.removeprefix("member:")
        processes[name] = ProcessState(name, None, max(0.0, now - row.updated_at))
    for row in snapshots:
        name = row.key.removeprefix(SNAPSHOT_PREFIX)
        try:
            data = json.loads(row.value)
            rates = {str(p): (float(v[0]), float(v[1])) for p, v in data.get("rates", {}).items()}
            pid = int(data["pid"]) if data.get("pid") is not None else None
        except (ValueError, TypeError, KeyError, IndexError):
            rates, pid = {}, None
        seen = processes.get(name)
        age = max(0.0, now - row.updated_at)
        processes[name] = ProcessState(name, pid, min(age, seen.age_s) if seen else age, rates)
    return StatusReport(
        at=now,
        queue_depth=depth,
        oldest_open_age_s=None if oldest is None else max(0.0, now - oldest),
        followers=followers,
        scheduled_due=due,
        next_posts=posts,
        next_recurring=recurring,
        leases=leases,
        processes=sorted(processes.values(), key=lambda p: p.name),
    )


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def render(report: StatusReport) -> list[str]:
    """The report as lines for a terminal."""
    lines = [f"status at {_when(report.at)}", "", "queue (rows waiting to be sent):"]
    if report.queue_depth:
        for (platform, lane), count in sorted(report.queue_depth.items()):
            lines.append(f"  {platform:<10} {lane:<7} {count}")
    else:
        lines.append("  empty")
    oldest = report.oldest_open_age_s
    lines.append(f"oldest waiting: {_age(oldest) + ' old' if oldest is not None else 'none'}")
    lines += ["", "followers (active subscriptions):"]
    lines += [f"  {p:<10} {n}" for p, n in sorted(report.followers.items())] or ["  none"]
    lines += ["", f"scheduled posts due now: {report.scheduled_due}", "next scheduled posts:"]
    lines += [f"  #{pid} at {_when(at)}" for pid, at in report.next_posts] or ["  none"]
    lines.append("next recurring posts:")
    lines += [f"  r{rid} at {_when(at)}" for rid, at in report.next_recurring] or ["  none"]
    lines += ["", "leases:"]
    lines += [
        f"  {name:<18} held by {holder} (renewed {_age(age)} ago)"
        for name, (holder, age) in report.leases.items()
    ] or ["  none (one process on SQLite receives everything)"]
    lines += ["", "processes:"]
    for proc in report.processes:
        state = "alive" if proc.alive else "gone"
        pid = f" pid {proc.pid}" if proc.pid is not None else ""
        lines.append(f"  {proc.name}{pid}: {state}, last seen {_age(proc.age_s)} ago")
        for platform, (rate, ceiling) in sorted(proc.rates.items()):
            lines.append(
                f"    send rate {platform}: {rate:.1f}/s of {ceiling:g}/s (as of {_age(proc.age_s)} ago)"
            )
    if not report.processes:
        lines.append("  none running")
    return lines


__all__ = ["ALIVE_S", "ProcessState", "Snapshots", "StatusReport", "database_gauges", "gather", "render"]
