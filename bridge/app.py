"""Wiring and lifecycle: the one place that knows every part.

`App` builds the store, the sealer, the engine, the rate limiter, the delivery worker, the
adapters of the platforms the config enables (through their plug-ins, `bridge.platforms`) and
the scheduler; `start()` brings them up in order and `stop()` takes them down in reverse (also
when a start fails half-way). It never names a platform: optional adapter abilities are the
capability protocols of `bridge.ports`, checked with `isinstance`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import IO, Any, Protocol

from aiohttp import web

from bridge import migrate
from bridge.commands import Command, parse_command
from bridge.config import Settings
from bridge.coordination import Coordinator
from bridge.delivery import DeliveryPolicy, DeliveryWorker
from bridge.engine import ChannelEngine, EngineOptions
from bridge.flood import FloodControl
from bridge.health import DatabaseProbe, Health
from bridge.http import HttpServer
from bridge.i18n import N_, _, languages, set_default_language, speaking
from bridge.inbox import ReceivedOnce, WebhookInbox
from bridge.keys import key_location, load_key_for, verify_key
from bridge.logjson import JsonFormatter
from bridge.metrics import CONTENT_TYPE, CommandOutcome, Metrics
from bridge.models import NoticeLane
from bridge.notices import NoticeQueue
from bridge.platforms import Platforms, PlatformServices
from bridge.ports import (
    PAYMENT_EVENTS,
    Adapter,
    Address,
    ConnectedAdapter,
    ForgettingAdapter,
    Inbound,
    LocalTerminal,
    Message,
    MirrorRoomCreator,
    MirrorRoomHolder,
    NoticingAdapter,
    Reply,
    SealingAdapter,
    SharedSendingAdapter,
    StarsGateway,
    WebhookAdapter,
)
from bridge.privacy import RedactingFormatter, Sealer, install_log_redaction
from bridge.ratelimit import RateLimiter
from bridge.status import Snapshots, database_gauges
from bridge.store import Store
from bridge.throttle import SenderThrottle, Verdict

log = logging.getLogger(__name__)

#: the one answer a sender gets when over their share of commands
SLOW_DOWN = N_("You are sending commands too quickly. Wait a few seconds; the ones just sent were ignored.")
#: the answer when handling a command failed on our side (the engine changed nothing)
SORRY = N_("Sorry, something went wrong on our side; nothing was changed. Try again.")


class Service(Protocol):
    """Something with a start/stop lifecycle (the scheduler)."""

    async def start(self) -> None:
        """Start; return once running."""

    async def stop(self) -> None:
        """Stop and release resources."""


def operator_addresses(settings: Settings) -> list[Address]:
    """Addresses of the operators named in config (one per platform identity given)."""
    return [Address(platform, who) for entry in settings.operators for platform, who in entry.identities()]


def build_adapters(
    settings: Settings, *, prompt: bool = False, only: Callable[[str], bool] | None = None
) -> list[Adapter]:
    """The adapters of the platforms the config enables, each built by its plug-in's factory
    from its own section. `prompt`: the process runs on an interactive terminal that wants a
    prompt; `only`: build just the platforms it accepts."""
    from bridge.commands import Audience, menu_entries

    def menus(language: str) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
        with speaking(language):
            follower = tuple(menu_entries({Audience.FOLLOWER}))
            admin = tuple(menu_entries({Audience.ADMIN, Audience.OPERATOR}))
        return follower, admin

    follower, admin = menus(settings.general.language)
    localized = tuple((language, *menus(language)) for language in languages())
    sections = settings.platform_sections()
    adapters: list[Adapter] = []
    for name in settings.enabled_platforms():
        if only is not None and not only(name):
            continue
        services = PlatformServices(
            data_dir=settings.general.data_dir,
            mirror_chats=settings.mirror_chats(name),
            follower_commands=follower,
            admin_commands=admin,
            prompt=prompt,
            localized_commands=localized,
        )
        adapters.append(settings.platforms.plugin(name).factory(sections[name], services))
    return adapters


def default_scheduler(app: App) -> Service:
    """The APScheduler-based scheduler, wired to `app`."""
    from scheduler.service import SchedulerService

    return SchedulerService.for_app(app)


#: how long an adapter waits for its own notice to go out before what follows it (leaving a room)
_ADAPTER_NOTICE_WAIT_S = 10.0


class App:
    """The running product: engine + worker + adapters + scheduler, with a symmetric lifecycle."""

    def __init__(
        self,
        settings: Settings,
        *,
        adapters: Sequence[Adapter] | None = None,
        terminal: Adapter | None = None,
        scheduler_factory: Callable[[App], Service] | None = None,
        prompt: bool = False,
    ) -> None:
        """`adapters` None builds those the config enables (`build_adapters`, `prompt` passed
        on); `terminal` adds a local terminal to the given ones."""
        self.settings = settings
        set_default_language(settings.general.language)
        self.platforms: Platforms = settings.platforms
        data_dir = settings.general.data_dir
        key = settings.privacy.key.get_secret_value() if settings.privacy.key else None
        self.store = Store(settings.database_url)
        self._key_where = key_location(key is not None, data_dir)
        self.sealer = Sealer(load_key_for(self.store, key, data_dir))
        self.limiter = RateLimiter()
        self.flood = FloodControl(self.limiter)
        #: this process's Prometheus instruments (served on `[metrics] listen` when enabled)
        self.metrics = Metrics()
        self.metrics.gauge_source = lambda: database_gauges(self.store, self.flood)
        self.notices = NoticeQueue(self.store, self.sealer)
        self.engine = ChannelEngine(
            self.store,
            self.sealer,
            operators=operator_addresses(settings),
            options=EngineOptions(
                tz=settings.general.tz,
                media_limits=settings.media.limits(),
                payments_enabled=settings.payments.enabled,
                payments_teaser=settings.payments.teaser,
                payments_support=settings.payments.support.strip(),
                payments_expiry_notice_grace_s=settings.payments.expiry_notice_grace_s,
                history_default=settings.general.history,
            ),
            platforms=self.platforms,
        )
        chosen = list(adapters) if adapters is not None else build_adapters(settings, prompt=prompt)
        if terminal is not None:
            chosen.append(terminal)
        #: the operator's own terminal among the adapters, if any (`run_app` stops when it ends)
        self.terminal: LocalTerminal | None = None
        for adapter in chosen:
            if isinstance(adapter, LocalTerminal):
                self.terminal = adapter
                self.engine.add_operator(adapter.operator_address)
                adapter.set_sync(self.sync)
        self.adapters: dict[str, Adapter] = {a.platform: a for a in chosen}
        for adapter in chosen:
            if isinstance(adapter, SealingAdapter):
                adapter.use_sealer(self.sealer)
            if isinstance(adapter, NoticingAdapter):
                adapter.use_outbox(self._adapter_notice)
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
            metrics=self.metrics,
        )
        self.throttle = SenderThrottle(d.sender_burst, d.sender_per_s)
        self.engine.set_sending_report(self.sending_report)
        self.engine.set_on_work(self.worker.wake)
        self.engine.set_notify(self.notify)
        self.engine.set_command_observer(self.metrics.command)
        self._install_mirror_factory()
        self.engine.set_stars_gateways(
            {p: a for p, a in self.adapters.items() if isinstance(a, StarsGateway)}
        )
        self.scheduler = scheduler_factory(self) if scheduler_factory is not None else None
        self._started: list[Callable[[], Any]] = []
        self._sending: set[str] = set()
        self._exclusive_started: set[str] = set()
        self.coordinator: Coordinator | None = None
        #: several processes: each polled update is claimed by id before it is handled
        self.received_once: ReceivedOnce | None = None
        self.stopped = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()  #: platforms whose adapter was started here
        self.snapshots = Snapshots(self.store, self.worker.owner, self.flood)
        #: the HTTP server (`/metrics`, `/livez`, `/readyz`) when `[metrics] enabled`; other
        #: parts (a webhook) may add routes to `http.app` before `start()`
        self.http: HttpServer | None = None
        self.health: Health | None = None
        if settings.metrics.enabled:
            host, port = settings.metrics.address
            self.http = HttpServer(host, port)
            self.health = Health(DatabaseProbe(settings.database_url), self.adapter_states)
            self.health.register(self.http)
            self.http.add_route("GET", "/metrics", self._serve_metrics)
        #: webhook receivers (adapters in webhook mode) and the HTTP servers they need of their own
        self.inboxes: list[WebhookInbox] = []
        self._webhook_servers: list[HttpServer] = []
        self._install_webhooks()

    def _install_webhooks(self) -> None:
        """Serve each webhook-mode adapter's path: on the metrics server when it listens on the
        same address, else on a server of its own."""
        for platform, adapter in self.adapters.items():
            if not isinstance(adapter, WebhookAdapter):
                continue
            spec = adapter.webhook_spec()
            if spec is None:
                continue
            inbox = WebhookInbox(self.store, self.sealer, adapter, spec, platform, self.worker.owner)
            servers = [self.http, *self._webhook_servers] if self.http is not None else self._webhook_servers
            server = next((h for h in servers if (h.host, h.port) == (spec.host, spec.port)), None)
            if server is None:
                server = HttpServer(spec.host, spec.port)
                self._webhook_servers.append(server)
            inbox.register(server)
            self.inboxes.append(inbox)

    def _install_mirror_factory(self) -> None:
        """Let the engine create mirror rooms through the adapters that can, and tell the
        adapters that keep mirror rooms apart of each room an operator adds."""
        creators = {p: a for p, a in self.adapters.items() if isinstance(a, MirrorRoomCreator)}
        if not creators:
            return

        async def mirror_factory(platform: str, name: str, topic: str) -> str:
            creator = creators.get(platform)
            if creator is None:
                raise LookupError(f"no running adapter creates mirror rooms on {platform}")
            return str(await creator.create_mirror_room(name, topic))

        def mirror_added(platform: str, chat: str) -> None:
            holder = self.adapters.get(platform)
            if isinstance(holder, MirrorRoomHolder):
                holder.add_mirror_room(chat)

        self.engine.set_mirror_factory(mirror_factory, mirror_added)

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Create or check the schema, sync configured channels, then start adapters, the
        delivery worker and the scheduler (and, on PostgreSQL, the coordinator)."""
        try:
            self._prepare_schema()
            for channel in self.settings.channels:
                self.engine.ensure_channel(
                    channel.handle,
                    channel.name,
                    channel.description,
                    channel.public,
                    channel.mirror_pairs(),
                )
            for adapter in self.adapters.values():
                self.flood.configure(adapter.platform, adapter.default_limits)
                if isinstance(adapter, MirrorRoomHolder):  # mirrors added at run time, earlier
                    for room in self.engine.mirror_rooms(adapter.platform):
                        adapter.add_mirror_room(room)
            if self.store.is_postgres:
                await self._start_shared()
            else:
                for adapter in self.adapters.values():
                    await adapter.start(self.handle)
                    self._started.append(adapter.stop)
                    self._running.add(adapter.platform)
                await self.worker.start()
                self._started.append(self.worker.stop)
            for inbox in self.inboxes:
                await inbox.start()
                self._started.append(inbox.stop)
            for server in self._webhook_servers:
                await server.start()
                self._started.append(server.stop)
            if self.scheduler is not None:
                await self.scheduler.start()
                self._started.append(self.scheduler.stop)
            await self.snapshots.start()
            self._started.append(self.snapshots.stop)
            if self.http is not None and self.health is not None:
                await self.health.start()
                self._started.append(self.health.stop)
                await self.http.start()
                self._started.append(self.http.stop)
            self.engine.resume_stale_planning()
        except BaseException:
            await self.stop()
            raise

    async def _start_shared(self) -> None:
        """Several processes on one PostgreSQL database: every process sends for the platforms
        whose adapter can send from anywhere (`shared_sending`); only the holder of a platform's
        inbound lease receives its updates (and sends for adapters that cannot share)."""
        for adapter in self.adapters.values():
            if isinstance(adapter, SharedSendingAdapter) and adapter.shared_sending:
                await adapter.start(self.handle, receive=False)
                self._started.append(adapter.stop)
                self._sending.add(adapter.platform)
                self._running.add(adapter.platform)
        self.worker.active_platforms = lambda: self._sending
        self.received_once = ReceivedOnce(self.store)
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
        if isinstance(adapter, SharedSendingAdapter) and adapter.shared_sending:
            await adapter.set_receiving(held)
            return
        if held:
            await adapter.start(self.handle)
            self._sending.add(platform)
            self._exclusive_started.add(platform)
            self._running.add(platform)
        else:
            self._sending.discard(platform)
            if platform in self._exclusive_started:
                self._exclusive_started.discard(platform)
                self._running.discard(platform)
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
        await self.limiter.close()
        self.store.dispose()
        self.stopped.set()

    def adapter_states(self) -> dict[str, str]:
        """Each adapter's state for `/readyz`: `connected` (started, and its connection works
        when it can tell), `standby` (on PostgreSQL, an adapter that runs only in the process
        holding its platform's inbound lease, held by another), or `down`."""
        states: dict[str, str] = {}
        for platform, adapter in self.adapters.items():
            if platform in self._running:
                ok = not isinstance(adapter, ConnectedAdapter) or adapter.is_connected()
                states[platform] = "connected" if ok else "down"
            elif self.coordinator is not None and platform not in self.coordinator.held:
                states[platform] = "standby"
            else:
                states[platform] = "down"
        return states

    async def _serve_metrics(self, request: web.Request) -> web.Response:
        """`/metrics`: the instruments, with the gauges read from the database (in a thread:
        the store is synchronous)."""
        body = await asyncio.to_thread(self.metrics.render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def handle(self, event: Inbound) -> list[Reply]:
        """The inbound handler given to every adapter: throttle the sender (operators excepted:
        they run the bot, often from scripts; money events must be answered), apply the event,
        and queue the answers in the reply lane (so it returns nothing for the adapter to send:
        every answer goes out through the delivery worker, paced and retried). With several
        processes, an update another process already handled (or is handling) is skipped; the
        claim that tells is a database write, so a flood the throttle ignores never reaches it."""
        index = self.sealer.address_index(event.sender)
        if self.engine.is_operator_index(index) or isinstance(event, PAYMENT_EVENTS):
            verdict = Verdict.HANDLE  # money events are never throttled: they must be answered
        else:
            verdict = self.throttle.check(index)
        if (
            verdict != Verdict.HANDLE
            and isinstance(event, Message)
            and event.text.lstrip().startswith(("/", "!"))
        ):
            self.metrics.command(event.text, CommandOutcome.THROTTLED)
        if verdict == Verdict.IGNORE:
            return []
        once, update = self.received_once, event.update
        if once is not None and update is not None and not once.first(event.sender.platform, update):
            return []
        if verdict == Verdict.SLOW_DOWN:
            if isinstance(event, Message):
                self._queue_replies(event.sender, [self._answer(event, SLOW_DOWN)])
            return []
        try:
            replies = await self.engine.handle(event)
        except Exception:
            log.exception("handling an inbound %s failed", type(event).__name__)
            replies = [self._answer(event, SORRY)]
        else:
            adapter = self.adapters.get(event.sender.platform)
            if isinstance(adapter, ForgettingAdapter) and _is_forgetme(event):
                self._forget_after_answer(adapter, event.sender)
        self._queue_replies(event.sender, replies)
        # the store is synchronous: let the worker, the coordinator and the other adapters run
        # between two inbound events, so a burst of commands cannot starve them
        await asyncio.sleep(0)
        return []

    def _answer(self, event: Inbound, message: str) -> Reply:
        """`message` in the sender's language (the default one if even that cannot be looked up)."""
        try:
            language = self.engine.language_of(event)
        except Exception:
            language = None
        with speaking(language):
            return Reply(_(message))

    def sending_report(self) -> list[str]:
        """What operators see of sending: each platform's current rate against its ceiling, and
        the 429s flood control saw by inferred scope (counts only)."""
        lines = []
        for platform, (rate, ceiling, by_chat, platform_wide) in self.flood.report().items():
            if isinstance(self.adapters.get(platform), LocalTerminal):
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

    async def _adapter_notice(self, to: Address, text: str, wait: bool) -> None:
        """An adapter's own notice, queued in the reply lane like every answer; with `wait`,
        return once it went out (at most `_ADAPTER_NOTICE_WAIT_S` later)."""
        self._queue_replies(to, [Reply(text)])
        if wait:
            await self._sent_to(to, _ADAPTER_NOTICE_WAIT_S)

    async def _sent_to(self, person: Address, timeout: float) -> None:
        """Wait until nothing queued for `person` remains open (or `timeout` passes)."""
        deadline = time.monotonic() + timeout
        await asyncio.sleep(0.05)
        while self.notices.open_for(person) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    def _forget_after_answer(self, adapter: ForgettingAdapter, person: Address) -> None:
        """Let the adapter erase what it keeps about a person who sent `/forgetme` (and leave
        their chat) once the answer to it has gone out there (at most a minute later)."""

        async def forget() -> None:
            await self._sent_to(person, 60.0)  # the answer is queued right after this is scheduled
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


#: the core's own libraries that log too much at DEBUG
_CORE_LOGGERS = ("apscheduler", "alembic")
#: SDK loggers that print request URLs (a Bot API URL holds the token), payloads with ids, or
#: bodies: WARNING and above only, whatever the level of our own logs (the platforms' come from
#: their plug-ins)
SDK_LOGGERS = (*Platforms.discover().loggers(), *_CORE_LOGGERS)


def configure_logging(level: str, stream: IO[str] | None = None, log_format: str = "text") -> logging.Handler:
    """Log to stderr (or `stream`), with secrets and platform identities redacted from every
    formatted line, tracebacks included; SDK loggers are quieted before any SDK object is
    built. `log_format` "json" writes one JSON object per line (`bridge.logjson`). Returns the
    handler installed on the root logger."""
    for noisy in dict.fromkeys((*SDK_LOGGERS, *Platforms.discover().loggers())):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    install_log_redaction()
    return handler


async def run_app(app: App, terminal: LocalTerminal | None = None) -> None:
    """Run until SIGINT/SIGTERM (or the end of the local terminal's input), then stop cleanly."""
    terminal = terminal if terminal is not None else app.terminal
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await app.start()
    # what start-up built (SDKs, settings, compiled statements) lives as long as the process:
    # keep it out of the collector's full passes, which otherwise stall the loop ~100 ms
    # (measured on webhook acknowledgements, bench/webhook_ack.py)
    gc.freeze()
    waiters = [asyncio.create_task(stop.wait())]
    if terminal is not None:
        waiters.append(asyncio.create_task(terminal.finished.wait()))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if terminal is not None and terminal.finished.is_set():
            with suppress(TimeoutError):  # what was typed before Ctrl-D goes out before we stop
                await asyncio.wait_for(app.sync(), timeout=10)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await app.stop()
