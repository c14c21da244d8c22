"""TelegramAdapter: python-telegram-bot 22 behind the neutral Adapter port.

Inbound: long polling (getUpdates) in one background task -> `normalize` -> the handler ->
each `Reply` rendered back to the sender; or, in webhook mode, `setWebhook` at start and the
app's webhook receiver (`bridge.inbox`) hands each recorded update to `process_update`.
Outbound: `render` builds the Bot API calls, which go out as raw requests (no `Message`
objects are built on the hot path); every SDK failure is translated by `errors` into
`RetryLater`, `RecipientGone` or `PermanentFailure`.
No PTB rate limiter and no PTB retries: the delivery worker owns both.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeDefault,
    Update,
)
from telegram.error import RetryAfter, TelegramError

from adapters.base import (
    Address,
    Button,
    Capabilities,
    Content,
    Dispatcher,
    Inbound,
    InboundHandler,
    MediaRefRejected,
    MediaTooLarge,
    Message,
    MessageRef,
    PermanentFailure,
    PostKind,
    RateLimits,
    Reply,
)
from bridge.ports import PreCheckout, StarTransaction, WebhookSpec

from . import errors, payments, render
from .normalize import to_inbound
from .paid_media import paid_media_ref, render_paid_media
from .transport import AiohttpRequest

log = logging.getLogger(__name__)

#: the updates Telegram must send us (message_reaction is only sent when asked for)
ALLOWED_UPDATES = (
    "message",
    "callback_query",
    "poll_answer",
    "poll",
    "message_reaction",
    "pre_checkout_query",
    "purchased_paid_media",
)
_COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
#: concurrent connections for sends; the delivery worker's concurrency should not exceed it
_POOL_SIZE = 64
#: read time-out for getUpdates beyond the long-poll timeout itself
_POLL_READ_MARGIN_S = 10.0
#: how long stop() lets the update being handled finish
_STOP_GRACE_S = 10.0
#: SDK loggers that would print tokens (httpx logs URLs) or chat ids (PTB debug) below WARNING
_NOISY_LOGGERS = ("httpx", "httpcore", "telegram")


class _RawBot(Bot):
    """A `Bot` that can return the raw JSON result instead of building `Message` objects."""

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """POST one Bot API method; returns the decoded `result` (dict, list or bool)."""
        return await self._post(method, params)

    async def raw_updates(
        self, offset: int, timeout: int, allowed_updates: Sequence[str]
    ) -> list[dict[str, Any]]:
        """getUpdates without parsing, so that one update PTB cannot parse is skipped
        instead of failing the whole batch forever."""
        params = {"offset": offset or None, "timeout": timeout, "allowed_updates": allowed_updates}
        result = await self._post("getUpdates", params, read_timeout=_POLL_READ_MARGIN_S + timeout)
        return list(result)


def _quiet_sdk_loggers() -> None:
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


class TelegramAdapter:
    """The Telegram platform adapter (implements `bridge.ports.Adapter`)."""

    platform = "telegram"
    capabilities = Capabilities()
    #: any process may send (PostgreSQL scale-out); only the inbound lease holder polls
    shared_sending = True

    def __init__(
        self,
        token: str,
        *,
        api_base_url: str = "https://api.telegram.org/bot",
        file_base_url: str = "https://api.telegram.org/file/bot",
        poll_interval: float = 0.0,
        poll_timeout: int = 30,
        commands: Sequence[tuple[str, str]] = (),
        admin_commands: Sequence[tuple[str, str]] = (),
        localized_commands: Mapping[str, tuple[Sequence[tuple[str, str]], Sequence[tuple[str, str]]]]
        | None = None,
        limits: RateLimits | None = None,
        paid_broadcast: bool = False,
        webhook: WebhookSpec | None = None,
        webhook_url: str = "",
    ) -> None:
        self.default_limits = limits or RateLimits(30, 1, 20)
        #: fan-out copies carry allow_paid_broadcast (replies and notices never do)
        self._paid_broadcast = paid_broadcast
        self._poll_interval = poll_interval
        #: webhook mode (None: long polling)
        self._webhook = webhook if webhook_url else None
        self._webhook_url = webhook_url
        self._poll_timeout = poll_timeout
        self._commands = tuple(commands)
        self._admin_commands = tuple(admin_commands)
        #: language code -> (follower menu, admin menu), published with that `language_code`
        self._localized_commands = dict(localized_commands or {})
        self._bot = _RawBot(
            token,
            base_url=api_base_url,
            base_file_url=file_base_url,
            request=AiohttpRequest(connection_pool_size=_POOL_SIZE, pool_timeout=30.0),
            get_updates_request=AiohttpRequest(connection_pool_size=1),
        )
        self._dispatcher: Dispatcher | None = None
        self._poller: asyncio.Task[None] | None = None
        self._offset = 0
        self._confirmed = 0
        self._username: str | None = None
        self._stopping = False
        self._started = False
        self._idle = True
        #: chats known to be channels (they only take anonymous polls)
        self._channel_chats: set[str] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, handler: InboundHandler, *, receive: bool = True) -> None:
        """Check the token (getMe), publish the command menu, then start long polling unless
        `receive` is false (several processes: another one holds Telegram's inbound lease)."""
        if self._started:
            raise RuntimeError("TelegramAdapter already started")
        _quiet_sdk_loggers()
        self._dispatcher = Dispatcher(self.platform, handler, self.reply)
        try:
            with errors.translated():
                await self._bot.initialize()
            self._username = self._bot.username
            await self._publish_commands()
            if self._webhook is not None:
                await self._set_webhook()
        except BaseException:
            await self._shutdown_bot()
            raise
        self._started = True
        if receive:
            await self.set_receiving(True)

    async def set_receiving(self, receive: bool) -> None:
        """Start or stop long polling (this process won or lost Telegram's inbound lease).
        Sending works either way; updates already handled are confirmed before polling stops."""
        if self._webhook is not None:
            return  # webhook mode: every process receives through the app's webhook receiver
        if not receive:
            await self._stop_polling()
        elif self._started and self._poller is None:
            await self._drop_webhook()
            self._stopping = False
            self._poller = asyncio.create_task(self._poll_loop(), name="telegram-long-poll")

    async def stop(self) -> None:
        """Stop polling (an update being handled is finished first), confirm the updates
        already handled, close the HTTP clients."""
        await self._stop_polling()
        self._started = False
        await self._shutdown_bot()

    async def _stop_polling(self) -> None:
        poller, self._poller = self._poller, None
        self._stopping = True
        if poller is None:
            return
        if self._idle:
            poller.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(poller, _STOP_GRACE_S)
        if self._offset > self._confirmed:
            with contextlib.suppress(TelegramError):
                await self._bot.raw_updates(self._offset, 0, ALLOWED_UPDATES)
                self._confirmed = self._offset

    async def _set_webhook(self) -> None:
        """Register our webhook (with the updates we handle and the secret Telegram sends back)."""
        assert self._webhook is not None
        params = {
            "url": self._webhook_url,
            "secret_token": self._webhook.secret,
            "allowed_updates": list(ALLOWED_UPDATES),
        }
        with errors.translated():
            await self._bot.call("setWebhook", params)
        log.info("telegram: webhook mode, updates are pushed to the configured webhook_url")

    async def _drop_webhook(self) -> None:
        """Long polling: remove a webhook left from webhook mode (Telegram refuses getUpdates
        while one is set); its pending updates stay queued for getUpdates."""
        with contextlib.suppress(TelegramError):
            info = await self._bot.call("getWebhookInfo", {})
            if info.get("url"):
                await self._bot.call("deleteWebhook", {"drop_pending_updates": False})
                log.info("telegram: deleted the webhook left from webhook mode; long polling")

    # ------------------------------------------------------------------ webhook (WebhookAdapter)

    def webhook_spec(self) -> WebhookSpec | None:
        """The webhook the app serves for us, None in long-polling mode."""
        return self._webhook

    def update_key(self, update: dict[str, object]) -> int | None:
        """An update's `update_id` (Telegram's are positive), None when the body is not an update."""
        value = update.get("update_id")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    async def process_update(self, update: dict[str, object]) -> None:
        """Run one update received by webhook through the same path as a polled one."""
        try:
            parsed = Update.de_json(update, self._bot)
        except Exception:
            log.exception("telegram: skipped an update the SDK could not parse")
            return
        await self._dispatch(parsed, polled=False)  # the webhook receiver already ran it once

    async def _shutdown_bot(self) -> None:
        with contextlib.suppress(TelegramError, RuntimeError):
            await self._bot.shutdown()

    async def _publish_commands(self) -> None:
        """The default menus (no `language_code`: the default language), then the same menus
        once per language with its `language_code`, which Telegram shows to people whose app
        speaks that language."""
        menus: list[tuple[str | None, Sequence[tuple[str, str]], Sequence[tuple[str, str]]]] = [
            (None, self._commands, self._admin_commands)
        ]
        menus += [(language, *pair) for language, pair in sorted(self._localized_commands.items())]
        try:
            for language, follower, admin in menus:
                everyone = _bot_commands(follower)
                admins = _bot_commands(admin)
                if everyone:
                    await self._bot.set_my_commands(
                        everyone, scope=BotCommandScopeDefault(), language_code=language
                    )
                if admins:
                    await self._bot.set_my_commands(
                        everyone + admins, scope=BotCommandScopeAllPrivateChats(), language_code=language
                    )
        except TelegramError as exc:  # a menu problem must not keep the bot offline
            log.warning("telegram: setMyCommands failed: %s", exc.message)

    # ------------------------------------------------------------------ inbound

    async def _poll_loop(self) -> None:
        backoff = 1.0
        while not self._stopping:
            self._idle = True  # waiting in getUpdates or a pause: stop() may cancel us here
            try:
                updates = await self._bot.raw_updates(self._offset, self._poll_timeout, ALLOWED_UPDATES)
            except RetryAfter as exc:
                await asyncio.sleep(errors.retry_after_seconds(exc))
                continue
            except Exception as exc:
                log.warning("telegram: getUpdates failed (%s); retrying in %.0fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            self._idle = False
            self._confirmed = self._offset
            backoff = 1.0
            for raw in updates:
                if self._stopping:
                    return  # the rest stays unconfirmed: Telegram sends it again next time
                self._offset = int(raw["update_id"]) + 1
                try:
                    update = Update.de_json(raw, self._bot)
                except Exception:
                    log.exception("telegram: skipped an update the SDK could not parse")
                    continue
                try:
                    await self._dispatch(update, polled=True)
                except Exception:
                    log.exception("telegram: failed to process an update")
            if self._poll_interval and not self._stopping:
                self._idle = True
                await asyncio.sleep(self._poll_interval)

    async def _dispatch(self, update: Update, *, polled: bool) -> None:
        """Turn one update into an event for the dispatcher; a polled one carries its
        `update_id` (in several processes, the app handles each once)."""
        if update.callback_query is not None:
            with contextlib.suppress(TelegramError):
                await self._bot.call("answerCallbackQuery", {"callback_query_id": update.callback_query.id})
        event = to_inbound(update, bot_username=self._username)
        if event is None:
            return
        if polled:
            event = dataclasses.replace(event, update=update.update_id)
        if isinstance(event, Message) and event.media is not None:
            event = self._with_media_loader(event)
        if isinstance(event, PreCheckout) and update.pre_checkout_query is not None:
            event = dataclasses.replace(
                event, answer=payments.answerer(update.pre_checkout_query.id, self._call)
            )
        assert self._dispatcher is not None
        await self._dispatcher(event)

    def _with_media_loader(self, event: Message) -> Inbound:
        """Attach the download (`getFile` + the file) for the engine to call, only once it has
        authorized the sender; nothing is fetched here."""
        assert event.media is not None and event.media.platform_ref is not None
        file_id = event.media.platform_ref

        async def fetch(limit: int) -> bytes:
            with errors.translated():  # e.g. over the 20 MB Bot API download limit
                tg_file = await self._bot.get_file(file_id)
                if (tg_file.file_size or 0) > limit:
                    raise MediaTooLarge()
                data = bytes(await tg_file.download_as_bytearray())
            if len(data) > limit:
                raise MediaTooLarge()
            return data

        return dataclasses.replace(event, media=dataclasses.replace(event.media, fetch=fetch))

    # ------------------------------------------------------------------ outbound

    async def _call(self, call: render.ApiCall) -> Any:
        with errors.translated():
            return await self._bot.call(call.method, call.params)

    async def send(self, address: Address, content: Content) -> MessageRef:
        """Deliver one post (text, photo, video, sticker or poll) to one chat. A poll goes to
        a channel as an anonymous poll (channels refuse the other kind)."""
        chat_id = address.target
        anonymous = chat_id in self._channel_chats
        content = self._with_follow_link(content)
        if content.stars is not None and content.media is not None:  # pay-per-post: paid media
            return await self._send_paid_media(chat_id, content)
        try:
            return await self._send_calls(
                chat_id, self._paid(render.render_post(chat_id, content, anonymous_poll=anonymous))
            )
        except PermanentFailure as exc:
            if content.kind is PostKind.POLL and errors.refused_because(exc, errors.POLL_MUST_BE_ANONYMOUS):
                self._channel_chats.add(chat_id)
                return await self._send_calls(
                    chat_id, self._paid(render.render_post(chat_id, content, anonymous_poll=True))
                )
            media = content.media
            if not (
                media is not None and media.platform_ref and errors.refused_because(exc, *errors.BAD_FILE_ID)
            ):
                raise
            if media.data is None:  # the worker has the bytes: it forgets the file_id and uploads
                raise MediaRefRejected(exc.reason) from exc
        # the stored file_id is not valid for this bot (token changed?): upload the bytes
        return await self._send_calls(
            chat_id,
            self._paid(render.render_post(chat_id, content, upload=True, anonymous_poll=anonymous)),
        )

    async def _send_paid_media(self, chat_id: str, content: Content) -> MessageRef:
        """A pay-per-post copy (`sendPaidMedia`); a file_id this bot cannot use is uploaded again."""
        media = content.media
        try:
            return await self._send_calls(chat_id, self._paid(render_paid_media(chat_id, content)))
        except PermanentFailure as exc:
            if not (media and media.platform_ref and errors.refused_because(exc, *errors.BAD_FILE_ID)):
                raise
            if media.data is None:
                raise MediaRefRejected(exc.reason) from exc
        return await self._send_calls(chat_id, self._paid(render_paid_media(chat_id, content, upload=True)))

    def _with_follow_link(self, content: Content) -> Content:
        """The copy with its channel's follow link (`t.me/<bot>?start=<handle>`), once getMe
        told the bot's username."""
        if not self._username:
            return content
        link = render.follow_link(self._username, content.channel_handle)
        return dataclasses.replace(content, follow_url=link)

    def _paid(self, calls: list[render.ApiCall]) -> list[render.ApiCall]:
        """Mark a copy's calls as a paid broadcast when paid broadcasts are on."""
        if self._paid_broadcast:
            for call in calls:
                call.params["allow_paid_broadcast"] = True
        return calls

    async def _send_calls(self, chat_id: str, calls: list[render.ApiCall]) -> MessageRef:
        message_ids: list[int] = []
        first: dict[str, Any] = {}
        try:
            for call in calls:
                result = await self._call(call)
                first = first or result
                message_ids.append(int(result["message_id"]))
        except Exception:
            await self._delete_quietly(chat_id, message_ids)  # a retry resends every part
            raise
        key = render.MessageKey(chat_id, tuple(message_ids))
        poll = first.get("poll")
        alt = poll["id"] if poll else (f"{chat_id}:{message_ids[0]}" if len(calls) > 1 else None)
        return MessageRef(str(key), alt=alt, media_ref=_media_ref(first))

    async def _delete_quietly(self, chat_id: str, message_ids: Sequence[int]) -> None:
        for message_id in message_ids:
            with contextlib.suppress(Exception):
                await self._call(
                    render.ApiCall("deleteMessage", {"chat_id": chat_id, "message_id": message_id})
                )

    async def edit(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Replace a delivered copy's text or caption (polls and stickers cannot be edited)."""
        key = render.MessageKey.parse(ref.key)
        calls, leftover = render.render_edit(key, self._with_follow_link(content))
        for call in calls:
            try:
                await self._call(call)
            except PermanentFailure as exc:
                if not errors.refused_because(exc, errors.NOT_MODIFIED):
                    raise
        for message_id in leftover:  # the new text needs fewer parts than were sent
            await self._remove_part(key.chat_id, message_id, caption=False)

    async def delete(self, address: Address, ref: MessageRef) -> None:
        """Delete every part of a copy; a part Telegram refuses to delete (older than 48 h)
        is edited into a short notice instead."""
        key = render.MessageKey.parse(ref.key)
        for index, message_id in enumerate(key.message_ids):
            is_media_caption = index == 0 and ref.media_ref is not None
            await self._remove_part(key.chat_id, message_id, caption=is_media_caption)

    async def _remove_part(self, chat_id: str, message_id: int, *, caption: bool) -> None:
        try:
            await self._call(render.ApiCall("deleteMessage", {"chat_id": chat_id, "message_id": message_id}))
            return
        except PermanentFailure as exc:
            if errors.refused_because(exc, errors.DELETE_NOT_FOUND):
                return  # already gone
            if not errors.refused_because(exc, errors.CANT_DELETE):
                raise
        try:
            await self._call(render.deleted_notice(chat_id, message_id, caption=caption))
        except PermanentFailure as exc:
            if errors.refused_because(exc, errors.NOT_MODIFIED):
                return
            if caption or not errors.refused_because(exc, errors.NO_TEXT_TO_EDIT):
                raise PermanentFailure(f"message can't be deleted or edited: {exc.reason}") from exc
            try:  # a photo or video whose reference did not say so: edit the caption
                await self._call(render.deleted_notice(chat_id, message_id, caption=True))
            except PermanentFailure as again:
                if not errors.refused_because(again, errors.NOT_MODIFIED):
                    raise PermanentFailure(f"message can't be deleted or edited: {again.reason}") from again

    async def close_poll(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Stop a delivered poll (no more answers); an already closed poll is fine."""
        key = render.MessageKey.parse(ref.key)
        try:
            await self._call(
                render.ApiCall("stopPoll", {"chat_id": key.chat_id, "message_id": key.message_ids[0]})
            )
        except PermanentFailure as exc:
            if not errors.refused_because(exc, errors.POLL_ALREADY_CLOSED):
                raise

    async def reply(self, address: Address, reply: Reply) -> MessageRef | None:
        """Answer a command in the person's private chat, with the reply's buttons; with
        `reply.edit_of`, edit that earlier message instead (a progress message). A long answer
        sent in parts is all or nothing: parts already sent are deleted if a later one fails,
        so a retry does not repeat them."""
        if reply.edit_of is not None:
            try:
                await self._call(render.render_reply_edit(render.MessageKey.parse(reply.edit_of), reply))
            except PermanentFailure as exc:
                if not errors.refused_because(exc, errors.NOT_MODIFIED):
                    raise
            return MessageRef(reply.edit_of)
        if reply.invoice is not None:  # the pay link is made here, so a failure is retried like a send
            link = str(await self._call(payments.invoice_link_call(reply.invoice)))
            pay = Button(payments.PAY_LABEL.format(stars=reply.invoice.stars), "", url=link)
            reply = dataclasses.replace(reply, buttons=(pay, *reply.buttons), invoice=None)
        if reply.image is not None:
            return await self._send_calls(address.target, render.render_reply_image(address.target, reply))
        return await self._send_calls(address.target, render.render_reply(address.target, reply))

    # ------------------------------------------------------------------ Stars (StarsGateway)

    async def refund(self, payer: Address, charge_id: str) -> None:
        """Give a Stars payment back (refundStarPayment)."""
        await self._open()
        await self._call(payments.refund_call(payer, charge_id))

    async def set_subscription_canceled(self, payer: Address, charge_id: str, canceled: bool) -> None:
        """Stop (or resume) a subscription's renewals (editUserStarSubscription)."""
        await self._open()
        await self._call(payments.cancel_call(payer, charge_id, canceled))

    async def star_transactions(self, offset: int, limit: int) -> list[StarTransaction]:
        """One page of the bot's Stars transactions (getStarTransactions), without users."""
        await self._open()
        return payments.star_transactions(await self._call(payments.transactions_call(offset, limit)))

    async def _open(self) -> None:
        """Make the HTTP client ready when the adapter is used without `start()` (the CLI)."""
        with errors.translated():
            await self._bot.initialize()


def _media_ref(result: dict[str, Any]) -> str | None:
    """The file_id of the media a send returned (the largest photo size)."""
    if result.get("photo"):
        return str(result["photo"][-1]["file_id"])
    for field in ("video", "sticker", "voice"):
        if result.get(field):
            return str(result[field]["file_id"])
    return paid_media_ref(result)


def _bot_commands(pairs: Sequence[tuple[str, str]]) -> list[BotCommand]:
    """Telegram-valid menu entries; names Telegram refuses (e.g. with a dash) are left out."""
    out = []
    for name, description in pairs:
        name = name.lstrip("/!").lower()
        if _COMMAND_NAME.match(name) and 1 <= len(description) <= 256:
            out.append(BotCommand(name, description))
        else:
            log.info("telegram: command %r cannot appear in Telegram's menu", name)
    return out
