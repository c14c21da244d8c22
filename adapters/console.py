"""The console adapter: a terminal session to try every flow locally, no tokens needed.

The local user starts as the operator. `:as NAME` switches to a simulated local follower (each
has its own sealed identity, like any platform user); posts appear per simulated follower as
they would in their private chat with the bot.

Payments are simulated: an invoice the bot attaches to a reply (`/subscribe <handle>`) is shown
as a line and remembered per person and handle; `:pay <handle>` pays it the way Telegram Stars
would — a pre-checkout the bot must accept, then a successful recurring payment — asking with
`/subscribe <handle>` first when no invoice is remembered.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import secrets
import shlex
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol, TextIO

from adapters.base import (
    Address,
    Capabilities,
    Content,
    Dispatcher,
    InboundHandler,
    InboundMedia,
    MediaTooLarge,
    Message,
    MessageRef,
    PermanentFailure,
    PostKind,
    RateLimits,
    Reaction,
    Reply,
)
from bridge.platforms import OperatorId, PlatformPlugin, PlatformServices, PlatformSettings
from bridge.ports import Invoice, PaymentReceived, PreCheckout

OPERATOR = "operator"
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.")

CONSOLE_HELP = """Console commands (everything else goes to the bot as a chat message):
  :as NAME                 speak as the simulated follower NAME (:as operator to go back)
  :who                     who you are speaking as
  :react POST-ID EMOJI     react to your copy of a post (:unreact POST-ID removes it)
  :photo PATH MESSAGE      send a photo with MESSAGE as its caption (also :video, :sticker,
                           :voice for an Ogg voice note)
  :pay HANDLE              pay the channel's invoice in simulated Stars (asks /subscribe first)
  :lang fr|en              choose the language the bot answers you in (sends /lang)
  :sync                    wait until every due delivery is sent
  :help                    this help; /help lists the bot's commands
  :quit                    stop (Ctrl-D works too)"""

_MEDIA_COMMANDS = {
    ":photo": PostKind.PHOTO,
    ":video": PostKind.VIDEO,
    ":sticker": PostKind.STICKER,
    ":voice": PostKind.VOICE,
}
_MIME = {
    PostKind.PHOTO: "image/jpeg",
    PostKind.VIDEO: "video/mp4",
    PostKind.STICKER: "image/webp",
    PostKind.VOICE: "audio/ogg",
}
_SUBSCRIBE = re.compile(r"[/!]subscribe\s+(\S+)", re.IGNORECASE)
#: how long `:pay` waits for the invoice its `/subscribe` asked for
INVOICE_WAIT_S = 10.0
#: a simulated subscription's period when the invoice names none
_PERIOD_S = 30 * 24 * 3600


class ConsoleAdapter:
    """A local terminal "platform": reads lines, prints what each simulated person sees."""

    platform = "console"
    capabilities = Capabilities(native_polls=False, reactions=True, edits=True)
    default_limits = RateLimits(global_per_s=10_000, per_chat_per_s=10_000, group_per_min=600_000)

    def __init__(
        self,
        *,
        input_stream: TextIO | None = None,
        output: TextIO | None = None,
        sync: Callable[[], Awaitable[None]] | None = None,
        prompt: bool = False,
        data_dir: Path | None = None,
    ) -> None:
        #: where a reply's picture (a `/stats` chart) is written
        self._pictures = (data_dir or Path("data")) / "charts"
        self._input = input_stream or sys.stdin
        self._output = output or sys.stdout
        self._sync = sync
        self._prompt = prompt
        self._who = OPERATOR
        self._dispatcher: Dispatcher | None = None
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._copies: dict[tuple[str, int], str] = {}  #: (name, post id) -> that copy's key
        self._posts_by_key: dict[str, int] = {}
        self._counter = itertools.count(1)
        self._asked: dict[str, str] = {}  #: person -> the handle of their last /subscribe
        self._invoices: dict[tuple[str, str], Invoice] = {}  #: (person, handle) -> unpaid invoice
        self._declined: set[str] = set()  #: people whose last /subscribe was answered without one
        self._invoice_came = asyncio.Event()
        self.finished = asyncio.Event()
        """Set when the input ends (Ctrl-D, :quit): the app then shuts down."""

    @property
    def operator_address(self) -> Address:
        """The local operator's address."""
        return Address(self.platform, OPERATOR)

    def set_sync(self, sync: Callable[[], Awaitable[None]]) -> None:
        """Install what `:sync` waits for (the app's delivery drain)."""
        self._sync = sync

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self, handler: InboundHandler) -> None:
        """Begin reading lines in a daemon thread (stdin may be a file, a pipe or a tty)."""
        self._dispatcher = Dispatcher(self.platform, handler, self.reply)
        loop = asyncio.get_running_loop()

        def pump() -> None:
            for line in self._input:
                loop.call_soon_threadsafe(self._lines.put_nowait, line.rstrip("\n"))
            loop.call_soon_threadsafe(self._lines.put_nowait, None)

        threading.Thread(target=pump, name="console-input", daemon=True).start()
        self._reader = asyncio.create_task(self._read_loop(), name="console-reader")
        self._print(f"channelbridge console — you are '{self._who}'. Type :help or /help.")

    async def stop(self) -> None:
        """Stop reading input."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    async def _read_loop(self) -> None:
        while True:
            if self._prompt:
                self._output.write(f"{self._who}> ")
                self._output.flush()
            line = await self._lines.get()
            if line is None:
                break
            try:
                if not await self._line(line.strip()):
                    break
            except Exception as exc:  # one bad line must not end the session
                self._print(f"! error: {type(exc).__name__}: {exc}")
        self.finished.set()

    async def _line(self, line: str) -> bool:
        """Handle one input line; False ends the session."""
        if not line or line.startswith("#"):
            return True
        if line.startswith(":"):
            return await self._console_command(line)
        asked = _SUBSCRIBE.match(line)
        if asked is not None:  # its invoice, when one comes back, is this handle's
            self._asked[self._who] = asked.group(1).lower()
            self._declined.discard(self._who)
        await self._dispatch(Message(self._address(), line))
        return True

    async def _dispatch(self, event: Message | Reaction | PreCheckout | PaymentReceived) -> None:
        assert self._dispatcher is not None
        await self._dispatcher(event)

    def _address(self) -> Address:
        return Address(self.platform, self._who)

    async def _console_command(self, line: str) -> bool:
        head, _, rest = line.partition(" ")
        head = head.lower()
        if head in (":quit", ":exit"):
            return False
        if head == ":help":
            self._print(CONSOLE_HELP)
        elif head == ":who":
            self._print(f"you are '{self._who}'")
        elif head == ":as":
            name = rest.strip().lower()
            if not _valid_name(name):
                self._print("usage: :as NAME (letters, digits, _ - .)")
            else:
                self._who = name
                self._print(f"you are now '{name}'")
        elif head in (":react", ":unreact"):
            await self._react(head, rest)
        elif head in _MEDIA_COMMANDS:
            await self._media(_MEDIA_COMMANDS[head], rest)
        elif head == ":pay":
            await self._pay(rest.strip().lower())
        elif head == ":lang":
            await self._dispatch(Message(self._address(), f"/lang {rest.strip().lower()}".rstrip()))
        elif head == ":sync":
            if self._sync is not None:
                await self._sync()
            self._print("synced")
        else:
            self._print(f"unknown console command {head}; :help lists them")
        return True

    async def _react(self, head: str, rest: str) -> None:
        parts = rest.split()
        removing = head == ":unreact"
        if len(parts) != (1 if removing else 2) or not parts[0].lstrip("#").isdigit():
            self._print("usage: :react POST-ID EMOJI  |  :unreact POST-ID")
            return
        post_id = int(parts[0].lstrip("#"))
        key = self._copies.get((self._who, post_id))
        if key is None:
            self._print(f"you have no copy of post #{post_id}")
            return
        await self._dispatch(Reaction(self._address(), key, None if removing else parts[1]))
        self._print("reaction removed" if removing else f"you reacted {parts[1]} to #{post_id}")

    async def _media(self, kind: PostKind, rest: str) -> None:
        try:
            parts = shlex.split(rest)
        except ValueError:
            parts = []
        if not parts:
            self._print(f"usage: :{kind.value} PATH /post <handle> [text]")
            return
        path = Path(parts[0]).expanduser()
        caption = rest.strip()[len(rest.strip().split(maxsplit=1)[0]) :].strip()
        try:
            size = path.stat().st_size
        except OSError as exc:
            self._print(f"cannot read {path}: {exc.strerror}")
            return

        async def fetch(limit: int) -> bytes:  # read by the engine only for an admin's post
            try:
                with path.open("rb") as handle:
                    data = handle.read(limit + 1)
            except OSError as exc:
                raise PermanentFailure(f"cannot read the file: {exc.strerror}") from exc
            if len(data) > limit:
                raise MediaTooLarge()
            return data

        duration = ogg_duration(path) if kind is PostKind.VOICE else None
        media = InboundMedia(
            kind=kind, mime=_MIME[kind], filename=path.name, size=size, duration=duration, fetch=fetch
        )
        await self._dispatch(Message(self._address(), caption, media))

    async def _pay(self, handle: str) -> None:
        """Pay the remembered invoice for `handle` (asking for one first): a pre-checkout, then,
        when the bot accepts it, a successful first payment of a 30-day subscription."""
        if not handle or " " in handle:
            self._print("usage: :pay HANDLE")
            return
        who, address = self._who, self._address()
        invoice = self._invoices.get((who, handle))
        if invoice is None:
            if self._sync is not None:  # earlier answers first: the next one is the invoice's
                await self._sync()
            await self._line(f"/subscribe {handle}")
            invoice = await self._wait_invoice(who, handle)
            if invoice is None:
                self._print(f"[no invoice for {handle} came back: nothing paid]")
                return
        answers: list[str | None] = []

        async def answer(error: str | None) -> None:
            answers.append(error)
            if error is not None:
                self._print(f"[payment refused: {error}]")

        await self._dispatch(PreCheckout(address, invoice.payload, "XTR", invoice.stars, answer))
        if answers[:1] != [None]:
            if not answers:
                self._print("[the bot did not answer the pre-checkout: nothing paid]")
            return
        del self._invoices[(who, handle)]
        charge = f"console-{secrets.token_hex(8)}"
        await self._dispatch(
            PaymentReceived(
                address,
                invoice.payload,
                "XTR",
                invoice.stars,
                charge,
                expires_at=time.time() + (invoice.period_s or _PERIOD_S),
                recurring=True,
                first_recurring=True,
            )
        )
        self._print(f"[paid {invoice.stars} Stars for {handle}: charge {charge}]")

    async def _wait_invoice(self, who: str, handle: str) -> Invoice | None:
        """The invoice for `handle` once it arrives (replies come through the delivery worker)."""
        deadline = asyncio.get_running_loop().time() + INVOICE_WAIT_S
        while (invoice := self._invoices.get((who, handle))) is None:
            if who in self._declined:  # answered without an invoice (a refusal)
                return None
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return None
            self._invoice_came.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._invoice_came.wait(), left)
        return invoice

    # ---- outbound -------------------------------------------------------------------------

    def _print(self, text: str) -> None:
        self._output.write(text + "\n")
        self._output.flush()

    def _render(self, content: Content) -> str:
        head = f"{content.channel_name} (#{content.post_id})"
        if content.kind == PostKind.POLL and content.poll is not None:
            options = "  ".join(f"{i}) {o}" for i, o in enumerate(content.poll.options, 1))
            state = " [closed]" if content.poll.closed else ""
            how = "choose several" if content.poll.multi else "choose one"
            what = "quiz" if content.poll.quiz else "poll"
            return (
                f"{head} {what}{state}: {content.poll.question}  {options}"
                f"  — vote with /vote {content.post_id} <number> ({how})"
            )
        if content.kind == PostKind.VOICE and content.media is not None:
            seconds = content.media.duration if content.media.duration is not None else "?"
            return f"{head}: [voice: {seconds}s] {content.text}".rstrip()
        if content.media is not None:
            size = len(content.media.data) if content.media.data is not None else 0
            media = f"[{content.kind.value} {content.media.filename}, {size} bytes]"
            return f"{head}: {media} {content.text}".rstrip()
        return f"{head}: {content.text}"

    async def send(self, address: Address, content: Content) -> MessageRef:
        """Print one copy for one simulated follower."""
        if not _valid_name(address.id):
            raise PermanentFailure("not a console user name")
        mark = "🔕 " if content.silent else ""
        buttons = "".join(f"\n  Send {b.command}" for b in content.buttons)
        buttons += f"\n  follow: {content.follow_command}"  # the console's follow link
        self._print(f"[to {address.id}] {mark}{self._render(content)}{buttons}")
        key = f"{address.id}:{content.post_id}:{next(self._counter)}"
        self._copies[(address.id, content.post_id)] = key
        self._posts_by_key[key] = content.post_id
        media_ref = f"console-media-{content.media.blob_id}" if content.media is not None else None
        return MessageRef(key, media_ref=media_ref)

    async def edit(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Print the edited copy."""
        self._print(f"[to {address.id}] edited {self._render(content)}")

    async def delete(self, address: Address, ref: MessageRef) -> None:
        """Print that a copy was removed."""
        post_id = self._posts_by_key.pop(ref.key, None)
        if post_id is None:  # a copy sent before a restart: its key still says which post
            parts = ref.key.split(":")
            post_id = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
        if post_id is not None:
            self._copies.pop((address.id, post_id), None)
        self._print(f"[to {address.id}] deleted post #{post_id if post_id is not None else '?'}")

    async def close_poll(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Print that a poll copy closed."""
        self._print(f"[to {address.id}] poll #{content.post_id} is closed")

    async def reply(self, address: Address, reply: Reply) -> MessageRef | None:
        """Print the bot's answer to one person (an edited one is marked as such)."""
        text = reply.text
        if reply.buttons:
            text += "\n  " + "  ".join(f"[{b.label}: {b.url or b.command}]" for b in reply.buttons)
        if reply.invoice is not None:
            text += "\n  " + self._invoice_line(address.id, reply.invoice)
        elif reply.edit_of is None and self._asked.pop(address.id, None) is not None:
            self._declined.add(address.id)  # the answer to their /subscribe carried no invoice
            self._invoice_came.set()
        if reply.image is not None:  # a terminal shows no picture: write it and say where
            text += f"\n  [picture: {self._write_picture(reply.image)}]"
        edited = "(edited) " if reply.edit_of is not None else ""
        self._print(f"[bot → {address.id}] {edited}{text}")
        return MessageRef(reply.edit_of or f"{address.id}:notice:{next(self._counter)}")

    def _write_picture(self, png: bytes) -> Path:
        """Write a reply's PNG under data_dir/charts (0700, the file 0600); its path."""
        self._pictures.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._pictures / f"chart-{time.strftime('%Y%m%d-%H%M%S')}-{next(self._counter)}.png"
        path.write_bytes(png)
        path.chmod(0o600)
        return path.resolve()

    def _invoice_line(self, who: str, invoice: Invoice) -> str:
        """Remember an invoice for the handle this person last asked to subscribe to, and
        say how to pay it."""
        handle = self._asked.pop(who, None)
        if handle is not None:
            self._invoices[(who, handle)] = invoice
            self._invoice_came.set()
        period = f"{invoice.period_s // 86400} days of " if invoice.period_s else ""
        how = f":pay {handle}" if handle is not None else ":pay <handle>"
        return f"[invoice: {period}{invoice.title} for {invoice.stars} Stars — type {how} to pay]"


def ogg_duration(path: Path) -> int | None:
    """The length in whole seconds of an Ogg Opus (or Vorbis) file: the last page's granule
    position over the sample rate (Opus: 48 kHz less its pre-skip); None when unreadable.
    Reads the first 4 KB (the codec header) and the last 64 KB (an Ogg page is smaller)."""
    try:
        with path.open("rb") as handle:
            start = handle.read(4096)
            size = handle.seek(0, 2)
            handle.seek(max(0, size - 65536))
            tail = handle.read()
    except OSError:
        return None
    last = tail.rfind(b"OggS")
    if not start.startswith(b"OggS") or last < 0 or len(tail) < last + 14:
        return None
    granule = int.from_bytes(tail[last + 6 : last + 14], "little", signed=True)
    head = start.find(b"OpusHead")
    if head >= 0 and len(start) >= head + 12:
        pre_skip = int.from_bytes(start[head + 10 : head + 12], "little")
        return max(0, round((granule - pre_skip) / 48_000))
    vorbis = start.find(b"\x01vorbis")
    if vorbis >= 0 and len(start) >= vorbis + 16:
        rate = int.from_bytes(start[vorbis + 12 : vorbis + 16], "little")
        return max(0, round(granule / rate)) if rate else None
    return None


def _valid_name(name: str) -> bool:
    return 0 < len(name) <= 32 and set(name) <= _NAME_OK


# ---- registration -----------------------------------------------------------------------------


class ConsoleSettings(PlatformSettings):
    """[console]: the local terminal adapter; None means on when no other platform is enabled."""

    enabled: bool | None = None


class _WithPlatforms(Protocol):
    def enabled_platforms(self) -> tuple[str, ...]: ...


class ConsoleSettingsMixin:
    """Adds `console_enabled` to the whole settings object of a process with this plug-in."""

    @property
    def console_enabled(self: _WithPlatforms) -> bool:
        """Whether the console adapter runs: as configured, else when no platform is enabled."""
        return ConsoleAdapter.platform in self.enabled_platforms()


def _build(section: ConsoleSettings, services: PlatformServices) -> ConsoleAdapter:
    return ConsoleAdapter(prompt=services.prompt, data_dir=services.data_dir)


#: the console as a platform plug-in (the `channelbridge.adapters` entry point `console`)
PLUGIN = PlatformPlugin(
    name=ConsoleAdapter.platform,
    settings_model=ConsoleSettings,
    factory=_build,
    rank=90,
    sells_stars=True,  # simulated: `:pay <handle>` pays the last invoice
    operator=OperatorId(str, '"<name>"'),
    fallback=True,
    settings_mixin=ConsoleSettingsMixin,
)
