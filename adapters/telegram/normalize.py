"""Telegram `Update` -> neutral inbound event (`Message`, `PollVote`, `Reaction`, the money
events of `payments`); else None.

Pure: no network. Media arrives with `data=None` and the Telegram file_id in `platform_ref`;
the adapter downloads the bytes afterwards. Only private chats produce events.
"""

from __future__ import annotations

import datetime as dtm
import warnings

from telegram import (
    Chat,
    PhotoSize,
    ReactionTypeEmoji,
    Sticker,
    Update,
    User,
    Video,
    Voice,
)
from telegram import (
    Message as TgMessage,
)
from telegram.constants import ChatType
from telegram.warnings import PTBDeprecationWarning

from adapters.base import Address, Inbound, InboundMedia, Message, PollVote, PostKind, Reaction
from bridge.commands import COMMAND_PREFIXES
from bridge.i18n import language_of

from . import payments

PLATFORM = "telegram"
#: what starts a command (same grammar on every platform)


def sender_address(user: User, chat: Chat | None = None) -> Address:
    """The neutral address of a Telegram user; `chat` defaults to their private chat."""
    return Address(PLATFORM, str(user.id), chat=str(chat.id if chat else user.id))


def is_command(text: str | None) -> bool:
    """Whether a text or caption is a command for the bot."""
    return text is not None and text.lstrip().startswith(COMMAND_PREFIXES)


def strip_bot_mention(text: str, bot_username: str | None) -> str:
    """Turn `/start@our_bot payload` into `/start payload` (other bots' mentions stay)."""
    if not bot_username:
        return text
    head, sep, rest = text.lstrip().partition(" ")
    command, at, mention = head.partition("@")
    if at and mention.lower() == bot_username.lower():
        return command + sep + rest
    return text


def _seconds(value: int | float | dtm.timedelta | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, dtm.timedelta):
        return int(value.total_seconds())
    return int(value)


def _duration(media: Video | Voice) -> int | None:
    """A video's or voice note's length in whole seconds (PTB warns that `duration` becomes a
    timedelta; both forms are read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        return _seconds(media.duration)


def media_of(message: TgMessage) -> InboundMedia | None:
    """The photo (largest size), video, voice note or sticker of a message, without its bytes."""
    if message.photo:
        largest: PhotoSize = max(message.photo, key=lambda size: size.width * size.height)
        return InboundMedia(
            PostKind.PHOTO,
            mime="image/jpeg",
            filename="photo.jpg",
            platform_ref=largest.file_id,
            width=largest.width,
            height=largest.height,
            size=largest.file_size,
        )
    if message.video:
        video: Video = message.video
        duration = _duration(video)
        return InboundMedia(
            PostKind.VIDEO,
            mime=video.mime_type or "video/mp4",
            filename=video.file_name or "video.mp4",
            platform_ref=video.file_id,
            width=video.width,
            height=video.height,
            duration=duration,
            size=video.file_size,
        )
    if message.voice:
        voice: Voice = message.voice
        seconds = _duration(voice)
        return InboundMedia(
            PostKind.VOICE,
            mime=voice.mime_type or "audio/ogg",
            filename="voice.ogg",
            platform_ref=voice.file_id,
            duration=seconds,
            size=voice.file_size,
        )
    if message.sticker:
        sticker: Sticker = message.sticker
        if sticker.is_animated:
            mime, filename = "application/x-tgsticker", "sticker.tgs"
        elif sticker.is_video:
            mime, filename = "video/webm", "sticker.webm"
        else:
            mime, filename = "image/webp", "sticker.webp"
        return InboundMedia(
            PostKind.STICKER,
            mime=mime,
            filename=filename,
            platform_ref=sticker.file_id,
            width=sticker.width,
            height=sticker.height,
            size=sticker.file_size,
        )
    return None


def _private_sender(message: TgMessage) -> User | None:
    user = message.from_user
    if message.chat.type != ChatType.PRIVATE or user is None or user.is_bot:
        return None
    return user


def _from_message(message: TgMessage, bot_username: str | None) -> Inbound | None:
    user = _private_sender(message)
    if user is None:
        return None
    sender = sender_address(user, message.chat)
    if message.successful_payment is not None:
        return payments.payment_received(message.successful_payment, sender)
    if message.refunded_payment is not None:
        return payments.payment_refunded(message.refunded_payment, sender)
    spoken = language_of(user.language_code)
    media = media_of(message)
    if media is not None:
        # media from an admin: the caption is the command (`/post news ...`)
        if not is_command(message.caption):
            return None
        return Message(sender, strip_bot_mention(message.caption or "", bot_username), media, spoken)
    text = message.text
    if not text:
        return None
    reply_to = message.reply_to_message
    if reply_to is not None and is_command(text):
        # a sticker has no caption: `/post <handle>` sent as a reply to the user's own media
        replied_media = media_of(reply_to)
        author = reply_to.from_user
        if replied_media is not None and author is not None and author.id == user.id:
            return Message(sender, strip_bot_mention(text, bot_username), replied_media, spoken)
    return Message(sender, strip_bot_mention(text, bot_username), language=spoken)


def to_inbound(update: Update, *, bot_username: str | None = None) -> Inbound | None:
    """Map one update to a neutral inbound event; None for anything we do not handle
    (group messages, edits, service messages, polls' state, other bots)."""
    if update.message is not None:
        return _from_message(update.message, bot_username)
    query = update.callback_query
    if query is not None:
        user = query.from_user
        chat = query.message.chat if query.message is not None else None
        if chat is not None and chat.type != ChatType.PRIVATE:
            return None
        if not query.data or user.is_bot:
            return None
        return Message(sender_address(user, chat), query.data, language=language_of(user.language_code))
    query_ = update.pre_checkout_query
    if query_ is not None:
        return (
            None
            if query_.from_user.is_bot
            else payments.pre_checkout(query_, sender_address(query_.from_user))
        )
    purchase = update.purchased_paid_media
    if purchase is not None:
        return payments.paid_media_purchased(purchase, sender_address(purchase.from_user))
    answer = update.poll_answer
    if answer is not None:
        if answer.user is None:  # an anonymous chat voted; no person to count
            return None
        return PollVote(sender_address(answer.user), answer.poll_id, tuple(answer.option_ids))
    reaction = update.message_reaction
    if reaction is not None:
        reactor = reaction.user
        if reaction.chat.type != ChatType.PRIVATE or reactor is None or reactor.is_bot:
            return None
        key = next((r.emoji for r in reaction.new_reaction if isinstance(r, ReactionTypeEmoji)), None)
        return Reaction(
            sender_address(reactor, reaction.chat),
            f"{reaction.chat.id}:{reaction.message_id}",
            key,
        )
    return None
