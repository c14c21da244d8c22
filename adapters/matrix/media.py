"""Media for Matrix: uploading a post's media once, downloading (and decrypting) inbound media.

In unencrypted rooms (and for stickers, which Matrix only allows as plain `url`) a post's media
is uploaded once and its plain mxc:// URI is returned as `MessageRef.media_ref`; later copies
reuse `MediaContent.platform_ref`. In encrypted rooms it is uploaded once per blob as an
encrypted attachment (AES-CTR key/iv/hashes) and that `file` object is reused for every
encrypted room (the key only travels inside megolm-encrypted events); the plain mxc is never
used there, so the server never holds a plaintext copy meant for encrypted rooms.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

from nio import Api, ErrorResponse, MatrixRoom, MemoryDownloadResponse, UploadResponse
from nio.crypto import decrypt_attachment, encrypt_attachment

from bridge.ports import Content, InboundMedia, MediaTooLarge, Message, PermanentFailure, PostKind

from . import render
from .errors import check, error_for_response, translated
from .normalize import MediaMessage, MediaPointer
from .session import Session

#: downloads one pointer's bytes, at most `limit` of them when given
Download = Callable[[MediaPointer, int | None], Awaitable[bytes]]


class Media:
    """Uploads and downloads for one session."""

    def __init__(self, session: Session) -> None:
        self._s = session

    async def render_post(
        self, room: MatrixRoom, content: Content, download: Download
    ) -> render.RenderedPost:
        """(event type, content, plain mxc to report) for one copy, uploading at most once."""
        media = content.media
        if content.kind not in (PostKind.PHOTO, PostKind.VIDEO, PostKind.VOICE, PostKind.STICKER):
            event_type, body = render.render_post(content)
            return event_type, body, None
        if media is None:
            raise PermanentFailure("media post without media")
        size = len(media.data) if media.data is not None else None
        encrypted = self._s.encryption and room.encrypted and content.kind is not PostKind.STICKER
        if not encrypted:
            url = media.platform_ref
            if not url:
                async with self._s.lock(f"plain:{media.blob_id}"):
                    data = await self._bytes(content, download)
                    url = await self._upload(data, media.mime, media.filename)
            event_type, body = render.render_post(content, url=url, size=size)
            return event_type, body, url
        key = str(media.blob_id)
        async with self._s.lock(f"enc:{key}"):
            file = self._s.state.enc_media.get(key)
            if file is None:
                data = await self._bytes(content, download)
                size = len(data)
                ciphertext, keys = encrypt_attachment(data)
                url = await self._upload(ciphertext, "application/octet-stream", media.filename)
                file = {"url": url, "mimetype": media.mime, "size": size, **keys}
                self._s.state.enc_media[key] = file
                self._s.save()
        event_type, body = render.render_post(content, file=file, size=file.get("size"))
        return event_type, body, None

    async def image_message(self, room: MatrixRoom, png: bytes, caption: str) -> dict[str, Any]:
        """An `m.image` event content for a reply's PNG (a chart), uploaded now: encrypted in
        an encrypted room, plain elsewhere; the caption is its body."""
        info: dict[str, Any] = {"mimetype": "image/png", "size": len(png)}
        if png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) >= 24:
            info["w"], info["h"] = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        body: dict[str, Any] = {"msgtype": "m.image", "body": caption, "filename": "chart.png", "info": info}
        if self._s.encryption and room.encrypted:
            ciphertext, keys = encrypt_attachment(png)
            url = await self._upload(ciphertext, "application/octet-stream", "chart.png")
            body["file"] = {"url": url, "mimetype": "image/png", **keys}
        else:
            body["url"] = await self._upload(png, "image/png", "chart.png")
        return body

    async def _upload(self, data: bytes, mime: str, filename: str) -> str:
        with translated("upload"):
            resp, _ = await self._s.client.upload(
                io.BytesIO(data), content_type=mime, filename=filename, filesize=len(data)
            )
        check(resp, "upload")
        assert isinstance(resp, UploadResponse)
        return str(resp.content_uri)

    @staticmethod
    async def _bytes(content: Content, download: Download) -> bytes:
        media = content.media
        assert media is not None
        if media.data is not None:
            return media.data
        if media.platform_ref:
            pointer = MediaPointer(media.kind, media.platform_ref, None, media.mime, media.filename)
            with translated("download"):
                return await download(pointer, None)
        raise PermanentFailure("media post without data or reference")

    async def download(self, pointer: MediaPointer, limit: int | None = None) -> bytes:
        """Fetch (and decrypt) media; with `limit`, stop reading and raise `MediaTooLarge` as
        soon as the body is larger (an encrypted attachment is as long as its plaintext)."""
        if limit is None:
            resp = await self._s.client.download(pointer.url)
            if not isinstance(resp, MemoryDownloadResponse):
                raise (
                    error_for_response(resp, "download")
                    if isinstance(resp, ErrorResponse)
                    else PermanentFailure("download: unexpected response")
                )
            body: bytes = resp.body
        else:
            body = await self._download_bounded(pointer.url, limit)
        if pointer.file is None:
            return body
        file = pointer.file
        try:
            plain: bytes = decrypt_attachment(body, file["key"]["k"], file["hashes"]["sha256"], file["iv"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PermanentFailure("download: the attachment does not decrypt") from exc
        return plain

    async def _download_bounded(self, mxc: str, limit: int) -> bytes:
        client = self._s.client
        parsed = urlparse(mxc)
        _, path = Api.download(
            parsed.netloc, parsed.path.strip("/"), None, True, access_token=client.access_token
        )
        with translated("download"):
            resp = await client.send("GET", path)
            try:
                if resp.status != 200:
                    raise PermanentFailure(f"download refused ({resp.status})")
                if (resp.content_length or 0) > limit:
                    raise MediaTooLarge()
                body = bytearray()
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > limit:
                        raise MediaTooLarge()
                return bytes(body)
            finally:
                resp.release()


def with_media(item: MediaMessage, download: Download) -> Message:
    """The message with a bounded download for the engine to call once it has authorized the
    sender; nothing is fetched here."""
    pointer = item.media

    async def fetch(limit: int) -> bytes:
        return await download(pointer, limit)

    media = InboundMedia(
        kind=pointer.kind,
        mime=pointer.mime,
        filename=pointer.filename,
        platform_ref=None if pointer.file else pointer.url,
        width=pointer.width,
        height=pointer.height,
        duration=pointer.duration,
        size=pointer.size,
        fetch=fetch,
    )
    return Message(item.sender, item.text, media)
