"""Wiring and lifecycle: the one place that knows every part.

`App` builds the store, the sealer, the engine, the rate limiter, the delivery worker, the
adapters the config enables and the scheduler; `start()` brings them up in order and
`stop()` takes them down in reverse (also when a start fails half-way).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import IO, Any, Protocol

from bridge import migrate
from bridge.commands import Command, parse_command
from bridge.config import Settings
from bridge.coordination import Coordinator
from bridge.delivery import DeliveryPolicy, DeliveryWorker
from bridge.engine import ChannelEngine, EngineOptions
from bridge.flood import FloodControl
from bridge.keys import key_location, load_key_for, verify_key
from bridge.models import NoticeLane
from bridge.notices import NoticeQueue
from bridge.ports import Adapter, Address, ForgettingAdapter, Inbound, Message, Reply, SealingAdapter
from bridge.privacy import RedactingFormatter, Sealer, install_log_redaction
from bridge.ratelimit import RateLimiter
from bridge.store import Store
from bridge.throttle import SenderThrottle, Verdict

log = logging.getLogger(__name__)

#: the one answer a sender gets when over their share of commands
SLOW_DOWN = "You are sending commands too quickly. Wait a few seconds; the ones just sent were ignored."


class LocalConsole(Adapter, Protocol):
    """The console adapter as the app drives it (see `adapters.console.ConsoleAdapter`)."""

    @property
    def operator_address(self) -> Address:
        """The local user, who is an operator."""

    finished: asyncio.Event

    def set_sync(self, sync: Callable[[], Awaitable[None]]) -> None:
        """Install what `:sync` waits for."""


class Service(Protocol):
    """Something with a start/stop lifecycle (the scheduler)."""

    async def start(self) -> None:
        """Start; return once running."""

    async def stop(self) -> None:
        """Stop and release resources."""


def operator_addresses(settings: Settings) -> list[Address]:
    """Addresses of the operators named in config."""
    found: list[Address] = []
    for entry in settings.operators:
        if entry.telegram is not None:
            found.append(Address("telegram", str(entry.telegram)))
        if entry.matrix:
            found.append(Address("matrix", str(entry.matrix)))
        if entry.console:
            found.append(Address("console", entry.console))
    return found


def build_adapters(settings: Settings) -> list[Adapter]:
    """The platform adapters the config enables (SDKs are imported only when enabled)."""
    adapters: list[Adapter] = []
    from bridge.commands import COMMANDS, Audience

    if settings.telegram.enabled:
        from adapters.telegram import TelegramAdapter

        tg = settings.telegram
        everyone = [(n, c.summary) for n, c in COMMANDS.items() if c.audience == Audience.FOLLOWER]
        admin = [(n, c.summary) for n, c in COMMANDS.items() if c.audience != Audience.FOLLOWER]
        adapters.append(
            TelegramAdapter(
                tg.token.get_secret_value() if tg.token else "",
                api_base_url=tg.api_base_url,
                file_base_url=tg.file_base_url,
                poll_interval=tg.poll_interval,
                poll_timeout=tg.poll_timeout,
                commands=[(n.replace("-", "_"), s) for n, s in everyone],
                admin_commands=[(n.replace("-", "_"), s) for n, s in admin],
                limits=tg.rate_limit.as_limits(paid_broadcast=tg.paid_broadcast),
                paid_broadcast=tg.paid_broadcast,
            )
        )
    if settings.matrix.enabled:
        from adapters.matrix import MatrixAdapter

        mx = settings.matrix
        mirror_rooms = [
            m.split(":", 1)[1] for c in settings.channels for m in c.mirrors if m.startswith("matrix:")
        ]
        adapters.append(
            MatrixAdapter(
                mx.homeserver,
                mx.user_id,
                access_token=mx.access_token.get_secret_value() if mx.access_token else None,
                password=mx.password.get_secret_value() if mx.password else None,
                device_id=mx.device_id,
                store_dir=settings.matrix_store_dir,
                encryption=mx.encryption,
                mirror_rooms=mirror_rooms,
                limits=mx.rate_limit.as_limits(),
            )
        )
    return adapters


def build_console(*, prompt: bool) -> LocalConsole:
    """The local terminal adapter on this process's stdin and stdout."""
    from adapters.console import ConsoleAdapter

    return ConsoleAdapter(prompt=prompt)


def default_scheduler(app: App) -> Service:
    """The APScheduler-based scheduler, wired to `app`."""
    from scheduler.service import SchedulerService

    return SchedulerService.for_app(app)


class App:
    """The running product: engine + worker + adapters + scheduler, with a symmetric lifecycle."""

    def __init__(
        self,
        settings: Settings,
        *,
        adapters: Sequence[Adapter] | None = None,
        console: LocalConsole | None = None,
        scheduler_factory: Callable[[App], Service] | None = None,
    ) -> None:
        self.settings = settings
        data_dir = settings.general.data_dir
        key = settings.privacy.key.get_secret_value() if settings.privacy.key else None
        self.store = Store(settings.database_url)
        self._key_where = key_location(key is not None, data_dir)
        self.sealer = Sealer(load_key_for(self.store, key, data_dir))
        self.limiter = RateLimiter()
        self.flood = FloodControl(self.limiter)
        self.notices = NoticeQueue(self.store, self.sealer)
        self.engine = ChannelEngine(
            self.store,
            self.sealer,
            operators=operator_addresses(settings),
            options=EngineOptions(tz=settings.general.tz, media_limits=settings.media.limits()),
        )
        chosen = list(adapters) if adapters is not None else build_adapters(settings)
        if console is not None:
            chosen.append(console)
            self.engine.add_operator(console.operator_address)
            console.set_sync(self.sync)
        self.adapters: dict[str, Adapter] = {a.platform: a for a in chosen}
        for adapter in chosen:
            if isinstance(adapter, SealingAdapter):
                adapter.use_sealer(self.sealer)
        d = settings.delivery
        self.worker = DeliveryWorker(
            self.store,
            self.sealer,
            self.adapters,
            self.limiter,
            policy=DeliveryPolicy(
                concurrency=d.concurrency,
                batch_size=d.batch_size,
                max_attempts=d.max_attempts,
                backoff_base_s=d.backoff_base_s,
                backoff_max_s=d.backoff_max_s,
                lease_s=d.lease_s,
                progress_threshold=d.progress_threshold,
            ),
            notices=self.notices,
            flood=self.flood,
        )
        self.throttle = SenderThrottle(d.sender_burst, d.sender_per_s)
        self.engine.set_sending_report(self.sending_report)
        self.engine.set_on_work(self.worker.wake)
        self.engine.set_notify(self.notify)
        matrix = self.adapters.get("matrix")
        if matrix is not None and hasattr(matrix, "create_mirror_room"):
            create_room = matrix.create_mirror_room

            async def mirror_factory(platform: str, name: str, topic: str) -> str:
                return str(await create_room(name, topic))

            def mirror_added(platform: str, chat: str) -> None:
                if platform == "matrix" and hasattr(matrix, "add_mirror_room"):
                    matrix.add_mirror_room(chat)

            self.engine.set_mirror_factory(mirror_factory, mirror_added)
        self._install_time_parsers()
        self.scheduler = scheduler_factory(self) if scheduler_factory is not None else None
        self._started: list[Callable[[], Any]] = []
        self._sending: set[str] = set()
        self._exclusive_started: set[str] = set()
        self.coordinator: Coordinator | None = None
        self.stopped = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()

    def _install_time_parsers(self) -> None:
        from scheduler.when import parse_recurrence, parse_when  # the wiring place may know it

        self.engine.set_time_parsers(parse_when, parse_recurrence)

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Create or check the schema, sync configured channels, then start adapters, the
        delivery worker and the scheduler (and, on PostgreSQL, the coordinator)."""
        try:
            self._prepare_schema()
            for channel in self.settings.channels:
                mirrors = [tuple(m.split(":", 1)) for m in channel.mirrors]
                self.engine.ensure_channel(
                    channel.handle,
                    channel.name,
                    channel.description,
                    channel.public,
                    [(p, c) for p, c in mirrors],
                )
            for adapter in self.adapters.values():
                self.flood.configure(adapter.platform, adapter.default_limits)
                if hasattr(adapter, "add_mirror_room"):  # mirrors added at run time, earlier
                    for room in self.engine.mirror_rooms(adapter.platform):
                        adapter.add_mirror_room(room)
            if self.store.is_postgres:
                await self._start_shared()
            else:
                for adapter in self.adapters.values():
                    await adapter.start(self.handle)
                    self._started.append(adapter.stop)
                await self.worker.start()
                self._started.append(self.worker.stop)
            if self.scheduler is not None:
                await self.scheduler.start()
                self._started.append(self.scheduler.stop)
            self.engine.resume_stale_planning()
        except BaseException:
            await self.stop()
            raise

    async def _start_shared(self) -> None:
        """Several processes on one PostgreSQL database: every process sends for the platforms
        whose adapter can send from anywhere (`shared_sending`); only the holder of a platform's
        inbound lease receives its updates (and sends for adapters that cannot share)."""
        for adapter in self.adapters.values():
            if getattr(adapter, "shared_sending", False):
                await adapter.start(self.handle, receive=False)  # type: ignore[call-arg]
                self._started.append(adapter.stop)
                self._sending.add(adapter.platform)
        self.worker.active_platforms = lambda: self._sending
        await self.worker.start()
        self._started.append(self.worker.stop)
        self.coordinator = Coordinator(
            self.store,
            self.worker.owner,
            {p: a.default_limits for p, a in self.adapters.items()},
            self.flood,
            self._on_lease,
        )
        await self.coordinator.start()
        self._started.append(self.coordinator.stop)

    async def _on_lease(self, platform: str, held: bool) -> None:
        adapter = self.adapters[platform]
        if getattr(adapter, "shared_sending", False):
            await adapter.set_receiving(held)  # type: ignore[attr-defined]
            return
        if held:
            await adapter.start(self.handle)
            self._sending.add(platform)
            self._exclusive_started.add(platform)
        else:
            self._sending.discard(platform)
            if platform in self._exclusive_started:
                self._exclusive_started.discard(platform)
                await adapter.stop()

    def _prepare_schema(self) -> None:
        """SQLite (one process) is migrated in place; PostgreSQL must already be at the newest
        revision (`channelbridge db upgrade`), so that many processes never race to migrate."""
        if self.store.is_sqlite:
            migrate.upgrade(self.store.engine, sealer=self.sealer)
        else:
            migrate.require_head(self.store.engine)
        verify_key(self.store, self.sealer, self._key_where)

    async def stop(self) -> None:
        """Stop everything that started, newest first; deliveries in flight are recorded."""
        await self.engine.drain_planning()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        while self._started:
            stop = self._started.pop()
            try:
                await stop()
            except Exception:
                log.exception("error while stopping")
        self.store.dispose()
        self.stopped.set()

    async def handle(self, event: Inbound) -> list[Reply]:
        """The inbound handler given to every adapter: throttle the sender (operators excepted:
        they run the bot, often from scripts), apply the event,
        and queue the answers in the reply lane (so it returns nothing for the adapter to send:
        every answer goes out through the delivery worker, paced and retried)."""
        index = self.sealer.address_index(event.sender)
        verdict = Verdict.HANDLE if self.engine.is_operator_index(index) else self.throttle.check(index)
        if verdict == Verdict.IGNORE:
            return []
        if verdict == Verdict.SLOW_DOWN:
            if isinstance(event, Message):
                self._queue_replies(event.sender, [Reply(SLOW_DOWN)])
            return []
        try:
            replies = await self.engine.handle(event)
        except Exception:
            log.exception("handling an inbound %s failed", type(event).__name__)
            replies = [Reply("Sorry, something went wrong on our side; nothing was changed. Try again.")]
        else:
            adapter = self.adapters.get(event.sender.platform)
            if isinstance(adapter, ForgettingAdapter) and _is_forgetme(event):
                self._forget_after_answer(adapter, event.sender)
        self._queue_replies(event.sender, replies)
        # the store is synchronous: let the worker, the coordinator and the other adapters run
        # between two inbound events, so a burst of commands cannot starve them
        await asyncio.sleep(0)
        return []

    def sending_report(self) -> list[str]:
        """What operators see of sending: each platform's current rate against its ceiling, and
        the 429s flood control saw by inferred scope (counts only)."""
        lines = []
        for platform, (rate, ceiling, by_chat, platform_wide) in self.flood.report().items():
            if platform == "console":
                continue
            lines.append(
                f"Sending on {platform}: {rate:.1f}/s of {ceiling:g}/s;"
                f" 429s: {by_chat} one chat, {platform_wide} platform-wide"
            )
        return lines

    def _queue_replies(
        self, to: Address, replies: Sequence[Reply], lane: NoticeLane = NoticeLane.REPLY
    ) -> None:
        try:
            self.notices.enqueue(to, replies, lane, time.time())
        except Exception:
            log.exception("could not queue %d %s message(s)", len(replies), to.platform)
            return
        self.worker.wake_notices()

    def _forget_after_answer(self, adapter: ForgettingAdapter, person: Address) -> None:
        """Let the adapter erase what it keeps about a person who sent `/forgetme` (and leave
        their chat) once the answer to it has gone out there (at most a minute later)."""

        async def forget() -> None:
            deadline = time.monotonic() + 60.0
            await asyncio.sleep(0.05)  # the answer is queued right after this is scheduled
            while self.notices.open_for(person) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            try:
                await adapter.forget(person)
            except Exception:
                log.exception("the %s adapter could not forget a person", person.platform)

        task = asyncio.create_task(forget(), name="forget-after-answer")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def sync(self, timeout: float = 30.0) -> None:
        """Wait until fan-outs are planned and every delivery is sent (TimeoutError after
        `timeout` seconds, e.g. while a platform's rate limit holds copies back)."""
        await self.engine.drain_planning()
        await self.worker.drain(timeout=timeout)

    async def notify(self, address: Address, text: str) -> None:
        """Queue a notice to one person's chat with the bot (ahead of post copies)."""
        self._queue_replies(address, [Reply(text)], NoticeLane.NOTICE)


def _is_forgetme(event: Inbound) -> bool:
    parsed = parse_command(event.text) if isinstance(event, Message) else None
    return isinstance(parsed, Command) and parsed.name == "forgetme"


#: SDK loggers that print request URLs (the Bot API URL holds the token), payloads with ids,
#: or bodies: WARNING and above only, whatever the level of our own logs
SDK_LOGGERS = ("telegram", "httpx", "httpcore", "nio", "aiohttp", "apscheduler", "alembic", "peewee")


def configure_logging(level: str, stream: IO[str] | None = None) -> logging.Handler:
    """Log to stderr (or `stream`), with secrets and platform identities redacted from every
    formatted line, tracebacks included; SDK loggers are quieted before any SDK object is
    built. Returns the handler installed on the root logger."""
    for noisy in SDK_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    install_log_redaction()
    return handler


async def run_app(app: App, console: LocalConsole | None = None) -> None:
    """Run until SIGINT/SIGTERM (or the console's end of input), then stop cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await app.start()
    waiters = [asyncio.create_task(stop.wait())]
    if console is not None:
        waiters.append(asyncio.create_task(console.finished.wait()))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if console is not None and console.finished.is_set():
            with suppress(TimeoutError):  # what was typed before Ctrl-D goes out before we stop
                await asyncio.wait_for(app.sync(), timeout=10)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await app.stop()
