"""A local Telegram Bot API server (aiohttp, 127.0.0.1) with a Python control API for tests.

It speaks the real wire format (`/bot<token>/<method>`, JSON / form / multipart requests,
`{"ok": ..., "result" | "error_code", "description", "parameters"}` answers), validates
like Telegram for the methods the adapter uses, and lets a test script users, inject
failures, enforce rate limits and inspect every call and every chat.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import itertools
import json
import struct
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from aiohttp import web

from ._html import EntityError, parse_html, utf16_len
from .limits import FloodControl, FloodRefused, Limits
from .payments import Payments
from .state import (
    JSON,
    Call,
    ChatMessage,
    FailureRule,
    FakeGroup,
    FakeUser,
    PollRecord,
    StoredFile,
    file_json,
)
from .webhook import WEBHOOK_CONFLICT, Webhooks

T = TypeVar("T")

#: update kinds Telegram sends when allowed_updates is empty or never given
DEFAULT_UPDATES = frozenset(
    {
        "message", "edited_message", "channel_post", "edited_channel_post", "inline_query",
        "chosen_inline_result", "callback_query", "shipping_query", "pre_checkout_query",
        "poll", "poll_answer", "my_chat_member", "chat_join_request", "purchased_paid_media",
    }
)  # fmt: skip
#: methods that send, change or delete a message: subject to the enforced-limits mode (Telegram
#: counts edits and deletions against the same limits as sends). Includes send methods this
#: server does not implement, so a bot calling one is limited before it gets its 404.
LIMITED_METHODS = frozenset(
    {"sendMessage", "sendPhoto", "sendVideo", "sendSticker", "sendPoll", "sendAudio",
     "sendDocument", "sendAnimation", "sendVoice", "sendVideoNote", "sendMediaGroup",
     "sendLocation", "sendVenue", "sendContact", "sendDice", "sendInvoice", "sendPaidMedia",
     "copyMessage", "copyMessages", "forwardMessage", "forwardMessages", "editMessageText",
     "editMessageCaption", "editMessageMedia", "editMessageReplyMarkup", "stopPoll",
     "deleteMessage", "deleteMessages"}
)  # fmt: skip
_JSON_FIELDS = frozenset(
    {"reply_markup", "options", "allowed_updates", "commands", "scope", "reply_parameters",
     "link_preview_options", "entities", "caption_entities", "prices", "media",
     "correct_option_ids"}
)  # fmt: skip
_INT_FIELDS = frozenset(
    {"chat_id", "message_id", "offset", "limit", "timeout", "reply_to_message_id", "width",
     "height", "duration", "cache_time", "open_period", "star_count", "user_id",
     "subscription_period", "correct_option_id"}
)  # fmt: skip
_BOOL_FIELDS = frozenset(
    {"disable_notification", "is_anonymous", "allows_multiple_answers", "protect_content",
     "show_alert", "is_closed", "allow_sending_without_reply", "supports_streaming",
     "allow_paid_broadcast", "ok", "is_canceled"}
)  # fmt: skip
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request: injected failure",
    403: "Forbidden: bot was blocked by the user",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
_DELETE_WINDOW_S = 48 * 3600
_MAX_DOWNLOAD = 20 * 1024 * 1024
_MAX_VOICE_UPLOAD = 50 * 1024 * 1024


class ApiError(Exception):
    """A Bot API error answer: HTTP status, Telegram's description, optional retry_after."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def body(self) -> JSON:
        """The JSON error body Telegram sends."""
        out: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            out["parameters"] = {"retry_after": self.retry_after}
        return out


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def _image_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG header; a plausible default for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return 800, 600


class FakeBotApi:
    """The local Bot API server and its control API (same process, same event loop).

    Use `async with FakeBotApi() as api:` (or `start()` / `stop()`), point the bot at
    `api.base_url` / `api.file_base_url`, then script users with `add_user`, `user_sends_text`,
    `press_button`, `answer_poll`, `react` ...; inject failures with `fail`, `block`,
    `enforce_limits`; read `calls`, `calls_to(...)`, `messages(chat_id)`, `busiest_second()`.
    Telegram Stars (invoices, checkout, renewals, refunds, paid media) live in `api.payments`
    (see `payments.py`).

    The server serves one bot token. Its flood-control state (windows, buckets, penalties) is
    that token's: every connection and every process that sends with the token shares it.
    """

    def __init__(
        self,
        token: str = "123456:TEST-local-token",
        *,
        bot_id: int = 123456,
        bot_username: str = "channelbridge_test_bot",
    ) -> None:
        self.token = token
        self.bot_user: JSON = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Channel Bridge",
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        #: every request received, in order
        self.calls: list[Call] = []
        self.users: dict[int, FakeUser] = {}
        self.groups: dict[int, FakeGroup] = {}
        self.files: dict[str, StoredFile] = {}
        #: files that arrived as multipart uploads (in order)
        self.uploads: list[StoredFile] = []
        self.polls: dict[str, PollRecord] = {}
        #: scope type -> the commands set for it
        self.commands: dict[str, list[JSON]] = {}
        #: (scope type, language_code or "") -> the commands published for that scope and language
        self.commands_by_language: dict[tuple[str, str], list[JSON]] = {}
        #: callback query id -> the answerCallbackQuery params, or None while unanswered
        self.callback_answers: dict[str, JSON | None] = {}
        self.failures: list[FailureRule] = []
        #: 429 answers given by the enforced-limits mode (injected failures not included)
        self.rate_limited = 0
        #: the same, by the scope that refused: "global", "paid" or "chat"
        self.rate_limited_by_scope: collections.Counter[str] = collections.Counter()
        #: messages sent with allow_paid_broadcast=true (Telegram charges for those beyond the
        #: free rate), counted whether or not limits are enforced
        self.paid_sent = 0
        self.allowed_updates: frozenset[str] = DEFAULT_UPDATES
        self._chats: dict[int, dict[int, ChatMessage]] = {}
        self._next_message_id: dict[int, int] = {}
        self._updates: list[tuple[int, str, JSON]] = []
        self._update_ids = itertools.count(700_000)
        self._ids = itertools.count(1)
        self._user_ids = itertools.count(10_001)
        self._new_update = asyncio.Event()
        self._poll_generation = 0
        self._flood: FloodControl | None = None
        self._closing = False
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._methods: dict[str, Callable[[JSON, dict[str, bytes]], Awaitable[Any]]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "sendPhoto": functools.partial(self._send_media, "photo"),
            "sendVideo": functools.partial(self._send_media, "video"),
            "sendSticker": functools.partial(self._send_media, "sticker"),
            "sendVoice": functools.partial(self._send_media, "voice"),
            "sendPoll": self._send_poll,
            "stopPoll": self._stop_poll,
            "editMessageText": self._edit_text,
            "editMessageCaption": self._edit_caption,
            "deleteMessage": self._delete_message,
            "getFile": self._get_file,
            "setMyCommands": self._set_my_commands,
            "answerCallbackQuery": self._answer_callback_query,
        }
        #: Telegram Stars: invoices, checkout, charges, refunds, paid media (see payments.py)
        self.payments = Payments(self)
        self._methods.update(self.payments.methods())
        #: webhooks: setWebhook / deleteWebhook / getWebhookInfo and delivery by POST (webhook.py)
        self.webhook = Webhooks(self)
        self._methods.update(self.webhook.methods())

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """The `base_url` to give python-telegram-bot (the token is appended by PTB)."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def file_base_url(self) -> str:
        """The `base_file_url` to give python-telegram-bot."""
        return f"http://127.0.0.1:{self.port}/file/bot"

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Release waiting long polls and stop listening."""
        self._closing = True
        self._wake_pollers()
        await self.webhook.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotApi:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ control: people

    def add_user(
        self, first_name: str = "Alice", *, username: str | None = None, started: bool = True
    ) -> FakeUser:
        """Create a user with a private chat with the bot (chat id == user id)."""
        user = FakeUser(next(self._user_ids), first_name, username, started=started)
        self.users[user.id] = user
        self._chats[user.id] = {}
        return user

    def add_group(self, title: str = "Mirror room", *, chat_type: str = "supergroup") -> FakeGroup:
        """Create a supergroup (or, with chat_type="channel", a channel) the bot may post in;
        returns it (its id is negative)."""
        group = FakeGroup(-1_000_000_000_000 - next(self._ids), title, chat_type)
        self.groups[group.id] = group
        self._chats[group.id] = {}
        return group

    def block(self, user_id: int, blocked: bool = True) -> None:
        """The user blocks (or unblocks) the bot: calls to their chat answer 403."""
        self.users[user_id].blocked = blocked

    def deactivate(self, user_id: int) -> None:
        """The user deletes their account: calls to their chat answer 403."""
        self.users[user_id].deactivated = True

    # ------------------------------------------------------------------ control: user actions

    def user_sends_text(self, user_id: int, text: str, *, reply_to: int | None = None) -> ChatMessage:
        """The user writes `text` in their private chat (optionally replying to a message)."""
        return self._user_message(user_id, "text", text=text, reply_to=reply_to)

    def user_sends_photo(self, user_id: int, data: bytes, *, caption: str | None = None) -> ChatMessage:
        """The user sends a photo (two sizes: a thumbnail and the full image)."""
        full = self._store_file("photo", data, mime_type="image/jpeg")
        thumb = self._store_file("photo", b"thumbnail:" + data[:16], mime_type="image/jpeg")
        thumb.width, thumb.height = 90, 90
        return self._user_message(user_id, "photo", caption=caption, photo_sizes=[thumb, full], file=full)

    def user_sends_video(
        self,
        user_id: int,
        data: bytes,
        *,
        caption: str | None = None,
        duration: int = 3,
        file_name: str = "clip.mp4",
    ) -> ChatMessage:
        """The user sends a video."""
        f = self._store_file("video", data, mime_type="video/mp4", file_name=file_name)
        f.width, f.height, f.duration = 640, 360, duration
        return self._user_message(user_id, "video", caption=caption, file=f)

    def user_sends_voice(
        self, user_id: int, data: bytes, *, caption: str | None = None, duration: int = 7
    ) -> ChatMessage:
        """The user records a voice note (OGG/OPUS) and sends it, maybe with a caption."""
        f = self._store_file("voice", data, mime_type="audio/ogg")
        f.duration = duration
        return self._user_message(user_id, "voice", caption=caption, file=f)

    def user_sends_sticker(self, user_id: int, data: bytes) -> ChatMessage:
        """The user sends a (static webp) sticker."""
        f = self._store_file("sticker", data, mime_type="image/webp")
        f.width = f.height = 512
        return self._user_message(user_id, "sticker", file=f)

    def group_message(self, group_id: int, user_id: int, text: str) -> ChatMessage:
        """A member writes `text` in a group the bot is in."""
        chat = self.groups[group_id].chat_json()
        msg = ChatMessage(
            self._new_message_id(group_id), chat, self.users[user_id].to_json(), _now(), "text",
            text=text, source=text,
        )  # fmt: skip
        self._chats[group_id][msg.message_id] = msg
        self.push_update("message", msg.to_json())
        return msg

    def press_button(self, user_id: int, message_id: int, data: str) -> str:
        """The user presses the inline button carrying `data` under a bot message.

        Returns the callback query id. The button must exist on that message.
        """
        msg = self._chats[user_id].get(message_id)
        if msg is None or msg.deleted:
            raise LookupError("no such message in that chat")
        rows = (msg.reply_markup or {}).get("inline_keyboard", [])
        if not any(button.get("callback_data") == data for row in rows for button in row):
            raise LookupError("no button with that callback_data on the message")
        query_id = str(next(self._ids) * 7919 + 4_000_000_000)
        self.callback_answers[query_id] = None
        self.push_update(
            "callback_query",
            {
                "id": query_id,
                "from": self.users[user_id].to_json(),
                "message": msg.to_json(),
                "chat_instance": f"ci{user_id}",
                "data": data,
            },
        )
        return query_id

    def answer_poll(self, user_id: int, poll_id: str, option_ids: list[int]) -> None:
        """The user votes (an empty list retracts the vote) in a poll the bot sent."""
        poll = self.polls[poll_id]
        if poll.is_closed:
            raise ValueError("poll is closed")
        if any(not 0 <= option < len(poll.options) for option in option_ids):
            raise ValueError("no such option")
        if len(option_ids) > 1 and not poll.allows_multiple_answers:
            raise ValueError("poll allows one answer")
        if poll.type == "quiz" and (user_id in poll.answers or not option_ids):
            raise ValueError("a quiz answer can't be changed or retracted")
        poll.answers[user_id] = list(option_ids)
        self.push_update("poll", poll.to_json())
        if not poll.is_anonymous:
            self.push_update(
                "poll_answer",
                {
                    "poll_id": poll_id,
                    "user": self.users[user_id].to_json(),
                    "option_ids": list(option_ids),
                    "option_persistent_ids": [str(option) for option in option_ids],
                },
            )

    def react(self, user_id: int, message_id: int, emoji: str | None) -> None:
        """The user sets (or, with None, removes) their reaction on a message in their chat."""
        msg = self._chats[user_id][message_id]
        old = msg.reactions.get(user_id, [])
        new = [emoji] if emoji else []
        msg.reactions[user_id] = new
        self.push_update(
            "message_reaction",
            {
                "chat": self.users[user_id].chat_json(),
                "message_id": message_id,
                "user": self.users[user_id].to_json(),
                "date": _now(),
                "old_reaction": [{"type": "emoji", "emoji": e} for e in old],
                "new_reaction": [{"type": "emoji", "emoji": e} for e in new],
            },
        )

    def push_update(self, kind: str, payload: JSON) -> int:
        """Queue any update for getUpdates; returns its update_id."""
        update_id = next(self._update_ids)
        self._updates.append((update_id, kind, payload))
        self._wake_pollers()
        self.webhook.kick()
        return update_id

    # ------------------------------------------------------------------ control: failures

    def fail(
        self,
        method: str | None = None,
        *,
        chat_id: int | None = None,
        status: int = 400,
        description: str | None = None,
        retry_after: int | None = None,
        times: int | None = 1,
        after: int = 0,
    ) -> FailureRule:
        """Answer matching calls (by method and/or chat) with an error, `times` times (None =
        until `clear_failures`), after letting `after` matching calls through. 429 answers
        carry `retry_after` (default 3)."""
        if status == 429 and retry_after is None:
            retry_after = 3
        text = description or _DEFAULT_DESCRIPTIONS.get(status, "Error").format(retry_after=retry_after)
        rule = FailureRule(method, chat_id, status, text, retry_after, times, after)
        self.failures.append(rule)
        return rule

    def clear_failures(self) -> None:
        """Remove every injected failure."""
        self.failures.clear()

    def enforce_limits(
        self,
        global_per_s: float = 30,
        per_chat_per_s: float = 1,
        *,
        per_chat_burst: int = 3,
        paid_per_s: float = 1000,
        penalty_factor: float = 2.0,
        penalty_step_s: float = 0.0,
        max_penalty_s: float = 300.0,
    ) -> Limits:
        """Enforce Telegram's flood control on `LIMITED_METHODS`; returns the limits in force.

        - free sends: at most `global_per_s` in any sliding second, for the whole token;
        - sends with `allow_paid_broadcast=true`: at most `paid_per_s` in any sliding second,
          instead of the free budget;
        - per chat (free and paid alike): a token bucket of `per_chat_burst` refilled at
          `per_chat_per_s`;
        - beyond a limit: 429 with `parameters.retry_after` (whole seconds, >= 1) and a penalty
          of that length on the scope that was exceeded ("global", "paid" or the chat). A
          request of that scope arriving while the penalty runs is refused and extends it:
          remaining := min(`max_penalty_s`, remaining * `penalty_factor` + `penalty_step_s`).
          `retry_after` always tells the remaining penalty, rounded up.

        May be called again at any time, also while a bot is sending: the new numbers apply to
        the next request, what was already sent still counts, running penalties keep running.
        The full rules are in `tests/telegram_api/limits.py`.
        """
        limits = Limits(
            global_per_s=global_per_s,
            per_chat_per_s=per_chat_per_s,
            per_chat_burst=per_chat_burst,
            paid_per_s=paid_per_s,
            penalty_factor=penalty_factor,
            penalty_step_s=penalty_step_s,
            max_penalty_s=max_penalty_s,
        )
        if self._flood is None:
            self._flood = FloodControl(limits)
        else:
            self._flood.configure(limits, time.monotonic())
        return limits

    def disable_limits(self) -> None:
        """Stop enforcing rate limits and forget what was counted (penalties included)."""
        self._flood = None

    @property
    def limits(self) -> Limits | None:
        """The limits being enforced, or None."""
        return self._flood.limits if self._flood is not None else None

    def penalty_remaining(self, chat_id: int | None = None, *, paid: bool = False) -> float:
        """Seconds left of the running penalty on a chat, or (chat_id None) on the token's free
        budget (or, with paid=True, its paid ceiling); 0 when none runs or limits are off."""
        if self._flood is None:
            return 0.0
        return self._flood.remaining(chat_id, paid=paid, now=time.monotonic())

    def age_message(self, chat_id: int, message_id: int, seconds: int) -> None:
        """Pretend a message was sent `seconds` earlier (older than 48 h can't be deleted)."""
        self._chats[chat_id][message_id].date -= seconds

    # ------------------------------------------------------------------ control: inspection

    def calls_to(self, method: str) -> list[Call]:
        """Every call to one method, in order."""
        return [call for call in self.calls if call.method == method]

    def busiest_second(
        self,
        methods: Iterable[str] | None = None,
        *,
        chat_id: int | None = None,
        paid: bool | None = None,
        since: float | None = None,
    ) -> int:
        """The most calls answered 200 within any sliding second `(t - 1, t]`.

        Counts calls to `methods` (default `LIMITED_METHODS`), optionally only those to one
        chat, only paid (`paid=True`) or free (`paid=False`) ones, and only those that arrived
        at or after the monotonic instant `since`.
        """
        wanted = LIMITED_METHODS if methods is None else frozenset(methods)
        times = sorted(
            call.at
            for call in self.calls
            if call.status == 200
            and call.method in wanted
            and (chat_id is None or call.chat_id == chat_id)
            and (paid is None or call.paid == paid)
            and (since is None or call.at >= since)
        )
        busiest, first = 0, 0
        for last, at in enumerate(times):
            while times[first] <= at - 1.0:
                first += 1
            busiest = max(busiest, last - first + 1)
        return busiest

    def messages(self, chat_id: int, *, include_deleted: bool = False) -> list[ChatMessage]:
        """The messages in a chat, oldest first (deleted ones only when asked)."""
        return [msg for msg in self._chats[chat_id].values() if include_deleted or not msg.deleted]

    def bot_messages(self, chat_id: int, *, include_deleted: bool = False) -> list[ChatMessage]:
        """The bot's messages in a chat, oldest first."""
        return [msg for msg in self.messages(chat_id, include_deleted=include_deleted) if msg.from_bot]

    def message(self, chat_id: int, message_id: int) -> ChatMessage:
        """One message (also when deleted)."""
        return self._chats[chat_id][message_id]

    async def wait_for(
        self, predicate: Callable[[], T], *, timeout: float = 5.0, what: str = "condition"
    ) -> T:
        """Wait until `predicate()` is truthy and return its value; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.01)

    async def dispatch(self, method: str, params: JSON, files: dict[str, bytes] | None = None) -> Any:
        """Run one Bot API method without HTTP (no failure injection, no limits, not recorded);
        returns the `result` or raises `ApiError`. For shape tests."""
        handler = self._methods.get(method)
        if handler is None:
            raise ApiError(404, "Not Found")
        return await handler(params, files or {})

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, files = await self._read_params(request)
        call = Call(method, params, files)
        self.calls.append(call)
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            self._check_failures(method, call.chat_id)
            if self._flood is not None and method in LIMITED_METHODS:
                self._check_limits(self._flood, call)
            result = await self.dispatch(method, params, files)
        except ApiError as exc:
            call.status = exc.status
            return web.json_response(exc.body(), status=exc.status)
        if call.paid and method in LIMITED_METHODS:
            self.paid_sent += 1
        return web.json_response({"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        for f in self.files.values():
            if f.file_path == path:
                return web.Response(body=f.data, content_type="application/octet-stream")
        return web.Response(status=404)

    async def _read_params(self, request: web.Request) -> tuple[JSON, dict[str, bytes]]:
        params: JSON = {}
        files: dict[str, bytes] = {}
        raw: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            body = await request.json()
            raw.update(body if isinstance(body, dict) else {})
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = value.file.read()
                    raw[key] = value
                else:
                    raw[key] = value
        for key, value in raw.items():
            params[key] = _coerce(key, value)
        return params, files

    def _check_failures(self, method: str, chat_id: int | None) -> None:
        for rule in self.failures:
            if rule.matches(method, chat_id):
                if rule.passed < rule.after:
                    rule.passed += 1
                    continue
                rule.hits += 1
                raise ApiError(rule.status, rule.description, rule.retry_after)

    def _check_limits(self, flood: FloodControl, call: Call) -> None:
        """Count the call against the token's limits (at its arrival instant) or answer 429."""
        try:
            flood.admit(call.chat_id, paid=call.paid, now=call.at)
        except FloodRefused as refused:
            self.rate_limited += 1
            self.rate_limited_by_scope[refused.scope] += 1
            raise ApiError(
                429, f"Too Many Requests: retry after {refused.retry_after}", refused.retry_after
            ) from refused

    def _wake_pollers(self) -> None:
        event, self._new_update = self._new_update, asyncio.Event()
        event.set()

    # ------------------------------------------------------------------ helpers

    def _new_message_id(self, chat_id: int) -> int:
        next_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = next_id + 1
        return next_id

    def _store_file(
        self,
        kind: str,
        data: bytes,
        *,
        mime_type: str | None = None,
        file_name: str | None = None,
    ) -> StoredFile:
        serial = next(self._ids)
        unique = "AQAD" + hashlib.sha256(data).hexdigest()[:16]
        prefix = {"photo": "AgAC", "video": "BAAC", "sticker": "CAAC", "voice": "AwAC"}.get(kind, "BQAC")
        file_id = f"{prefix}{serial:06d}{hashlib.sha256(f'{serial}'.encode()).hexdigest()[:24]}"
        ext = {"photo": "jpg", "video": "mp4", "sticker": "webp", "voice": "oga"}.get(kind, "bin")
        f = StoredFile(file_id, unique, kind, data, f"{kind}s/file_{serial}.{ext}", mime_type, file_name)
        if kind in ("photo", "sticker"):
            f.width, f.height = _image_size(data)
        self.files[file_id] = f
        return f

    def _user_message(
        self,
        user_id: int,
        kind: str,
        *,
        text: str | None = None,
        caption: str | None = None,
        file: StoredFile | None = None,
        photo_sizes: list[StoredFile] | None = None,
        reply_to: int | None = None,
    ) -> ChatMessage:
        user = self.users[user_id]
        user.started = True
        replied = self._chats[user_id][reply_to] if reply_to is not None else None
        msg = ChatMessage(
            self._new_message_id(user_id), user.chat_json(), user.to_json(), _now(), kind,
            text=text, caption=caption, source=text or caption, file=file,
            photo_sizes=photo_sizes or [], reply_to=replied,
        )  # fmt: skip
        self._chats[user_id][msg.message_id] = msg
        self.push_update("message", msg.to_json())
        return msg

    def _chat_for_send(self, params: JSON) -> JSON:
        """The chat object for `chat_id`, with Telegram's refusals."""
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int):
            raise _bad("chat not found")
        if chat_id in self.groups:
            return self.groups[chat_id].chat_json()
        user = self.users.get(chat_id)
        if user is None:
            raise _bad("chat not found")
        if user.deactivated:
            raise ApiError(403, "Forbidden: user is deactivated")
        if user.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if not user.started:
            raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        return user.chat_json()

    def _bot_message(self, params: JSON, missing: str) -> ChatMessage:
        self._chat_for_send(params)
        msg = self._chats[params["chat_id"]].get(params.get("message_id", 0))
        if msg is None or msg.deleted or not msg.from_bot:
            raise _bad(missing)
        return msg

    def _new_bot_message(self, chat: JSON, kind: str, params: JSON) -> ChatMessage:
        chat_id = int(chat["id"])
        reply_to = None
        reply_to_id = params.get("reply_to_message_id") or (params.get("reply_parameters") or {}).get(
            "message_id"
        )
        if reply_to_id is not None:
            reply_to = self._chats[chat_id].get(int(reply_to_id))
            if reply_to is None:
                raise _bad("message to be replied not found")
        msg = ChatMessage(
            self._new_message_id(chat_id), chat, self.bot_user, _now(), kind,
            reply_markup=_markup(params.get("reply_markup")), reply_to=reply_to,
            disable_notification=bool(params.get("disable_notification", False)),
        )  # fmt: skip
        self._chats[chat_id][msg.message_id] = msg
        return msg

    # ------------------------------------------------------------------ methods

    async def _get_me(self, params: JSON, files: dict[str, bytes]) -> JSON:
        return self.bot_user

    async def _get_updates(self, params: JSON, files: dict[str, bytes]) -> list[JSON]:
        if self.webhook.active:
            raise ApiError(409, WEBHOOK_CONFLICT)
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = float(params.get("timeout") or 0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self.allowed_updates = frozenset(allowed) if allowed else DEFAULT_UPDATES
        if offset:
            self._updates = [u for u in self._updates if u[0] >= offset]
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake_pollers()  # an older long poll is terminated by this one
        deadline = time.monotonic() + timeout
        while True:
            self._updates = [u for u in self._updates if u[1] in self.allowed_updates]
            if self._updates or self._closing:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            event = self._new_update
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                break
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only "
                    "one bot instance is running",
                )
        return [{"update_id": uid, kind: payload} for uid, kind, payload in self._updates[:limit]]

    async def _send_message(self, params: JSON, files: dict[str, bytes]) -> JSON:
        chat = self._chat_for_send(params)
        plain = _parse_text(params.get("text"), params.get("parse_mode"), limit=4096)
        msg = self._new_bot_message(chat, "text", params)
        msg.text, msg.source, msg.parse_mode = plain, params["text"], params.get("parse_mode")
        return msg.to_json()

    async def _send_media(self, kind: str, params: JSON, files: dict[str, bytes]) -> JSON:
        chat = self._chat_for_send(params)
        caption = None
        if kind != "sticker" and params.get("caption"):
            caption = _parse_caption(params["caption"], params.get("parse_mode"))
        value = params.get(kind)
        if kind in files:
            if kind == "voice":
                _check_voice_upload(files[kind])
            upload = value if isinstance(value, web.FileField) else None
            f = self._store_file(
                kind,
                files[kind],
                mime_type=upload.content_type if upload else None,
                file_name=upload.filename if upload else None,
            )
            if kind == "video":
                f.width = int(params.get("width") or 640)
                f.height = int(params.get("height") or 360)
                f.duration = int(params.get("duration") or 0)
            if kind == "voice":
                f.mime_type = "audio/ogg"
                f.duration = int(params.get("duration") or 0)
            self.uploads.append(f)
        elif isinstance(value, str) and value:
            if value.startswith(("http://", "https://", "attach://")):
                raise _bad("wrong file identifier/HTTP URL specified")
            known = self.files.get(value)
            if known is None:
                raise _bad("wrong file identifier/HTTP URL specified")
            if known.kind != kind:
                raise _bad(f"can't use file of type {known.kind.title()} as {kind.title()}")
            f = known
        else:
            raise _bad(f"there is no {kind} in the request")
        msg = self._new_bot_message(chat, kind, params)
        msg.file = f
        msg.photo_sizes = [f] if kind == "photo" else []
        msg.caption, msg.source, msg.parse_mode = (
            caption,
            params.get("caption"),
            params.get("parse_mode"),
        )
        return msg.to_json()

    async def _send_poll(self, params: JSON, files: dict[str, bytes]) -> JSON:
        chat = self._chat_for_send(params)
        if chat.get("type") == "channel" and not params.get("is_anonymous", True):
            raise _bad("non-anonymous polls can't be sent to channel chats")
        question = str(params.get("question") or "")
        if not 1 <= len(question) <= 300:
            raise _bad("poll question length must not exceed 300" if question else
                       "poll question must be non-empty")  # fmt: skip
        raw_options = params.get("options")
        if not isinstance(raw_options, list):
            raise _bad('field "options" must be an Array')
        options = [o.get("text", "") if isinstance(o, dict) else str(o) for o in raw_options]
        if len(options) < 2:
            raise _bad("poll must have at least 2 option")
        if len(options) > 12:
            raise _bad("poll can't have more than 12 options")
        if any(not 1 <= len(option) <= 100 for option in options):
            raise _bad("poll options length must not exceed 100")
        poll_type, correct, explanation = _quiz_fields(params, len(options))
        msg = self._new_bot_message(chat, "poll", params)
        poll = PollRecord(
            str(5_000_000_000_000_000 + next(self._ids)), msg.chat_id, msg.message_id, question,
            options, bool(params.get("is_anonymous", True)),
            bool(params.get("allows_multiple_answers", False)),
            is_closed=bool(params.get("is_closed", False)), type=poll_type,
            correct_option_id=correct, explanation=explanation,
        )  # fmt: skip
        self.polls[poll.id] = poll
        msg.poll = poll
        return msg.to_json()

    async def _stop_poll(self, params: JSON, files: dict[str, bytes]) -> JSON:
        msg = self._bot_message(params, "message with poll to stop not found")
        if msg.poll is None:
            raise _bad("message with poll to stop not found")
        if msg.poll.is_closed:
            raise _bad("poll has already been closed")
        msg.poll.is_closed = True
        if "reply_markup" in params:
            msg.reply_markup = _markup(params["reply_markup"])
        return msg.poll.to_json()

    async def _edit_text(self, params: JSON, files: dict[str, bytes]) -> JSON:
        msg = self._bot_message(params, "message to edit not found")
        if msg.kind != "text":
            raise _bad("there is no text in the message to edit")
        plain = _parse_text(params.get("text"), params.get("parse_mode"), limit=4096)
        markup = _markup(params.get("reply_markup"))
        if plain == msg.text and markup == msg.reply_markup:
            raise _bad(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        msg.history.append(msg.text or "")
        msg.text, msg.source, msg.parse_mode = plain, params["text"], params.get("parse_mode")
        msg.reply_markup = markup
        msg.edit_date = _now()
        return msg.to_json()

    async def _edit_caption(self, params: JSON, files: dict[str, bytes]) -> JSON:
        msg = self._bot_message(params, "message to edit not found")
        if msg.kind not in ("photo", "video", "voice", "paid_media"):  # a paid media's caption too
            raise _bad("there is no caption in the message to edit")
        caption = params.get("caption")
        plain = _parse_caption(caption, params.get("parse_mode")) if caption else None
        markup = _markup(params.get("reply_markup"))
        if plain == msg.caption and markup == msg.reply_markup:
            raise _bad(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        msg.history.append(msg.caption or "")
        msg.caption, msg.source, msg.parse_mode = plain, caption, params.get("parse_mode")
        msg.reply_markup = markup
        msg.edit_date = _now()
        return msg.to_json()

    async def _delete_message(self, params: JSON, files: dict[str, bytes]) -> bool:
        self._chat_for_send(params)
        msg = self._chats[params["chat_id"]].get(params.get("message_id", 0))
        if msg is None or msg.deleted:
            raise _bad("message to delete not found")
        if _now() - msg.date > _DELETE_WINDOW_S:
            raise _bad("message can't be deleted for everyone")
        msg.deleted = True
        return True

    async def _get_file(self, params: JSON, files: dict[str, bytes]) -> JSON:
        f = self.files.get(str(params.get("file_id") or ""))
        if f is None:
            raise _bad("invalid file_id")
        if len(f.data) > _MAX_DOWNLOAD:
            raise _bad("file is too big")
        return file_json(f)

    async def _set_my_commands(self, params: JSON, files: dict[str, bytes]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad("commands must be an Array of at most 100 BotCommand")
        for command in commands:
            name = str(command.get("command", ""))
            if not (1 <= len(name) <= 32 and all(c.islower() or c.isdigit() or c == "_"
                                                 for c in name)):  # fmt: skip
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        scope = params.get("scope") or {"type": "default"}
        language = str(params.get("language_code") or "")
        if language and not (len(language) == 2 and language.isalpha() and language.islower()):
            raise _bad("language_code must be a two-letter ISO 639-1 code")
        if not language:
            self.commands[str(scope.get("type"))] = list(commands)
        self.commands_by_language[(str(scope.get("type")), language)] = list(commands)
        return True

    async def _answer_callback_query(self, params: JSON, files: dict[str, bytes]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self.callback_answers or self.callback_answers[query_id] is not None:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        self.callback_answers[query_id] = dict(params)
        return True


def _now() -> int:
    return int(time.time())


def _coerce(key: str, value: Any) -> Any:
    """Turn a form value into the type Telegram would read it as."""
    if not isinstance(value, str):
        return value
    if key in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ApiError(400, f"Bad Request: can't parse {key} JSON object") from exc
    if key in _INT_FIELDS:
        try:
            return int(value)
        except ValueError:
            return value
    if key in _BOOL_FIELDS:
        return value.lower() in ("true", "1")
    return value


def _markup(value: Any) -> JSON | None:
    if isinstance(value, dict):
        for row in value.get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= 64:
                    raise _bad("BUTTON_DATA_INVALID")
                url = button.get("url")
                if (data is None) == (url is None):  # exactly one action per button (of these two)
                    raise _bad("BUTTON_TYPE_INVALID")
                if url is not None and not str(url).startswith(("https://", "http://", "tg://")):
                    raise _bad("BUTTON_URL_INVALID")
        return value
    return None


def _plain(text: str, parse_mode: Any) -> str:
    if parse_mode == "HTML":
        try:
            return parse_html(text)
        except EntityError as exc:
            raise _bad(f"can't parse entities: {exc}") from exc
    return text


def _parse_text(text: Any, parse_mode: Any, *, limit: int) -> str:
    if not isinstance(text, str) or not text.strip():
        raise _bad("message text is empty")
    plain = _plain(text, parse_mode)
    if not plain.strip():
        raise _bad("message text is empty")
    if utf16_len(plain) > limit:
        raise _bad("message is too long")
    return plain


def _check_voice_upload(data: bytes) -> None:
    """Telegram plays a voice note only from OGG/OPUS (or MP3, M4A), at most 50 MB uploaded."""
    if len(data) > _MAX_VOICE_UPLOAD:
        raise ApiError(413, "Request Entity Too Large")
    if not (data.startswith((b"OggS", b"ID3", b"\xff\xfb")) or data[4:8] == b"ftyp"):
        raise _bad("VOICE_MESSAGES_FORBIDDEN: wrong voice file format, use OGG/OPUS, MP3 or M4A")


def _quiz_fields(params: JSON, option_count: int) -> tuple[str, int | None, str | None]:
    """The poll's type, correct option and explanation, refused like Telegram refuses them.

    Bot API 9.6 names the correct options `correct_option_ids` (a list); the older
    `correct_option_id` is still read. This server takes one correct option per quiz."""
    poll_type = params.get("type") or "regular"
    if poll_type not in ("regular", "quiz"):
        raise _bad("wrong poll type specified")
    ids = params.get("correct_option_ids")
    legacy = params.get("correct_option_id")
    explanation = params.get("explanation")
    if poll_type == "regular":
        if ids is not None or legacy is not None:
            raise _bad("correct_option_ids can be specified only for quizzes")
        if explanation is not None:
            raise _bad("explanation can be specified only for quizzes")
        return poll_type, None, None
    if params.get("allows_multiple_answers"):
        raise _bad("quiz poll can't allow multiple answers")
    if ids is not None and legacy is not None:
        raise _bad("specify correct_option_ids or correct_option_id, not both")
    if ids is None:
        ids = [] if legacy is None else [legacy]
    if not isinstance(ids, list) or not ids:
        raise _bad("QUIZ_CORRECT_ANSWERS_EMPTY")
    if len(ids) > 1:
        raise _bad("QUIZ_CORRECT_ANSWERS_TOO_MUCH")
    correct = ids[0]
    if not isinstance(correct, int) or isinstance(correct, bool) or not 0 <= correct < option_count:
        raise _bad("QUIZ_CORRECT_ANSWER_INVALID")
    if explanation is None:
        return poll_type, correct, None
    plain = _plain(str(explanation), params.get("explanation_parse_mode"))
    if utf16_len(plain) > 200 or plain.count("\n") > 2:
        raise _bad("explanation is too long")
    return poll_type, correct, plain


def _parse_caption(caption: Any, parse_mode: Any) -> str:
    plain = _plain(str(caption), parse_mode)
    if utf16_len(plain) > 1024:
        raise _bad("message caption is too long")
    return plain
