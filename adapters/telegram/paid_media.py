"""A pay-per-post copy as Telegram paid media: `sendPaidMedia` with the post's one photo or
video, its price in Stars and a payload naming the post (never a person).

Pure, like `render`: builds the Bot API calls only. `copyMessage` cannot copy paid media, so
every copy is sent; the stored file_id is reused when there is one. A caption longer than one
caption's limit continues in plain messages after the paid media, as for any media post.
"""

from __future__ import annotations

from typing import Any

from telegram import InputFile, InputPaidMediaPhoto, InputPaidMediaVideo

from adapters.base import Content, MediaContent, PermanentFailure, PostKind

from .render import ApiCall, post_bodies

#: Telegram's limit on a paid-media payload, in bytes
PAYLOAD_LIMIT = 128


def _paid_input(media: MediaContent, *, upload: bool) -> InputPaidMediaPhoto | InputPaidMediaVideo:
    """The one InputPaidMedia of the copy: the known file_id, or the bytes attached."""
    source: str | InputFile
    if media.platform_ref and not upload:
        source = media.platform_ref
    elif media.data is not None:
        source = InputFile(media.data, filename=media.filename, attach=True)
    else:
        raise PermanentFailure("media has neither bytes nor a Telegram file id")
    if media.kind is PostKind.PHOTO:
        return InputPaidMediaPhoto(source)
    return InputPaidMediaVideo(
        source,
        width=media.width or None,
        height=media.height or None,
        duration=media.duration or None,
        supports_streaming=True,
    )


def render_paid_media(chat_id: str, content: Content, *, upload: bool = False) -> list[ApiCall]:
    """The calls that deliver a pay-per-post copy: `sendPaidMedia`, then any text left over."""
    media = content.media
    if content.stars is None or media is None or content.kind not in (PostKind.PHOTO, PostKind.VIDEO):
        raise PermanentFailure("a pay-per-post copy is one photo or video with a price")
    common: dict[str, Any] = {"chat_id": chat_id}
    if content.silent:
        common["disable_notification"] = True
    bodies = post_bodies(content)
    params: dict[str, Any] = {
        **common,
        "star_count": content.stars,
        "media": [_paid_input(media, upload=upload)],
        "caption": bodies[0],
        "parse_mode": "HTML",
    }
    payload = content.paid_payload or ""
    if payload and len(payload.encode("utf-8")) <= PAYLOAD_LIMIT:
        params["payload"] = payload
    calls = [ApiCall("sendPaidMedia", params)]
    calls.extend(
        ApiCall("sendMessage", {**common, "text": body, "parse_mode": "HTML"}) for body in bodies[1:]
    )
    return calls


def paid_media_ref(result: dict[str, Any]) -> str | None:
    """The file_id of the photo or video a `sendPaidMedia` returned (reused by later copies)."""
    items = (result.get("paid_media") or {}).get("paid_media") or []
    for item in items:
        if item.get("photo"):
            return str(item["photo"][-1]["file_id"])
        if item.get("video"):
            return str(item["video"]["file_id"])
    return None


__all__ = ["PAYLOAD_LIMIT", "paid_media_ref", "render_paid_media"]
