"""Matrix send benchmark: prints its figures (it is not a test).

A DM fan-out on a throw-away Synapse (tests/integration/matrix/synapse.py) with the bot's
message rate limit lifted (`override_ratelimit`): N followers, each with one encrypted and one
plain (unencrypted) DM with the bot. `--rounds` posts go to every DM room of a kind (the first
also opens and shares the megolm sessions in encrypted rooms; the later ones are steady state),
through

(1) a raw matrix-nio loop: `AsyncClient.room_send` of the same event the adapter sends, same
    concurrency, from a second device of the bot account, no sync loop (the adapter's device has
    uploaded its keys before, so both senders share each room key with the same two devices: the
    follower's and their sibling's), and
(2) the real `adapters.matrix.MatrixAdapter.send(address, content)` with its sync loop running,
    `--concurrency` sends at a time (the delivery worker's default is 16),

in turns: raw nio's post, then the adapter's, for each kind and round (Synapse's pace drifts
during a run; in turns, both meet the same drift). The adapter's sync loop is paused during raw
nio's rounds, so raw nio is not billed for it. Last, (3) the raw loop for one more post while a
plain long-poll `sync` loop runs on that client, as a bot must.

Each measurement starts once Synapse is idle (what the previous one left behind is not billed to
it). For each kind and round it prints msgs/s and the CPU per message of this process and of
Synapse, then the ratio adapter / raw nio (goal >= 0.9), first post and later posts apart.
Synapse is single-threaded: its CPU per event is what bounds the rate on a 2-core machine.

    python bench/matrix_send.py                 # 200 followers, 8 posts each, about 3 minutes
    python bench/matrix_send.py --followers 20  # a quick check
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    LoginResponse,
    RoomCreateResponse,
    RoomSendResponse,
    SyncResponse,
)

from adapters.matrix.adapter import MatrixAdapter
from adapters.matrix.render import follow_link, render_post
from bridge.ports import Address, Content, Inbound, PostKind, Reply
from tests.integration.matrix.conftest import MEGOLM, Follower
from tests.integration.matrix.synapse import RegisteredUser, SynapseServer

KINDS = ("plain", "encrypted")
TEXT = "Benchmark post: hello, followers! " * 3
_SYNC_FILTER = {"room": {"timeline": {"limit": 1}}, "presence": {"types": []}}


@dataclass
class Run:
    """One round of sends by one client into one kind of room."""

    client: str
    kind: str
    round: int
    sent: int
    failed: int
    elapsed_s: float
    cpu_s: float
    server_cpu_s: float

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0


async def _ignore(event: Inbound) -> list[Reply]:
    return []


async def fan_out(
    rooms: Sequence[str],
    concurrency: int,
    send: Callable[[int, str], Awaitable[None]],
    server_cpu: Callable[[], float],
) -> tuple[int, int, float, float, float]:
    """Call `send(index, room)` for every room, `concurrency` at a time.
    Returns (sent, failed, wall seconds, CPU seconds of this process, of Synapse)."""
    queue = list(enumerate(rooms))
    queue.reverse()
    failed = 0

    async def worker() -> None:
        nonlocal failed
        while queue:
            index, room_id = queue.pop()
            try:
                await send(index, room_id)
            except Exception as exc:
                failed += 1
                if failed <= 3:
                    print(f"    send failed: {type(exc).__name__}: {exc}")

    await settle(server_cpu)
    cpu0, server0, wall0 = time.process_time(), server_cpu(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return len(rooms) - failed, failed, wall, cpu, server_cpu() - server0


async def settle(server_cpu: Callable[[], float], timeout_s: float = 60.0) -> None:
    """Until Synapse is idle (under 5 % of a core for 1 s): the work a previous phase left behind
    (joins, key shares, background updates) must not be billed to the next one."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:
        before = server_cpu()
        await asyncio.sleep(0.5)
        quiet = quiet + 1 if server_cpu() - before < 0.025 else 0


def content(round_no: int, index: int) -> Content:
    """The post as the delivery worker hands it to the adapter (one delivery id per copy)."""
    return Content(
        round_no, PostKind.TEXT, "bench", "Bench", text=TEXT, delivery_id=round_no * 1_000_000 + index + 1
    )


# -- set-up --------------------------------------------------------------------------------------


def register_all(synapse: SynapseServer, followers: int) -> tuple[RegisteredUser, list[RegisteredUser]]:
    """The bot (message rate limit lifted) and the followers, registered 8 at a time."""
    admin = synapse.register("benchadmin", admin=True)
    bot = synapse.register("benchbot")
    synapse.exempt_from_ratelimit(admin.access_token, bot.user_id)
    with ThreadPoolExecutor(8) as pool:
        users = list(pool.map(lambda n: synapse.register(f"follower{n}"), range(followers)))
    return bot, users


async def open_rooms(
    synapse: SynapseServer, bot: RegisteredUser, users: Sequence[RegisteredUser], tmp: Path
) -> dict[str, list[str]]:
    """Each follower uploads device keys and opens one encrypted and one plain DM with the bot."""
    rooms: dict[str, list[str]] = {kind: [] for kind in KINDS}
    gate = asyncio.Semaphore(8)

    async def follower(user: RegisteredUser) -> None:
        async with gate:
            person = Follower(synapse.url, user, tmp / "followers" / user.user_id[1:].split(":")[0])
            try:
                await person.sync(0)
                for kind in KINDS:
                    resp = await person.client.room_create(
                        is_direct=True, invite=[bot.user_id],
                        initial_state=[MEGOLM] if kind == "encrypted" else [],
                    )  # fmt: skip
                    assert isinstance(resp, RoomCreateResponse), resp
                    rooms[kind].append(resp.room_id)
            finally:
                await person.client.close()

    await asyncio.gather(*(follower(user) for user in users))
    return rooms


async def wait_joined(adapter: MatrixAdapter, bot_id: str, room_ids: Sequence[str], timeout: float) -> None:
    """Until the adapter's sync loop has joined every room and knows the followers' devices."""
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while True:
        client = adapter.client
        joined = sum(
            1
            for room_id in room_ids
            if (room := client.rooms.get(room_id)) is not None
            and bot_id in room.users
            and not room.users[bot_id].invited
            and room.joined_count >= 2
        )
        if joined == len(room_ids) and not client.should_query_keys:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the bot joined {joined} of {len(room_ids)} rooms in {timeout:.0f} s")
        if time.monotonic() - last_report > 10:
            print(f"    bot joined {joined}/{len(room_ids)} rooms ...")
            last_report = time.monotonic()
        await asyncio.sleep(0.2)


async def raw_device(synapse: SynapseServer, bot: RegisteredUser, store: Path) -> AsyncClient:
    """A second device of the bot: a plain nio client with its own olm account."""
    store.mkdir(parents=True)
    client = AsyncClient(
        synapse.url, bot.user_id, store_path=str(store),
        config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False, max_limit_exceeded=0),
    )  # fmt: skip
    login = await client.login(bot.password, device_name="bench raw nio")
    assert isinstance(login, LoginResponse), login
    if client.should_upload_keys:
        await client.keys_upload()
    return client


# -- the two senders -------------------------------------------------------------------------------


Sender = Callable[[int, str], Awaitable[None]]


def _adapter_sender(adapter: MatrixAdapter, bot_id: str, round_no: int) -> Sender:
    async def send(index: int, room_id: str) -> None:
        await adapter.send(Address("matrix", bot_id, chat=room_id), content(round_no, index))

    return send


async def _sync_loop(client: AsyncClient) -> None:
    """What a bot must do besides sending: long-poll sync, as the adapter's loop does."""
    while True:
        await client.sync(timeout=30_000, sync_filter={"room": {"timeline": {"limit": 50}}})


def _raw_sender(client: AsyncClient, round_no: int) -> Sender:
    # the event the adapter sends, follow link included
    event_type, body = render_post(replace(content(round_no, 0), follow_url=follow_link(client.user_id)))

    async def send(index: int, room_id: str) -> None:
        resp = await client.room_send(
            room_id, event_type, body, tx_id=f"raw{round_no}-{index}", ignore_unverified_devices=True
        )
        if not isinstance(resp, RoomSendResponse):
            raise RuntimeError(f"room_send: {resp}")

    return send


def print_run(run: Run) -> None:
    """One line per round."""
    cpu_ms = 1000 * run.cpu_s / max(1, run.sent)
    server_ms = 1000 * run.server_cpu_s / max(1, run.sent)
    print(
        f"    {run.client:15s} {run.kind:9s} round {run.round}: {run.sent} sent, {run.failed} failed, "
        f"{run.rate:6.1f} msgs/s, CPU ms per message: {cpu_ms:5.1f} this process, {server_ms:5.1f} Synapse"
    )


def _rate(runs: Sequence[Run]) -> float:
    elapsed = sum(r.elapsed_s for r in runs)
    return sum(r.sent for r in runs) / elapsed if elapsed else 0.0


def print_summary(runs: Sequence[Run]) -> None:
    """Adapter vs raw nio, per kind: the first post, and the later (steady-state) ones together,
    with the spread of single later rounds (Synapse's pace varies from round to round)."""
    print("\nsummary (msgs/s; ratio = adapter / raw nio, goal >= 0.9):")
    phases: tuple[tuple[str, Callable[[Run], bool]], ...] = (
        ("first post", lambda r: r.round == 1),
        ("later posts", lambda r: r.round != 1),
    )
    for kind in KINDS:
        for label, chosen in phases:
            picked = {
                client: [r for r in runs if r.client == client and r.kind == kind and chosen(r)]
                for client in ("adapter", "raw nio")
            }
            ours, raw = (_rate(picked[client]) for client in ("adapter", "raw nio"))
            if not ours or not raw:
                continue
            line = f"  {kind:9s} {label:12s} adapter {ours:6.1f}  raw nio {raw:6.1f}  ratio {ours / raw:.2f}"
            if label == "later posts":
                spread = {client: sorted(r.rate for r in picked[client]) for client in picked}
                line += "  | single rounds " + ", ".join(
                    f"{client} {rates[0]:.0f}-{rates[-1]:.0f}" for client, rates in spread.items() if rates
                )
                synced = _rate([r for r in runs if r.client == "raw nio + sync" and r.kind == kind])
                if synced:
                    line += f"  | raw nio + sync loop {synced:6.1f}, ratio {ours / synced:.2f}"
            print(line)


# -- main ----------------------------------------------------------------------------------------


async def join_all(client: AsyncClient, room_ids: Sequence[str]) -> None:
    """The bot account accepts every DM invite (from the raw device: the adapter is not running)."""
    gate = asyncio.Semaphore(8)

    async def join(room_id: str) -> None:
        async with gate:
            resp = await client.join(room_id)
            assert isinstance(resp, JoinResponse), resp

    await asyncio.gather(*(join(room_id) for room_id in room_ids))


@contextlib.asynccontextmanager
async def sync_paused(adapter: MatrixAdapter) -> AsyncIterator[None]:
    """The adapter's sync loop ended for a while, its client (and so its megolm sessions) kept:
    raw nio's rounds run between the adapter's without the adapter's long poll waking at each of
    their events. Bench only: it reaches into the adapter, ending the loop as `stop()` does
    (`_end_sync`) but keeping nio's client. The batch the loop finds on resuming is handled
    before the next measurement."""
    loop = adapter._sync
    assert loop is not None
    await adapter._end_sync()
    try:
        yield
    finally:
        loop.stopping = False
        adapter._sync_task = asyncio.create_task(loop.run(None), name="matrix-sync")


async def bench(synapse: SynapseServer, args: argparse.Namespace, tmp: Path) -> list[Run]:
    """Raw nio and the adapter in turns, one post per kind each (Synapse's pace drifts during a
    run, so each adapter round sits between two raw ones), then raw nio with a sync loop."""
    t0 = time.perf_counter()
    bot, users = await asyncio.get_running_loop().run_in_executor(None, register_all, synapse, args.followers)
    print(f"  registered the bot and {len(users)} followers in {time.perf_counter() - t0:.1f} s")
    adapter = MatrixAdapter(
        synapse.url, bot.user_id, access_token=bot.access_token, device_id=bot.device_id,
        store_dir=tmp / "bot-store", encryption=True,
    )  # fmt: skip
    raw: AsyncClient | None = None
    runs: list[Run] = []
    cpu = synapse.cpu_seconds

    async def measure(client: str, round_no: int, send: Sender, kind: str) -> None:
        runs.append(Run(client, kind, round_no, *await fan_out(rooms[kind], args.concurrency, send, cpu)))
        print_run(runs[-1])

    try:
        # Both senders are devices of the bot account, and each shares a room's megolm key with
        # every device in the room, its sibling included: the adapter's device uploads its keys
        # now, so raw nio (which queries keys below) encrypts for as many devices as the adapter.
        await adapter.start(_ignore)
        await adapter.stop()
        raw = await raw_device(synapse, bot, tmp / "raw-store")
        t0 = time.perf_counter()
        rooms = await open_rooms(synapse, bot, users, tmp)
        all_rooms = [room for kind in KINDS for room in rooms[kind]]
        await join_all(raw, all_rooms)
        print(f"  followers opened {len(all_rooms)} DMs, the bot joined in {time.perf_counter() - t0:.1f} s")
        sync = await raw.sync(timeout=0, full_state=True, sync_filter=_SYNC_FILTER)
        assert isinstance(sync, SyncResponse), sync
        if raw.should_query_keys:
            await raw.keys_query()
        await adapter.start(_ignore)
        await wait_joined(adapter, bot.user_id, all_rooms, timeout=60 + len(all_rooms))
        siblings = [len(list(c.device_store.active_user_devices(bot.user_id))) for c in (raw, adapter.client)]
        print(f"  the bot's other devices each encrypts for: raw nio {siblings[0]}, adapter {siblings[1]}")
        print(
            "  in turns: raw matrix-nio room_send (a second device of the bot, no sync loop; the"
            " adapter's sync paused), then MatrixAdapter.send (its sync loop running):"
        )
        for round_no in range(1, args.rounds + 1):
            for kind in KINDS:
                async with sync_paused(adapter):
                    await measure("raw nio", round_no, _raw_sender(raw, round_no), kind)
                await measure("adapter", round_no, _adapter_sender(adapter, bot.user_id, round_no), kind)
        await adapter.stop()
        print("  raw matrix-nio room_send with a sync loop running:")
        syncing = asyncio.create_task(_sync_loop(raw))
        try:
            last = args.rounds + 1
            for kind in KINDS:
                await measure("raw nio + sync", last, _raw_sender(raw, last), kind)
        finally:
            syncing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await syncing
    finally:
        await adapter.stop()
        if raw is not None:
            await raw.close()
    return runs


def main() -> None:
    """Start Synapse, set up the DMs, run both senders and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--followers", type=int, default=200, help="followers (DMs per kind)")
    parser.add_argument("--concurrency", type=int, default=16, help="sends in flight")
    parser.add_argument("--rounds", type=int, default=8, help="posts per kind and sender")
    args = parser.parse_args()
    # nio warns "Missing session for device" each time a first post claims an olm session
    logging.getLogger("nio").setLevel(logging.ERROR)
    print(
        f"channelbridge Matrix send benchmark — {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"{args.followers} followers, concurrency {args.concurrency}"
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cb-matrix-bench-") as tmp_name, SynapseServer() as synapse:
        print(f"  Synapse up in {time.perf_counter() - t0:.1f} s")
        runs: list[Any] = asyncio.run(bench(synapse, args, Path(tmp_name)))
    print_summary(runs)
    print(
        f"peak RSS of the bench process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
        f"total {time.perf_counter() - t0:.0f} s"
    )


if __name__ == "__main__":
    main()
